#!/usr/bin/env bash
# Configures and builds paca into build/ (Release, CUDA when nvcc is found,
# warnings as errors). Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPACA_CUDA=AUTO -DPACA_WERROR=ON "$@" >/dev/null
cmake --build build
