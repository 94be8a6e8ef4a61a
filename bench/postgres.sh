#!/usr/bin/env bash
# Bookstore on PostgreSQL as separate processes (one auth-service, one
# books-service, one gateway), as deployed: throughput, latency and each
# process's memory, which sizes the Kubernetes requests and limits.
#   bench/postgres.sh [RUNS=3] [DURATION=10s]
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth; BENCH_POSTGRES_URL to
# change), wrk and h2load. Creates two scratch databases and drops them.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
DUR="${2:-10s}"
SERVER="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
for tool in wrk h2load curl psql; do command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }; done

cargo build --release -q -p bookstore
BIN=target/release/bookstore
SUFFIX="bench_$$"
psql "$SERVER/postgres" -qAt -c "create database auth_$SUFFIX" -c "create database books_$SUFFIX"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$SERVER/postgres" -qAt -c "drop database if exists auth_$SUFFIX with (force)" \
    -c "drop database if exists books_$SUFFIX with (force)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" generate-signing-key --out "$WORK/key.pem" >/dev/null
"$BIN" generate-service-token --out "$WORK/service-token" >/dev/null
export RUST_LOG=warn
# Every request comes from one address: the per-client limit would cap the login run.
export AUTH_CLIENT_RATE_PER_MINUTE=0
AUTH_LISTEN_ADDR=127.0.0.1:16051 AUTH_DATABASE_URL="$SERVER/auth_$SUFFIX" AUTH_SIGNING_KEY_FILE="$WORK/key.pem" \
  AUTH_SERVICE_TOKEN_FILE="$WORK/service-token" \
  "$BIN" auth-service 2>"$WORK/auth.log" & PIDS+=("$!"); AUTH_PID=$!
BOOKS_LISTEN_ADDR=127.0.0.1:16052 BOOKS_DATABASE_URL="$SERVER/books_$SUFFIX" BOOKS_AUTH_URL=http://127.0.0.1:16051 \
  BOOKS_SERVICE_TOKEN_FILE="$WORK/service-token" \
  "$BIN" books-service 2>"$WORK/books.log" & PIDS+=("$!"); BOOKS_PID=$!
GATEWAY_LISTEN_ADDR=127.0.0.1:16000 GATEWAY_AUTH_URL=http://127.0.0.1:16051 GATEWAY_BOOKS_URL=http://127.0.0.1:16052 \
  "$BIN" gateway 2>"$WORK/gateway.log" & PIDS+=("$!"); GATEWAY_PID=$!
BASE=http://127.0.0.1:16000
for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done

memory() { # label
  local line="$1:"
  for pair in "auth-service:$AUTH_PID" "books-service:$BOOKS_PID" "gateway:$GATEWAY_PID"; do
    line+=" ${pair%%:*} $(awk '$1 == "VmRSS:" {printf "%.1f", $2 / 1024}' "/proc/${pair##*:}/status")"
    line+="/$(awk '$1 == "VmHWM:" {printf "%.1f", $2 / 1024}' "/proc/${pair##*:}/status") MiB"
  done
  echo "$line (resident/peak)"
}
echo "machine: $(nproc) cores; PostgreSQL $(psql "$SERVER/postgres" -qAt -c 'show server_version'); load generator on the same cores"
memory "memory idle"

. bench/lib.sh
make_user_with_20_books
wrk_bench "REST GET /books (PostgreSQL)" books.lua /books
wrk_bench "REST POST /login (PostgreSQL)" login.lua /login
EMPTY="$WORK/empty.grpc"; printf '\x00\x00\x00\x00\x00' > "$EMPTY"
h2_bench "gRPC ListBooks (PostgreSQL)" 16052 /bookstore.books.v1.BooksService/ListBooks "$EMPTY" "authorization: Bearer $TOKEN"
memory "memory after the load"
