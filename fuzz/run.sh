#!/usr/bin/env bash
# Builds and runs each fuzz target for SECONDS (default 20), after replaying
# the kept regression inputs (fuzz/regressions/TARGET/*). Needs nightly and
# cargo-fuzz (`cargo install cargo-fuzz --locked`). A crash fails the run
# and leaves its input in fuzz/artifacts/TARGET/: copy it into
# fuzz/regressions/TARGET/ with the fix, so it is replayed from then on.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-20}"
# Its own build directory: sanitizer builds share nothing with the workspace's.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
for target in token_verify page_token rest_decode; do
  mkdir -p "corpus/$target" "regressions/$target"
  echo "== fuzz $target: regressions, then ${SECONDS_PER_TARGET}s"
  cargo +nightly fuzz run "$target" "regressions/$target" -- -runs=0
  cargo +nightly fuzz run "$target" "corpus/$target" "regressions/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -print_final_stats=1 2>&1 | tail -n 12
done
echo "fuzz: 3 targets ran ${SECONDS_PER_TARGET}s each, no crash"
