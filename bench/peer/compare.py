#!/usr/bin/env python3
"""compare.py - paca next to a natively built llama.cpp on the CPU: the same GGUF
files, threads, prompt lengths and number of generated tokens, alternating in one run.

  bench/peer/build_llamacpp.sh SRC_DIR LLAMA_BUILD        # once: a native llama.cpp
  bench/peer/compare.py --llama-cpp LLAMA_BUILD [--build build]
        [--shapes 110m,llama3.2-1b] [--dtypes bf16,f16,q8_0,q4_k_m] [--threads 1,2]
        [--prompts 128,512] [--tokens 64] [--rounds 3] [--work DIR]

The peer is llama.cpp's own llama-bench from LLAMA_BUILD/bin, built for this CPU
(-DGGML_NATIVE=ON) from a source snapshot the developer supplies; a prebuilt
binary from a package registry is built for no CPU in particular and is not an
honest anchor, so there is no such fallback.

For each shape, writes a seeded random GGUF with bench/make_gguf.py (bf16 or f16
directly; q8_0 and the k-quant mixes such as q4_k_m by `paca quantize` from the
f16 file, so both engines read paca's own quantization); the tokenizer metadata
comes from ../shared's tiny-llama2.gguf (Llama 2 shapes) or tiny-llama31.gguf
(Llama 3 shapes), or $PACA_SHARED_DIR. Then, for every cell (shape, dtype,
threads), ROUNDS times in turn: paca-bench, then llama-bench, each timing every
prompt length and TOKENS decoded tokens. It prints per cell the median tokens/s
of each engine, every run in brackets, the ratio paca/llama.cpp and paca's
fraction of the bounds paca-bench measured in the same run; the whole grid goes
to WORK/compare.json.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MADE = {"bf16", "f16", "f32"}  # dtypes make_gguf.py writes directly


def run_json(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("compare.py: %s failed (%d):\n%s" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def ints(s):
    return [int(x) for x in s.split(",") if x]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", required=True, help="a llama.cpp build folder from build_llamacpp.sh")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--shapes", default="110m,llama3.2-1b")
    ap.add_argument("--dtypes", default="bf16,f16,q8_0,q4_k_m")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompts", default="128,512")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "peer"))
    a = ap.parse_args()

    shared = os.environ.get("PACA_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
    bench = os.path.join(a.build, "bench", "paca-bench")
    cli = os.path.join(a.build, "examples", "cli", "paca")
    peer = os.path.join(a.llama_cpp, "bin", "llama-bench")
    for path, what in ((bench, "paca-bench (PACA_BUILD_BENCH)"), (cli, "the paca CLI"), (peer, "llama-bench")):
        if not os.path.exists(path):
            sys.exit("compare.py: %s not found: %s" % (what, path))
    prompts, threads_list = ints(a.prompts), ints(a.threads)
    os.makedirs(a.work, exist_ok=True)

    def model_file(shape, dtype):
        path = os.path.join(a.work, "%s-%s.gguf" % (shape, dtype))
        if os.path.exists(path):
            return path
        if dtype in MADE:
            tok = os.path.join(shared, "models", "gguf", "tiny-llama31.gguf" if shape.startswith("llama3") else "tiny-llama2.gguf")
            if not os.path.exists(tok):
                sys.exit("compare.py: %s not found (set PACA_SHARED_DIR)" % tok)
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "make_gguf.py"), "--shape", shape, "--dtype", dtype,
                            "--tokenizer-from", tok, "--out", path + ".part"], check=True)
        else:
            subprocess.run([cli, "quantize", model_file(shape, "f16"), path + ".part", "--type", dtype], check=True)
        os.replace(path + ".part", path)
        return path

    def paca(model, threads):
        (r,) = run_json([bench, "-m", model, "--threads", str(threads), "--prompt", a.prompts, "--tokens", str(a.tokens),
                         "--repeats", "1", "--json"])
        return {"decode": r["decode_tokens_per_s"], "decode_fraction_of_bound": r["decode_fraction_of_bound"],
                "prefill": {p["tokens"]: p["tokens_per_s"] for p in r["prefill"]},
                "prefill_fraction_of_bound": {p["tokens"]: p["fraction_of_bound"] for p in r["prefill"]}}

    def llama(model, threads):
        recs = run_json([peer, "-m", model, "-t", str(threads), "-p", a.prompts, "-n", str(a.tokens), "-r", "1", "-o", "jsonl"])
        tg = [x["avg_ts"] for x in recs if x.get("n_gen", 0) > 0 and x.get("n_prompt", 0) == 0]
        pp = {x["n_prompt"]: x["avg_ts"] for x in recs if x.get("n_prompt", 0) > 0 and x.get("n_gen", 0) == 0}
        if len(tg) != 1 or sorted(pp) != sorted(prompts):
            sys.exit("compare.py: unexpected llama-bench output: %s" % recs)
        return {"decode": tg[0], "prefill": pp}

    src_file = os.path.join(a.llama_cpp, "peer-source.txt")  # written by build_llamacpp.sh
    commit = open(src_file).read().strip() if os.path.exists(src_file) else "unknown"
    grid = []
    print("paca vs llama.cpp (%s), prompts %s, %d decoded tokens, %d rounds; medians [all runs]" %
          (peer, a.prompts, a.tokens, a.rounds))
    for shape in a.shapes.split(","):
        for dtype in a.dtypes.split(","):
            model = model_file(shape, dtype)
            for threads in threads_list:
                runs = {"paca": [], "llama.cpp": []}
                for _ in range(a.rounds):
                    runs["paca"].append(paca(model, threads))
                    runs["llama.cpp"].append(llama(model, threads))
                cell = {"shape": shape, "dtype": dtype, "threads": threads}
                for name, rs in runs.items():
                    cell[name] = {"decode": statistics.median(r["decode"] for r in rs),
                                  "decode_all": [round(r["decode"], 1) for r in rs],
                                  "prefill": {p: statistics.median(r["prefill"][p] for r in rs) for p in prompts},
                                  "prefill_all": {p: [round(r["prefill"][p], 1) for r in rs] for p in prompts}}
                cell["paca"]["decode_fraction_of_bound"] = statistics.median(r["decode_fraction_of_bound"] for r in runs["paca"])
                cell["paca"]["prefill_fraction_of_bound"] = {
                    p: statistics.median(r["prefill_fraction_of_bound"][p] for r in runs["paca"]) for p in prompts}
                me, ref = cell["paca"], cell["llama.cpp"]
                cell["ratio"] = {"decode": me["decode"] / ref["decode"],
                                 "prefill": {p: me["prefill"][p] / ref["prefill"][p] for p in prompts}}
                grid.append(cell)
                line = "%-12s %-7s %dt  decode %6.1f %s vs %6.1f %s = %.2fx (%.0f%% of bound)" % (
                    shape, dtype, threads, me["decode"], me["decode_all"], ref["decode"], ref["decode_all"],
                    cell["ratio"]["decode"], 100 * me["decode_fraction_of_bound"])
                for p in prompts:
                    line += " | pp%d %6.1f vs %6.1f = %.2fx" % (p, me["prefill"][p], ref["prefill"][p], cell["ratio"]["prefill"][p])
                print(line, flush=True)
    with open(os.path.join(a.work, "compare.json"), "w") as f:
        json.dump({"peer": peer, "peer_commit": commit, "prompts": prompts, "tokens": a.tokens, "rounds": a.rounds,
                   "grid": grid}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
