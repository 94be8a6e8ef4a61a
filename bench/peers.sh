#!/usr/bin/env bash
# GET /books side by side in one run: Bookstore and the peers of
# ../shared/peers, for the first table of BENCHMARKS.md.
#   bench/peers.sh [ROUNDS=3] [DURATION=8]
# Contestants, all started first (each on its own loopback port, idle while
# another is measured), each given a user with 20 books through its REST API:
#   all-in-one      target/release/bookstore (one process)
#   three processes bookstore auth-service | books-service | gateway over TCP
#   before          BEFORE_BIN's all-in-one, when set (an older build, for
#                   before/after figures from the same run; BEFORE_LABEL
#                   names it in the tables)
#   fastify, fastapi, flask   the peers' run.sh (PEERS=../shared/peers)
# Then ROUNDS rounds, each measuring every contestant once in turn with
# wrk -t1 -c16 for DURATION s; the table gives each one's median req/s, its
# ratio to the Fastify peer, p50/p99 of the median run, and the server CPU
# per request (user + system time of the contestant's processes and their
# children, from /proc, over the measured runs, divided by the requests).
# Also h2load ListBooks (page of 20, -c16 -m8) against both Bookstore stacks
# (and BEFORE_BIN's), in rounds alternating with the same load on echo-grpc:
# a trivial tonic unary call, the ceiling of a gRPC call here, served as
# tonic serves it and again with Bookstore's coalesced writes
# (runtime/src/coalesce.rs), the ceiling for a service that has them.
# Writes bench/results/peers.md, the chart docs/bench/peers.svg and raw output in
# bench/results/raw/peers/.
# Needs wrk, h2load, curl, python3, node/npm (Fastify), a Python for the others.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
RUNS="${1:-3}"
DUR="${2:-8}"
PEERS="${PEERS:-$(cd "$ROOT/.." && pwd)/shared/peers}"
[ -d "$PEERS" ] || PEERS=/work/shared/peers
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_setup peers wrk h2load curl python3
export RUST_LOG=warn PEER_HOME="${PEER_HOME:-${TMPDIR:-/tmp}/bookstore-peers}"
# Seeding registers and logs in a few users from one address.
export AUTH_CLIENT_RATE_PER_MINUTE=0 AUTH_LOGIN_FREE_ATTEMPTS=0

log() { echo "[peers] $*" >&2; }
wait_http() { # url
  for _ in $(seq 1 1200); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$1 never answered" >&2; exit 1
}

# name -> "port pid..."
declare -A PORT PROCS
start() { # name port command...
  local name=$1 port=$2; shift 2
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!"); PROCS[$name]="$!"; PORT[$name]=$port
}

log "starting the contestants"
cargo build --release -q -p bookstore-bench --bin echo-grpc
start echo-grpc 16600 "$CARGO_TARGET_DIR/release/echo-grpc" 127.0.0.1:16600
start echo-coalesced 16601 "$CARGO_TARGET_DIR/release/echo-grpc" 127.0.0.1:16601 --coalesced-writes
start all-in-one 16000 "$BIN" --data-dir "$WORK/aio" --gateway-addr 127.0.0.1:16000 \
  --auth-addr 127.0.0.1:16051 --books-addr 127.0.0.1:16052 --auth-metrics-addr 127.0.0.1:0 \
  --books-metrics-addr 127.0.0.1:0 --gateway-metrics-addr 127.0.0.1:0
mkdir -p "$WORK/three"
start three-auth 16151 "$BIN" auth-service --listen-addr 127.0.0.1:16151 \
  --database-url "sqlite://$WORK/three/auth.db" --signing-key-file "$WORK/three/key.pem" \
  --service-token-file "$WORK/three/service-token"
for _ in $(seq 1 200); do
  "$BIN" probe grpc://127.0.0.1:16151/bookstore.auth.v1.AuthService >/dev/null 2>&1 && break; sleep 0.05
done
start three-books 16152 "$BIN" books-service --listen-addr 127.0.0.1:16152 \
  --database-url "sqlite://$WORK/three/books.db" --service-token-file "$WORK/three/service-token" \
  --auth-url http://127.0.0.1:16151
start three 16100 "$BIN" gateway --listen-addr 127.0.0.1:16100 --auth-url http://127.0.0.1:16151 \
  --books-url http://127.0.0.1:16152
PROCS[three]="${PROCS[three]} ${PROCS[three-auth]} ${PROCS[three-books]}"
CONTESTANTS=(all-in-one three)
if [ -n "${BEFORE_BIN:-}" ]; then
  start before 16200 "$BEFORE_BIN" --data-dir "$WORK/before" --gateway-addr 127.0.0.1:16200 \
    --auth-addr 127.0.0.1:16251 --books-addr 127.0.0.1:16252 --auth-metrics-addr 127.0.0.1:0 \
    --books-metrics-addr 127.0.0.1:0 --gateway-metrics-addr 127.0.0.1:0
  CONTESTANTS+=(before)
fi
start fastify 16300 bash "$PEERS/fastify-bookstore/run.sh" 16300
start fastapi 16400 bash "$PEERS/fastapi-bookstore/run.sh" 16400
start flask 16500 env VENV="${TMPDIR:-/tmp}/flask-seed-venv" RUN_DIR="$WORK/flask" \
  bash "$PEERS/flask-seed/run.sh" 16500 gunicorn
CONTESTANTS+=(fastify fastapi flask)

declare -A TOKENS
for name in "${CONTESTANTS[@]}"; do
  BASE="http://127.0.0.1:${PORT[$name]}"
  wait_http "$BASE/books"
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" != 503 ] && break; sleep 0.1
  done
  make_user_with_20_books >"$RAW/seed-$name.txt"
  TOKENS[$name]=$TOKEN
  log "$name ready on $BASE"
done

# User + system clock ticks of these processes and all their descendants.
cpu_ticks() {
  python3 - "$@" <<'EOF'
import os, sys
children, own = {}, {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    children.setdefault(fields[1], []).append(pid)
    own[pid] = int(fields[11]) + int(fields[12])
total, todo = 0, list(sys.argv[1:])
while todo:
    pid = todo.pop()
    total += own.get(pid, 0)
    todo.extend(children.get(pid, []))
print(total)
EOF
}

for round in $(seq 1 "$RUNS"); do
  for name in "${CONTESTANTS[@]}"; do
    export TOKEN="${TOKENS[$name]}"
    before=$(cpu_ticks ${PROCS[$name]})
    wrk -t1 -c16 -d"${DUR}s" --latency -s bench/books.lua "http://127.0.0.1:${PORT[$name]}/books" \
      >"$RAW/wrk-$name-$round.txt"
    after=$(cpu_ticks ${PROCS[$name]})
    echo "$((after - before))" >"$RAW/cpu-ticks-$name-$round.txt"
    log "round $round $name: $(awk '/^Requests\/sec:/ {print $2}' "$RAW/wrk-$name-$round.txt") req/s"
  done
done

# ListBooks over gRPC, on both Bookstore stacks, and the echo.
printf '\x00\x00\x00\x00\x02\x08\x14' >"$WORK/list-books-20.grpc"
printf '\x00\x00\x00\x00\x07\x0a\x05hello' >"$WORK/echo.grpc"
GRPC_CONTESTANTS=(all-in-one three)
[ -n "${BEFORE_BIN:-}" ] && GRPC_CONTESTANTS+=(before)
GRPC_CONTESTANTS+=(echo-grpc echo-coalesced)
for round in $(seq 1 "$RUNS"); do
  for name in "${GRPC_CONTESTANTS[@]}"; do
    port=16052 path=/bookstore.books.v1.BooksService/ListBooks body="$WORK/list-books-20.grpc"
    [ "$name" = three ] && port=16152
    [ "$name" = before ] && port=16252
    [ "$name" = echo-grpc ] && port=16600 path=/bench.echo.v1.EchoService/Echo body="$WORK/echo.grpc"
    [ "$name" = echo-coalesced ] && port=16601 path=/bench.echo.v1.EchoService/Echo body="$WORK/echo.grpc"
    h2load -c16 -m8 -D "$DUR" -H 'content-type: application/grpc' -H 'te: trailers' \
      -H "authorization: Bearer ${TOKENS[$name]:-none}" -d "$body" \
      "http://127.0.0.1:$port$path" >"$RAW/h2load-$name-$round.txt" 2>&1
  done
done

mkdir -p "$ROOT/docs/bench"
python3 - "$RAW" "$RUNS" "$(getconf CLK_TCK)" "$ROOT/docs/bench/peers.svg" "${CONTESTANTS[@]}" \
  >"$ROOT/bench/results/peers.md" <<'EOF'
import os, re, statistics, subprocess, sys
raw, runs, tck, chart, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
label = {
    "all-in-one": "Bookstore all-in-one (one process: gateway -> books-service in process -> SQLite)",
    "three": "Bookstore, three processes (gateway -> gRPC over TCP -> books-service -> SQLite)",
    "before": os.environ.get("BEFORE_LABEL", "Bookstore all-in-one before (BEFORE_BIN)"),
    "fastify": "Fastify 5 peer (2 cluster workers, better-sqlite3, fast-jwt)",
    "fastapi": "FastAPI peer (uvicorn, 2 workers)",
    "flask": "Flask original (gunicorn, 2 workers)",
}
def wrk(name, r):
    text = open(f"{raw}/wrk-{name}-{r}.txt").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, requests, lat, int(errors.group(1)) if errors else 0
rows = {}
for name in names:
    runs_ = [wrk(name, r) for r in range(1, runs + 1)]
    ticks = sum(int(open(f"{raw}/cpu-ticks-{name}-{r}.txt").read()) for r in range(1, runs + 1))
    requests = sum(run[1] for run in runs_)
    median = statistics.median(run[0] for run in runs_)
    middle = sorted(runs_, key=lambda run: run[0])[len(runs_) // 2]
    rows[name] = (median, middle[2], ticks / tck / requests * 1e6, sum(run[3] for run in runs_), [run[0] for run in runs_])
fastify = rows.get("fastify", (None,))[0]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"`GET /books`, a user with 20 books, wrk -t1 -c16, {runs} rounds alternating between contestants (median); commit {commit}.\n")
print("| contestant | req/s | x Fastify | p50 | p99 | server CPU per request | non-2xx |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name in names:
    median, lat, cpu_us, errors, _ = rows[name]
    ratio = f"{median / fastify:.2f}" if fastify else "-"
    print(f"| {label[name]} | {median:,.0f} | {ratio} | {lat.get('50', '-')} | {lat.get('99', '-')} | {cpu_us:,.0f} µs | {errors} |")
print("\nEach round's req/s: " + "; ".join(f"{name} " + ", ".join(f"{v:,.0f}" for v in rows[name][4]) for name in names) + ".\n")
# The chart: one bar per contestant, req/s, plain SVG (no plotting library).
width, bar, gap, left = 760, 26, 10, 330
top = max(rows[name][0] for name in names)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{len(names) * (bar + gap) + 40}" '
       'font-family="sans-serif" font-size="13">',
       f'<text x="0" y="16" font-weight="bold">GET /books, req/s (wrk -t1 -c16, median of {runs} rounds; 2 cores)</text>']
for index, name in enumerate(names):
    y = 30 + index * (bar + gap)
    length = (width - left - 90) * rows[name][0] / top
    colour = "#d9534f" if name in ("fastify", "fastapi", "flask") else "#2c7fb8"
    short = {"all-in-one": "Bookstore all-in-one", "three": "Bookstore, three processes", "before": "Bookstore all-in-one, before"}
    text = short.get(name, label[name].split(" (")[0])
    svg.append(f'<text x="{left - 8}" y="{y + bar * 0.7}" text-anchor="end">{text}</text>')
    svg.append(f'<rect x="{left}" y="{y}" width="{length:.0f}" height="{bar}" fill="{colour}"/>')
    svg.append(f'<text x="{left + length + 6:.0f}" y="{y + bar * 0.7}">{rows[name][0]:,.0f}</text>')
svg.append("</svg>")
with open(chart, "w") as out:
    out.write("\n".join(svg) + "\n")
print(f"![GET /books, req/s, side by side](docs/bench/peers.svg)\n")
print("gRPC `ListBooks` (page of 20) and the tonic echo, h2load -c16 -m8, rounds alternating, median:\n")
print("| stack | calls/s | x echo | x echo, writes coalesced |")
print("|---|---:|---:|---:|")
def calls(name):
    values = []
    for r in range(1, runs + 1):
        match = re.search(r"finished in [^,]+, ([\d.]+) req/s", open(f"{raw}/h2load-{name}-{r}.txt").read())
        values.append(float(match.group(1)) if match else 0.0)
    return statistics.median(values), values
echo, coalesced = calls("echo-grpc")[0], calls("echo-coalesced")[0]
label["echo-grpc"] = "tonic echo (bench/src/bin/echo-grpc.rs, no work)"
label["echo-coalesced"] = "tonic echo, writes coalesced (echo-grpc --coalesced-writes)"
for name in [n for n in ("all-in-one", "three", "before") if n in names] + ["echo-grpc", "echo-coalesced"]:
    median, values = calls(name)
    each = ", ".join(f"{v:,.0f}" for v in values)
    method = "Echo" if name.startswith("echo") else "ListBooks"
    print(f"| {label[name].split(' (')[0]} `{method}` ({each}) | {median:,.0f} | {median / echo:.2f} | {median / coalesced:.2f} |")
EOF
cat "$ROOT/bench/results/peers.md"
