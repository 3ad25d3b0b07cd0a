// llamacpp_bench.mjs - llama.cpp (through the npm package node-llama-cpp and
// its prebuilt CPU binary) on a GGUF: prefill of a prompt of P tokens, then
// greedy decode of N tokens, with T threads; prints one JSON line per repeat
// in the form paca-bench --json uses (prefill/decode tokens per second).
//
//   node llamacpp_bench.mjs MODEL.gguf THREADS PROMPT_TOKENS GEN_TOKENS REPEATS
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [model_path, threads_s, prompt_s, gen_s, repeats_s] = process.argv.slice(2);
const threads = Number(threads_s), n_prompt = Number(prompt_s), n_gen = Number(gen_s), repeats = Number(repeats_s);
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
const model = await llama.loadModel({ modelPath: model_path, gpuLayers: 0, useMmap: true });
// A prompt of exactly n_prompt ids: BOS then a fixed cycle of ordinary ids.
const prompt = [model.tokens.bos ?? 1];
for (let i = 1; i < n_prompt; ++i) prompt.push(1000 + ((i * 37) % 5000));
for (let r = 0; r < repeats; ++r) {
  const context = await model.createContext({ contextSize: 2048, batchSize: 512, threads: { ideal: threads, min: threads } });
  const seq = context.getSequence();
  const t0 = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
  const prefill_s = (performance.now() - t0) / 1000;
  // greedy decode: the last prompt token's step yields the first new token
  let produced = 0;
  let t_first = 0;
  for await (const tok of seq.evaluate(prompt.slice(-1), { temperature: 0 })) {
    if (produced === 0) t_first = performance.now();
    if (++produced >= n_gen) break;
  }
  const decode_s = (performance.now() - t_first) / 1000;
  console.log(JSON.stringify({ engine: "llama.cpp", threads, prompt_tokens: n_prompt, generated: produced,
                               prefill_tokens_per_s: (n_prompt - 1) / prefill_s,
                               decode_tokens_per_s: (produced - 1) / decode_s }));
  await context.dispose();
}
await model.dispose();
