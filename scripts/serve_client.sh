#!/usr/bin/env bash
# serve_client.sh - runs the tests of `paca serve` (ctest label serve): the
# protocol unit tests and the end-to-end suites, in which OpenAI's own Node
# client talks to `paca serve` on the models of ../shared
# (tests/serve/serve_e2e.mjs).
#
#   scripts/serve_client.sh [BUILD_DIR]      (default: build)
#
# Installs the npm package openai (major version 4) into BUILD_DIR/serve-client/
# (created here, never committed) when it is missing, then runs
# `ctest -L serve` in BUILD_DIR. Without npm, or when the install fails, the
# end-to-end suites skip and say why; so they do without ../shared or with a
# paca built without cpp-httplib.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
client="$build/serve-client"

if ! command -v npm >/dev/null 2>&1; then
  echo "serve_client: npm not found; the end-to-end suites skip" >&2
elif [ ! -d "$client/node_modules/openai" ]; then
  mkdir -p "$client"
  [ -f "$client/package.json" ] || echo '{"private": true}' > "$client/package.json"
  if ! (cd "$client" && npm install --no-audit --no-fund --silent openai@4); then
    echo "serve_client: npm install failed; the end-to-end suites skip" >&2
  fi
fi
ctest --test-dir "$build" -L serve --output-on-failure --timeout 900
