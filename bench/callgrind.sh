#!/usr/bin/env bash
# Instructions per request, counted by callgrind: they repeat on a noisy
# machine, where throughput does not (BENCHMARKS.md, "Profiles").
#   bench/callgrind.sh [[LABEL=]BIN...]   (default: the release launcher, built)
# For each BIN (an all-in-one launcher; LABEL names it in the table): its all-in-one under valgrind --tool=callgrind with the
# counting off, a user with 20 books (through its REST API), 200 warm-up
# calls of each kind, then the instructions of the whole process (every
# thread) over REQUESTS (2,000) `GET /books` (h2load --h1 -c4) and over
# REQUESTS gRPC `ListBooks`, page of 20 (h2load -c4 -m4 on the books port),
# each divided by REQUESTS. Thread switches and kernel time are not in
# these counts; perf and /proc (bench/peers.sh) cover them.
# Writes bench/results/callgrind.md; the callgrind dumps stay in
# bench/results/raw/callgrind/ for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
REQUESTS="${REQUESTS:-2000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_setup callgrind valgrind callgrind_control h2load curl python3
[ "$#" -gt 0 ] || set -- "$BIN"
export RUST_LOG=warn AUTH_CLIENT_RATE_PER_MINUTE=0 AUTH_LOGIN_FREE_ATTEMPTS=0
printf '\x00\x00\x00\x00\x02\x08\x14' >"$WORK/list-books-20.grpc"

log() { echo "[callgrind] $*" >&2; }
# Instructions of the process since the last zeroing: dumps and reads them.
count() { # pid name
  callgrind_control -d "$1" >/dev/null 2>&1
  local dump
  dump=$(ls -v "$RAW/$2".callgrind.out.* | tail -n1)
  awk '/^(summary|totals):/ {print $2; exit}' "$dump"
}
get_books() { h2load --h1 -n "$1" -c4 -H "x-access-tokens: $TOKEN" "$BASE/books" >/dev/null 2>&1; }
list_books() {
  h2load -n "$1" -c4 -m4 -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $TOKEN" \
    -d "$WORK/list-books-20.grpc" "http://127.0.0.1:17052/bookstore.books.v1.BooksService/ListBooks" >/dev/null 2>&1
}

{
  echo "Instructions per request (callgrind, every thread of the all-in-one), $REQUESTS requests each after 200 warm-up calls; a user with 20 books."
  echo
  echo "| build | \`GET /books\` (REST, HTTP/1.1) | \`ListBooks\` (gRPC, page of 20) |"
  echo "|---|---:|---:|"
} >"$RAW/table.md"
index=0
for arg in "$@"; do
  index=$((index + 1))
  name="bin$index" bin="${arg#*=}" label="${arg%%=*}"
  log "$label: $bin"
  mkdir -p "$WORK/$name"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$RAW/$name.callgrind.out.%p" \
    "$bin" --data-dir "$WORK/$name" --gateway-addr 127.0.0.1:17000 --auth-addr 127.0.0.1:17051 \
    --books-addr 127.0.0.1:17052 --auth-metrics-addr 127.0.0.1:0 --books-metrics-addr 127.0.0.1:0 \
    --gateway-metrics-addr 127.0.0.1:0 >"$WORK/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  BASE=http://127.0.0.1:17000
  for _ in $(seq 1 600); do curl -sf -o /dev/null "$BASE/readyz" && break; sleep 0.2; done
  make_user_with_20_books >/dev/null
  get_books 200
  list_books 200
  callgrind_control -i on "$pid" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  get_books "$REQUESTS"
  rest=$(count "$pid" "$name")
  callgrind_control -z "$pid" >/dev/null 2>&1
  list_books "$REQUESTS"
  grpc=$(count "$pid" "$name")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "| $label | $((rest / REQUESTS)) | $((grpc / REQUESTS)) |" >>"$RAW/table.md"
done
cp "$RAW/table.md" "$ROOT/bench/results/callgrind.md"
cat "$RAW/table.md"
