#!/usr/bin/env bash
# Build a llama.cpp source snapshot natively for this CPU, as a peer for side-by-side runs.
#
#   bench/peer/build_llamacpp.sh SRC_DIR [BUILD_DIR]
#
# SRC_DIR is an unpacked llama.cpp tree the developer supplies (for example a `git archive` of a
# snapshot). Nothing of it enters this repository. The build is Release with -DGGML_NATIVE=ON (so
# ggml picks AVX2/AVX-512/VNNI/BF16 for the CPU it is built on), CPU only, static, and makes the
# tools the peer scripts use: llama-bench, llama-quantize, llama-server, the llama library and
# llamacpp-logits (bench/peer/llamacpp_logits.cpp, ours, linked against it).
set -euo pipefail
src=${1:?usage: build_llamacpp.sh SRC_DIR [BUILD_DIR]}
build=${2:-$src/build-native}
[[ -f $src/CMakeLists.txt && -d $src/ggml ]] || { echo "build_llamacpp.sh: $src is not a llama.cpp tree" >&2; exit 2; }
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$src" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DGGML_CUDA=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF
# which snapshot this is: SRC_DIR/PEER_COMMIT (written by whoever unpacked it) or git
commit=$(cat "$src/PEER_COMMIT" 2>/dev/null || git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)
mkdir -p "$build" && echo "$(cd "$src" && pwd) $commit" > "$build/peer-source.txt"
cmake --build "$build" -j"$(nproc)" --target llama-bench llama-quantize llama-server llama
# paca's logits dumper for the agreement check (bench/peer/agree.py), against llama.h
here=$(cd "$(dirname "$0")" && pwd)
libs=("$build/src/libllama.a" "$build/ggml/src/libggml.a" "$build/ggml/src/libggml-cpu.a" "$build/ggml/src/libggml-base.a")
c++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" "$here/llamacpp_logits.cpp" "${libs[@]}" \
  -fopenmp -lpthread -ldl -o "$build/bin/llamacpp-logits"
echo "built in $build/bin:"
ls "$build/bin"
