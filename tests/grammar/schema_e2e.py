#!/usr/bin/env python3
"""schema_e2e.py - end-to-end constrained generation: `paca run --json-schema`
on the tiny random-weight Llama 2 (SentencePiece, 32,000) and Llama 3
(byte-level BPE, 128,256) models of ../shared/models, for every schema in
tests/grammar/schemas and several seeds, sampled at temperature 1. Every
output must end with the model's end token (the grammar complete), parse as
JSON and validate against its schema (python3-jsonschema, Draft 2020-12).
One run under --grammar FILE (GBNF) checks the output against the grammar's
language by a regular expression written here.

usage: schema_e2e.py PACA_CLI SCHEMA_DIR SHARED_DIR
Exit code 77 (skipped) without python3-jsonschema or ../shared/models.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

SKIP = 77


def main():
    paca, schema_dir, shared = sys.argv[1:4]
    try:
        import jsonschema  # Debian: python3-jsonschema
    except ImportError:
        print("SKIP: python3-jsonschema is not installed (apt-get install python3-jsonschema)")
        return SKIP
    models = [os.path.join(shared, "models", m) for m in ("tiny-llama2", "tiny-llama3")]
    if not all(os.path.isdir(m) for m in models):
        print("SKIP: the tiny test models of ../shared/models are absent")
        return SKIP
    schemas = sorted(f for f in os.listdir(schema_dir) if f.endswith(".json"))
    assert len(schemas) >= 8, schemas
    failures = 0
    runs = 0
    for model in models:
        for name in schemas:
            path = os.path.join(schema_dir, name)
            with open(path, encoding="utf-8") as f:
                schema = json.load(f)
            validator = jsonschema.Draft202012Validator(schema)
            for seed in (1, 2, 3):
                runs += 1
                cmd = [paca, "run", "-m", model, "-p", "JSON:", "-n", "600", "--temperature", "1",
                       "--seed", str(seed), "--json-schema", path, "--json"]
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                where = f"{os.path.basename(model)} {name} seed {seed}"
                if r.returncode != 0:
                    print(f"FAIL {where}: exit {r.returncode}: {r.stderr.strip()}")
                    failures += 1
                    continue
                out = json.loads(r.stdout)
                text = out["text"]
                if out["stop_reason"] != "eos":
                    print(f"FAIL {where}: stop_reason {out['stop_reason']} after {len(out['tokens'])} tokens: {text!r}")
                    failures += 1
                    continue
                try:
                    value = json.loads(text)
                except ValueError as e:
                    print(f"FAIL {where}: not JSON ({e}): {text!r}")
                    failures += 1
                    continue
                errors = list(validator.iter_errors(value))
                if errors:
                    print(f"FAIL {where}: {errors[0].message}: {text!r}")
                    failures += 1
                    continue
                print(f"ok   {where}: {len(out['tokens'])} tokens: {text[:100]!r}")
    # GBNF: a list of small sums, checked by an independent regular expression
    gbnf = 'root ::= "[" sum ("," " "? sum){0,3} "]"\nsum ::= num (" "? [+-] " "? num){0,2}\nnum ::= [1-9] [0-9]{0,2}\n'
    language = re.compile(r"\[N( ?[+-] ?N){0,2}(, ?N( ?[+-] ?N){0,2}){0,3}\]".replace("N", "[1-9][0-9]{0,2}"))
    with tempfile.NamedTemporaryFile("w", suffix=".gbnf", delete=False) as f:
        f.write(gbnf)
        gpath = f.name
    try:
        for model in models:
            for seed in (1, 2):
                runs += 1
                cmd = [paca, "run", "-m", model, "-p", "Sums:", "-n", "200", "--temperature", "1",
                       "--seed", str(seed), "--grammar", gpath, "--json"]
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                where = f"{os.path.basename(model)} gbnf seed {seed}"
                out = json.loads(r.stdout) if r.returncode == 0 else None
                if out is None or out["stop_reason"] != "eos" or not language.fullmatch(out["text"]):
                    print(f"FAIL {where}: {r.returncode} {r.stderr.strip()} {out}")
                    failures += 1
                else:
                    print(f"ok   {where}: {out['text']!r}")
    finally:
        os.unlink(gpath)
    print(f"{runs - failures} of {runs} runs valid")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
