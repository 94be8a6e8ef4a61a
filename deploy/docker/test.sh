#!/usr/bin/env bash
# The container deployment, tested the way a user runs it: a real Docker
# engine (deploy/docker/engine.sh), the project's Dockerfile built as it is,
# and docker-compose.yml run with `up`. Against the containers:
#   1. the REST journey of docs/rest-api.md through 127.0.0.1:5000, grpcurl `list` and
#      health on the published gRPC ports, every healthcheck healthy, no
#      error in the logs;
#   2. faults: books-service and auth-service SIGKILLed from the host (as a
#      crash or the OOM killer would) during a write load through the
#      gateway: they come back by themselves, no request gets a 500, every
#      acknowledged write is still there;
#   3. data: `down` + `up` keeps users, books and sessions; `down -v` removes
#      them;
#   4. TLS: the same deployment (its volumes kept) `up` again with
#      docker-compose.tls.yml, certificates made by the init job: the REST
#      journey over https with curl --cacert, plain http answered 400,
#      grpcurl -cacert on the published gRPC ports (plaintext refused), the
#      revocation feed refused without a service certificate, certificates
#      rotated with generate-dev-certs and picked up without a restart, every
#      healthcheck (over TLS) healthy, no error in the logs; then `down -v`;
#   5. scale-out: `up --scale books-service=3 --scale auth-service=2`, and
#      the gateway's calls spread over every replica (their request counters);
#   6. the image: at most 100 MB, non-root, read-only root filesystem, and
#      `docker run IMAGE` alone runs the all-in-one on SQLite in a volume.
# Stops the engine it started on exit, also on failure.
#
#   deploy/docker/test.sh
#
# Needs root (it installs and starts dockerd), curl, jq, grpcurl, python3.
# Host ports used: 5000 (the gateway's in compose), 5001 (the all-in-one's);
# the others compose publishes are free ones the engine picks.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/docker/engine.sh
source deploy/docker/engine.sh
# docker-compose 1.29 builds with the `docker` CLI it finds first: Debian's,
# which has BuildKit (the Dockerfile's cache mounts need it).
export PATH="/usr/bin:$PATH"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bookstore-containers.XXXXXX")
export COMPOSE_PROJECT_NAME=bookstore-ci
# No registry here: the local stand-in for the official postgres image.
export POSTGRES_IMAGE=bookstore-postgres:15
BASE=http://127.0.0.1:5000
ALL_IN_ONE=bookstore-ci-all-in-one
SECONDS=0
# The compose files in use: the TLS phase adds docker-compose.tls.yml.
COMPOSE_FILES=(-f docker-compose.yml)
compose() { docker-compose "${COMPOSE_FILES[@]}" "$@"; }
step() { echo; echo "== [$(date -u +%T), +${SECONDS}s] $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

cleanup() {
  local status=$?
  set +e
  if [ "${ENGINE_STARTED:-0}" = 1 ] || docker info >/dev/null 2>&1; then
    if [ "$status" != 0 ]; then
      echo "-- container state and last log lines (failure)"
      compose ps
      compose logs --no-color --tail=40
    fi
    docker rm -f -v "$ALL_IN_ONE" >/dev/null 2>&1
    compose down -v --remove-orphans >/dev/null 2>&1
  fi
  engine_stop
  rm -rf "$WORK"
  echo "containers test: $([ "$status" = 0 ] && echo passed || echo FAILED) after ${SECONDS}s"
}
trap cleanup EXIT

for tool in curl jq grpcurl openssl python3 rustc rustup; do
  command -v "$tool" >/dev/null || fail "$tool is needed (.ci/run installs curl, jq and grpcurl)"
done
for port in 5000 5001; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "127.0.0.1:$port is in use; the compose file publishes it"
  fi
done

step "engine and base images"
engine_start
started=$SECONDS

step "build: the project's Dockerfile, through compose"
compose build
echo "build: $((SECONDS - started)) s"
size=$(docker image inspect -f '{{.Size}}' bookstore:latest)
user=$(docker image inspect -f '{{.Config.User}}' bookstore:latest)
echo "image bookstore:latest: $((size / 1000000)) MB, user $user"
[ "$size" -le 100000000 ] || fail "the image is over 100 MB"
case "$user" in 0 | 0:* | root* | "") fail "the image runs as root" ;; esac

# The compose project's containers of SERVICE (one per replica).
containers() { compose ps -q "$1"; }
all_containers() { compose ps -q; }
health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1"; }
# Waits until every container with a healthcheck is healthy; TIMEOUT seconds.
wait_healthy() {
  local timeout=${1:-120} deadline=$((SECONDS + ${1:-120})) id state pending
  while :; do
    pending=""
    for id in $(all_containers); do
      state=$(health "$id")
      case "$state" in healthy | exited) ;; *) pending="$pending $(docker inspect -f '{{.Name}}' "$id")=$state" ;; esac
    done
    [ -z "$pending" ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || fail "not healthy within ${timeout}s:$pending"
    sleep 0.5
  done
}
# The REST journey (docs/rest-api.md); NAME is the user it registers. Over
# https when BASE is, verifying the gateway with CACERT.
journey() {
  local name=$1 token id
  curl ${CACERT:+--cacert "$CACERT"} -fsS -X POST "$BASE/register" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$name\",\"password\":\"wonderland1\"}" | jq -e '.message == "registered successfully"' >/dev/null
  token=$(curl ${CACERT:+--cacert "$CACERT"} -fsS -X POST -u "$name:wonderland1" "$BASE/login" | jq -r .token)
  id=$(curl ${CACERT:+--cacert "$CACERT"} -fsS -X POST "$BASE/book" -H "x-access-tokens: $token" -H 'Content-Type: application/json' \
    -d '{"name":"Dune","Author":"Frank Herbert","Publisher":"Chilton","book_prize":250}' | jq -e .id)
  curl ${CACERT:+--cacert "$CACERT"} -fsS "$BASE/books" -H "x-access-tokens: $token" | jq -e ".list_of_books | map(.id) | index($id) != null" >/dev/null
  curl ${CACERT:+--cacert "$CACERT"} -fsS -X PATCH "$BASE/books/$id" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"book_prize":300}' | jq -e '.book_prize == 300' >/dev/null
  curl ${CACERT:+--cacert "$CACERT"} -fsS -X DELETE "$BASE/books/$id" -H "x-access-tokens: $token" | jq -e '.message == "Book deleted"' >/dev/null
  [ "$(curl ${CACERT:+--cacert "$CACERT"} -s -o /dev/null -w '%{http_code}' -X DELETE "$BASE/books/$id" -H "x-access-tokens: $token")" = 404 ]
  echo "journey ok as $name (book $id created, listed, patched, deleted)"
}
# Fails if a Bookstore service logged an error or panicked (postgres's own
# log is left out: it logs a client's constraint violations as ERROR).
no_errors_in_logs() {
  local found
  found=$(compose logs --no-color signing-key auth-service books-service gateway \
    | grep -E ' ERROR |"level":"ERROR"|panicked' || true)
  [ -z "$found" ] || { echo "$found" | head -20; fail "errors in the logs ($1)"; }
  echo "no error in the logs ($1)"
}

volumes_before=$(docker volume ls -q | sort)

step "up --build (a clean start: no key, no data)"
started=$SECONDS
# As the README (and docs/deployment.md) says it; the image is built already, so this build is cached.
compose up --build -d
wait_healthy 180
echo "healthy after $((SECONDS - started)) s:"
compose ps

step "the REST journey through 127.0.0.1:5000"
journey alice

step "grpcurl on the published gRPC ports"
for target in auth-service:50051/bookstore.auth.v1.AuthService books-service:50052/bookstore.books.v1.BooksService; do
  name=${target%%/*} service=${target#*/}
  addr=$(compose port "${name%%:*}" "${name#*:}")
  grpcurl -plaintext "$addr" list | grep -x "$service" >/dev/null || fail "$addr does not list $service"
  grpcurl -plaintext -d "{\"service\":\"$service\"}" "$addr" grpc.health.v1.Health/Check \
    | jq -e '.status == "SERVING"' >/dev/null || fail "$service is not SERVING"
  echo "$addr: lists $service, SERVING"
done
# The revocation feed answers only our services (books-service is SERVING,
# so it read the feed with the service token the init job made).
feed=$(grpcurl -plaintext "$(compose port auth-service 50051)" bookstore.auth.v1.AuthService/ListRevocations 2>&1 || true)
echo "$feed" | grep -q "x-service-token: is missing" || fail "ListRevocations answered without a service token: $feed"
echo "ListRevocations without the service token: refused"
# Metrics are on the gateway's admin port, not its public one.
# Read whole, then searched: `curl | grep -q` fails under pipefail when grep
# stops reading at its match and curl cannot write the rest (curl: (23)).
metrics=$(curl -fsS http://127.0.0.1:9103/metrics) || fail "no gateway metrics on :9103"
grep -q '^http_server_requests_total' <<<"$metrics" || fail "no request counter in the gateway's metrics"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")" = 404 ] || fail "/metrics is served on the public port"
echo "gateway metrics on 127.0.0.1:9103, none on :5000"
for id in $(all_containers); do
  state=$(health "$id")
  echo "$(docker inspect -f '{{.Name}} read-only={{.HostConfig.ReadonlyRootfs}} user={{.Config.User}}' "$id"): $state"
done
for service in auth-service books-service gateway; do
  [ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$(containers "$service")")" = true ] \
    || fail "$service's root filesystem is writable"
done
no_errors_in_logs "after the journey"

step "faults: SIGKILL from the host during a write load"
curl -fsS -X POST "$BASE/register" -H 'Content-Type: application/json' -d '{"name":"loader","password":"load password"}' >/dev/null
curl -fsS -X POST -u loader:'load password' "$BASE/login" >"$WORK/loader.json"
token=$(jq -r .token "$WORK/loader.json")
python3 deploy/docker/write_load.py run "$BASE" "$token" "$WORK/stop" "$WORK/load.json" 3 &
load_pid=$!
# Kills SERVICE's process with SIGKILL from the host (`docker kill` would
# count as a manual stop and disable the restart policy), then waits until
# the engine has restarted it and it is healthy again.
kill_and_wait() {
  local service=$1 id pid restarts started
  id=$(containers "$service")
  pid=$(docker inspect -f '{{.State.Pid}}' "$id")
  restarts=$(docker inspect -f '{{.RestartCount}}' "$id")
  started=$(date +%s%N)
  kill -KILL "$pid"
  while [ "$(docker inspect -f '{{.RestartCount}}' "$id")" = "$restarts" ] || [ "$(health "$id")" != healthy ]; do
    [ $(( ($(date +%s%N) - started) / 1000000000 )) -lt 60 ] || fail "$service did not come back within 60 s"
    sleep 0.1
  done
  echo "$service: pid $pid SIGKILLed, restarted by the engine and healthy after $(( ($(date +%s%N) - started) / 1000000 )) ms"
}
sleep 5
kill_and_wait books-service
sleep 5
kill_and_wait auth-service
sleep 5
kill_and_wait books-service
sleep 5
touch "$WORK/stop"
wait "$load_pid"
compose exec -T -e RUST_LOG=warn auth-service bookstore list-users --json >"$WORK/users.json"
python3 deploy/docker/write_load.py verify "$BASE" "$token" "$WORK/load.json" "$WORK/users.json"
server_errors=$(jq '[.books.statuses, .users.statuses | to_entries[] | select(.key | test("^5|connection")) | {(.key): .value}] | add // {}' "$WORK/load.json")
echo "server errors during the kills, by status: $server_errors"
jq -e '[.books.statuses, .users.statuses | to_entries[] | select(.key == "500" or .key == "connection")] | length == 0' \
  "$WORK/load.json" >/dev/null || fail "a request got a 500 (or the gateway dropped it) during the kills"

step "data: down, then up, keeps users, books and sessions"
books_before=$(jq '.books.acknowledged | length' "$WORK/load.json")
users_before=$(jq length "$WORK/users.json")
compose down
left=$(comm -13 <(echo "$volumes_before") <(docker volume ls -q | sort) | tr '\n' ' ')
[ "$left" = "${COMPOSE_PROJECT_NAME}_pgdata ${COMPOSE_PROJECT_NAME}_service-token ${COMPOSE_PROJECT_NAME}_signing-key " ] \
  || fail "down should leave the three named volumes, and it left: $left"
started=$SECONDS
compose up -d
wait_healthy 180
echo "healthy again after $((SECONDS - started)) s"
compose exec -T -e RUST_LOG=warn auth-service bookstore list-users --json >"$WORK/users-after.json"
[ "$(jq length "$WORK/users-after.json")" = "$users_before" ] || fail "users before down: $users_before, after up: $(jq length "$WORK/users-after.json")"
python3 deploy/docker/write_load.py verify "$BASE" "$token" "$WORK/load.json" "$WORK/users-after.json"
# The session: the access token from before still works, and so does its refresh token.
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/books?limit=1" -H "x-access-tokens: $token")" = 200 ] \
  || fail "the access token from before down no longer works"
curl -fsS -X POST "$BASE/refresh" -H 'Content-Type: application/json' \
  -d "{\"refresh_token\":$(jq .refresh_token "$WORK/loader.json")}" | jq -e .token >/dev/null \
  || fail "the session (refresh token) from before down is gone"
echo "after down + up: $users_before users, $books_before books, the session all still there"

step "data: down -v removes them"
compose down -v
compose up -d
wait_healthy 180
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -u loader:'load password' "$BASE/login")" = 401 ] \
  || fail "a user survived down -v"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/books?limit=1" -H "x-access-tokens: $token")" = 401 ] \
  || fail "a token survived down -v (the signing key was kept)"
echo "after down -v + up: the users are gone, and old tokens are refused (a new signing key)"

step "TLS: down, then up with docker-compose.tls.yml (the volumes kept: an existing deployment switched to TLS)"
curl -fsS -X POST "$BASE/register" -H 'Content-Type: application/json' \
  -d '{"name":"frank","password":"wonderland1"}' >/dev/null
compose down
COMPOSE_FILES+=(-f docker-compose.tls.yml)
started=$SECONDS
compose up --build -d
wait_healthy 180
echo "healthy over TLS after $((SECONDS - started)) s (healthchecks: bookstore probe --cacert, grpcs:// and https://):"
for id in $(all_containers); do echo "$(docker inspect -f '{{.Name}}' "$id"): $(health "$id")"; done
# The CA and the developer's client certificate the init job made, out of the tls volume.
for file in ca.pem client.pem client-key.pem; do
  docker cp "$(containers gateway):/var/lib/bookstore/tls/$file" "$WORK/$file"
done
CACERT=$WORK/ca.pem BASE=https://localhost:5000
journey dave
[ "$(curl --cacert "$WORK/ca.pem" -s -o /dev/null -w '%{http_code}' -X POST -u frank:wonderland1 https://localhost:5000/login)" = 200 ] \
  || fail "frank (registered before the switch to TLS) cannot log in over https"
echo "frank, registered over http before the switch, logs in over https"
plain=$(curl -s -w ' %{http_code}' http://127.0.0.1:5000/books || true)
[ "$plain" = '{"message":"this port speaks TLS only: use https:// instead of http://"} 400' ] \
  || fail "plain http to the gateway got: $plain"
echo "plain http://127.0.0.1:5000: $plain"
metrics=$(curl --cacert "$WORK/ca.pem" -fsS https://127.0.0.1:9103/metrics) || fail "no gateway metrics over https on :9103"
grep -q '^http_server_requests_total' <<<"$metrics" || fail "no request counter in the gateway's metrics over https"
echo "gateway metrics over https on 127.0.0.1:9103"
for target in auth-service:50051/bookstore.auth.v1.AuthService books-service:50052/bookstore.books.v1.BooksService; do
  name=${target%%/*} service=${target#*/}
  addr=$(compose port "${name%%:*}" "${name#*:}")
  grpcurl -cacert "$WORK/ca.pem" "$addr" list | grep -x "$service" >/dev/null || fail "$addr does not list $service over TLS"
  grpcurl -cacert "$WORK/ca.pem" -d "{\"service\":\"$service\"}" "$addr" grpc.health.v1.Health/Check \
    | jq -e '.status == "SERVING"' >/dev/null || fail "$service is not SERVING over TLS"
  if grpcurl -plaintext -max-time 5 "$addr" list >/dev/null 2>&1; then fail "$addr answered plaintext gRPC"; fi
  echo "$addr: grpcurl -cacert lists $service, SERVING; plaintext refused"
done
auth_addr=$(compose port auth-service 50051)
feed=$(grpcurl -cacert "$WORK/ca.pem" "$auth_addr" bookstore.auth.v1.AuthService/ListRevocations 2>&1 || true)
echo "$feed" | grep -q "Code: Unauthenticated" && echo "$feed" | grep -q "present a service certificate" \
  || fail "ListRevocations without a client certificate: $feed"
feed=$(grpcurl -cacert "$WORK/ca.pem" -cert "$WORK/client.pem" -key "$WORK/client-key.pem" \
  "$auth_addr" bookstore.auth.v1.AuthService/ListRevocations 2>&1 || true)
echo "$feed" | grep -q "Code: PermissionDenied" || fail "ListRevocations with a non-service client certificate: $feed"
echo "ListRevocations: Unauthenticated without a client certificate, PermissionDenied with client.pem (no service identity)"
# Rotation as docs/deployment.md says it: new certificates from the same CA
# into the volume; the services read them within 2 s, no restart.
gateway_serial() {
  openssl s_client -connect 127.0.0.1:5000 -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial
}
serial_before=$(gateway_serial)
compose run -T --rm signing-key bookstore generate-dev-certs --out tls >/dev/null
rotated=$SECONDS
until [ "$(gateway_serial)" != "$serial_before" ]; do
  [ $((SECONDS - rotated)) -lt 15 ] || fail "the gateway still serves its old certificate 15 s after generate-dev-certs"
  sleep 0.5
done
journey erin
grpcurl -cacert "$WORK/ca.pem" "$auth_addr" list >/dev/null || fail "auth-service after the rotation"
echo "rotation: generate-dev-certs again, the gateway served the new certificate within $((SECONDS - rotated)) s ($serial_before -> $(gateway_serial)); journey and grpcurl still fine"
# books-service reads that feed with its own certificate: it would warn if refused.
! compose logs --no-color books-service | grep -E 'revocation list refresh failed|cannot load the revocation list' \
  || fail "books-service could not read the revocation feed over TLS"
no_errors_in_logs "over TLS"
compose down -v
leftover=$(comm -13 <(echo "$volumes_before") <(docker volume ls -q | sort) | tr '\n' ' ')
[ -z "$leftover" ] || fail "down -v left volumes: $leftover"
echo "TLS phase: $((SECONDS - started)) s from up to down -v"
unset CACERT
# Back to plaintext for the scale-out.
COMPOSE_FILES=(-f docker-compose.yml)
BASE=http://127.0.0.1:5000

step "scale-out: 3 books-service and 2 auth-service replicas"
compose up -d --scale books-service=3 --scale auth-service=2
wait_healthy 180
compose ps
# Each replica's requests served, by method, from its own /metrics.
requests() {  # SERVICE METRICS_PORT METHOD -> one count per replica
  local service=$1 port=$2 method=$3 index address
  for index in $(seq 1 "$(containers "$service" | wc -l)"); do
    address=$(compose port --index="$index" "$service" "$port")
    curl -fsS "http://$address/metrics" \
      | awk -v m="method=\"$method\"" '/^grpc_server_requests_total/ && index($0, m) { n += $NF } END { printf "%d ", n }'
  done
}
journey bob
token=$(curl -fsS -X POST -u bob:wonderland1 "$BASE/login" | jq -r .token)
# The gateway resolves dns://books-service again every 10 s: until then the
# new replicas may get nothing.
deadline=$((SECONDS + 40))
while [[ " $(requests books-service 9102 ListBooks)" == *" 0 "* ]]; do
  [ "$SECONDS" -lt "$deadline" ] || fail "a books replica got no call within 40 s: $(requests books-service 9102 ListBooks)"
  for _ in $(seq 1 10); do curl -fsS -o /dev/null "$BASE/books?limit=1" -H "x-access-tokens: $token"; done
done
books_before=$(requests books-service 9102 ListBooks)
auth_before=$(requests auth-service 9101 Login)
for _ in $(seq 1 300); do curl -fsS -o /dev/null "$BASE/books?limit=1" -H "x-access-tokens: $token"; done
for _ in $(seq 1 20); do curl -fsS -o /dev/null -X POST -u bob:wonderland1 "$BASE/login"; done
books_after=$(requests books-service 9102 ListBooks)
auth_after=$(requests auth-service 9101 Login)
spread() { paste -d' ' <(tr ' ' '\n' <<<"$1") <(tr ' ' '\n' <<<"$2") | awk 'NF == 2 { printf "%d ", $2 - $1 }'; }
books_spread=$(spread "$books_before" "$books_after")
auth_spread=$(spread "$auth_before" "$auth_after")
echo "300 GET /books through the gateway, ListBooks per books replica: $books_spread"
echo "20 POST /login through the gateway, Login per auth replica: $auth_spread"
for count in $books_spread $auth_spread; do
  [ "$count" -gt 0 ] || fail "a replica got none of the calls"
done
no_errors_in_logs "after the scale-out"
compose down -v

step "the image alone: docker run IMAGE (the all-in-one on SQLite in a volume, read-only root)"
started=$SECONDS
docker run -d --pull never --name "$ALL_IN_ONE" --read-only --tmpfs /tmp -p 127.0.0.1:5001:5000 bookstore:latest >/dev/null
until [ "$(health "$ALL_IN_ONE")" = healthy ]; do
  [ $((SECONDS - started)) -lt 60 ] || fail "the all-in-one is not healthy within 60 s"
  sleep 0.5
done
echo "healthy after $((SECONDS - started)) s"
BASE=http://127.0.0.1:5001 journey carol
docker inspect -f '{{range .Mounts}}{{.Type}} {{.Destination}}{{"\n"}}{{end}}' "$ALL_IN_ONE" \
  | grep -x 'volume /var/lib/bookstore/data' >/dev/null || fail "the all-in-one's data is not in a volume"
docker rm -f -v "$ALL_IN_ONE" >/dev/null

step "done"
