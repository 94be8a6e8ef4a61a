#!/usr/bin/env bash
# Runs docker-compose.yml without a Docker engine: validates it with
# `docker-compose config`, then starts each Bookstore service with exactly the
# command and environment the compose file gives it, as local processes
# against the local PostgreSQL (127.0.0.1:5432), waits for the compose
# healthchecks to pass, and drives the tutorial's REST journey through the
# gateway with curl. Cleans up after itself.
#
#   deploy/compose-local.sh [BIN_DIR=target/debug]
#
# Rewrites only what a container network provides: host names (postgres,
# auth-service, books-service -> 127.0.0.1), 0.0.0.0 -> 127.0.0.1, and the
# secret mount /run/secrets/auth_signing_key -> a freshly generated key file;
# and, so as never to touch a developer's own databases, the database names
# get a per-run suffix (bookstore_auth -> bookstore_auth_ci<pid>).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR="${1:-target/debug}"
PY=/usr/bin/python3   # Debian's python3 has PyYAML (a docker-compose dependency)
WORK="$(mktemp -d)"
SUFFIX="_ci$$"
PIDS=()
created_role=0
made_secret=0
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qAt -c "drop database if exists bookstore_auth$SUFFIX with (force)" \
    -c "drop database if exists bookstore_books$SUFFIX with (force)" >/dev/null 2>&1 || true
  [ "$created_role" = 1 ] && psql -h 127.0.0.1 -U postgres -qAt -c "drop role if exists bookstore" >/dev/null 2>&1
  [ "$made_secret" = 1 ] && rm -f deploy/secrets/auth-signing-key.pem
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== docker-compose config (validation)"
"$BIN_DIR/bookstore" generate-signing-key --out "$WORK/auth-signing-key.pem" >/dev/null
mkdir -p deploy/secrets
# The compose file names this secret file; config validation needs it to exist.
if [ ! -e deploy/secrets/auth-signing-key.pem ]; then
  cp "$WORK/auth-signing-key.pem" deploy/secrets/auth-signing-key.pem; made_secret=1
fi
docker-compose -f docker-compose.yml config > "$WORK/compose.yml"
echo "valid"

echo "== PostgreSQL as the compose file's postgres service (role and databases of deploy/postgres/init.sql)"
if [ -z "$(psql -h 127.0.0.1 -U postgres -qAt -c "select 1 from pg_roles where rolname = 'bookstore'")" ]; then
  psql -h 127.0.0.1 -U postgres -qAt -c "create role bookstore login password 'bookstore'" >/dev/null
  created_role=1
fi
sed "s/\(bookstore_auth\|bookstore_books\)/\1$SUFFIX/g" deploy/postgres/init.sql | psql -h 127.0.0.1 -U postgres -q >/dev/null

# service -> "command\0env lines", healthcheck command
"$PY" - "$WORK" "$SUFFIX" <<'PYEOF'
import re, sys, yaml, json, shlex
work, suffix = sys.argv[1], sys.argv[2]
compose = yaml.safe_load(open(f"{work}/compose.yml"))
def local(value):
    value = str(value)
    for host in ("postgres:5432", "auth-service:", "books-service:"):
        value = value.replace(host, "127.0.0.1:" if host.endswith(":") else "127.0.0.1:5432")
    value = value.replace("0.0.0.0:", "127.0.0.1:")
    value = re.sub(r"/(bookstore_auth|bookstore_books)\b", rf"/\1{suffix}", value)
    return value.replace("/run/secrets/auth_signing_key", f"{work}/auth-signing-key.pem")
for name in ("auth-service", "books-service", "gateway"):
    service = compose["services"][name]
    env = {key: local(value) for key, value in (service.get("environment") or {}).items()}
    with open(f"{work}/{name}.env", "w") as out:
        for key, value in env.items():
            out.write(f"export {key}={shlex.quote(value)}\n")
    with open(f"{work}/{name}.cmd", "w") as out:
        out.write(" ".join(shlex.quote(part) for part in service["command"]))
    with open(f"{work}/{name}.health", "w") as out:
        out.write(" ".join(shlex.quote(local(part)) for part in service["healthcheck"]["test"][1:]))
PYEOF

for service in auth-service books-service gateway; do
  cmd="$(cat "$WORK/$service.cmd")"
  health="$(cat "$WORK/$service.health")"
  echo "== $service: $cmd"
  sed 's/^export /  /' "$WORK/$service.env"
  ( set -a; . "$WORK/$service.env"; exec "$BIN_DIR/$cmd" ) >"$WORK/$service.log" 2>&1 &
  PIDS+=("$!")
  echo "   healthcheck: $health"
  for attempt in $(seq 1 60); do
    if (PATH="$BIN_DIR:$PATH"; eval "$health") >/dev/null 2>&1; then echo "   healthy"; break; fi
    if [ "$attempt" = 60 ]; then echo "$service never became healthy" >&2; cat "$WORK/$service.log" >&2; exit 1; fi
    sleep 0.5
  done
done

echo "== the tutorial's REST journey through the gateway"
BASE=http://127.0.0.1:5000
fail() { echo "FAILED: $*" >&2; for s in auth-service books-service gateway; do echo "--- $s" >&2; tail -n 20 "$WORK/$s.log" >&2; done; exit 1; }
check() { # expected-status description curl-args...
  local expected=$1 what=$2; shift 2
  local status
  status=$(curl -s -o "$WORK/body" -w '%{http_code}' "$@")
  echo "   $status $what: $(head -c 200 "$WORK/body")"
  [ "$status" = "$expected" ] || fail "$what: expected $expected, got $status"
}
check 201 "POST /register" -X POST "$BASE/register" -H 'Content-Type: application/json' -d '{"name":"compose-user","password":"compose-password"}'
check 200 "POST /login" -X POST -u compose-user:compose-password "$BASE/login"
TOKEN=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$WORK/body")
check 201 "POST /book" -X POST "$BASE/book" -H "x-access-tokens: $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"Dune","Author":"Frank Herbert","Publisher":"Chilton","book_prize":250}'
ID=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/body")
check 200 "GET /books" "$BASE/books" -H "x-access-tokens: $TOKEN"
grep -q '"Author":"Frank Herbert"' "$WORK/body" || fail "the book is not listed"
check 401 "GET /books without a token" "$BASE/books"
check 200 "DELETE /books/$ID" -X DELETE "$BASE/books/$ID" -H "x-access-tokens: $TOKEN"
check 404 "DELETE /books/$ID again" -X DELETE "$BASE/books/$ID" -H "x-access-tokens: $TOKEN"
echo "compose-local: all checks passed"
