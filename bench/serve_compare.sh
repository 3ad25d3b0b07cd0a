#!/usr/bin/env bash
# serve_compare.sh - `paca serve` against a natively built llama-server, side by
# side in one run, with bench/serve_load.py as the client.
#
#   bench/serve_compare.sh PACA LLAMA_SERVER MODEL.gguf [THREADS]
#
# For each workload both servers are started afresh with as many parallel
# sequences as the workload has clients, 512 tokens each (paca: --parallel P
# --ctx 512; llama-server: -np P -c 512P, continuous batching), the same thread
# count (default: nproc), and one unmeasured warm-up request; then the workload
# runs against paca, llama-server, paca, llama-server:
#   clients 1, 4, 16, 64: 96-word prompts (~100 tokens), 64 output tokens each;
#                         8, 8, 32 and 64 requests
#   shared prefix:        16 clients, 64 requests, a 256-word preamble
#                         (~290 tokens) common to all + 24 words, 32 tokens out
# Every round sends prompts of its own (a seed per workload and round), so a
# round does not find the previous round's prompts in a cache; only the
# shared-prefix workload shares text, within a round.
# Prints one JSON line per run, with "server", "workload" and "round" added.
set -euo pipefail
paca=$1 llama=$2 model=$3 threads=${4:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
pp=18180 lp=18181
name=$(basename "$model" .gguf)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

start() {  # parallel
  "$paca" serve -m "$model" --port $pp --threads "$threads" --parallel "$1" --ctx 512 --queue 256 \
    >/tmp/serve_compare.paca.log 2>&1 &
  pids=($!)
  "$llama" -m "$model" --port $lp -t "$threads" -np "$1" -c $((512 * $1)) --no-webui >/tmp/serve_compare.llama.log 2>&1 &
  pids+=($!)
  for port in $pp $lp; do
    for _ in $(seq 240); do
      curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
      sleep 0.5
    done
    python3 "$here/serve_load.py" --url "http://127.0.0.1:$port" --model "$name" --clients 1 --requests 1 \
      --max-tokens 8 >/dev/null
  done
}
stop() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}
run() {  # workload round port args...
  local w=$1 r=$2 port=$3; shift 3
  local s=paca; [ "$port" = $lp ] && s=llama-server
  python3 "$here/serve_load.py" --url "http://127.0.0.1:$port" --model "$name" "$@" |
    python3 -c "import json,sys; d=json.load(sys.stdin); d.update(server='$s', workload='$w', round=$r); print(json.dumps(d))"
}
for c in 1 4 16 64; do
  case $c in 1|4) n=8 ;; 16) n=32 ;; *) n=64 ;; esac
  start $c
  for round in 1 2; do
    for port in $pp $lp; do
      run "clients-$c" $round $port --clients $c --requests $n --prompt-words 96 --max-tokens 64 --seed $((100 * c + round))
    done
  done
  stop
done
start 16
for round in 1 2; do
  for port in $pp $lp; do
    run shared-prefix $round $port --clients 16 --requests 64 --prompt-words 24 --shared-prefix-words 256 \
      --max-tokens 32 --seed $round
  done
done
stop
