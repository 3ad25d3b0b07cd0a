// kernels_bench.cpp - Google Benchmark micro-benchmarks of the CPU backend's
// ops (core/backend/cpu/) at Llama decode and prefill shapes: matmul as GEMV
// (1 token) and as blocked GEMM (64 tokens) in BF16/F16/F32 and the GGUF
// block types, causal attention
// over a KV cache, RMSNorm and RoPE. Counters: bytes/s for the memory-bound
// ones (weights or KV read once), FLOP/s for the compute-bound ones.
//
//   kernels-bench [--benchmark_filter=...] [--benchmark_repetitions=3]
//
// Threads: PACA_BENCH_THREADS (default 1) workers in the backend's pool.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "format/block_quant.h"
#include "format/tensor.h"
#include "util/half.h"

namespace {

using paca::Act;
using paca::DType;

paca::Backend& backend() {
  static std::unique_ptr<paca::Backend> b = [] {
    const char* env = std::getenv("PACA_BENCH_THREADS");
    return paca::make_cpu_backend(env != nullptr ? std::atoi(env) : 1);
  }();
  return *b;
}

struct Weights {
  std::vector<uint8_t> bytes;
  paca::TensorView view;
  Weights(DType t, int64_t rows, int64_t cols) {
    view.dtype = t;
    view.rows = rows;
    view.cols = cols;
    bytes.resize(view.bytes());
    uint32_t s = 12345;
    const size_t n = static_cast<size_t>(rows * cols);
    std::vector<float> f(paca::is_block_quant(t) || t == DType::q8_0 ? n : 0);
    for (size_t i = 0; i < n; ++i) {
      s = s * 1664525u + 1013904223u;
      const float v = (static_cast<float>(s >> 8) / 16777216.0f - 0.5f) * 0.1f;
      if (!f.empty()) f[i] = v;
      else if (t == DType::f32) reinterpret_cast<float*>(bytes.data())[i] = v;
      else if (t == DType::f16) reinterpret_cast<uint16_t*>(bytes.data())[i] = paca::f32_to_f16(v);
      else reinterpret_cast<uint16_t*>(bytes.data())[i] = paca::f32_to_bf16(v);
    }
    const size_t rb = paca::row_bytes(t, static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows && !f.empty(); ++r)  // block types: quantized rows of the same values
      paca::quantize_blocks(t, f.data() + r * cols, bytes.data() + r * rb, static_cast<size_t>(cols));
    view.data = bytes.data();
  }
};

std::vector<float> activations(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(0.1f * static_cast<float>(i));
  return v;
}

// Args: dtype, rows, cols, tokens.
void BM_matmul(benchmark::State& st) {
  const auto dt = static_cast<DType>(st.range(0));
  const int rows = static_cast<int>(st.range(1)), cols = static_cast<int>(st.range(2)), T = static_cast<int>(st.range(3));
  Weights w(dt, rows, cols);
  std::vector<float> x = activations(static_cast<size_t>(T) * cols), out(static_cast<size_t>(T) * rows);
  for (auto _ : st) {
    backend().matmul(Act{x.data(), T, cols}, w.view, Act{out.data(), T, rows});
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["weight_bytes/s"] = benchmark::Counter(static_cast<double>(w.view.bytes()) * st.iterations(), benchmark::Counter::kIsRate);
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * rows * cols * T * st.iterations(), benchmark::Counter::kIsRate);
}

// Args: context length, n_heads, n_kv_heads, head_dim, query tokens.
void BM_attention(benchmark::State& st) {
  const int ctx = static_cast<int>(st.range(0)), H = static_cast<int>(st.range(1)), Hkv = static_cast<int>(st.range(2)),
            d = static_cast<int>(st.range(3)), T = static_cast<int>(st.range(4));
  paca::KvLayout L;
  L.n_layers = 1;
  L.block_tokens = 16;
  L.kv_dim = Hkv * d;
  std::vector<std::vector<uint8_t>> mem(static_cast<size_t>((ctx + 15) / 16));
  std::vector<uint8_t*> blocks;
  for (auto& b : mem) {
    b.resize(L.block_bytes());
    for (size_t i = 0; i < b.size() / 4; ++i) reinterpret_cast<float*>(b.data())[i] = 0.01f * static_cast<float>(i % 97);
    blocks.push_back(b.data());
  }
  paca::KvSeq seq{&L, blocks};
  std::vector<float> q = activations(static_cast<size_t>(T) * H * d), out(q.size());
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) pos[t] = ctx - T + t;
  const paca::AttentionShape shape{H, Hkv, d};
  for (auto _ : st) {
    backend().attention(Act{q.data(), T, H * d}, seq, 0, pos, shape, Act{out.data(), T, H * d});
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["kv_bytes/s"] =
      benchmark::Counter(2.0 * ctx * Hkv * d * sizeof(float) * st.iterations(), benchmark::Counter::kIsRate);
}

void BM_rmsnorm(benchmark::State& st) {
  const int dim = static_cast<int>(st.range(0)), T = static_cast<int>(st.range(1));
  Weights w(DType::f32, 1, dim);
  std::vector<float> x = activations(static_cast<size_t>(T) * dim), out(x.size());
  for (auto _ : st) {
    backend().rmsnorm(Act{x.data(), T, dim}, w.view, 1e-5f, Act{out.data(), T, dim});
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["bytes/s"] = benchmark::Counter(8.0 * T * dim * st.iterations(), benchmark::Counter::kIsRate);
}

void BM_rope(benchmark::State& st) {
  const int H = static_cast<int>(st.range(0)), d = static_cast<int>(st.range(1)), T = static_cast<int>(st.range(2));
  std::vector<float> x = activations(static_cast<size_t>(T) * H * d), freqs(static_cast<size_t>(d / 2));
  for (int i = 0; i < d / 2; ++i) freqs[i] = std::pow(500000.0f, -2.0f * i / d);
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) pos[t] = 100 + t;
  for (auto _ : st) {
    backend().rope(Act{x.data(), T, H * d}, H, d, pos, freqs, paca::RopeLayout::half);
    benchmark::DoNotOptimize(x.data());
  }
  st.counters["values/s"] = benchmark::Counter(1.0 * T * H * d * st.iterations(), benchmark::Counter::kIsRate);
}

constexpr int64_t kBF16 = static_cast<int64_t>(DType::bf16), kF16 = static_cast<int64_t>(DType::f16),
                  kF32 = static_cast<int64_t>(DType::f32), kQ8_0 = static_cast<int64_t>(DType::q8_0),
                  kQ4_0 = static_cast<int64_t>(DType::q4_0), kQ4_K = static_cast<int64_t>(DType::q4_k),
                  kQ5_K = static_cast<int64_t>(DType::q5_k), kQ6_K = static_cast<int64_t>(DType::q6_k);

// Decode GEMV: the 110M model's FFN (2048 x 768), Llama 3 8B's q (4096 x 4096) and FFN up (14336 x 4096).
BENCHMARK(BM_matmul)->ArgNames({"dtype", "rows", "cols", "tokens"})
    ->Args({kBF16, 2048, 768, 1})->Args({kF16, 2048, 768, 1})->Args({kF32, 2048, 768, 1})
    ->Args({kBF16, 4096, 4096, 1})->Args({kBF16, 14336, 4096, 1})
    // small batches (each stored row dotted with every token) and the GEMM just above them
    ->Args({kBF16, 4096, 4096, 4})->Args({kBF16, 4096, 4096, 8})->Args({kBF16, 4096, 4096, 9})->Args({kBF16, 4096, 4096, 16})
    ->Args({kBF16, 2048, 768, 2})->Args({kBF16, 2048, 768, 4})->Args({kBF16, 2048, 768, 8})->Args({kBF16, 4096, 4096, 2})
    // prefill GEMM, 64 tokens
    ->Args({kBF16, 2048, 768, 64})->Args({kF16, 2048, 768, 64})->Args({kBF16, 4096, 4096, 64})
    // the 110M model's four prefill shapes at 128 tokens: wq/wk/wv/wo, w1/w3, w2
    ->Args({kF16, 768, 768, 128})->Args({kF16, 2048, 768, 128})->Args({kF16, 768, 2048, 128})
    // and the 1B model's FFN (8192 x 2048, 2048 x 8192) at 128 tokens
    ->Args({kF16, 8192, 2048, 128})->Args({kF16, 2048, 8192, 128})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
// Block-quantized weights (GGUF Q4_0 .. Q6_K, Q8_0): decode GEMV and 64-token prefill at 2048 x 768 and 4096 x 4096.
BENCHMARK(BM_matmul)->Name("BM_matmul_blocks")->ArgNames({"dtype", "rows", "cols", "tokens"})
    ->ArgsProduct({{kQ4_0, kQ8_0, kQ4_K, kQ5_K, kQ6_K}, {2048}, {768}, {1, 64}})
    ->Args({kQ4_K, 4096, 4096, 1})->Args({kQ6_K, 4096, 4096, 1})->Args({kQ4_K, 4096, 4096, 64})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
// Decode attention at 512 and 4096 tokens of context (Llama 3 8B heads), and a 64-token prefill.
BENCHMARK(BM_attention)->ArgNames({"ctx", "heads", "kv_heads", "head_dim", "tokens"})
    ->Args({512, 32, 8, 128, 1})->Args({4096, 32, 8, 128, 1})->Args({512, 32, 8, 128, 64})
    // the 110M model (12 heads of 64) over a whole 512-token prompt
    ->Args({512, 12, 12, 64, 512})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_rmsnorm)->ArgNames({"dim", "tokens"})->Args({4096, 1})->Args({4096, 64})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_rope)->ArgNames({"heads", "head_dim", "tokens"})->Args({32, 128, 1})->Args({32, 128, 64})->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
