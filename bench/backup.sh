#!/usr/bin/env bash
# How long `bookstore backup` takes on a books.db of 1,000,000 books, and
# how long writes stall meanwhile: the all-in-one (release build) serves a
# writer that creates books one after another through the REST gateway,
# timing each; the backup runs in the middle. Prints the backup's duration
# and the writes' latency before and during it.
#
#   bench/backup.sh [BOOKS=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
BOOKS="${1:-1000000}"
BIN="${CARGO_TARGET_DIR:-target}/release/bookstore"
[ -x "$BIN" ] || cargo build --release --locked -q
WORK="$(mktemp -d)"
PORT=15900
cleanup() { [ -n "${STACK:-}" ] && kill "$STACK" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" --data-dir "$WORK/data" --gateway-addr "127.0.0.1:$PORT" --auth-addr 127.0.0.1:15901 \
  --books-addr 127.0.0.1:15902 --auth-metrics-addr 127.0.0.1:0 --books-metrics-addr 127.0.0.1:0 \
  --gateway-metrics-addr 127.0.0.1:0 >"$WORK/stack.log" 2>&1 &
STACK=$!
for _ in $(seq 1 100); do "$BIN" probe "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

NO_PROXY=127.0.0.1 python3 - "$WORK" "$PORT" "$BOOKS" "$BIN" <<'PY'
import json, sqlite3, subprocess, sys, threading, time, urllib.request
work, port, books, binary = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
base = f"http://127.0.0.1:{port}"
def call(method, path, body=None, headers={}):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"{}")
call("POST", "/register", {"name": "writer", "password": "backup-bench-password"})
import base64
login = urllib.request.Request(base + "/login", method="POST", headers={
    "authorization": "Basic " + base64.b64encode(b"writer:backup-bench-password").decode()})
token = json.loads(urllib.request.urlopen(login).read())["token"]

# 1,000,000 books of 1,000 other owners, written straight into the live
# database (WAL: the stack keeps serving).
started = time.time()
db = sqlite3.connect(f"{work}/data/books.db", timeout=30)
now = int(time.time() * 1e6)
db.executemany(
    "insert into books (owner_id, name, author, publisher, book_prize, created_at, updated_at) values (?,?,?,?,?,?,?)",
    ((f"owner-{i % 1000}", f"Book {i}", "Author", "Publisher", i % 100, now, now) for i in range(books)))
db.commit(); db.close()
print(f"seeded {books} books in {time.time() - started:.1f} s")

latencies = []  # (start, seconds)
stop = threading.Event()
def writer():
    n = 0
    while not stop.is_set():
        t0 = time.time()
        call("POST", "/book", {"name": f"W{n}", "Author": "A", "Publisher": "P", "book_prize": 1},
             {"x-access-tokens": token})
        latencies.append((t0, time.time() - t0)); n += 1
thread = threading.Thread(target=writer); thread.start()
time.sleep(3)
b0 = time.time()
out = subprocess.run([binary, "--data-dir", f"{work}/data", "backup", "--to", f"{work}/backup"],
                     capture_output=True, text=True, check=True)
b1 = time.time()
time.sleep(1)
stop.set(); thread.join()
def summary(rows):
    values = sorted(s * 1000 for _, s in rows)
    if not values: return "no writes"
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return f"{len(values)} writes, p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, max {values[-1]:.1f} ms"
before = [r for r in latencies if r[0] + r[1] < b0]
during = [r for r in latencies if r[0] < b1 and r[0] + r[1] > b0]
size = sum(f["bytes"] for f in json.load(open(f"{work}/backup/manifest.json"))["files"])
print(out.stdout.strip())
print(f"backup: {b1 - b0:.2f} s wall, {size / 1e6:.0f} MB written")
print(f"writes before the backup: {summary(before)}")
print(f"writes during the backup: {summary(during)}")
PY
