#!/usr/bin/env bash
# The CUDA backend's checks on a GPU machine, in one command (about 4-7
# minutes on an H100): the kernel tests, the backend tests (every op against
# the CPU backend, decode steps as CUDA graphs vs op by op, whole models
# through the C API, the C-API load with device "cuda"), the model tests once
# more with graphs off (PACA_CUDA_GRAPHS=0), the sharding tests on CUDA ranks
# (TP/PP with every rank on cuda:0, NcclComm with a world of one, an NCCL peer
# that never comes), compute-sanitizer's memcheck over the op and graph tests
# and racecheck over the kernel tests, cuda-kernels-bench (GEMV, decode
# attention, cuBLASLt against the copy bandwidth) and paca-bench --device cuda
# on the tiny, 110m and llama3.2-1b shapes, the first two also with graphs off
# (the A/B of CUDA graphs).
# Needs gpu-carry/ from scripts/gpu_pack.sh (built here, carried there):
#
#   scripts/gpu_check.sh [gpu-carry]
#
# Writes under $OUT (default ./gpu-out) 8 files, the most the device tool
# returns: summary.txt (one line per step, the device, the bench tables),
# cuda_kernels.log, cuda_backend.log (graphs-off run appended), parallel.log,
# memcheck.log (racecheck appended), kernels_bench.log, bench.jsonl, bench.log
# (graphs-off runs marked "### PACA_CUDA_GRAPHS=0").
# Exits non-zero when any step failed; every step runs regardless.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_env.sh "${1:-gpu-carry}"
summary=$out/summary.txt
: >"$summary"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1
  echo "libnccl.so.2: $(for d in ${LD_LIBRARY_PATH//:/ }; do [ -e "$d/libnccl.so.2" ] && echo "$d"; done | head -1)"
} >>"$summary"
failed=0

# step NAME SECONDS LOG COMMAND...: runs COMMAND with a time limit, output to LOG
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  local t0=$SECONDS
  local seen=0  # lines of log from earlier steps
  [ -f "$log" ] && seen=$(wc -l <"$log")
  timeout "$limit" "$@" >>"$log" 2>&1
  local rc=$?
  [ $rc -ne 0 ] && failed=1
  printf '%-14s rc=%-3d %4ds  %s\n' "$name" "$rc" $((SECONDS - t0)) "$(tail -n +$((seen + 1)) "$log" | grep -E '^\[  (PASSED|FAILED|SKIPPED) *\] [0-9]+ test' | tr '\n' ' ')" |
    tee -a "$summary"
}

step cuda_kernels 120 "$out/cuda_kernels.log" "$bin/paca_cuda_tests"
step cuda_backend 300 "$out/cuda_backend.log" "$bin/paca_cuda_backend_tests"
echo "### PACA_CUDA_GRAPHS=0" >>"$out/cuda_backend.log"
step graphs_off 150 "$out/cuda_backend.log" env PACA_CUDA_GRAPHS=0 "$bin/paca_cuda_backend_tests" \
  --gtest_filter='*CudaModel*:CudaGraphs*:CudaFp8Model*'
# sharding on CUDA ranks: the NCCL loader, TP/PP on cuda:0, NCCL (world of one,
# a missing peer), then NCCL named but absent (every request a clear error)
step parallel 150 "$out/parallel.log" "$bin/paca_cuda_parallel_tests" --gtest_filter='NcclHost*:CudaParallel*'
step nccl_missing 60 "$out/parallel.log" env PACA_NCCL_LIBRARY=/nonexistent/libnccl.so.2 \
  "$bin/paca_cuda_parallel_tests" --gtest_filter='NcclMissing*'
if command -v compute-sanitizer >/dev/null; then
  step memcheck 180 "$out/memcheck.log" compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$bin/paca_cuda_backend_tests" --gtest_filter='CudaOps.*:CudaGraphs.*:CudaSampling.*'
  step racecheck 120 "$out/memcheck.log" compute-sanitizer --tool racecheck --error-exitcode 9 \
    "$bin/paca_cuda_tests"
fi
step kernels_bench 150 "$out/kernels_bench.log" "$bin/cuda-kernels-bench"
for shape in tiny 110m llama3.2-1b; do
  args=(--device cuda --shape "$shape" --prompt 128,512 --tokens 128 --repeats 3)
  [ "$shape" = llama3.2-1b ] && args=(--device cuda --shape "$shape" --prompt 512 --tokens 64 --repeats 2)
  step "bench_$shape" 150 "$out/bench.log" "$bin/paca-bench" "${args[@]}"
  timeout 150 "$bin/paca-bench" "${args[@]}" --json >>"$out/bench.jsonl" 2>>"$out/bench.log" || failed=1
done
# the A/B of CUDA graphs where launches dominate: the same runs op by op
for shape in tiny 110m; do
  echo "### PACA_CUDA_GRAPHS=0" >>"$out/bench.log"
  step "nographs_$shape" 120 "$out/bench.log" env PACA_CUDA_GRAPHS=0 "$bin/paca-bench" --device cuda --shape "$shape" \
    --prompt 128 --tokens 128 --repeats 3
done
{
  echo "--- failures"
  grep -hE '^\[  FAILED  \]|Failure|error' "$out/cuda_kernels.log" "$out/cuda_backend.log" "$out/parallel.log" | head -40
  grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/memcheck.log" 2>/dev/null
  grep -hE '^splits [0-9]+: graphs' "$out/cuda_backend.log"
  echo "--- sharding on CUDA ranks"
  grep -hE '^(this machine|NCCL|.* on cuda:0, prompt)' "$out/parallel.log"
  echo "--- cuda-kernels-bench"
  cat "$out/kernels_bench.log"
  echo "--- paca-bench"
  grep -hE '^(model|machine|prefill|decode) |^### ' "$out/bench.log"
} >>"$summary"
cat "$summary"
exit $failed
