#!/usr/bin/env python3
"""agree.py - do paca and llama.cpp read the same quantized GGUF the same way?

  bench/peer/agree.py --llama-cpp LLAMA_BUILD --model F16.gguf [--build build] [--type q4_k_m]
                      [--work DIR] [--prompts 4] [--length 48]

Quantizes the F16 model twice, with `paca quantize` and with llama.cpp's
llama-quantize (the same mix), and runs both engines on both files and on
the F16 original: the last position's logits of a few seeded token lists
(`paca eval --logits-out` and build_llamacpp.sh's llamacpp-logits). For each
pair it prints the largest |difference| over the spread of the logits
(max|a - b| / std(a)), the RMS difference over the spread and whether the
argmax agrees. The two engines on one file should differ by much less than
the quantization itself (each file against the F16 logits) does.
"""
import argparse
import os
import random
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LLAMA_TYPES = {"q4_0": "Q4_0", "q4_1": "Q4_1", "q5_0": "Q5_0", "q5_1": "Q5_1", "q8_0": "Q8_0", "q4_k_s": "Q4_K_S",
               "q4_k_m": "Q4_K_M", "q5_k_s": "Q5_K_S", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K"}


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("agree.py: %s failed (%d):\n%s" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", required=True)
    ap.add_argument("--model", required=True, help="an F16 GGUF (e.g. from bench/make_gguf.py)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--type", default="q4_k_m", choices=sorted(LLAMA_TYPES))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "peer"))
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--length", type=int, default=48)
    a = ap.parse_args()
    cli = os.path.join(a.build, "examples", "cli", "paca")
    quant = os.path.join(a.llama_cpp, "bin", "llama-quantize")
    dumper = os.path.join(a.llama_cpp, "bin", "llamacpp-logits")
    os.makedirs(a.work, exist_ok=True)
    stem = os.path.splitext(os.path.basename(a.model))[0]
    files = {"f16": a.model,
             "paca-" + a.type: os.path.join(a.work, "%s.paca-%s.gguf" % (stem, a.type)),
             "llama-" + a.type: os.path.join(a.work, "%s.llama-%s.gguf" % (stem, a.type))}
    if not os.path.exists(files["paca-" + a.type]):
        run([cli, "quantize", a.model, files["paca-" + a.type], "--type", a.type])
    if not os.path.exists(files["llama-" + a.type]):
        run([quant, a.model, files["llama-" + a.type], LLAMA_TYPES[a.type]])
    n_vocab = None
    rng = random.Random(1)
    prompts = []
    for _ in range(a.prompts):
        prompts.append([1] + [rng.randrange(3, 30000) for _ in range(a.length - 1)])
    out = os.path.join(a.work, "agree.f32")
    logits = {}  # (engine, file) -> [array per prompt]
    for fname, path in files.items():
        for engine in ("paca", "llama.cpp"):
            rows = []
            for p in prompts:
                toks = ",".join(map(str, p))
                if engine == "paca":
                    run([cli, "eval", "-m", path, "--prompt-tokens", toks, "--logits-out", out, "--top", "1"])
                else:
                    run([dumper, path, toks, out])
                rows.append(np.fromfile(out, dtype=np.float32).astype(np.float64))
            logits[(engine, fname)] = rows
            n_vocab = len(rows[0])

    def compare(x, y):
        worst = max(float(np.max(np.abs(a_ - b_)) / np.std(a_)) for a_, b_ in zip(x, y))
        rms = max(float(np.sqrt(np.mean((a_ - b_) ** 2)) / np.std(a_)) for a_, b_ in zip(x, y))
        argmax = sum(int(np.argmax(a_) == np.argmax(b_)) for a_, b_ in zip(x, y))
        return worst, rms, argmax

    print("%s (%d-token vocabulary), %d prompts of %d tokens; per pair the worst prompt" %
          (a.model, n_vocab, a.prompts, a.length))
    print("%-44s %12s %12s %8s" % ("pair", "max|d|/std", "rms(d)/std", "argmax"))
    pairs = [(("paca", f), ("llama.cpp", f)) for f in files]
    for f in list(files)[1:]:
        for e in ("paca", "llama.cpp"):
            pairs.append(((e, "f16"), (e, f)))
    for x, y in pairs:
        worst, rms, am = compare(logits[x], logits[y])
        print("%-44s %12.5f %12.5f %5d/%d" % ("%s %s vs %s %s" % (x + y), worst, rms, am, a.prompts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
