#!/usr/bin/env python3
"""render_reference.py - the independent reference for paca's chat templates.

Renders Jinja chat templates with Python's jinja2 (Debian's python3-jinja2) in
the environment that Hugging Face transformers' apply_chat_template builds:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
loopcontrols extension, a {% generation %} tag, the globals raise_exception
and strftime_now, and tojson = json.dumps(x, ensure_ascii=False, indent=...,
separators=..., sort_keys=...). Standard library + jinja2 only. paca's tests
compare their own rendering with what this script prints; nothing here is
derived from paca's output.

Modes
  chat     --conversations FILE [--shared DIR] [--template NAME=PATH ...]
           [--tokens NAME=JSON ...] [--now EPOCH] --out FILE
      Renders every conversation of FILE (tests/chat/conversations.json) with
      every chat template found under DIR (templates/*.jinja,
      models/*/tokenizer_config.json, tokenizers/*/tokenizer_config.json and
      the tokenizer.chat_template of models/**/*.gguf) and with each extra
      --template (a Jinja file; its special tokens from --tokens NAME=JSON).
      --now fixes strftime_now's clock (seconds since the epoch, read as UTC).
      Writes {"jinja2": version, "results": {template: {conversation:
      {"text": ...} | {"error": ...}}}}.
  snippets --cases FILE [--now EPOCH] (--out FILE | --check | --update)
      Renders each {"name", "template", "context"} of FILE
      (tests/chat/jinja_cases.json). --out writes the results, --update
      stores them as each case's "expect", --check exits 1 when a stored
      "expect" differs from jinja2.

Exit status 77 when jinja2 cannot be imported (tests treat it as a skip).
"""
import argparse
import datetime
import glob
import json
import os
import struct
import sys

try:
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    print("render_reference.py: python3-jinja2 is not installed", file=sys.stderr)
    sys.exit(77)


class GenerationTag(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %} renders its body (as transformers' AssistantTracker)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        # A fixed --now is read as UTC (the C++ tests render with TZ=UTC).
        if now is not None:
            return datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc).strftime(fmt)
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols, GenerationTag]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


_compiled = {}


def render(env, source, context):
    try:
        if source not in _compiled:
            _compiled[source] = env.from_string(source)
        return {"text": _compiled[source].render(**context)}
    except Exception as e:  # any jinja2 or Python error is an expected "error" outcome
        return {"error": "%s: %s" % (type(e).__name__, e)}


def token_text(tok):
    if isinstance(tok, dict):
        return tok.get("content")
    return tok


# ---- GGUF metadata (only what is needed: strings, string arrays, integers) ----

GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_gguf_metadata(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"GGUF":
        return None
    pos = 8
    n_tensors, n_kv = struct.unpack_from("<QQ", data, pos)
    pos += 16

    def read_str(p):
        (n,) = struct.unpack_from("<Q", data, p)
        return data[p + 8 : p + 8 + n].decode("utf-8", "replace"), p + 8 + n

    def read_value(t, p):
        if t == 8:
            return read_str(p)
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, p)
            p += 12
            out = []
            for _ in range(n):
                v, p = read_value(et, p)
                out.append(v)
            return out, p
        fmt = GGUF_SCALARS[t]
        return struct.unpack_from(fmt, data, p)[0], p + struct.calcsize(fmt)

    kv = {}
    for _ in range(n_kv):
        key, pos = read_str(pos)
        (t,) = struct.unpack_from("<I", data, pos)
        pos += 4
        kv[key], pos = read_value(t, pos)
    return kv


def find_templates(shared):
    """[(name, source, special_tokens)] for every chat template under shared/."""
    found = []
    llama3_tokens = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    for path in sorted(glob.glob(os.path.join(shared, "templates", "*.jinja"))):
        with open(path, encoding="utf-8") as f:
            found.append(("templates/" + os.path.basename(path), f.read(), dict(llama3_tokens)))
    for sub in ("models", "tokenizers"):
        for path in sorted(glob.glob(os.path.join(shared, sub, "*", "tokenizer_config.json"))):
            with open(path, encoding="utf-8") as f:
                cfg = json.load(f)
            tmpl = cfg.get("chat_template")
            if isinstance(tmpl, list):  # named templates: the default one
                tmpl = next((t["template"] for t in tmpl if t.get("name") == "default"), None)
            if not isinstance(tmpl, str):
                continue
            tokens = {}
            for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
                v = token_text(cfg.get(key))
                if v is not None:
                    tokens[key] = v
            rel = os.path.relpath(path, shared)
            found.append((rel, tmpl, tokens))
    ggufs = sorted(set(glob.glob(os.path.join(shared, "models", "*.gguf")) + glob.glob(os.path.join(shared, "models", "*", "*.gguf"))))
    for path in ggufs:
        kv = read_gguf_metadata(path)
        if not kv or not isinstance(kv.get("tokenizer.chat_template"), str):
            continue
        vocab = kv.get("tokenizer.ggml.tokens") or []
        tokens = {}
        for key, idkey in (("bos_token", "tokenizer.ggml.bos_token_id"), ("eos_token", "tokenizer.ggml.eos_token_id"),
                           ("unk_token", "tokenizer.ggml.unknown_token_id"), ("pad_token", "tokenizer.ggml.padding_token_id")):
            i = kv.get(idkey)
            if isinstance(i, int) and 0 <= i < len(vocab):
                tokens[key] = vocab[i]
        found.append((os.path.relpath(path, shared), kv["tokenizer.chat_template"], tokens))
    return found


def chat_context(conv, tokens):
    """The variables apply_chat_template passes: messages, tools, documents,
    add_generation_prompt, the special tokens, and the extra keyword arguments."""
    ctx = dict(tokens)
    ctx.update(
        messages=conv["messages"],
        tools=conv.get("tools"),
        documents=None,
        add_generation_prompt=conv.get("add_generation_prompt", True),
    )
    ctx.update(conv.get("kwargs", {}))
    return ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["chat", "snippets"])
    ap.add_argument("--conversations")
    ap.add_argument("--shared")
    ap.add_argument("--template", action="append", default=[], help="NAME=PATH of an extra Jinja template")
    ap.add_argument("--tokens", action="append", default=[], help="NAME=JSON special tokens of an extra template")
    ap.add_argument("--cases")
    ap.add_argument("--now", type=int)
    ap.add_argument("--out")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--update", action="store_true")
    args = ap.parse_args()
    env = make_env(args.now)

    if args.mode == "chat":
        with open(args.conversations, encoding="utf-8") as f:
            convs = json.load(f)
        templates = find_templates(args.shared) if args.shared and os.path.isdir(args.shared) else []
        tokens_of = {}
        for spec in args.tokens:
            name, _, js = spec.partition("=")
            tokens_of[name] = json.loads(js)
        for spec in args.template:
            name, _, path = spec.partition("=")
            with open(path, encoding="utf-8") as f:
                templates.append((name, f.read(), tokens_of.get(name, {})))
        results = {}
        for name, source, tokens in templates:
            results[name] = {c["name"]: render(env, source, chat_context(c, tokens)) for c in convs}
        out = {"jinja2": jinja2.__version__, "results": results}
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, indent=1)
        return 0

    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)
    results = [render(env, c["template"], c.get("context", {})) for c in cases]
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, ensure_ascii=False, indent=1)
    if args.update:
        for c, r in zip(cases, results):
            c["expect"] = {"text": r["text"]} if "text" in r else {"error": True}
        with open(args.cases, "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False, indent=1)
            f.write("\n")
    if args.check:
        bad = 0
        for c, r in zip(cases, results):
            want = {"text": r["text"]} if "text" in r else {"error": True}
            if c.get("expect") != want:
                bad += 1
                print("mismatch in case %r: stored %r, jinja2 %r" % (c["name"], c.get("expect"), r), file=sys.stderr)
        print("%d cases, %d differ from jinja2 %s" % (len(cases), bad, jinja2.__version__))
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
