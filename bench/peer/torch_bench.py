#!/usr/bin/env python3
"""torch_bench.py - the PyTorch peer for paca-bench on a GPU (issue 6's side-by-side run).

Builds Hugging Face transformers' LlamaForCausalLM for a named shape with random BF16 weights
directly on the GPU (nothing is downloaded or written), then measures, with CUDA events:

  - prefill tokens/s for a prompt of --prompt tokens (one forward over the whole prompt);
  - decode tokens/s at batch 1 after --depths tokens of context, through a static KV cache,
    op by op ("eager") and, with --compile, through torch.compile(mode="reduce-overhead")
    (CUDA graphs), which is how the fastest published PyTorch figures are obtained.

Prints one JSON object per measurement, in the field names paca-bench --json uses where they
mean the same thing:

  python3 bench/peer/torch_bench.py --shape llama3-8b --prompt 2048 --depths 512,8192 \
      --tokens 64 [--compile] [--repeats 3]

Needs torch with CUDA and transformers (present on the GPU machine, not here; this is a
benchmark peer only, never a dependency of paca). Written against transformers' StaticCache
API, whose constructor changed names across releases; every variant tried is reported.
"""
import argparse
import json
import sys
import time

SHAPES = {
    # dim, layers, heads, kv heads, ffn, vocab, rope theta, tied embeddings
    "llama3-8b": (4096, 32, 32, 8, 14336, 128256, 500000.0, False),
    "llama3.1-8b": (4096, 32, 32, 8, 14336, 128256, 500000.0, False),
    "llama3.2-1b": (2048, 16, 32, 8, 8192, 128256, 500000.0, True),
    "llama3.2-3b": (3072, 28, 24, 8, 8192, 128256, 500000.0, True),
    "llama2-7b": (4096, 32, 32, 32, 11008, 32000, 10000.0, False),
    "110m": (768, 12, 12, 12, 2048, 32000, 10000.0, False),
}


def make_cache(StaticCache, cfg, max_len, torch, dev):
    """A StaticCache for batch 1 and max_len positions, whatever this transformers calls it."""
    attempts = [
        dict(config=cfg, max_batch_size=1, max_cache_len=max_len, device=dev, dtype=torch.bfloat16),
        dict(config=cfg, batch_size=1, max_cache_len=max_len, device=dev, dtype=torch.bfloat16),
        dict(config=cfg, max_cache_len=max_len),
    ]
    errors = []
    for kw in attempts:
        try:
            return StaticCache(**kw)
        except TypeError as e:
            errors.append(f"{sorted(kw)}: {e}")
    raise RuntimeError("cannot build a StaticCache: " + " | ".join(errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="llama3-8b", choices=sorted(SHAPES))
    ap.add_argument("--prompt", type=int, default=2048)
    ap.add_argument("--depths", default="512,8192")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also decode through torch.compile (reduce-overhead)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    depths = [int(d) for d in a.depths.split(",") if d]
    if a.prompt < 1 or a.tokens < 1 or a.repeats < 1 or any(d < 1 for d in depths):
        ap.error("--prompt, --tokens, --repeats and every depth must be positive")

    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM, StaticCache

    if not torch.cuda.is_available():
        print(json.dumps({"engine": "pytorch", "error": "no CUDA device"}))
        return 1
    dev = torch.device("cuda:0")
    dim, layers, heads, kv, ffn, vocab, theta, tied = SHAPES[a.shape]
    max_len = max([a.prompt] + depths) + a.tokens + 8
    cfg = LlamaConfig(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                      intermediate_size=ffn, vocab_size=vocab, rope_theta=theta, tie_word_embeddings=tied,
                      max_position_embeddings=max(max_len, 8192), rms_norm_eps=1e-5)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(a.seed)
    t0 = time.time()
    torch.set_default_dtype(torch.bfloat16)
    with dev:
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    model.eval().requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():  # random weights of a realistic scale, never zeros
            p.normal_(0.0, 0.02)
    torch.cuda.synchronize()
    params = sum(p.numel() for p in model.parameters())
    base = {"engine": "pytorch", "model": a.shape, "params": params, "torch": torch.__version__,
            "transformers": transformers.__version__, "device_name": torch.cuda.get_device_name(dev),
            "init_s": round(time.time() - t0, 2)}
    weight_bytes = params * 2

    def timed(fn, *args):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn(*args)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000.0, out

    gen = torch.Generator(device=dev).manual_seed(a.seed)

    def tokens(n):
        return torch.randint(0, vocab, (1, n), device=dev, generator=gen)

    def forward(ids, cache, pos, last_only):
        """model(...) keeping only the last position's logits where this transformers can."""
        if last_only:
            try:
                return model(input_ids=ids, past_key_values=cache, cache_position=pos, use_cache=True, logits_to_keep=1)
            except TypeError:
                pass
        return model(input_ids=ids, past_key_values=cache, cache_position=pos, use_cache=True)

    # prefill: one forward over the prompt into an emptied static cache
    with torch.no_grad():
        rates = []
        cache = make_cache(StaticCache, cfg, max_len, torch, dev)
        for _ in range(a.repeats + 1):  # the first is a warm-up
            cache.reset()
            ids = tokens(a.prompt)
            pos = torch.arange(a.prompt, device=dev)
            s, _ = timed(forward, ids, cache, pos, True)
            rates.append(a.prompt / s)
        rates = sorted(rates[1:])
        print(json.dumps({**base, "prefill_tokens": a.prompt, "prefill_tokens_per_s": rates[len(rates) // 2],
                          "min": rates[0], "max": rates[-1]}), flush=True)
        del cache

    def decode_step(model_fn, cache, tok, pos):
        out = model_fn(input_ids=tok, past_key_values=cache, cache_position=pos, use_cache=True)
        return out.logits[:, -1].argmax(-1, keepdim=True)

    # bytes one decode step reads: every matrix once (the embedding table only as a tied LM head),
    # plus the KV cache at the mean context of the measurement (paca-bench's definition)
    matrix_bytes = weight_bytes - (0 if tied else vocab * dim * 2)
    variants = [("eager", model.forward)]
    if a.compile:
        variants.append(("compiled", torch.compile(model.forward, mode="reduce-overhead", fullgraph=True)))
    for name, fn in variants:
        for depth in depths:
            with torch.no_grad():
                rates = []
                try:
                    cache = make_cache(StaticCache, cfg, max_len, torch, dev)  # one per depth: fixed addresses
                    pos_buf = torch.tensor([depth], device=dev)
                    for rep in range(a.repeats + 1):
                        cache.reset()
                        forward(tokens(depth), cache, torch.arange(depth, device=dev), True)
                        steps = a.tokens if rep else min(a.tokens, 8)  # the first pass compiles / warms up

                        def run(steps=steps, cache=cache):
                            t = tokens(1)
                            for i in range(steps):
                                pos_buf.fill_(depth + i)
                                t = decode_step(fn, cache, t, pos_buf)
                            return t

                        s, _ = timed(run)
                        if rep:
                            rates.append(steps / s)
                    del cache
                except Exception as e:  # a compile failure is a result too
                    print(json.dumps({**base, "decode": name, "depth": depth, "error": f"{type(e).__name__}: {e}"}),
                          flush=True)
                    continue
                rates.sort()
                kv_bytes = 2 * layers * kv * (dim // heads) * 2 * (depth + a.tokens / 2)
                print(json.dumps({**base, "decode": name, "depth": depth, "tokens": a.tokens,
                                  "decode_tokens_per_s": rates[len(rates) // 2], "min": rates[0], "max": rates[-1],
                                  "decode_bytes_per_token": matrix_bytes + kv_bytes}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
