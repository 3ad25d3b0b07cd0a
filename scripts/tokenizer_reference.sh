#!/usr/bin/env bash
# tokenizer_reference.sh - runs paca's tokenizers against live reference
# implementations on 5,000+ generated strings (tests/tokenizer/live_reference_test.cpp)
# and the encode-speed comparison with tiktoken (bench/tokenizer_bench.cpp).
#
#   scripts/tokenizer_reference.sh [BUILD_DIR]      (default: build)
#
# Installs Debian's python3-sentencepiece (apt-get) when missing and the npm
# packages @lenml/tokenizers and tiktoken into BUILD_DIR/tokenizer-reference/
# (created here, never committed), then runs the LiveReference tests with
# PACA_TOKENIZER_REFERENCE_DIR pointing there. Needs ../shared.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
ref="$build/tokenizer-reference"

if ! /usr/bin/python3 -c "import sentencepiece" 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq --no-install-recommends python3-sentencepiece || true
fi
mkdir -p "$ref"
if [ ! -d "$ref/node_modules/@lenml/tokenizers" ] || [ ! -d "$ref/node_modules/tiktoken" ]; then
  [ -f "$ref/package.json" ] || echo '{"private": true}' > "$ref/package.json"
  if ! (cd "$ref" && npm install --no-audit --no-fund --silent @lenml/tokenizers@3 tiktoken@1); then
    echo "tokenizer_reference: npm install failed; the JavaScript references are skipped" >&2
  fi
fi
export PACA_TOKENIZER_REFERENCE_DIR="$ref"
"$build/tests/paca_tokenizer_tests" --gtest_filter='LiveReference.*'
if [ -x "$build/bench/tokenizer-bench" ] && [ -d "$root/../shared/tokenizers" ]; then
  "$build/bench/tokenizer-bench" --shared "$root/../shared"
fi
