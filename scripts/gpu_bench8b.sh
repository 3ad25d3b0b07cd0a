#!/usr/bin/env bash
# Issue 6's headline figures on a GPU machine, in one command (about 3-5
# minutes on an H100): paca-bench --device cuda on the llama3-8b shape (random
# BF16 weights built in memory) for prefill of a 2,048-token prompt and batch-1
# decode after 512 and 8,192 tokens of context, with CUDA graphs and without,
# then the PyTorch peer (bench/peer/torch_bench.py: transformers'
# LlamaForCausalLM, random BF16 weights, static cache, eager and
# torch.compile) on the same shape, same GPU, same run. Run it after
# scripts/gpu_check.sh passed, with the same carry:
#
#   run(command="scripts/gpu_bench8b.sh", carry=["gpu-carry"], timeout_s=420)
#
# Writes under $OUT (default ./gpu-out): bench8b.jsonl (one JSON object per
# measurement, paca's and PyTorch's), bench8b.log (the tables and stderr) and
# summary8b.txt. Each step has its own time limit; every step runs regardless.
# The FP8 steps (issue 7) come before PyTorch's; with a second argument "fp8"
# only they run:
#
#   run(command="scripts/gpu_bench8b.sh gpu-carry fp8", carry=["gpu-carry"], timeout_s=420)
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/gpu_env.sh "${1:-gpu-carry}"
only_fp8=0
[ "${2:-}" = fp8 ] && only_fp8=1  # scripts/gpu_bench8b.sh gpu-carry fp8: the FP8 steps alone
jsonl=$out/bench8b.jsonl log=$out/bench8b.log summary=$out/summary8b.txt
: >"$jsonl"
: >"$log"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
} >"$summary"
failed=0
# run NAME SECONDS COMMAND...: the JSON lines of COMMAND go to bench8b.jsonl
run() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  echo "### $name" >>"$log"
  echo "### $name" >>"$jsonl"
  timeout "$limit" "$@" >>"$jsonl" 2>>"$log"
  local rc=$?
  [ $rc -ne 0 ] && failed=1
  printf '%-18s rc=%-3d %4ds\n' "$name" "$rc" $((SECONDS - t0)) | tee -a "$summary"
}

args=(--device cuda --shape llama3-8b --prompt 2048 --depths 512,8192 --tokens 64 --repeats 3 --json)
if [ "$only_fp8" != 1 ]; then
  run paca_graphs 180 "$bin/paca-bench" "${args[@]}"
  run paca_nographs 150 env PACA_CUDA_GRAPHS=0 "$bin/paca-bench" "${args[@]}"
fi
# FP8 weights (issue 7), every linear weight quantized at load: w8a8 (per-token
# activations) with prefill 2,048 and decode; then decode with the weight-only
# GEMV (the decode A/B of Fp8Policy, PACA_CUDA_FP8_DECODE=w8a16)
fp8=(--device cuda --shape llama3-8b --weight-dtype fp8 --fp8-targets all --fp8-mode w8a8 --depths 512 --tokens 64
  --repeats 3 --json)
run paca_fp8_w8a8 200 "$bin/paca-bench" "${fp8[@]}" --prompt 2048
run paca_fp8_w8a16 150 env PACA_CUDA_FP8_DECODE=w8a16 "$bin/paca-bench" "${fp8[@]}" --prompt 512
[ "$only_fp8" = 1 ] || run torch 240 python3 bench/peer/torch_bench.py --shape llama3-8b --prompt 2048 --depths 512,8192 --tokens 64 \
  --repeats 3 --compile

# one line per figure: paca's decode and prefill fractions of the bounds it measured, PyTorch's rates
python3 - "$jsonl" >>"$summary" 2>&1 <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("### "):
        print(line[4:])
        continue
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r.get("engine") == "pytorch":
        if "prefill_tokens_per_s" in r:
            print(f"pytorch prefill {r['prefill_tokens']}: {r['prefill_tokens_per_s']:.0f} tok/s")
        elif "error" in r:
            print(f"pytorch {r.get('decode')} @{r.get('depth')}: {r['error'][:200]}")
        else:
            print(f"pytorch {r['decode']} decode @{r['depth']}: {r['decode_tokens_per_s']:.1f} tok/s "
                  f"({r['decode_bytes_per_token'] / 1e9:.2f} GB/token)")
        continue
    for p in r.get("prefill", []):
        print(f"paca prefill {p['tokens']}: {p['tokens_per_s']:.0f} tok/s (min {p['min']:.0f}, max {p['max']:.0f})")
    for d in r.get("decode", []):
        print(f"paca decode @{d['depth']}: {d['tokens_per_s']:.1f} tok/s (min {d['min']:.1f}, max {d['max']:.1f}), "
              f"bound {d['bound_tokens_per_s']:.1f} -> {100 * d['fraction_of_bound']:.0f}% "
              f"({d['bytes_per_token'] / 1e9:.2f} GB/token, {r.get('read_bandwidth_GBps', 0):.0f} GB/s copy)")
EOF
cat "$summary"
exit $failed
