#!/usr/bin/env python3
"""make_gguf.py - writes a Llama-shaped GGUF with seeded random weights for
benchmarks (paca next to llama.cpp on the same file).

  make_gguf.py --shape 110m --tokenizer-from SRC.gguf --out FILE [--dtype f16|f32|bf16] [--seed N]

The tokenizer.* metadata is copied from SRC.gguf (e.g. ../shared/models/gguf/
tiny-llama2.gguf for the 32,000-token Llama 2 vocabulary), so both engines can
tokenize. Weights are N(0, 0.02) in the chosen dtype, norms are 1 (f32).
Tensor names and metadata keys follow the GGUF llama convention. Needs
Debian's python3-numpy.
"""
import argparse
import struct
import sys

import numpy as np

SHAPES = {
    # name: dim, layers, heads, kv heads, ffn, vocab, context, tied embeddings, rope theta
    "tiny": (128, 4, 4, 2, 384, 32000, 2048, False, 10000.0),
    "110m": (768, 12, 12, 12, 2048, 32000, 2048, False, 10000.0),
    "llama3.2-1b": (2048, 16, 32, 8, 8192, 128256, 8192, True, 500000.0),
}
GGML_F32, GGML_F16, GGML_BF16 = 0, 1, 30
T_UINT32, T_FLOAT32, T_STRING, T_ARRAY, T_UINT64 = 4, 6, 8, 9, 10
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def read_kv_raw(path):
    """{key: raw bytes of (type, value)} for every metadata pair of a GGUF file."""
    data = open(path, "rb").read()
    if data[:4] != b"GGUF":
        sys.exit("%s is not a GGUF file" % path)
    _, _, n_kv = struct.unpack_from("<IQQ", data, 4)
    p = 24

    def skip_value(t, p):
        if t == T_STRING:
            (n,) = struct.unpack_from("<Q", data, p)
            return p + 8 + n
        if t == T_ARRAY:
            et, n = struct.unpack_from("<IQ", data, p)
            p += 12
            if et == T_STRING:
                for _ in range(n):
                    p = skip_value(T_STRING, p)
                return p
            return p + SIZES[et] * n
        return p + SIZES[t]

    out = {}
    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", data, p)
        key = data[p + 8 : p + 8 + n].decode()
        p += 8 + n
        (t,) = struct.unpack_from("<I", data, p)
        end = skip_value(t, p + 4)
        out[key] = data[p:end]
        p = end
    return out


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, t, value):
    body = {T_UINT32: lambda v: struct.pack("<I", v), T_FLOAT32: lambda v: struct.pack("<f", v),
            T_STRING: gguf_string, T_UINT64: lambda v: struct.pack("<Q", v)}[t](value)
    return gguf_string(key) + struct.pack("<I", t) + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), default="110m")
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=["f16", "f32", "bf16"], default="f16")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    dim, layers, heads, kv_heads, ffn, vocab, ctx, tied, theta = SHAPES[a.shape]
    tok = {k: v for k, v in read_kv_raw(a.tokenizer_from).items() if k.startswith("tokenizer.")}
    n_tok = struct.unpack_from("<Q", tok.get("tokenizer.ggml.tokens", b"\0" * 16), 8)[0]
    if n_tok != vocab:
        sys.exit("%s has %d tokens; shape %s needs %d" % (a.tokenizer_from, n_tok, a.shape, vocab))
    head_dim = dim // heads
    wtype = {"f16": GGML_F16, "f32": GGML_F32, "bf16": GGML_BF16}[a.dtype]

    tensors = [("token_embd.weight", (vocab, dim), wtype), ("output_norm.weight", (dim,), GGML_F32)]
    if not tied:  # a tied model's LM head is token_embd
        tensors.append(("output.weight", (vocab, dim), wtype))
    for i in range(layers):
        b = "blk.%d." % i
        tensors += [(b + "attn_norm.weight", (dim,), GGML_F32), (b + "attn_q.weight", (dim, dim), wtype),
                    (b + "attn_k.weight", (kv_heads * head_dim, dim), wtype),
                    (b + "attn_v.weight", (kv_heads * head_dim, dim), wtype),
                    (b + "attn_output.weight", (dim, dim), wtype), (b + "ffn_norm.weight", (dim,), GGML_F32),
                    (b + "ffn_gate.weight", (ffn, dim), wtype), (b + "ffn_up.weight", (ffn, dim), wtype),
                    (b + "ffn_down.weight", (dim, ffn), wtype)]

    meta = [kv("general.architecture", T_STRING, "llama"), kv("general.name", T_STRING, "paca-bench " + a.shape),
            kv("general.file_type", T_UINT32, {GGML_F32: 0, GGML_F16: 1, GGML_BF16: 32}[wtype]),
            kv("llama.context_length", T_UINT32, ctx), kv("llama.embedding_length", T_UINT32, dim),
            kv("llama.block_count", T_UINT32, layers), kv("llama.feed_forward_length", T_UINT32, ffn),
            kv("llama.rope.dimension_count", T_UINT32, head_dim), kv("llama.attention.head_count", T_UINT32, heads),
            kv("llama.attention.head_count_kv", T_UINT32, kv_heads),
            kv("llama.attention.layer_norm_rms_epsilon", T_FLOAT32, 1e-5),
            kv("llama.rope.freq_base", T_FLOAT32, theta), kv("llama.vocab_size", T_UINT32, vocab)]
    meta += [gguf_string(k) + v for k, v in tok.items()]

    rng = np.random.default_rng(a.seed)
    align = 32
    infos, offset = [], 0
    for name, shape, t in tensors:
        n = int(np.prod(shape))
        size = n * (4 if t == GGML_F32 else 2)
        dims = list(reversed(shape))  # GGUF lists the fastest-varying dimension first
        infos.append(gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) +
                     struct.pack("<IQ", t, offset))
        offset += (size + align - 1) // align * align

    with open(a.out, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)))
        for m in meta:
            f.write(m)
        for i in infos:
            f.write(i)
        f.write(b"\0" * ((-f.tell()) % align))
        for name, shape, t in tensors:
            if t == GGML_F32 and len(shape) == 1:
                arr = np.ones(shape, dtype=np.float32)
            else:
                w = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
                if t == GGML_F16:
                    arr = w.astype(np.float16)
                elif t == GGML_BF16:
                    arr = (w.view(np.uint32) >> 16).astype(np.uint16)
                else:
                    arr = w
            raw = arr.tobytes()
            f.write(raw)
            f.write(b"\0" * ((-len(raw)) % align))
    print("wrote %s: %s, %s, %d tensors" % (a.out, a.shape, a.dtype, len(tensors)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
