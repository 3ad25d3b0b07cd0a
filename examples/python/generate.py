"""Stream a story from stories260K, then print the same request as a Completion.

    python3 examples/python/generate.py ../shared/models
"""
import os
import sys

import paca

models = sys.argv[1] if len(sys.argv) > 1 else "../shared/models"
path = os.path.join(models, "stories260K", "stories260K.bin")
if not os.path.exists(path):
    print(f"skipped: {path} not found")
    sys.exit(77)

with paca.Model(path) as model:
    for piece in model.generate("Once upon a time", max_tokens=64, temperature=0.8, seed=42, stop=["\n"]):
        print(piece, end="", flush=True)
    print()
    done = model.complete("Once upon a time", max_tokens=16, logprobs=2)
    print(f"{len(done.tokens)} tokens, stop reason {done.stop_reason}: {done.text!r}")
    print("first token:", done.logprobs[0])
