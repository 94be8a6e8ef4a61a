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

. bench/lib.sh
make_user_with_20_books

wrk_bench "REST GET /books" books.lua /books
echo "memory after GET /books: VmRSS $(rss VmRSS)"
wrk_bench "REST POST /login" login.lua /login
echo "memory after POST /login: VmRSS $(rss VmRSS)"
EMPTY="$DATA/empty.grpc"; printf '\x00\x00\x00\x00\x00' > "$EMPTY"   # an empty message, gRPC-framed
h2_bench "gRPC ListBooks" 15052 /bookstore.books.v1.BooksService/ListBooks "$EMPTY" "authorization: Bearer $TOKEN"
echo "memory after gRPC ListBooks: VmRSS $(rss VmRSS)"
h2_bench "gRPC GetJwks" 15051 /bookstore.auth.v1.AuthService/GetJwks "$EMPTY"
echo "memory after the load: VmRSS $(rss VmRSS), peak VmHWM $(rss VmHWM)"
