#!/usr/bin/env python3
"""sp_reference.py - the live Llama 2 reference of live_reference_test.cpp:
Debian's python3-sentencepiece on a tokenizer.model.

    sp_reference.py MODEL IN.json OUT.json

IN.json is a list of base64 strings (the raw UTF-8 bytes of each text, possibly
ill-formed); each is decoded with errors="replace" (one U+FFFD per maximal
ill-formed subsequence, paca's rule) and encoded without BOS. OUT.json gets
the list of id lists. Exit 77 when sentencepiece is not installed.
"""
import base64
import json
import sys

try:
    import sentencepiece
except ImportError:
    print("sp_reference: python3-sentencepiece is not installed", file=sys.stderr)
    sys.exit(77)


def main():
    model, src, dst = sys.argv[1:4]
    sp = sentencepiece.SentencePieceProcessor(model_file=model)
    with open(src, encoding="utf-8") as f:
        texts = [base64.b64decode(t).decode("utf-8", "replace") for t in json.load(f)]
    ids = [sp.encode(t) for t in texts]
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(ids, f)


if __name__ == "__main__":
    main()
