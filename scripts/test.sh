#!/usr/bin/env bash
# Runs every test: README's cmake recipes configured with and without nvcc,
# the Release build (CUDA compiled when nvcc is present) with warnings as
# errors, the ASan/UBSan build, a short run of each fuzzer, and the
# installed-package check (pkg-config and find_package consumers, the
# Python package in a venv). The binding suites (ctest labels python, java,
# csharp) run in the release build; the Python one also in the ASan build.
# Tests that need ../shared (or $PACA_SHARED_DIR) skip cleanly without it.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
stage() { echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }
scripts/setup.sh

stage "README's build recipes (configure only, with and without nvcc)"
scripts/check-recipes.sh

stage "release build + tests"
scripts/build.sh
ctest --test-dir build -j"$jobs" --output-on-failure --timeout 900

stage "paca serve against OpenAI's Node client"
scripts/serve_client.sh build

stage "tokenizers against live references (sentencepiece, tiktoken, transformers.js)"
scripts/tokenizer_reference.sh build

stage "address/undefined sanitizer build + tests"
# -O1 -g1: line tables are enough for the sanitizers' stack traces, and the
# build takes much less of CI's hour than -O2 -g (RelWithDebInfo's default)
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPACA_CUDA=OFF -DPACA_WERROR=ON \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
  -DPACA_BUILD_BENCH=OFF "-DPACA_SANITIZE=address;undefined" >/dev/null
cmake --build build-asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -j"$jobs" --output-on-failure --timeout 900

stage "fuzzers (short run)"
scripts/fuzz.sh "${PACA_FUZZ_SECONDS:-15}"

stage "install check"
scripts/check-install.sh build

stage "all tests passed"
