#!/usr/bin/env bash
# Fuzzes the gateway with schemathesis from its own OpenAPI document: every
# documented operation, with valid and invalid data, as a logged-in user.
# Fails on any 5xx, and on any answer the document does not describe (status,
# content type, headers, body schema).
#
#   .ci/schemathesis.sh [BIN_DIR=target/debug]
#
# Bounded: at most SCHEMATHESIS_MAX_EXAMPLES cases per operation (default 25)
# and a hard limit of 5 minutes; the fixed SCHEMATHESIS_SEED (default 1)
# makes CI runs repeatable, another seed explores further.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR="${1:-target/debug}"
VENV="${TMPDIR:-/tmp}/bookstore-schemathesis-venv"
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis~=4.32"
fi
"$VENV/bin/schemathesis" --version

source .ci/stack.sh
start_stack "$BIN_DIR"

# An admin of its own (made as docs/admin.md says), so the token-protected
# routes, `GET /users` included, are exercised past the token check (their
# 401s and 403s are covered by the API tests).
password="schemathesis-password"
RUST_LOG=warn BOOKSTORE_ADMIN_PASSWORD="$password" "$BIN_DIR/bookstore" --data-dir "$STACK_DIR/data" \
  create-admin --name schemathesis >/dev/null
token="$(curl -fsS -X POST -u "schemathesis:$password" "$GATEWAY_URL/login" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
# A few books, so reads of existing ids happen too.
for name in Dune Emma Ulysses; do
  curl -fsS -X POST "$GATEWAY_URL/book" -H "x-access-tokens: $token" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$name\",\"Author\":\"Someone\",\"Publisher\":\"Press\",\"book_prize\":10}" >/dev/null
done

REPORT_DIR="$(mktemp -d)"
# Run from the report directory: schemathesis keeps a cache in the working
# directory.
schemathesis() (
  cd "$REPORT_DIR"
  timeout 300 "$VENV/bin/schemathesis" run "$GATEWAY_URL/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --request-timeout 15 \
    --report-dir "$REPORT_DIR" \
    --no-color "$@"
)
status=0
echo "== every operation, with the admin's token"
schemathesis --header "Authorization: Bearer $token" --exclude-path /login || status=$?
echo "== POST /login, with the admin's name and password (HTTP Basic)"
schemathesis --auth "schemathesis:$password" --include-path /login --phases examples,coverage,fuzzing || status=$?
rm -rf "$REPORT_DIR"
if [ "$status" != 0 ]; then
  echo "schemathesis found problems (exit $status); the gateway's log:" >&2
  tail -n 50 "$STACK_DIR/stderr" >&2
fi
exit "$status"
