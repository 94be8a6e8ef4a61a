# Sourced by .ci/schemathesis.sh and gateway/tests/browser/run.sh: starts the
# all-in-one `bookstore` binary on free ports with a fresh data directory,
# waits until the gateway is ready, and stops it (and removes the data) when
# the sourcing script exits.
#
#   source .ci/stack.sh; start_stack BIN_DIR   # sets GATEWAY_URL

STACK_PID=""
STACK_DIR=""

stop_stack() {
  if [ -n "$STACK_PID" ]; then
    kill -TERM "$STACK_PID" 2>/dev/null || true
    wait "$STACK_PID" 2>/dev/null || true
    STACK_PID=""
  fi
  [ -n "$STACK_DIR" ] && rm -rf "$STACK_DIR"
  STACK_DIR=""
}

start_stack() {
  local bin_dir="$1"
  STACK_DIR="$(mktemp -d)"
  trap stop_stack EXIT
  # Port 0 everywhere: the launcher prints the addresses it was given.
  RUST_LOG="${RUST_LOG:-warn}" "$bin_dir/bookstore" --data-dir "$STACK_DIR/data" \
    --gateway-addr 127.0.0.1:0 --auth-addr 127.0.0.1:0 --books-addr 127.0.0.1:0 \
    >"$STACK_DIR/stdout" 2>"$STACK_DIR/stderr" &
  STACK_PID=$!
  GATEWAY_URL=""
  for _ in $(seq 1 100); do
    GATEWAY_URL="$(sed -n 's/^  REST gateway *\(http:[^ ]*\).*/\1/p' "$STACK_DIR/stdout")"
    [ -n "$GATEWAY_URL" ] && break
    kill -0 "$STACK_PID" 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$GATEWAY_URL" ]; then
    echo "bookstore did not start:" >&2; cat "$STACK_DIR/stdout" "$STACK_DIR/stderr" >&2; return 1
  fi
  for _ in $(seq 1 100); do
    curl -fsS "$GATEWAY_URL/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "$GATEWAY_URL/readyz" >/dev/null || { echo "the stack is not ready" >&2; cat "$STACK_DIR/stderr" >&2; return 1; }
  echo "stack running: $GATEWAY_URL"
}
