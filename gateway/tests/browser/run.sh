#!/usr/bin/env bash
# Starts the stack (`bookstore` from BIN_DIR, fresh data, free ports) and
# drives the gateway's /docs page in headless Chromium (docs.test.mjs). The
# screenshot goes to SCREENSHOT (default: a temporary file, removed).
#
#   gateway/tests/browser/run.sh [BIN_DIR=target/debug]
#   SCREENSHOT=docs/images/swagger-ui.png gateway/tests/browser/run.sh   # refresh docs/rest-api.md's
#
# Needs Debian's chromium and node/npm; installs playwright-core from
# package-lock.json (no browser download: it drives /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/../../.."
BIN_DIR="$(realpath "${1:-target/debug}")"
BROWSER_DIR=gateway/tests/browser

# Only what is missing: Debian's npm conflicts with a Node.js installed from
# elsewhere (NodeSource's nodejs carries its own npm).
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -d "$BROWSER_DIR/node_modules/playwright-core" ]; then
  (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --silent)
fi

source .ci/stack.sh
start_stack "$BIN_DIR"

if [ -n "${SCREENSHOT:-}" ]; then
  SCREENSHOT="$(realpath -m "$SCREENSHOT")"
else
  SCREENSHOT="$STACK_DIR/swagger-ui.png"
fi
export GATEWAY_URL SCREENSHOT
(cd "$BROWSER_DIR" && node --test docs.test.mjs)
