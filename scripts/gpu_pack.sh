#!/usr/bin/env bash
# Builds, here (no GPU needed), everything scripts/gpu_check.sh runs on a GPU
# machine, packed as gpu-carry/pack.tgz (ignored by git; name gpu-carry in
# the device tool's `carry`, at most 64 MiB with the working tree; gpu_env.sh
# unpacks it there). Inside:
#   gpu-carry/bin/   paca_cuda_tests, paca_cuda_backend_tests, paca_cuda_parallel_tests,
#                    cuda-kernels-bench, paca-bench
#   gpu-carry/lib/   libpaca.so* (paca-bench links it)
#   gpu-carry/models stories260K, tiny-llama2, tiny-llama31 and tiny-llama31-fp8
#                    (weights, configs and golden files; tokenizers left out for size)
# The build is Release for sm_90a only (H100/H200), in build-gpu/ (or $1).
# Checks that nothing links a library the device image lacks: the binaries
# may need only glibc, libstdc++/libgcc and libzstd (the CUDA runtime is
# static; libcuda.so comes with the driver; cuBLASLt and NCCL are opened with
# dlopen, from the toolkit or the pip wheels there).
#
#   scripts/gpu_pack.sh            # then, on the device: scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
shared=${PACA_SHARED_DIR:-../shared}
# MPI off: the device image has no libmpi (and a build machine with Open MPI
# would otherwise link it, failing the dependency check below)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPACA_CUDA=ON -DPACA_CUDA_ARCHITECTURES=90a \
  -DPACA_WERROR=ON -DPACA_BUILD_BINDINGS=OFF -DPACA_MPI=OFF >/dev/null
cmake --build "$build" -j2 --target paca_cuda_tests paca_cuda_backend_tests paca_cuda_parallel_tests paca_bench \
  paca_cuda_kernels_bench

rm -rf gpu-carry
mkdir -p gpu-carry/bin gpu-carry/lib gpu-carry/models
cp "$build/cuda/paca_cuda_tests" "$build/cuda/paca_cuda_backend_tests" "$build/cuda/paca_cuda_parallel_tests" \
  "$build/cuda/cuda-kernels-bench" \
  "$build/bench/paca-bench" gpu-carry/bin/
cp -P "$build"/capi/libpaca.so* gpu-carry/lib/
strip --strip-unneeded gpu-carry/bin/* gpu-carry/lib/libpaca.so.*.*.*

# test models (the tests skip any that is absent)
m=gpu-carry/models
mkdir -p "$m/stories260K" "$m/tiny-llama2" "$m/tiny-llama31" "$m/tiny-llama31-fp8"
cp "$shared/models/stories260K/"{stories260K.bin,tok512.bin,golden.json} "$m/stories260K/"
for d in tiny-llama2 tiny-llama31 tiny-llama31-fp8; do
  cp "$shared/models/$d/"{config.json,generation_config.json,model.safetensors,golden.json} "$m/$d/"
done
cp "$shared/models/tiny-llama31-fp8/"golden-*.f32 "$m/tiny-llama31-fp8/"  # CudaFp8Model compares all logits

# load-time dependencies: only what every glibc system has, plus libzstd
bad=$(for f in gpu-carry/bin/* gpu-carry/lib/libpaca.so.*.*.*; do ldd "$f"; done |
  awk '/=>/ {print $1}' | sort -u |
  grep -Ev '^(linux-vdso|libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|libzstd|libpaca)\.so' || true)
if [ -n "$bad" ]; then
  echo "gpu-carry: unexpected load-time dependencies (the device image may lack them):" >&2
  echo "$bad" >&2
  exit 1
fi
echo "unpacked: $(du -sh gpu-carry | cut -f1)"
# one gzip archive: the stripped binaries (each holds the sm_90a kernels)
# come to about 60 MiB unpacked, close to the carry's 64 MiB with the tree;
# scripts/gpu_env.sh unpacks it on the device
tar -C gpu-carry -czf gpu-carry.tgz .
rm -rf gpu-carry
mkdir gpu-carry
mv gpu-carry.tgz gpu-carry/pack.tgz
du -sh gpu-carry
echo "gpu-carry ready: run scripts/gpu_check.sh on the device with carry [\"gpu-carry\"]"
