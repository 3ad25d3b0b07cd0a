// sampler_bench.cpp - Google Benchmark micro-benchmark of the sampler chain
// (core/sample/): ns per sampled token at vocabularies of 32000 (Llama 2) and
// 128256 (Llama 3), next to the cost of one plain pass over the same logits
// (the bound for anything that must look at every logit once). Top-p without
// top-k is measured twice: over these logits, whose long tail holds most of
// the mass (a nucleus of thousands), and with a few confident candidates.
//
//   sampler-bench [--benchmark_repetitions=5 --benchmark_report_aggregates_only=true]
//
// The logits are fixed pseudo-random values shaped like a model's (roughly
// normal, sd 2.5, a few strong candidates); each iteration samples at a new
// position, as a decode loop does. Logits are read from cache, as they are
// right after the LM head wrote them.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "sample/rng.h"
#include "sample/sampler.h"

namespace {

std::vector<float> model_like_logits(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    // sum of 4 uniforms: roughly normal, mean 0, sd 2.5
    double s = 0;
    for (uint32_t d = 0; d < 4; ++d) s += paca::sampler_uniform(11, i, d) - 0.5;
    v[i] = static_cast<float>(s * 2.5 * std::sqrt(3.0));
  }
  for (size_t i = 0; i < 8; ++i) v[(i * 7919) % n] = 12.0f - static_cast<float>(i);  // a few strong candidates
  return v;
}

enum Config : int64_t {
  kGreedy,
  kTypical,
  kTypicalPenalties,
  kTypicalLogprobs,
  kTopPOnly,
  kTemperatureOnly,
  kTopPOnlyConfident
};

const char* config_name(int64_t c) {
  switch (c) {
    case kGreedy: return "greedy";
    case kTypical: return "top-k 40, top-p 0.9, T 0.7";
    case kTypicalPenalties: return "top-k 40, top-p 0.9, T 0.7, repeat 1.1 / last 64";
    case kTypicalLogprobs: return "top-k 40, top-p 0.9, T 0.7, logprobs + top 5";
    case kTopPOnly: return "top-p 0.9, T 0.7 (no top-k)";
    case kTemperatureOnly: return "T 0.7 only (no truncation)";
    case kTopPOnlyConfident: return "top-p 0.9, T 0.7 (no top-k), nucleus of a few tokens";
  }
  return "?";
}

void BM_Sample(benchmark::State& state) {
  const size_t vocab = static_cast<size_t>(state.range(0));
  const int64_t config = state.range(1);
  paca::SamplerParams p;
  if (config != kGreedy) {
    p.temperature = 0.7f;
    p.top_k = 40;
    p.top_p = 0.9f;
    p.seed = 42;
  }
  if (config == kTypicalPenalties) p.repeat_penalty = 1.1f;
  if (config == kTopPOnly || config == kTopPOnlyConfident) p.top_k = 0;
  if (config == kTemperatureOnly) {
    p.top_k = 0;
    p.top_p = 1.0f;
  }
  paca::Sampler s(p, static_cast<int32_t>(vocab));
  std::vector<float> logits = model_like_logits(vocab);
  if (config == kTopPOnlyConfident)  // the strong candidates 8 above the rest: they hold 99% of the mass
    for (size_t i = 0; i < 8; ++i) logits[(i * 7919) % vocab] += 8.0f;
  // a long history so that positions keep changing; the penalty window is its tail
  std::vector<int32_t> history(1 << 16);
  for (size_t i = 0; i < history.size(); ++i) history[i] = static_cast<int32_t>((i * 2654435761u) % vocab);
  paca::Logprobs lp;
  paca::Logprobs* want = config == kTypicalLogprobs ? &lp : nullptr;
  size_t pos = 64;
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.sample(logits, {history.data(), pos}, want, 5));
    if (++pos == history.size()) pos = 64;
  }
  state.SetLabel(config_name(config));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(vocab * sizeof(float)));
}

// The bound: one pass over the logits (a max reduction, 8 independent lanes
// so it is limited by loads, not by the dependency chain).
void BM_OnePass(benchmark::State& state) {
  const size_t vocab = static_cast<size_t>(state.range(0));
  const std::vector<float> logits = model_like_logits(vocab);
  for (auto _ : state) {
    float m[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    size_t i = 0;
    for (; i + 8 <= vocab; i += 8)
      for (size_t j = 0; j < 8; ++j) m[j] = logits[i + j] > m[j] ? logits[i + j] : m[j];
    for (; i < vocab; ++i) m[0] = logits[i] > m[0] ? logits[i] : m[0];
    float r = m[0];
    for (size_t j = 1; j < 8; ++j) r = m[j] > r ? m[j] : r;
    benchmark::DoNotOptimize(r);
  }
  state.SetLabel("one pass over the logits (max)");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(vocab * sizeof(float)));
}

void vocab_sizes(benchmark::internal::Benchmark* b, bool with_configs) {
  for (int64_t vocab : {32000, 128256}) {
    if (!with_configs) {
      b->Args({vocab});
      continue;
    }
    for (int64_t c : {kGreedy, kTypical, kTypicalPenalties, kTypicalLogprobs, kTopPOnly, kTemperatureOnly,
                      kTopPOnlyConfident})
      b->Args({vocab, c});
  }
}

BENCHMARK(BM_OnePass)->Apply([](benchmark::internal::Benchmark* b) { vocab_sizes(b, false); });
BENCHMARK(BM_Sample)->Apply([](benchmark::internal::Benchmark* b) { vocab_sizes(b, true); });

}  // namespace

BENCHMARK_MAIN();
