#!/usr/bin/env bash
# What TLS costs on the read path, in one run: `GET /books` (a user with 20
# books, wrk -t1 -c16) and gRPC `ListBooks` (page of 20, h2load -c16 -m8),
# each over plaintext and over TLS, for BENCHMARKS.md.
#   bench/tls.sh [ROUNDS=3] [DURATION=8]
# Contestants, all started first (each idle while another is measured):
#   aio, aio-tls        the all-in-one, plaintext and --tls-dir (HTTPS, gRPC
#                       over TLS; its parts call each other in process)
#   three, three-tls    auth-service, books-service and the gateway as three
#                       processes, plaintext and mutual TLS between them
# Certificates: `bookstore generate-dev-certs` (ECDSA P-256). Clients keep
# their connections (wrk, h2load), so the figures are the cost per request on
# open connections, not of handshakes. ROUNDS rounds alternate between the
# contestants; the table gives medians and the TLS/plaintext ratios.
# Writes bench/results/tls.md and raw output in bench/results/raw/tls/.
# Needs wrk and h2load (Debian's, with TLS), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
RUNS="${1:-3}"
DUR="${2:-8}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_setup tls wrk h2load curl python3
export RUST_LOG=warn AUTH_CLIENT_RATE_PER_MINUTE=0 AUTH_LOGIN_FREE_ATTEMPTS=0
"$BIN" generate-dev-certs --out "$WORK/certs" >/dev/null
CERTS="$WORK/certs"
# curl (seeding) verifies the HTTPS contestants with the dev CA.
export CURL_CA_BUNDLE="$CERTS/ca.pem"

log() { echo "[tls] $*" >&2; }
declare -A URL GRPC
start() { # name command...
  local name=$1; shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
}

aio() { # name port-prefix extra-args...
  local name=$1 p=$2; shift 2
  start "$name" "$BIN" --data-dir "$WORK/$name" --gateway-addr "127.0.0.1:${p}00" \
    --auth-addr "127.0.0.1:${p}51" --books-addr "127.0.0.1:${p}52" --auth-metrics-addr 127.0.0.1:0 \
    --books-metrics-addr 127.0.0.1:0 --gateway-metrics-addr 127.0.0.1:0 "$@"
}
aio aio 170
URL[aio]=http://127.0.0.1:17000; GRPC[aio]=http://127.0.0.1:17052
aio aio-tls 171 --tls-dir "$CERTS"
URL[aio-tls]=https://127.0.0.1:17100; GRPC[aio-tls]=https://127.0.0.1:17152

three() { # name port-prefix tls(0|1)
  local name=$1 p=$2 tls=$3 scheme=http
  local auth_env=() books_env=() gateway_env=()
  mkdir -p "$WORK/$name"
  if [ "$tls" = 1 ]; then
    scheme=https
    auth_env=(AUTH_TLS_CERT="$CERTS/auth-service.pem" AUTH_TLS_KEY="$CERTS/auth-service-key.pem"
      AUTH_TLS_CLIENT_CA="$CERTS/ca.pem")
    books_env=(BOOKS_TLS_CERT="$CERTS/books-service.pem" BOOKS_TLS_KEY="$CERTS/books-service-key.pem"
      BOOKS_TLS_CLIENT_CA="$CERTS/ca.pem" BOOKS_AUTH_TLS_CA="$CERTS/ca.pem")
    gateway_env=(GATEWAY_TLS_CERT="$CERTS/gateway.pem" GATEWAY_TLS_KEY="$CERTS/gateway-key.pem"
      GATEWAY_UPSTREAM_TLS_CA="$CERTS/ca.pem" GATEWAY_UPSTREAM_TLS_CERT="$CERTS/gateway.pem"
      GATEWAY_UPSTREAM_TLS_KEY="$CERTS/gateway-key.pem")
  fi
  start "$name-auth" env "${auth_env[@]}" "$BIN" auth-service --listen-addr "127.0.0.1:${p}51" \
    --database-url "sqlite://$WORK/$name/auth.db" --signing-key-file "$WORK/$name/key.pem" \
    --service-token-file "$WORK/$name/service-token"
  for _ in $(seq 1 200); do [ -s "$WORK/$name/service-token" ] && break; sleep 0.05; done
  start "$name-books" env "${books_env[@]}" "$BIN" books-service --listen-addr "127.0.0.1:${p}52" \
    --database-url "sqlite://$WORK/$name/books.db" --service-token-file "$WORK/$name/service-token" \
    --auth-url "$scheme://localhost:${p}51"
  start "$name" env "${gateway_env[@]}" "$BIN" gateway --listen-addr "127.0.0.1:${p}00" \
    --auth-url "$scheme://localhost:${p}51" --books-url "$scheme://localhost:${p}52"
  URL[$name]=$scheme://127.0.0.1:${p}00; GRPC[$name]=$scheme://127.0.0.1:${p}52
}
three three 172 0
three three-tls 173 1
CONTESTANTS=(aio aio-tls three three-tls)

declare -A TOKENS
for name in "${CONTESTANTS[@]}"; do
  BASE="${URL[$name]}"
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = 200 ] && break; sleep 0.1
  done
  make_user_with_20_books >"$RAW/seed-$name.txt"
  TOKENS[$name]=$TOKEN
  log "$name ready on $BASE"
done

printf '\x00\x00\x00\x00\x02\x08\x14' >"$WORK/list-books-20.grpc"
for round in $(seq 1 "$RUNS"); do
  for name in "${CONTESTANTS[@]}"; do
    export TOKEN="${TOKENS[$name]}"
    wrk -t1 -c16 -d"${DUR}s" --latency -s bench/books.lua "${URL[$name]}/books" >"$RAW/wrk-$name-$round.txt"
    h2load -c16 -m8 -D "$DUR" -H 'content-type: application/grpc' -H 'te: trailers' \
      -H "authorization: Bearer $TOKEN" -d "$WORK/list-books-20.grpc" \
      "${GRPC[$name]}/bookstore.books.v1.BooksService/ListBooks" >"$RAW/h2load-$name-$round.txt" 2>&1
    log "round $round $name: GET /books $(awk '/^Requests\/sec:/ {print $2}' "$RAW/wrk-$name-$round.txt") req/s," \
      "ListBooks $(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$RAW/h2load-$name-$round.txt") calls/s"
  done
done

python3 - "$RAW" "$RUNS" "$(git rev-parse --short HEAD)" >"$ROOT/bench/results/tls.md" <<'PY'
import re, statistics, sys
raw, runs, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def rate(kind, name, r):
    text = open(f"{raw}/{kind}-{name}-{r}.txt").read()
    pattern = r"Requests/sec:\s+([\d.]+)" if kind == "wrk" else r"finished in [^,]+, ([\d.]+) req/s"
    found = re.search(pattern, text)
    if kind == "h2load":
        ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", text)
        assert ok and int(ok.group(2)) == 0, f"{name} round {r}: failed calls\n{text}"
    return float(found.group(1))
def median(kind, name):
    return statistics.median(rate(kind, name, r) for r in range(1, runs + 1))
print(f"TLS against plaintext, one run ({runs} rounds alternating between contestants, median; commit {commit}).")
print("`GET /books`: a user with 20 books, wrk -t1 -c16; `ListBooks`: page of 20, h2load -c16 -m8, straight to books-service.\n")
print("| | plaintext | TLS | TLS / plaintext |")
print("|---|---:|---:|---:|")
for label, plain, tls in [("all-in-one", "aio", "aio-tls"), ("three processes (mutual TLS between them)", "three", "three-tls")]:
    for kind, what in [("wrk", "`GET /books`, req/s"), ("h2load", "`ListBooks`, calls/s")]:
        p, t = median(kind, plain), median(kind, tls)
        print(f"| {label}: {what} | {p:,.0f} | {t:,.0f} | {t / p:.2f} |")
PY
cat "$ROOT/bench/results/tls.md"
