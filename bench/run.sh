#!/usr/bin/env bash
# Bookstore benchmarks on loopback: throughput, latency percentiles and memory.
#   bench/run.sh [RUNS=3] [DURATION=10s]
# Builds the release binary, starts the whole stack (`bookstore`, SQLite in a
# temporary data dir, on ports 15000/15051/15052), creates a user with 20
# books (as the Flask peer's bench does), then measures, RUNS times each:
#   REST  GET /books    wrk -t1 -c16      (gateway -> books-service -> SQLite)
#   REST  POST /login   wrk -t1 -c16      (argon2id, m=19 MiB, t=2)
#   gRPC  ListBooks     h2load -c16 -m8   (books-service directly)
#   gRPC  GetJwks       h2load -c16 -m8   (auth-service, no database)
# and the process's resident memory (VmRSS) idle, and its peak (VmHWM).
# Needs wrk and h2load (Debian: wrk, nghttp2-client). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
DUR="${2:-10s}"
for tool in wrk h2load curl; do command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }; done

cargo build --release -q -p bookstore
DATA="$(mktemp -d)"
BASE=http://127.0.0.1:15000
BOOKSTORE_DATA_DIR="$DATA" BOOKSTORE_GATEWAY_ADDR=127.0.0.1:15000 BOOKSTORE_AUTH_ADDR=127.0.0.1:15051 \
  BOOKSTORE_BOOKS_ADDR=127.0.0.1:15052 RUST_LOG=warn target/release/bookstore >/dev/null 2>"$DATA/log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done

rss() { awk -v key="$1" '$1 == key":" {printf "%.1f MiB", $2 / 1024}' "/proc/$PID/status"; }
echo "machine: $(nproc) cores, $(uname -r); load generator on the same cores"
echo "memory idle: VmRSS $(rss VmRSS)"

U="bench_$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"; P="pw-$U-secret"
curl -sf -X POST "$BASE/register" -H 'Content-Type: application/json' -d "{\"name\":\"$U\",\"password\":\"$P\"}" >/dev/null
TOKEN=$(curl -sf -X POST -u "$U:$P" "$BASE/login" | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')
for i in $(seq 1 20); do
  curl -sf -X POST "$BASE/book" -H "x-access-tokens: $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"name\":\"Bench book $i\",\"Author\":\"Bench author $i\",\"Publisher\":\"Bench press\",\"book_prize\":$((100 + i))}" >/dev/null
done
echo "GET /books body: $(curl -sf "$BASE/books" -H "x-access-tokens: $TOKEN" | wc -c) bytes, 20 books"
BASIC=$(printf '%s' "$U:$P" | base64 -w0)
export TOKEN BASIC

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

wrk_bench() { # label script path
  local rps=()
  for r in $(seq 1 "$RUNS"); do
    out=$(wrk -t1 -c16 -d"$DUR" --latency -s "bench/$2" "$BASE$3")
    v=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(awk '/^     50%/ {print $2}' <<<"$out"); p90=$(awk '/^     90%/ {print $2}' <<<"$out")
    p99=$(awk '/^     99%/ {print $2}' <<<"$out")
    echo "$1 run $r: req/s=$v p50=$p50 p90=$p90 p99=$p99 | $(grep '^summary:' <<<"$out")"
    rps+=("$v")
  done
  echo "$1 median req/s: $(printf '%s\n' "${rps[@]}" | median)"
}

h2_bench() { # label port path body-file [extra header]
  local rps=() extra=()
  [ -n "${5:-}" ] && extra=(-H "$5")
  for r in $(seq 1 "$RUNS"); do
    out=$(h2load -c16 -m8 -D "${DUR%s}" -H 'content-type: application/grpc' -H 'te: trailers' "${extra[@]}" \
      -d "$4" "http://127.0.0.1:$2$3" 2>&1)
    v=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$out")
    lat=$(awk '/^time for request:/ {print "min="$4" max="$5" mean="$6" sd="$7}' <<<"$out")
    echo "$1 run $r: req/s=$v request time $lat | $(grep '^requests:' <<<"$out")"
    rps+=("$v")
  done
  echo "$1 median req/s: $(printf '%s\n' "${rps[@]}" | median)"
}

wrk_bench "REST GET /books" books.lua /books
echo "memory after GET /books: VmRSS $(rss VmRSS)"
wrk_bench "REST POST /login" login.lua /login
echo "memory after POST /login: VmRSS $(rss VmRSS)"
EMPTY="$DATA/empty.grpc"; printf '\x00\x00\x00\x00\x00' > "$EMPTY"   # an empty message, gRPC-framed
h2_bench "gRPC ListBooks" 15052 /bookstore.books.v1.BooksService/ListBooks "$EMPTY" "authorization: Bearer $TOKEN"
echo "memory after gRPC ListBooks: VmRSS $(rss VmRSS)"
h2_bench "gRPC GetJwks" 15051 /bookstore.auth.v1.AuthService/GetJwks "$EMPTY"
echo "memory after the load: VmRSS $(rss VmRSS), peak VmHWM $(rss VmHWM)"
