"""Drive a Session by hand: prefill a prompt, read the logits as a NumPy array
(a view, no copy), pick tokens yourself, rewind.

    python3 examples/python/logits.py ../shared/models
"""
import os
import sys

import numpy as np

import paca

models = sys.argv[1] if len(sys.argv) > 1 else "../shared/models"
path = os.path.join(models, "stories260K", "stories260K.bin")
if not os.path.exists(path):
    print(f"skipped: {path} not found")
    sys.exit(77)

with paca.Model(path) as model, model.session() as session:
    session.prefill(model.tokenize("Once upon a time"))
    for _ in range(12):
        logits = session.logits                      # float32[n_vocab], read-only view
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = np.argsort(-probs)[:3]
        print(" | ".join(f"{model.detokenize([t])!r} {probs[t]:.2f}" for t in top))
        session.step(int(top[0]))                    # greedy
    print(model.detokenize(session.tokens))
    session.rewind(6)
    print("after rewind:", model.detokenize(session.tokens))
