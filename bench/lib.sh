# Shared by the bench scripts: wrk and h2load runs with medians.
# Expects BASE (gateway URL), RUNS, DUR, and TOKEN / BASIC exported.

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


# Registers a fresh user with 20 books through the gateway at $BASE (as the
# tutorial peer's bench does) and exports TOKEN and BASIC.
make_user_with_20_books() {
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
}

# The start of a side-by-side script (peers.sh, tls.sh) run from the repo
# root with ROOT set: checks the tools, builds the release launcher (BIN),
# empties RAW (bench/results/raw/NAME) and makes WORK; on exit, stops every
# process in PIDS (and their children) and removes WORK.
bench_setup() { # name tool...
  local name=$1; shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$name.sh needs $tool" >&2; exit 2; }
  done
  cargo build --release -q -p bookstore
  BIN="$CARGO_TARGET_DIR/release/bookstore"
  RAW="$ROOT/bench/results/raw/$name"
  rm -rf "$RAW"; mkdir -p "$RAW"
  WORK="$(mktemp -d)"
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for pid in "${PIDS[@]}"; do pkill -TERM -P "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
