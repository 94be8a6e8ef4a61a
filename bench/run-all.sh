#!/usr/bin/env bash
# Every Bookstore benchmark in one go, for BENCHMARKS.md:
#   bench/run-all.sh
# Builds the release binaries once, then on loopback:
#   1. the argon2id bound (one hash's time, cores / that time);
#   2. the references: echo-grpc (trivial tonic unary) and echo-http (trivial
#      axum handler), with bookstore-bench at each concurrency, wrk and h2load;
#      echo-http's /proxy (one tonic call to echo-grpc per request) and
#      books-service's store alone (store-floor): the ceilings of REST and of
#      ListBooks;
#   3. cold start of each service (exec -> health SERVING) on SQLite;
#   4. the stack (auth-service, books-service and gateway as three processes of
#      the `bookstore` launcher, SQLite in a temporary dir): every scenario at
#      each concurrency with the services' memory, wrk GET /books, h2load
#      ListBooks, GET /books during a login storm (and beside two SCHED_IDLE
#      shell spinners, the machine's own floor for that figure), login timing
#      (unknown user vs wrong password), and ListBooks with the verified-token
#      cache off;
#   5. the same with the generator pinned to CPU 0 and the stack to CPU 1;
#   6. scale: one user with 1,000,000 books (seeded with SQL) against one with
#      100, first and deep pages over gRPC and REST;
#   7. the Flask original under gunicorn (../shared/peers/flask-seed), wrk
#      GET /books with the same settings;
#   8. GET /books beside the Fastify, FastAPI and Flask peers (bench/peers.sh);
# then writes bench/results/*.json(l) and raw tool output, and renders
# bench/results/tables.md and docs/bench/*.svg (bench/report.py, matplotlib in
# a venv under ${TMPDIR:-/tmp}).
# Environment: BENCH_DURATION (measured whole seconds per run, default 5),
# BENCH_WARMUP (default 1), BENCH_CONCURRENCY (default "1 4 16 64"),
# BENCH_ROUNDS (rounds of the targets' comparisons, default 3),
# BENCH_PROFILE (default release), FLASK_SEED (default ../shared/peers/flask-seed, or /work/shared/peers/flask-seed),
# BENCH_SKIP_FLASK=1, BENCH_SKIP_PEERS=1. Service variables (AUTH_*, BOOKS_*, GATEWAY_*, e.g.
# BOOKS_TOKEN_CACHE_CAPACITY) are passed on to the stack.
# Needs wrk, h2load, sqlite3, python3, taskset, chrt. Ports 15000-15080.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DUR="${BENCH_DURATION:-5}"
WARM="${BENCH_WARMUP:-1}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONCURRENCY="${BENCH_CONCURRENCY:-1 4 16 64}"
WARM_H2="$(awk -v s="$WARM" 'BEGIN { printf "%dms", s * 1000 }')"   # h2load takes no fractions
for tool in wrk h2load sqlite3 python3 taskset chrt curl; do
  command -v "$tool" >/dev/null || { echo "run-all.sh needs $tool" >&2; exit 2; }
done
STARTED=$(date +%s)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# BENCH_PROFILE=dev only to try this script quickly: the figures need release.
PROFILE="${BENCH_PROFILE:-release}"
# Built one at a time: together, cargo would unify their dependencies' features
# and rebuild the whole stack for the generator's sake.
cargo build --profile "$PROFILE" -q -p bookstore
cargo build --profile "$PROFILE" -q -p bookstore-bench
BIN="$CARGO_TARGET_DIR/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"
BENCH="$BIN/bookstore-bench"
RESULTS="$ROOT/bench/results"
RAW="$RESULTS/raw"
# A fresh set of results, but the side-by-side scripts' own (peers.sh, tls.sh,
# callgrind.sh) stay: this run replaces the peers' only without
# BENCH_SKIP_PEERS, and never the others.
keep=(-name tls.md -o -name callgrind.md -o -name tls -o -name callgrind)
[ -n "${BENCH_SKIP_PEERS:-}" ] && keep+=(-o -name peers.md -o -name peers)
find "$RESULTS" "$RAW" -mindepth 1 -maxdepth 1 ! -path "$RAW" ! \( "${keep[@]}" \) -exec rm -rf {} + 2>/dev/null || true
mkdir -p "$RAW" "$ROOT/docs/bench"
WORK="$(mktemp -d)"
export RUST_LOG=warn
# One client hammering Login is what auth-service's per-address rate limit and
# per-name failed-login delay exist to stop; a load test turns them off (0)
# unless told otherwise.
export AUTH_CLIENT_RATE_PER_MINUTE="${AUTH_CLIENT_RATE_PER_MINUTE:-0}"
export AUTH_LOGIN_FREE_ATTEMPTS="${AUTH_LOGIN_FREE_ATTEMPTS:-0}"

AUTH=127.0.0.1:15051 BOOKS=127.0.0.1:15052 GATEWAY=127.0.0.1:15000
ECHO_HTTP=127.0.0.1:15060 ECHO_GRPC=127.0.0.1:15061 FLASK=127.0.0.1:15080
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
stop() { # pid...
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
}
wait_for() { # probe-target
  for _ in $(seq 1 200); do "$BIN/bookstore" probe "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "$1 did not become ready" >&2; exit 1
}
wait_port() { # port
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on port $1" >&2; exit 1
}
log() { echo "[$(($(date +%s) - STARTED))s] $*" >&2; }

# Machine, commit and settings.
python3 - "$DUR" "$WARM" "$CONCURRENCY" "$PROFILE" >"$RESULTS/machine.json" <<'EOF'
import json, os, platform, subprocess, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
run = lambda *a: subprocess.run(a, capture_output=True, text=True).stdout.strip()
print(json.dumps({
    "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1),
    "kernel": platform.release(), "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
    "commit": run("git", "rev-parse", "--short", "HEAD"), "rustc": run("rustc", "--version"),
    "wrk": run("sh", "-c", "wrk -v 2>&1 | head -1"), "h2load": run("sh", "-c", "h2load --version | head -1"),
    "duration_s": float(sys.argv[1]), "warmup_s": float(sys.argv[2]), "concurrency": sys.argv[3].split(), "profile": sys.argv[4],
    "env": {k: v for k, v in os.environ.items() if k.startswith(("AUTH_", "BOOKS_", "GATEWAY_"))},
}))
EOF

bench_run() { # output-file bookstore-bench run args...
  local out="$1"; shift
  "$BENCH" run --json --duration "$DUR" --warmup "$WARM" "$@" >>"$out"
}

# 1. The argon2 bound, before anything else runs.
log "argon2 bound"
"$BENCH" hash-bound --json >"$RESULTS/hash-bound.json"
taskset -c 1 "$BENCH" hash-bound --json >"$RESULTS/hash-bound-1cpu.json"

# 2. References.
log "references: echo-grpc, echo-http"
"$BIN/echo-grpc" "$ECHO_GRPC" 2>/dev/null & ECHO_GRPC_PID=$!; PIDS+=("$!")
"$BIN/echo-http" "$ECHO_HTTP" "http://$ECHO_GRPC" 2>/dev/null & ECHO_HTTP_PID=$!; PIDS+=("$!")
wait_for "http://$ECHO_HTTP/"; wait_port "${ECHO_GRPC##*:}"
"$BENCH" grpc-bodies --dir "$WORK"
for c in $CONCURRENCY; do
  bench_run "$RESULTS/scenarios.jsonl" --scenario echo-grpc -c "$c" --rss-of "echo-grpc=$ECHO_GRPC_PID"
  bench_run "$RESULTS/scenarios.jsonl" --scenario echo-http -c "$c" --rss-of "echo-http=$ECHO_HTTP_PID"
done
wrk -t1 -c16 -d"${DUR}s" --latency "http://$ECHO_HTTP/" >"$RAW/wrk-echo-http.txt"
h2load -c16 -m8 -D "$DUR" --warm-up-time="$WARM_H2" -H 'content-type: application/grpc' -H 'te: trailers' \
  -d "$WORK/echo.grpc" "http://$ECHO_GRPC/bench.echo.v1.EchoService/Echo" >"$RAW/h2load-echo-grpc.txt"
# The ceiling of any HTTP route translated to one gRPC call: echo-http's
# /proxy calls echo-grpc through a tonic channel, doing nothing else.
wrk -t1 -c16 -d"${DUR}s" --latency "http://$ECHO_HTTP/proxy" >"$RAW/wrk-echo-proxy.txt"
# The ceiling of ListBooks with books-service's store: list_books (a page of
# 20 from SQLite through sqlx) alone, in process, as many at once as h2load
# keeps in flight (16 x 8).
"$BENCH" store-floor --json -c 128 --duration "$DUR" >"$RESULTS/store-floor.json"

# Services as the launcher's subcommands, with their flags (so the
# environment's other AUTH_/BOOKS_/GATEWAY_ variables still apply).
# Every request comes from one address, and the timing runs fail logins on
# purpose: the per-client limit and the per-name throttle (SECURITY.md) are off.
auth_cmd() { echo "$BIN/bookstore" auth-service --listen-addr "$AUTH" --database-url "sqlite://$1/auth.db" --signing-key-file "$1/key.pem" --service-token-file "$1/service-token" --client-rate-per-minute 0 --login-free-attempts 0; }
books_cmd() { echo "$BIN/bookstore" books-service --listen-addr "$BOOKS" --database-url "sqlite://$1/books.db" --service-token-file "$1/service-token" --auth-url "http://$AUTH"; }
gateway_cmd() { echo "$BIN/bookstore" gateway --listen-addr "$GATEWAY" --auth-url "http://$AUTH" --books-url "http://$BOOKS"; }
AUTH_HEALTH="grpc://$AUTH/bookstore.auth.v1.AuthService"
BOOKS_HEALTH="grpc://$BOOKS/bookstore.books.v1.BooksService"
GATEWAY_HEALTH="http://$GATEWAY/readyz"

start_stack() { # data-dir [taskset cpu list]
  local pin=()
  [ -n "${2:-}" ] && pin=(taskset -c "$2")
  mkdir -p "$1"
  "${pin[@]}" $(auth_cmd "$1") 2>>"$1/auth.log" & AUTH_PID=$!; PIDS+=("$!")
  wait_for "$AUTH_HEALTH"
  "${pin[@]}" $(books_cmd "$1") 2>>"$1/books.log" & BOOKS_PID=$!; PIDS+=("$!")
  "${pin[@]}" $(gateway_cmd "$1") 2>>"$1/gateway.log" & GATEWAY_PID=$!; PIDS+=("$!")
  wait_for "$BOOKS_HEALTH"
  wait_for "$GATEWAY_HEALTH"
  RSS=(--rss-of "auth-service=$AUTH_PID" --rss-of "books-service=$BOOKS_PID" --rss-of "gateway=$GATEWAY_PID")
}
stop_stack() { stop "$GATEWAY_PID" "$BOOKS_PID" "$AUTH_PID"; }

# 3. Cold start: each service from exec to SERVING (the first start creates
# its database); books-service needs auth-service up for its keys, the
# gateway both.
log "cold start"
COLD="$WORK/cold"; mkdir -p "$COLD"
"$BENCH" cold-start --json --name auth-service --health "$AUTH_HEALTH" -- $(auth_cmd "$COLD") >>"$RESULTS/cold-start.jsonl"
$(auth_cmd "$COLD") 2>/dev/null & COLD_AUTH=$!; PIDS+=("$!"); wait_for "$AUTH_HEALTH"
"$BENCH" cold-start --json --name books-service --health "$BOOKS_HEALTH" -- $(books_cmd "$COLD") >>"$RESULTS/cold-start.jsonl"
$(books_cmd "$COLD") 2>/dev/null & COLD_BOOKS=$!; PIDS+=("$!"); wait_for "$BOOKS_HEALTH"
"$BENCH" cold-start --json --name gateway --health "$GATEWAY_HEALTH" -- $(gateway_cmd "$COLD") >>"$RESULTS/cold-start.jsonl"
stop "$COLD_BOOKS" "$COLD_AUTH"

# 4. The stack.
log "stack: scenarios at $CONCURRENCY"
DATA="$WORK/data"
start_stack "$DATA"
READER=$("$BENCH" setup --user bench-reader --books 20)
TOKEN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$READER")
BASIC=$(printf '%s' "bench-reader:bench-password-1" | base64 -w0)
export TOKEN BASIC
"$BENCH" grpc-bodies --dir "$WORK" --token "$TOKEN"
for c in $CONCURRENCY; do
  for scenario in grpc-list-books rest-list-books validate-token; do
    bench_run "$RESULTS/scenarios.jsonl" --scenario "$scenario" -c "$c" "${RSS[@]}"
  done
  bench_run "$RESULTS/scenarios.jsonl" --scenario grpc-create-book -c "$c" --user bench-writer --books 0 "${RSS[@]}"
  bench_run "$RESULTS/scenarios.jsonl" --scenario rest-create-book -c "$c" --user bench-writer --books 0 "${RSS[@]}"
  bench_run "$RESULTS/scenarios.jsonl" --scenario login -c "$c" "${RSS[@]}"
  bench_run "$RESULTS/scenarios.jsonl" --scenario mixed -c "$c" --user bench-mixed "${RSS[@]}"
done
log "stack: wrk, h2load"
wrk -t1 -c16 -d"${DUR}s" --latency -s bench/books.lua "http://$GATEWAY/books" >"$RAW/wrk-gateway-books.txt"
wrk -t1 -c16 -d"${DUR}s" --latency -s bench/login.lua "http://$GATEWAY/login" >"$RAW/wrk-gateway-login.txt"
h2load -c16 -m8 -D "$DUR" --warm-up-time="$WARM_H2" -H 'content-type: application/grpc' -H 'te: trailers' \
  -H "authorization: Bearer $TOKEN" -d "$WORK/list-books-20.grpc" \
  "http://$BOOKS/bookstore.books.v1.BooksService/ListBooks" >"$RAW/h2load-books-list.txt"
h2load -c16 -m8 -D "$DUR" --warm-up-time="$WARM_H2" -H 'content-type: application/grpc' -H 'te: trailers' \
  -d "$WORK/validate-token.grpc" "http://$AUTH/bookstore.auth.v1.AuthService/ValidateToken" >"$RAW/h2load-validate-token.txt"

# The targets' comparisons, in rounds: each round runs every side of every
# ratio one after the other (references, ceilings, the stack with and without
# the verified-token cache), so that a slow minute on a shared machine hits
# all of them; the report takes the median of the rounds. A second
# books-service (cache off, same database) and a gateway in front of it wait
# on their own ports meanwhile.
log "stack: the targets' comparisons, $ROUNDS rounds"
BOOKS_OFF=127.0.0.1:15053 GATEWAY_OFF=127.0.0.1:15001
BOOKS_TOKEN_CACHE_CAPACITY=0 "$BIN/bookstore" books-service --listen-addr "$BOOKS_OFF" --database-url "sqlite://$DATA/books.db" \
  --service-token-file "$DATA/service-token" --auth-url "http://$AUTH" 2>>"$DATA/books-off.log" & BOOKS_OFF_PID=$!; PIDS+=("$!")
"$BIN/bookstore" gateway --listen-addr "$GATEWAY_OFF" --auth-url "http://$AUTH" --books-url "http://$BOOKS_OFF" \
  2>>"$DATA/gateway-off.log" & GATEWAY_OFF_PID=$!; PIDS+=("$!")
wait_for "grpc://$BOOKS_OFF/bookstore.books.v1.BooksService"; wait_for "http://$GATEWAY_OFF/readyz"
ROUND_DIR="$RAW/rounds"; mkdir -p "$ROUND_DIR"
h2_list() { # url output
  h2load -c16 -m8 -D "$DUR" --warm-up-time="$WARM_H2" -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "authorization: Bearer $TOKEN" -d "$WORK/list-books-20.grpc" "$1/bookstore.books.v1.BooksService/ListBooks" >"$2"
}
for round in $(seq 1 "$ROUNDS"); do
  wrk -t1 -c16 -d"${DUR}s" --latency "http://$ECHO_HTTP/" >"$ROUND_DIR/wrk-echo-http-$round.txt"
  wrk -t1 -c16 -d"${DUR}s" --latency "http://$ECHO_HTTP/proxy" >"$ROUND_DIR/wrk-echo-proxy-$round.txt"
  wrk -t1 -c16 -d"${DUR}s" --latency -s bench/books.lua "http://$GATEWAY/books" >"$ROUND_DIR/wrk-gateway-books-$round.txt"
  wrk -t1 -c16 -d"${DUR}s" --latency -s bench/books.lua "http://$GATEWAY_OFF/books" \
    >"$ROUND_DIR/wrk-gateway-books-token-cache-off-$round.txt"
  h2load -c16 -m8 -D "$DUR" --warm-up-time="$WARM_H2" -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$WORK/echo.grpc" "http://$ECHO_GRPC/bench.echo.v1.EchoService/Echo" >"$ROUND_DIR/h2load-echo-grpc-$round.txt"
  h2_list "http://$BOOKS" "$ROUND_DIR/h2load-books-list-$round.txt"
  h2_list "http://$BOOKS_OFF" "$ROUND_DIR/h2load-books-list-token-cache-off-$round.txt"
  "$BENCH" store-floor --json -c 128 --duration "$DUR" >"$ROUND_DIR/store-floor-$round.json"
done
stop "$GATEWAY_OFF_PID" "$BOOKS_OFF_PID"

log "stack: login storm, login timing"
# Three idle/storm pairs, alternating: the tail latency of one run moves a lot
# on a shared machine; the report takes the median of each. Each pair has a
# control: the same GET /books beside one shell busy loop per core at
# SCHED_IDLE, the lowest priority Linux has, in a process of their own. No
# Bookstore code runs in them, so what they do to the p99 is the machine's
# (cores that slow each other down when all are busy), a floor no scheduling
# of the hashing threads can go under.
spin_control() {
  local spinners=()
  for _ in $(seq 1 "$(nproc)"); do
    chrt --idle 0 sh -c 'while :; do :; done' & spinners+=("$!"); PIDS+=("$!")
  done
  bench_run "$RESULTS/storm.jsonl" --scenario rest-list-books -c 4 --label control "${RSS[@]}"
  stop "${spinners[@]}"
}
for _ in 1 2 3; do
  bench_run "$RESULTS/storm.jsonl" --scenario rest-list-books -c 4 --label idle "${RSS[@]}"
  bench_run "$RESULTS/storm.jsonl" --scenario login-storm -c 4 --storm 16 --label storm "${RSS[@]}"
  spin_control
done
"$BENCH" login-timing --json --samples 200 >"$RESULTS/login-timing.json"

log "stack: verified-token cache off"
stop "$GATEWAY_PID" "$BOOKS_PID"
BOOKS_TOKEN_CACHE_CAPACITY=0 $(books_cmd "$DATA") 2>>"$DATA/books.log" & BOOKS_PID=$!; PIDS+=("$!")
$(gateway_cmd "$DATA") 2>>"$DATA/gateway.log" & GATEWAY_PID=$!; PIDS+=("$!")
wait_for "$BOOKS_HEALTH"; wait_for "$GATEWAY_HEALTH"
RSS=(--rss-of "auth-service=$AUTH_PID" --rss-of "books-service=$BOOKS_PID" --rss-of "gateway=$GATEWAY_PID")
for scenario in grpc-list-books rest-list-books; do
  bench_run "$RESULTS/token-cache-off.jsonl" --scenario "$scenario" -c 16 --label token-cache-off "${RSS[@]}"
done
h2load -c16 -m8 -D "$DUR" --warm-up-time="$WARM_H2" -H 'content-type: application/grpc' -H 'te: trailers' \
  -H "authorization: Bearer $TOKEN" -d "$WORK/list-books-20.grpc" \
  "http://$BOOKS/bookstore.books.v1.BooksService/ListBooks" >"$RAW/h2load-books-list-token-cache-off.txt"
wrk -t1 -c16 -d"${DUR}s" --latency -s bench/books.lua "http://$GATEWAY/books" >"$RAW/wrk-gateway-books-token-cache-off.txt"
stop_stack

# 5. Pinned: generator and tools on CPU 0, the server on CPU 1.
if [ "$(nproc)" -ge 2 ]; then
  log "pinned: generator on CPU 0, servers on CPU 1"
  start_stack "$DATA" 1
  taskset -c 1 "$BIN/echo-grpc" 127.0.0.1:15071 2>/dev/null & PIN_ECHO_GRPC=$!; PIDS+=("$!")
  taskset -c 1 "$BIN/echo-http" 127.0.0.1:15070 2>/dev/null & PIN_ECHO_HTTP=$!; PIDS+=("$!")
  wait_for "http://127.0.0.1:15070/"; wait_port 15071
  PINNED=(taskset -c 0 "$BENCH" run --json --duration "$DUR" --warmup "$WARM" --label pinned
    --echo-grpc-url http://127.0.0.1:15071 --echo-http-url http://127.0.0.1:15070)
  for scenario in grpc-list-books rest-list-books validate-token; do
    "${PINNED[@]}" --scenario "$scenario" -c 16 "${RSS[@]}" >>"$RESULTS/pinned.jsonl"
  done
  "${PINNED[@]}" --scenario login -c 4 "${RSS[@]}" >>"$RESULTS/pinned.jsonl"
  "${PINNED[@]}" --scenario echo-grpc -c 16 --rss-of "echo-grpc=$PIN_ECHO_GRPC" >>"$RESULTS/pinned.jsonl"
  "${PINNED[@]}" --scenario echo-http -c 16 --rss-of "echo-http=$PIN_ECHO_HTTP" >>"$RESULTS/pinned.jsonl"
  taskset -c 0 wrk -t1 -c16 -d"${DUR}s" --latency -s bench/books.lua "http://$GATEWAY/books" >"$RAW/wrk-gateway-books-pinned.txt"
  taskset -c 0 wrk -t1 -c16 -d"${DUR}s" --latency "http://127.0.0.1:15070/" >"$RAW/wrk-echo-http-pinned.txt"
  taskset -c 0 h2load -c16 -m8 -D "$DUR" --warm-up-time="$WARM_H2" -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "authorization: Bearer $TOKEN" -d "$WORK/list-books-20.grpc" \
    "http://$BOOKS/bookstore.books.v1.BooksService/ListBooks" >"$RAW/h2load-books-list-pinned.txt"
  taskset -c 0 h2load -c16 -m8 -D "$DUR" --warm-up-time="$WARM_H2" -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$WORK/echo.grpc" "http://127.0.0.1:15071/bench.echo.v1.EchoService/Echo" >"$RAW/h2load-echo-grpc-pinned.txt"
  stop "$PIN_ECHO_GRPC" "$PIN_ECHO_HTTP"
  stop_stack
fi
stop "$ECHO_GRPC_PID" "$ECHO_HTTP_PID"

# 6. Scale: 1,000,000 books for one user (SQL straight into the SQLite file,
# ids contiguous), against a user with 100.
log "scale: seeding 1,000,000 books"
start_stack "$DATA"
BIG=$("$BENCH" setup --user bench-big --books 0)
SMALL=$("$BENCH" setup --user bench-small --books 100)
public_id() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["public_id"])' "$1"; }
OWNER=$(public_id "$BIG")
SMALL_OWNER=$(public_id "$SMALL")
seed_started=$(date +%s.%N)
sqlite3 "$DATA/books.db" <<EOF
.timeout 30000
begin;
with recursive n(i) as (select 1 union all select i + 1 from n where i < 1000000)
insert into books (owner_id, name, author, publisher, book_prize, created_at, updated_at)
select '$OWNER', 'Scale book ' || i, 'Scale author', 'Scale press', i % 1000,
       cast(strftime('%s', 'now') as integer) * 1000000, cast(strftime('%s', 'now') as integer) * 1000000 from n;
commit;
EOF
python3 - "$seed_started" "$(date +%s.%N)" "$(sqlite3 "$DATA/books.db" "select count(*) from books where owner_id = '$OWNER'")" \
  "$(sqlite3 "$DATA/books.db" "explain query plan select id from books where owner_id = '$OWNER' and id > 5 order by id limit 21")" \
  "$(stat -c %s "$DATA/books.db")" >"$RESULTS/scale-seed.json" <<'EOF'
import json, sys
print(json.dumps({"seconds": float(sys.argv[2]) - float(sys.argv[1]), "books": int(sys.argv[3]),
                  "query_plan": sys.argv[4], "db_bytes": int(sys.argv[5])}))
EOF
BIG_DEEP=$(sqlite3 "$DATA/books.db" "select id from books where owner_id = '$OWNER' order by id limit 1 offset 900000")
SMALL_DEEP=$(sqlite3 "$DATA/books.db" "select id from books where owner_id = '$SMALL_OWNER' order by id limit 1 offset 80")
log "scale: pages"
for scenario in grpc-list-books rest-list-books; do
  bench_run "$RESULTS/scale.jsonl" --scenario "$scenario" -c 16 --user bench-small --books 100 --label small-first "${RSS[@]}"
  bench_run "$RESULTS/scale.jsonl" --scenario "$scenario" -c 16 --user bench-small --books 100 --page-after "$SMALL_DEEP" --label small-deep "${RSS[@]}"
  bench_run "$RESULTS/scale.jsonl" --scenario "$scenario" -c 16 --user bench-big --books 0 --label big-first "${RSS[@]}"
  bench_run "$RESULTS/scale.jsonl" --scenario "$scenario" -c 16 --user bench-big --books 0 --page-after "$BIG_DEEP" --label big-deep "${RSS[@]}"
done
# GET /books with no limit for the 1M-book user: one default page, bounded memory.
BIG_TOKEN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$BIG")
curl -s -o "$WORK/big-books.json" -w '{"status": %{http_code}, "bytes": %{size_download}, "seconds": %{time_total}}\n' \
  -H "x-access-tokens: $BIG_TOKEN" "http://$GATEWAY/books" >"$RESULTS/scale-no-limit.json"
TOKEN="$BIG_TOKEN" wrk -t1 -c16 -d"${DUR}s" --latency -s bench/books.lua "http://$GATEWAY/books" >"$RAW/wrk-gateway-books-1m-no-limit.txt"
stop_stack

# 7. The Flask original under gunicorn (2 sync workers, as its README says).
if [ "${BENCH_SKIP_FLASK:-0}" != 1 ]; then
  FLASK_SEED="${FLASK_SEED:-$(cd "$ROOT/.." && pwd)/shared/peers/flask-seed}"
  [ -d "$FLASK_SEED" ] || FLASK_SEED=/work/shared/peers/flask-seed
  log "flask under gunicorn ($FLASK_SEED)"
  VENV="${TMPDIR:-/tmp}/flask-seed-venv" RUN_DIR="$WORK/flask" bash "$FLASK_SEED/run.sh" "${FLASK##*:}" gunicorn \
    >"$WORK/flask.log" 2>&1 & FLASK_PID=$!; PIDS+=("$!")
  for _ in $(seq 1 600); do curl -s -o /dev/null "http://$FLASK/books" && break; sleep 0.2; done
  BASE="http://$FLASK"
  . bench/lib.sh
  make_user_with_20_books >/dev/null
  wrk -t1 -c16 -d"${DUR}s" --latency -s bench/books.lua "http://$FLASK/books" >"$RAW/wrk-flask-books.txt"
  stop "$FLASK_PID"
fi

# Tables and charts.
log "report"
# 8. GET /books beside the peers (Fastify, FastAPI, Flask), each alone in
# turn, in rounds: BENCHMARKS.md's first table (bench/peers.sh).
if [ "${BENCH_SKIP_PEERS:-0}" != 1 ]; then
  log "GET /books beside the peers"
  bench/peers.sh "$ROUNDS" "$DUR"
fi

python3 - "$(($(date +%s) - STARTED))" >"$RESULTS/runtime.json" <<'EOF'
import json, sys
print(json.dumps({"seconds": int(sys.argv[1])}))
EOF
CHART_VENV="${TMPDIR:-/tmp}/bookstore-bench-venv"
if [ ! -x "$CHART_VENV/bin/python" ] || ! "$CHART_VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$CHART_VENV" && "$CHART_VENV/bin/pip" install --quiet --disable-pip-version-check matplotlib \
    || echo "matplotlib unavailable: tables only" >&2
fi
PY=python3; "$CHART_VENV/bin/python" -c 'import matplotlib' 2>/dev/null && PY="$CHART_VENV/bin/python"
"$PY" bench/report.py "$RESULTS" "$ROOT/docs/bench" "$ROOT/BENCHMARKS.md"
log "done: bench/results/tables.md, docs/bench/"
