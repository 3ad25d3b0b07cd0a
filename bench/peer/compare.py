#!/usr/bin/env python3
"""compare.py - paca next to llama.cpp on the CPU, on the same GGUF, with the
same threads, prompt length and number of generated tokens, in one run.

  bench/peer/compare.py [--build build] [--shape 110m] [--dtype f16] [--threads 1,2]
                        [--prompt 128] [--tokens 64] [--rounds 3] [--work DIR]

Steps: installs node-llama-cpp (pinned in bench/peer/package.json; llama.cpp's
prebuilt linux-x64 CPU binary) into WORK with npm; writes a seeded random GGUF
of the shape with bench/make_gguf.py (tokenizer from ../shared's
tiny-llama2.gguf or, for Llama 3 shapes, tiny-llama31.gguf; or $PACA_SHARED_DIR); then for each round and thread count
runs, one after the other, paca-bench (--mmap and --no-mmap) and
llamacpp_bench.mjs, and prints the median tokens/s of each, the ratio
paca/llama.cpp, and paca's fraction of the bandwidth bound paca-bench
measured in the same run. The whole table is also written as JSON to
WORK/compare.json.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_json(cmd, cwd=None):
    out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--shape", default="110m")
    ap.add_argument("--dtype", default="f16")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "peer"))
    a = ap.parse_args()

    shared = os.environ.get("PACA_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
    # a GGUF whose tokenizer has the shape's vocabulary (Llama 2: 32000, Llama 3: 128256)
    tok_src = os.path.join(shared, "models", "gguf", "tiny-llama31.gguf" if a.shape.startswith("llama3") else "tiny-llama2.gguf")
    if not os.path.exists(tok_src):
        sys.exit("compare.py: %s not found (set PACA_SHARED_DIR)" % tok_src)
    bench = os.path.join(a.build, "bench", "paca-bench")
    if not os.path.exists(bench):
        sys.exit("compare.py: %s not built (PACA_BUILD_BENCH)" % bench)
    os.makedirs(a.work, exist_ok=True)
    for f in ("package.json", "llamacpp_bench.mjs"):
        shutil.copy(os.path.join(HERE, f), os.path.join(a.work, f))
    if not os.path.isdir(os.path.join(a.work, "node_modules", "node-llama-cpp")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=a.work, check=True)
    model = os.path.join(a.work, "%s-%s.gguf" % (a.shape, a.dtype))
    if not os.path.exists(model):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "make_gguf.py"), "--shape", a.shape, "--dtype", a.dtype,
                        "--tokenizer-from", tok_src, "--out", model], check=True)

    results = []
    for threads in [int(t) for t in a.threads.split(",")]:
        runs = {"paca --mmap": [], "paca --no-mmap": [], "llama.cpp": []}
        for r in range(a.rounds):
            common = [bench, "-m", model, "--threads", str(threads), "--prompt", str(a.prompt), "--tokens", str(a.tokens),
                      "--repeats", "1", "--json"]
            runs["paca --mmap"] += run_json(common + ["--mmap"])
            runs["paca --no-mmap"] += run_json(common + ["--no-mmap"])
            runs["llama.cpp"] += run_json(["node", "llamacpp_bench.mjs", model, str(threads), str(a.prompt), str(a.tokens), "1"],
                                          cwd=a.work)
        row = {"threads": threads}
        for name, rs in runs.items():
            row[name] = {"decode_tokens_per_s": statistics.median(x["decode_tokens_per_s"] for x in rs),
                         "decode_all": [round(x["decode_tokens_per_s"], 2) for x in rs],
                         "prefill_tokens_per_s": statistics.median(x["prefill_tokens_per_s"] for x in rs),
                         "prefill_all": [round(x["prefill_tokens_per_s"], 2) for x in rs]}
            if name.startswith("paca"):
                row[name]["fraction_of_bound"] = statistics.median(x["decode_fraction_of_bound"] for x in rs)
                row[name]["bound_tokens_per_s"] = statistics.median(x["decode_bound_tokens_per_s"] for x in rs)
        results.append(row)
        ref = row["llama.cpp"]
        print("threads %d (%s %s, prompt %d, %d tokens, %d rounds; medians, all runs in brackets)" %
              (threads, a.shape, a.dtype, a.prompt, a.tokens, a.rounds))
        for name in runs:
            x = row[name]
            extra = ""
            if "fraction_of_bound" in x:
                extra = "  bound %.1f tok/s -> %.0f%%" % (x["bound_tokens_per_s"], 100 * x["fraction_of_bound"])
            print("  %-15s decode %7.2f tok/s %-30s prefill %8.2f tok/s %s%s" %
                  (name, x["decode_tokens_per_s"], x["decode_all"], x["prefill_tokens_per_s"], x["prefill_all"], extra))
            if name != "llama.cpp":
                print("  %-15s ratio to llama.cpp: decode %.2f, prefill %.2f" %
                      ("", x["decode_tokens_per_s"] / ref["decode_tokens_per_s"],
                       x["prefill_tokens_per_s"] / ref["prefill_tokens_per_s"]))
    with open(os.path.join(a.work, "compare.json"), "w") as f:
        json.dump({"shape": a.shape, "dtype": a.dtype, "prompt": a.prompt, "tokens": a.tokens, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
