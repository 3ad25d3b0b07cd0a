#!/usr/bin/env bash
# parallel_procs.sh - sharded models across processes and from the command line
# (CTest: parallel_processes). On tiny-llama3 (GQA 4:2) from ../shared:
#  1. rank_worker processes over the TCP rendezvous (TP 2, PP 2, TP 2 x PP 2)
#     generate the greedy tokens of the unsharded model, on every rank;
#  2. a rank killed mid-run (SIGKILL) makes the other exit with PACA_ERR_IO
#     naming it, at once; a rank that stops answering (SIGSTOP) makes the other
#     exit with PACA_ERR_IO within the configured timeout;
#  3. `paca run --tensor-parallel 2 --pipeline-parallel 2` (threads) and two
#     `paca run --world-size 2 --rendezvous` processes print the unsharded tokens;
#  4. with mpirun (skipped with a message without it): `mpirun -np 2 paca run
#     --tensor-parallel 2 --world-size 2` and rank_worker with PP 2 give the same
#     tokens, and a rank that stops answering under mpirun makes the other fail
#     within the timeout.
# Usage: parallel_procs.sh PACA RANK_WORKER SHARED_DIR WORK_DIR [MPIRUN]
set -uo pipefail
paca=$1 worker=$2 shared=$3 work=$4 mpirun=${5:-}
model=$shared/models/tiny-llama3
if [ ! -d "$model" ]; then echo "SKIP: $model not found (../shared test models absent)"; exit 77; fi
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
prompt=128000,12805,5304,264,892
n=12

fail() { echo "FAIL: $*"; for f in *.out; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done; exit 1; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
tokens_of() { sed -n 's/^tokens: //p' "$1"; }
json_tokens() { /usr/bin/python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["tokens"])))' "$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

"$worker" "$model" 1 1 -1 1 - 10000 $n "$prompt" > ref.out 2>&1 || fail "unsharded reference"
want=$(tokens_of ref.out)
[ "$(tr ',' '\n' <<<"$want" | wc -l)" -eq $n ] || fail "reference has no $n tokens"
echo "unsharded: $want"

# 1. processes over the TCP rendezvous
for layout in "2 1" "1 2" "2 2"; do
  read -r tp pp <<<"$layout"
  w=$((tp * pp)) port=$(free_port) pids=()
  for r in $(seq 0 $((w - 1))); do
    "$worker" "$model" "$tp" "$pp" "$r" "$w" "127.0.0.1:$port" 20000 $n "$prompt" > "tcp$tp$pp.$r.out" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || fail "TCP tp $tp pp $pp: a rank failed"; done
  for r in $(seq 0 $((w - 1))); do
    [ "$(tokens_of "tcp$tp$pp.$r.out")" = "$want" ] || fail "TCP tp $tp pp $pp rank $r: other tokens"
  done
  echo "ok: TCP tp $tp x pp $pp, $w processes"
done

# 2. faults over TCP: a killed rank, a stopped rank
timeout_ms=3000
port=$(free_port) t0=$(now_ms)
"$worker" "$model" 2 1 0 2 "127.0.0.1:$port" $timeout_ms $n "$prompt" > kill.0.out 2>&1 & p0=$!
"$worker" "$model" 2 1 1 2 "127.0.0.1:$port" $timeout_ms $n "$prompt" kill 3 > kill.1.out 2>&1 & p1=$!
wait $p0; rc=$?; dt=$(( $(now_ms) - t0 ))
wait $p1 2>/dev/null
[ $rc -eq 1 ] || fail "killed peer: rank 0 exited $rc"
grep -q "PACA_ERR_IO: .*rank 1 closed its connection" kill.0.out || fail "killed peer: no clear error"
[ $dt -lt $((timeout_ms + 20000)) ] || fail "killed peer: rank 0 took $dt ms"
echo "ok: killed rank -> $(cat kill.0.out) ($dt ms)"

port=$(free_port)
"$worker" "$model" 2 1 0 2 "127.0.0.1:$port" $timeout_ms $n "$prompt" > stop.0.out 2>&1 & p0=$!
"$worker" "$model" 2 1 1 2 "127.0.0.1:$port" $timeout_ms $n "$prompt" stop 3 > stop.1.out 2>&1 & p1=$!
t0=$(now_ms)
wait $p0; rc=$?; dt=$(( $(now_ms) - t0 ))
kill -9 $p1 2>/dev/null; wait $p1 2>/dev/null
[ $rc -eq 1 ] || fail "stopped peer: rank 0 exited $rc"
grep -q "PACA_ERR_IO: .*within $timeout_ms ms" stop.0.out || fail "stopped peer: no timeout error"
[ $dt -lt $((timeout_ms + 20000)) ] || fail "stopped peer: rank 0 took $dt ms"
echo "ok: stopped rank -> $(cat stop.0.out) ($dt ms)"

# 3. the paca command
"$paca" run -m "$model" --prompt-tokens "$prompt" -n $n --ignore-eos --json > cli_ref.out 2>/dev/null || fail "paca run"
cli_want=$(json_tokens cli_ref.out)
[ "$cli_want" = "$want" ] || fail "paca run and rank_worker disagree"
"$paca" run -m "$model" --prompt-tokens "$prompt" -n $n --ignore-eos --json --threads 2 \
  --tensor-parallel 2 --pipeline-parallel 2 > cli_tp2pp2.out 2>/dev/null || fail "paca run --tensor-parallel 2 --pipeline-parallel 2"
[ "$(json_tokens cli_tp2pp2.out)" = "$want" ] || fail "paca run tp 2 x pp 2: other tokens"
echo "ok: paca run --tensor-parallel 2 --pipeline-parallel 2"
port=$(free_port)
for r in 1 0; do
  "$paca" run -m "$model" --prompt-tokens "$prompt" -n $n --ignore-eos --json --threads 1 --tensor-parallel 2 \
    --world-size 2 --rank $r --rendezvous "127.0.0.1:$port" --comm-timeout 20000 > "cli_tcp.$r.out" 2>/dev/null &
  eval "c$r=\$!"
done
wait "$c0" || fail "paca run rank 0 over TCP"
wait "$c1" || fail "paca run rank 1 over TCP"
[ "$(json_tokens cli_tcp.0.out)" = "$want" ] || fail "paca run over TCP: other tokens"
[ ! -s cli_tcp.1.out ] || fail "paca run: rank 1 printed output"
echo "ok: paca run --world-size 2 --rendezvous"
if "$paca" run -m "$model" --prompt-tokens 1 --tensor-parallel 3 > bad.out 2>&1; then fail "tp 3 accepted"; fi
grep -q "does not divide 4 attention heads" bad.out || fail "tp 3: unclear error"

# 4. MPI
if [ -z "$mpirun" ] || ! command -v "$mpirun" >/dev/null; then
  echo "SKIP (MPI part): mpirun not found"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
mpi=("$mpirun" -np 2 --oversubscribe --bind-to none --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo)
# In the sanitizer build, processes under mpirun run without the leak check:
# OpenMPI's plug-ins allocate at MPI_Init and are unloaded before exit, so
# their frames show as "<unknown module>" that no suppression can match. The
# address and UB checks stay on, and libpaca's own leaks on these paths are
# checked by the TCP runs above (the same code, without MPI).
if [ -n "${ASAN_OPTIONS:-}" ]; then export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"; fi
for v in LSAN_OPTIONS ASAN_OPTIONS UBSAN_OPTIONS; do [ -n "${!v:-}" ] && mpi+=(-x "$v"); done
timeout 120 "${mpi[@]}" "$paca" run -m "$model" --prompt-tokens "$prompt" -n $n --ignore-eos --json --threads 1 \
  --tensor-parallel 2 --world-size 2 --comm-timeout 20000 > mpi_run.out 2> mpi_run.err || { cat mpi_run.err; fail "mpirun paca run"; }
[ "$(json_tokens mpi_run.out)" = "$want" ] || fail "mpirun paca run: other tokens"
echo "ok: mpirun -np 2 paca run --tensor-parallel 2 --world-size 2"
timeout 120 "${mpi[@]}" "$worker" "$model" 1 2 -1 2 - 20000 $n "$prompt" > mpi_pp.out 2>&1 || fail "mpirun rank_worker pp 2"
[ "$(tokens_of mpi_pp.out | sort -u)" = "$want" ] || fail "mpirun rank_worker pp 2: other tokens"
[ "$(tokens_of mpi_pp.out | wc -l)" -eq 2 ] || fail "mpirun rank_worker pp 2: not both ranks"
echo "ok: mpirun -np 2 rank_worker --pipeline-parallel 2"
t0=$(now_ms)
timeout 120 "${mpi[@]}" --enable-recovery "$worker" "$model" 2 1 -1 2 - $timeout_ms $n "$prompt" stop 3 > mpi_stop.out 2>&1 &
mp=$!
# rank 1 stops itself; rank 0 must report the lost peer within the timeout; then rank 1 is killed by its pid
for _ in $(seq 1 600); do grep -q "^error:" mpi_stop.out && break; sleep 0.1; done
dt=$(( $(now_ms) - t0 ))
stopped=$(sed -n 's/.*rank_worker: rank 1 (pid \([0-9]*\)) raises.*/\1/p' mpi_stop.out | head -1)
[ -n "$stopped" ] && kill -9 "$stopped" 2>/dev/null
wait $mp 2>/dev/null
grep -q "error: decode: PACA_ERR_IO: .*within $timeout_ms ms" mpi_stop.out || fail "mpirun, stopped rank: no timeout error"
[ $dt -lt $((timeout_ms + 30000)) ] || fail "mpirun, stopped rank: rank 0 took $dt ms"
echo "ok: mpirun, stopped rank -> $(grep '^error:' mpi_stop.out) ($dt ms)"
echo "all parallel process checks passed"
