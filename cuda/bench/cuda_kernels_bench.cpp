// cuda-kernels-bench - the CUDA backend's hot kernels timed alone, each next
// to its bound on this device: the decode GEMV (bytes of W over the measured
// copy bandwidth), paged decode attention (bytes of the K/V read), the
// prefill GEMM through cuBLASLt (TFLOP/s), and prefill attention at 2048
// tokens (tensor-core and f32 kernels, TFLOP/s next to the GEMM's); the FP8
// weight paths (issue 7) beside them: the FP8 GEMV weight-only and w8a8
// (quantizer included), and at prefill sizes the three ways to run an FP8
// weight (the w8a8 FP8 GEMM with outer-vector scales or with the epilogue,
// quantizer included; the weight-only bf16 tiles) next to the BF16 GEMM of
// the same shape: the A/B behind the defaults of Fp8Policy (cuda_backend.h).
// Weights rotate over enough copies to exceed the L2 cache, inputs are random
// (never zeros), timing uses CUDA events around 20 launches after 3 warm-ups,
// median of 5 such runs.
//
//   cuda-kernels-bench [--json]
//
// Prints one line per case; with --json one JSON object per line.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "cublaslt.h"
#include "cuda_backend.h"  // attention_splits_for
#include "device.h"
#include "kernels/kernels.h"

namespace {

using namespace paca::cuda;

bool g_json = false;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "cuda-kernels-bench: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

template <typename T>
T* dev_alloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  return static_cast<T*>(p);
}

// Device memory of `bytes` holding random values in +-[0.05, 1): bf16 (as
// bits) or f32.
void* dev_random(size_t bytes, uint32_t seed, bool bf16) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(0.05f, 1.0f);
  auto value = [&] { return d(rng) * ((rng() & 1) ? 1.0f : -1.0f); };
  std::vector<uint8_t> h(bytes);
  for (size_t i = 0; i + (bf16 ? 2 : 4) <= bytes; i += bf16 ? 2 : 4) {
    const float v = value();
    uint32_t u;
    std::memcpy(&u, &v, 4);
    if (bf16) {
      const uint16_t b = static_cast<uint16_t>(u >> 16);
      std::memcpy(h.data() + i, &b, 2);
    } else {
      std::memcpy(h.data() + i, &u, 4);
    }
  }
  void* p = nullptr;
  p = dev_alloc<std::remove_pointer_t<decltype(p)>>(bytes);
  check(cudaMemcpy(p, h.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  return p;
}

// Median over 5 runs of the mean time of 20 calls of fn(i) (i counts calls).
double time_ms(const std::function<void(int)>& fn) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  int call = 0;
  for (int i = 0; i < 3; ++i) fn(call++);
  check(cudaDeviceSynchronize(), "warm-up");
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    check(cudaEventRecord(a), "record");
    for (int i = 0; i < 20; ++i) fn(call++);
    check(cudaEventRecord(b), "record");
    check(cudaEventSynchronize(b), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "elapsed");
    runs.push_back(ms / 20.0);
  }
  check(cudaGetLastError(), "launch");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(runs.begin(), runs.end());
  return runs[2];
}

void report(const std::string& name, double ms, double bytes, double flops, double bw_gbps) {
  const double gbps = bytes / (ms * 1e-3) / 1e9;
  const double tflops = flops / (ms * 1e-3) / 1e12;
  if (g_json) {
    std::printf("{\"case\":\"%s\",\"ms\":%.5f,\"GBps\":%.1f,\"TFLOPs\":%.2f,\"fraction_of_copy_bandwidth\":%.3f}\n",
                name.c_str(), ms, gbps, tflops, bw_gbps > 0 ? gbps / bw_gbps : 0.0);
  } else {
    std::printf("%-44s %9.4f ms  %7.1f GB/s (%3.0f%% of copy)  %7.2f TFLOP/s\n", name.c_str(), ms, gbps,
                bw_gbps > 0 ? 100 * gbps / bw_gbps : 0.0, tflops);
  }
  std::fflush(stdout);
}

void bench_gemv(int rows, int cols, int tokens, double bw) {
  const size_t wbytes = static_cast<size_t>(rows) * cols * 2;
  const int copies = static_cast<int>(std::max<size_t>(2, (size_t{256} << 20) / wbytes + 1));  // > 256 MiB: out of L2
  std::vector<void*> w;
  for (int i = 0; i < copies; ++i) w.push_back(dev_random(wbytes, 11 + i, true));
  auto* x = static_cast<float*>(dev_random(static_cast<size_t>(tokens) * cols * 4, 3, false));
  float* y = nullptr;
  y = dev_alloc<std::remove_pointer_t<decltype(y)>>(static_cast<size_t>(tokens) * rows * 4);
  const double ms = time_ms([&](int i) {
    launch_gemv_bf16(static_cast<const uint16_t*>(w[i % copies]), rows, cols, x, cols, tokens, y, rows, nullptr);
  });
  report("gemv " + std::to_string(rows) + "x" + std::to_string(cols) + " tokens " + std::to_string(tokens), ms,
         static_cast<double>(wbytes), 2.0 * rows * cols * tokens, bw);
  for (void* p : w) cudaFree(p);
  cudaFree(x);
  cudaFree(y);
}

// Device memory of n random E4M3 codes (never the NaN codes 0x7f / 0xff).
uint8_t* dev_codes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> h(n);
  for (uint8_t& b : h) {
    b = static_cast<uint8_t>(rng() & 0xff);
    if ((b & 0x7f) == 0x7f) b ^= 0x01;
  }
  auto* p = dev_alloc<uint8_t>(n);
  check(cudaMemcpy(p, h.data(), n, cudaMemcpyHostToDevice), "cudaMemcpy");
  return p;
}

// The FP8 GEMV: weight-only on f32 x, or w8a8 (the quantizer then the GEMV,
// timed together). Bound: the bytes of the codes and row scales.
void bench_gemv_f8(int rows, int cols, int tokens, bool w8a8, int rw, double bw) {
  const size_t wbytes = static_cast<size_t>(rows) * cols;
  const int copies = static_cast<int>(std::max<size_t>(2, (size_t{256} << 20) / wbytes + 1));  // > 256 MiB: out of L2
  std::vector<uint8_t*> w{dev_codes(wbytes, 21)};
  for (int i = 1; i < copies; ++i) {  // the same codes again (the L2 cannot tell), made once
    w.push_back(dev_alloc<uint8_t>(wbytes));
    check(cudaMemcpy(w.back(), w.front(), wbytes, cudaMemcpyDeviceToDevice), "cudaMemcpy");
  }
  auto* ws = static_cast<float*>(dev_random(static_cast<size_t>(rows) * 4, 8, false));
  auto* x = static_cast<float*>(dev_random(static_cast<size_t>(tokens) * cols * 4, 3, false));
  auto* xq = dev_alloc<float>(static_cast<size_t>(tokens) * cols * 4);
  auto* xs = dev_alloc<float>(static_cast<size_t>(tokens) * 4);
  auto* y = dev_alloc<float>(static_cast<size_t>(tokens) * rows * 4);
  const double ms = time_ms([&](int i) {
    if (w8a8) {
      launch_quantize_e4m3(x, cols, tokens, cols, tokens, 1, 1200.0f, 0.0f, nullptr, 0, xq, cols, xs, nullptr);
      launch_gemv_f8(w[i % copies], ws, rows, cols, xq, cols, xs, tokens, y, rows, rw, nullptr);
    } else {
      launch_gemv_f8(w[i % copies], ws, rows, cols, x, cols, nullptr, tokens, y, rows, rw, nullptr);
    }
  });
  report(std::string("gemv fp8 ") + (w8a8 ? "w8a8 " : "w8a16 ") + std::to_string(rows) + "x" + std::to_string(cols) +
             " tokens " + std::to_string(tokens) + " rw " + std::to_string(rw),
         ms, static_cast<double>(wbytes + static_cast<size_t>(rows) * 4), 2.0 * rows * cols * tokens, bw);
  for (uint8_t* p : w) cudaFree(p);
  for (void* p : {static_cast<void*>(ws), static_cast<void*>(x), static_cast<void*>(xq), static_cast<void*>(xs),
                  static_cast<void*>(y)})
    cudaFree(p);
}

// The block GEMV on random GGUF blocks of a type (any bytes decode: random
// f16 scales may be huge or NaN, which does not change the time). Bound: the
// bytes of the blocks.
void bench_gemv_blocks(int type, const char* name, int rows, int cols, int tokens, double bw) {
  const size_t wbytes = static_cast<size_t>(rows) * blocks_row_bytes(type, cols);
  const int copies = static_cast<int>(std::max<size_t>(2, (size_t{256} << 20) / wbytes + 1));  // > 256 MiB: out of L2
  std::vector<uint8_t*> w;
  for (int i = 0; i < copies; ++i) w.push_back(dev_codes(wbytes, 31 + i));
  auto* x = static_cast<float*>(dev_random(static_cast<size_t>(tokens) * cols * 4, 3, false));
  auto* y = dev_alloc<float>(static_cast<size_t>(tokens) * rows * 4);
  const double ms = time_ms([&](int i) { launch_gemv_blocks(type, w[i % copies], rows, cols, x, cols, tokens, y, rows, nullptr); });
  report(std::string("gemv ") + name + " " + std::to_string(rows) + "x" + std::to_string(cols) + " tokens " +
             std::to_string(tokens),
         ms, static_cast<double>(wbytes), 2.0 * rows * cols * tokens, bw);
  for (uint8_t* p : w) cudaFree(p);
  cudaFree(x);
  cudaFree(y);
}

// An FP8 weight at prefill size, the three ways the backend can run it
// (each with its activation conversion, as in CudaBackend::matmul_f8).
void bench_gemm_f8(LtGemm& lt, int rows, int cols, int tokens) {
  const size_t wbytes = static_cast<size_t>(rows) * cols;
  const size_t lt_ws = size_t{32} << 20;
  uint8_t* w = dev_codes(wbytes, 31);
  auto* ws = static_cast<float*>(dev_random(static_cast<size_t>(rows) * 4, 8, false));
  auto* x = static_cast<float*>(dev_random(static_cast<size_t>(tokens) * cols * 4, 6, false));
  auto* xq = dev_alloc<uint8_t>(static_cast<size_t>(tokens) * cols);
  auto* xs = dev_alloc<float>(static_cast<size_t>(tokens) * 4);
  auto* xbf = dev_alloc<uint16_t>(static_cast<size_t>(tokens) * cols * 2);
  const int tile_rows = fp8_tile_rows(rows, cols);
  auto* tile = dev_alloc<uint16_t>(static_cast<size_t>(tile_rows) * cols * 2);
  auto* y = dev_alloc<float>(static_cast<size_t>(tokens) * rows * 4);
  auto* work = dev_alloc<void>(lt_ws);
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols) + " tokens " + std::to_string(tokens);
  const double flops = 2.0 * rows * cols * tokens;
  std::string err;
  auto quant = [&] {
    launch_quantize_e4m3(x, cols, tokens, cols, tokens, 1, 1200.0f, 0.0f, xq, cols, nullptr, 0, xs, nullptr);
  };
  // w8a8, scales in the GEMM (outer-vector mode)
  quant();
  if (lt.matmul_f8(w, rows, cols, xq, tokens, y, rows, ws, xs, work, lt_ws, nullptr, &err)) {
    report("fp8 w8a8 gemm+scales " + shape, time_ms([&](int) {
             quant();
             lt.matmul_f8(w, rows, cols, xq, tokens, y, rows, ws, xs, work, lt_ws, nullptr, &err);
           }),
           static_cast<double>(wbytes), flops, 0);
  } else {
    std::printf("fp8 w8a8 gemm+scales %s: no outer-vector scales: %s\n", shape.c_str(), err.c_str());
  }
  // w8a8, unscaled GEMM then the epilogue
  if (lt.matmul_f8(w, rows, cols, xq, tokens, y, rows, nullptr, nullptr, work, lt_ws, nullptr, &err)) {
    report("fp8 w8a8 gemm+epilogue " + shape, time_ms([&](int) {
             quant();
             lt.matmul_f8(w, rows, cols, xq, tokens, y, rows, nullptr, nullptr, work, lt_ws, nullptr, &err);
             launch_scale_rows_tokens(y, rows, rows, tokens, ws, xs, y, rows, nullptr);
           }),
           static_cast<double>(wbytes), flops, 0);
  } else {
    std::printf("fp8 w8a8 gemm %s: cuBLASLt failed: %s\n", shape.c_str(), err.c_str());
  }
  // weight-only: bf16 tiles and the BF16 GEMM
  report("fp8 w8a16 bf16 tiles " + shape, time_ms([&](int) {
           launch_to_bf16(x, static_cast<size_t>(tokens) * cols, xbf, nullptr);
           for (int r0 = 0; r0 < rows; r0 += tile_rows) {
             const int n = std::min(tile_rows, rows - r0);
             launch_e4m3_to_bf16(w + static_cast<size_t>(r0) * cols, static_cast<size_t>(n) * cols, tile, nullptr);
             lt.matmul(tile, n, cols, xbf, tokens, y + r0, rows, work, lt_ws, nullptr, &err);
           }
           launch_scale_rows_tokens(y, rows, rows, tokens, ws, nullptr, y, rows, nullptr);
         }),
         static_cast<double>(wbytes), flops, 0);
  for (void* p : {static_cast<void*>(w), static_cast<void*>(ws), static_cast<void*>(x), static_cast<void*>(xq),
                  static_cast<void*>(xs), static_cast<void*>(xbf), static_cast<void*>(tile), static_cast<void*>(y),
                  work})
    cudaFree(p);
}

// Returns the TFLOP/s measured (0 when cuBLASLt failed).
double bench_gemm(LtGemm& lt, int rows, int cols, int tokens) {
  const size_t wbytes = static_cast<size_t>(rows) * cols * 2;
  double tflops = 0;
  void* w = dev_random(wbytes, 5, true);
  void* x = dev_random(static_cast<size_t>(tokens) * cols * 2, 6, true);
  float* y = nullptr;
  void* ws = nullptr;
  y = dev_alloc<std::remove_pointer_t<decltype(y)>>(static_cast<size_t>(tokens) * rows * 4);
  ws = dev_alloc<std::remove_pointer_t<decltype(ws)>>(size_t{32} << 20);
  std::string err;
  if (!lt.matmul(static_cast<uint16_t*>(w), rows, cols, static_cast<uint16_t*>(x), tokens, y, rows, ws, size_t{32} << 20,
                 nullptr, &err)) {
    std::printf("gemm %dx%d tokens %d: cuBLASLt failed: %s\n", rows, cols, tokens, err.c_str());
  } else {
    const double ms = time_ms([&](int) {
      lt.matmul(static_cast<uint16_t*>(w), rows, cols, static_cast<uint16_t*>(x), tokens, y, rows, ws,
                size_t{32} << 20, nullptr, &err);
    });
    report("cublaslt " + std::to_string(rows) + "x" + std::to_string(cols) + " tokens " + std::to_string(tokens), ms,
           static_cast<double>(wbytes), 2.0 * rows * cols * tokens, 0);
    tflops = 2.0 * rows * cols * tokens / (ms * 1e-3) / 1e12;
  }
  cudaFree(w);
  cudaFree(x);
  cudaFree(y);
  cudaFree(ws);
  return tflops;
}

// A random bf16 cache of one layer holding ctx positions in 16-token blocks
// of scattered order: kv reads it; free() releases the pool and the table.
struct BenchKv {
  PagedKv kv;
  uint8_t* pool = nullptr;
  uint8_t** table = nullptr;
  void free() {
    cudaFree(pool);
    cudaFree(table);
  }
};
BenchKv bench_kv(int ctx, int kv_dim, uint32_t seed) {
  const int bt = 16;
  const int nb = (ctx + bt - 1) / bt;
  const size_t block_bytes = static_cast<size_t>(bt) * kv_dim * 2 * 2;  // K and V, one layer
  BenchKv c;
  c.pool = static_cast<uint8_t*>(dev_random(block_bytes * nb, seed, true));
  std::vector<uint8_t*> table(static_cast<size_t>(nb));
  for (int b = 0; b < nb; ++b) table[b] = c.pool + block_bytes * static_cast<size_t>((b * 7919) % nb);
  c.table = dev_alloc<uint8_t*>(table.size() * sizeof(uint8_t*));
  check(cudaMemcpy(c.table, table.data(), table.size() * sizeof(uint8_t*), cudaMemcpyHostToDevice), "cudaMemcpy");
  c.kv.blocks = c.table;
  c.kv.block_tokens = bt;
  c.kv.kv_dim = kv_dim;
  c.kv.elem_bytes = 2;
  c.kv.layer = 0;
  return c;
}

// Decode attention: one token at position ctx - 1 over a bf16 cache of one
// layer (Llama 3 8B heads: 32 query, 8 kv, head_dim 128), 16-token blocks.
void bench_attention(int ctx, int splits, double bw) {
  const int heads = 32, kv_heads = 8, hd = 128, kv_dim = kv_heads * hd;
  BenchKv cache = bench_kv(ctx, kv_dim, 9);
  const PagedKv& kv = cache.kv;
  auto* q = static_cast<float*>(dev_random(static_cast<size_t>(heads) * hd * 4, 4, false));
  float* out = nullptr;
  int32_t* pos = nullptr;
  float* scratch = nullptr;
  out = dev_alloc<std::remove_pointer_t<decltype(out)>>(static_cast<size_t>(heads) * hd * 4);
  pos = dev_alloc<std::remove_pointer_t<decltype(pos)>>(4);
  const int32_t p = ctx - 1;
  check(cudaMemcpy(pos, &p, 4, cudaMemcpyHostToDevice), "cudaMemcpy");
  const size_t sf = attention_scratch_floats(1, heads, hd, splits);
  if (sf > 0) scratch = dev_alloc<std::remove_pointer_t<decltype(scratch)>>(sf * 4);
  const double ms = time_ms([&](int) {
    launch_attention(kv, q, heads * hd, pos, 1, heads, kv_heads, hd, 0.088f, splits, scratch, out, heads * hd, nullptr);
  });
  report("attention decode ctx " + std::to_string(ctx) + " splits " + std::to_string(splits), ms,
         static_cast<double>(ctx) * kv_dim * 2 * 2, 4.0 * heads * hd * ctx, bw);
  cache.free();
  cudaFree(q);
  cudaFree(out);
  cudaFree(pos);
  cudaFree(scratch);
}

// Prefill attention: T tokens at positions 0..T-1 over a bf16 cache of one
// layer (Llama 3 8B heads, 16-token blocks in scattered order), through the
// tensor-core kernel (flash) or the f32 kernel; causal FLOPs 4 * heads * hd *
// T (T + 1) / 2, next to the cuBLASLt BF16 GEMM figure (gemm_tflops; 0: none).
void bench_prefill_attention(int T, bool flash, double gemm_tflops) {
  const int heads = 32, kv_heads = 8, hd = 128;
  BenchKv cache = bench_kv(T, kv_heads * hd, 12);
  const PagedKv& kv = cache.kv;
  const size_t qn = static_cast<size_t>(T) * heads * hd;
  auto* q = static_cast<float*>(dev_random(qn * 4, 13, false));
  float* out = nullptr;
  int32_t* pos = nullptr;
  out = dev_alloc<std::remove_pointer_t<decltype(out)>>(qn * 4);
  pos = dev_alloc<std::remove_pointer_t<decltype(pos)>>(static_cast<size_t>(T) * 4);
  std::vector<int32_t> hp(static_cast<size_t>(T));
  for (int t = 0; t < T; ++t) hp[t] = t;
  check(cudaMemcpy(pos, hp.data(), hp.size() * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
  const float scale = 0.088388f;
  const double ms = time_ms([&](int) {
    if (flash)
      check(launch_flash_prefill(kv, q, heads * hd, pos, T, heads, kv_heads, hd, scale, out, heads * hd, nullptr),
            "flash prefill");
    else
      check(launch_attention(kv, q, heads * hd, pos, T, heads, kv_heads, hd, scale, 1, nullptr, out, heads * hd,
                             nullptr),
            "attention");
  });
  const double flops = 4.0 * heads * hd * (static_cast<double>(T) * (T + 1) / 2);
  const double tflops = flops / (ms * 1e-3) / 1e12;
  const std::string name =
      std::string("attention prefill ") + (flash ? "flash" : "f32 kernel") + " tokens " + std::to_string(T);
  if (g_json)
    std::printf("{\"case\":\"%s\",\"ms\":%.5f,\"TFLOPs\":%.2f,\"fraction_of_cublaslt\":%.3f}\n", name.c_str(), ms,
                tflops, gemm_tflops > 0 ? tflops / gemm_tflops : 0.0);
  else
    std::printf("%-44s %9.4f ms  %7.2f TFLOP/s (%3.0f%% of the cuBLASLt BF16 GEMM's %.1f)\n", name.c_str(), ms, tflops,
                gemm_tflops > 0 ? 100 * tflops / gemm_tflops : 0.0, gemm_tflops);
  std::fflush(stdout);
  cache.free();
  cudaFree(q);
  cudaFree(out);
  cudaFree(pos);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) g_json = g_json || std::strcmp(argv[i], "--json") == 0;
  std::string why;
  if (device_count(&why) == 0) {
    std::fprintf(stderr, "cuda-kernels-bench: %s\n", why.c_str());
    return 1;
  }
  const double bw = measure_copy_bandwidth_gbps(0, size_t{1} << 30, &why);
  int sms = 1;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "cudaDeviceGetAttribute");
  if (g_json)
    std::printf("{\"device\":\"%s\",\"copy_bandwidth_GBps\":%.1f}\n", describe_device(0).c_str(), bw);
  else
    std::printf("%s: copy bandwidth %.1f GB/s (read + write, 1 GiB)\n", describe_device(0).c_str(), bw);
  // decode GEMV at Llama 3 8B shapes (q/o, k/v, gate/up, down, LM head) and 1B's
  for (int tokens : {1, 4}) {
    bench_gemv(4096, 4096, tokens, bw);
    bench_gemv(1024, 4096, tokens, bw);
    bench_gemv(14336, 4096, tokens, bw);
    bench_gemv(4096, 14336, tokens, bw);
    bench_gemv(128256, 4096, tokens, bw);
    bench_gemv(2048, 2048, tokens, bw);
  }
  // FP8 weights at the same shapes: weight-only and w8a8 (the decode A/B)
  // (rows per warp as the backend picks them; at one token weight-only, the other choice too)
  const int shapes[][2] = {{4096, 4096}, {1024, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
  for (int tokens : {1, 4, 8})
    for (bool w8a8 : {false, true})
      for (const auto& sh : shapes) {
        if (sh[0] == 128256 && tokens > 1) continue;
        const int rw = fp8_gemv_rows_per_warp(sh[0], sms);
        bench_gemv_f8(sh[0], sh[1], tokens, w8a8, rw, bw);
        if (tokens == 1 && !w8a8) bench_gemv_f8(sh[0], sh[1], tokens, w8a8, 3 - rw, bw);
      }
  // block-quantized weights (GGUF Q4_K, Q6_K, Q8_0) at the 8B shapes
  for (int tokens : {1, 4})
    for (const auto& sh : shapes) {
      if (sh[0] == 128256 && tokens > 1) continue;
      bench_gemv_blocks(12, "q4_k", sh[0], sh[1], tokens, bw);
      bench_gemv_blocks(14, "q6_k", sh[0], sh[1], tokens, bw);
      bench_gemv_blocks(8, "q8_0", sh[0], sh[1], tokens, bw);
    }
  for (int ctx : {512, 4096, 32768}) {
    bench_attention(ctx, 1, bw);
    bench_attention(ctx, attention_splits_for(1, 32, ctx, sms), bw);
  }
  LtGemm lt;
  double gemm_2048 = 0;  // TFLOP/s of the 4096x4096 GEMM at 2048 tokens
  if (!lt.available()) {
    std::printf("cuBLASLt unavailable: %s\n", lt.why().c_str());
  } else {
    for (int tokens : {16, 128, 512, 2048}) {
      const double t = bench_gemm(lt, 4096, 4096, tokens);
      if (tokens == 2048) gemm_2048 = t;
    }
    bench_gemm(lt, 14336, 4096, 512);
    // FP8 at prefill sizes, beside the BF16 GEMM of the same shape (the prefill A/B)
    for (int tokens : {16, 128, 512, 2048}) bench_gemm_f8(lt, 4096, 4096, tokens);
    bench_gemm_f8(lt, 14336, 4096, 512);
    bench_gemm(lt, 14336, 4096, 2048);
    bench_gemm_f8(lt, 14336, 4096, 2048);
    for (int tokens : {512, 2048}) {
      bench_gemm(lt, 4096, 14336, tokens);
      bench_gemm_f8(lt, 4096, 14336, tokens);
    }
  }
  // prefill attention at 2048 tokens: the tensor-core kernel and the f32 one it replaces
  bench_prefill_attention(2048, true, gemm_2048);
  bench_prefill_attention(2048, false, gemm_2048);
  return 0;
}
