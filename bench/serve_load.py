#!/usr/bin/env python3
"""serve_load.py - a load generator for OpenAI-compatible completion servers.

  bench/serve_load.py --url http://127.0.0.1:8080 --clients 16 --requests 64 \
      --prompt-words 96 --max-tokens 64 [--shared-prefix-words 256] [--seed 1]

Each of --clients threads sends streamed POST /v1/completions requests (SSE,
stream_options.include_usage) one after another until --requests have been
sent in all. Prompts are distinct word sequences (from a fixed word list and
the seed); with --shared-prefix-words every prompt starts with the same
preamble. Every request asks for exactly --max-tokens tokens (ignore_eos,
temperature 0), so two servers do the same work.

Prints one JSON object: wall seconds, requests, prompt and completion tokens
(the server's usage counts), output tokens per second over the wall time,
and time to first token (first streamed text) median / p90 / max in ms.
Only the Python standard library is used.
"""
import argparse
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.parse

WORDS = ("once upon a time there was a little girl named lily she loved to play outside in the sun "
         "one day she saw a big red ball in the park and wanted to share it with her friend tom "
         "they ran and jumped and laughed until the sky turned dark and the stars came out").split()


def make_prompt(rng, n_words):
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def one_request(host, port, body):
    conn = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.monotonic()
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    ttft = None
    usage = None
    text_chunks = 0
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        ev = json.loads(data)
        if ev.get("usage"):
            usage = ev["usage"]
        for ch in ev.get("choices") or []:
            if ch.get("text"):
                text_chunks += 1
                if ttft is None:
                    ttft = time.monotonic() - t0
    conn.close()
    if usage is None:
        raise RuntimeError("the stream carried no usage object")
    return ttft if ttft is not None else time.monotonic() - t0, usage, text_chunks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="model")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--prompt-words", type=int, default=96)
    ap.add_argument("--shared-prefix-words", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    rng = random.Random(a.seed)
    prefix = make_prompt(random.Random(a.seed + 1000), a.shared_prefix_words) + " " if a.shared_prefix_words else ""
    bodies = [{"model": a.model, "prompt": prefix + make_prompt(rng, a.prompt_words), "max_tokens": a.max_tokens,
               "temperature": 0, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
              for _ in range(a.requests)]
    lock = threading.Lock()
    results, errors = [], []

    def client():
        while True:
            with lock:
                if not bodies:
                    return
                body = bodies.pop()
            try:
                r = one_request(u.hostname, u.port, body)
                with lock:
                    results.append(r)
            except Exception as e:  # reported below; the run fails
                with lock:
                    errors.append(str(e))

    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    if errors:
        print(json.dumps({"errors": errors[:5], "n_errors": len(errors)}))
        sys.exit(1)
    ttfts = sorted(r[0] * 1000 for r in results)
    completion = sum(r[1]["completion_tokens"] for r in results)
    prompt = sum(r[1]["prompt_tokens"] for r in results)
    print(json.dumps({
        "clients": a.clients, "requests": len(results), "wall_s": round(wall, 3),
        "prompt_tokens": prompt, "completion_tokens": completion,
        "output_tok_per_s": round(completion / wall, 1),
        "ttft_ms_median": round(statistics.median(ttfts), 1),
        "ttft_ms_p90": round(ttfts[int(0.9 * (len(ttfts) - 1))], 1),
        "ttft_ms_max": round(ttfts[-1], 1),
    }))


if __name__ == "__main__":
    main()
