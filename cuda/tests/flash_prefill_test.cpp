// flash_prefill_test.cpp - launch_flash_prefill (cuda/kernels/flash_prefill.cu)
// alone against a CPU reference in f64, on small random never-zero inputs:
// a bf16 paged cache in shuffled blocks, T query rows at the end of P
// positions (a cached prefix when P > T), GQA 1/4/8, head_dim 64 and 128,
// outputs poisoned with NaN first. Small on purpose: gpu_check.sh runs this
// program under compute-sanitizer's racecheck, which checks the kernel's
// shared-memory double buffering. Tolerance 1e-2 relative L2 (Q and P are
// rounded to bf16; see docs/design-notes.md); the backend test
// (CudaOps.FlashPrefillAttention) covers long contexts and f32 caches.
// Every test skips, with the reason, when there is no CUDA device.
#include <gtest/gtest.h>  // TEST, GTEST_SKIP

#include <cuda_runtime_api.h>  // cudaMalloc, cudaMemcpy

#include <algorithm>  // std::shuffle
#include <cmath>      // std::sqrt, std::exp, std::isfinite
#include <cstdint>    // uint16_t, uint8_t, int32_t
#include <cstdio>     // std::printf
#include <random>     // std::mt19937
#include <string>     // std::string
#include <vector>     // std::vector

#include "device.h"           // paca::cuda::device_count
#include "kernels/kernels.h"  // paca::cuda::launch_flash_prefill
#include "util/half.h"        // paca::f32_to_bf16, paca::bf16_to_f32

namespace {

struct Case {
  int heads, kv_heads, hd, block, P, T;
};

// A device allocation freed on scope exit.
struct Dev {
  void* p = nullptr;
  explicit Dev(size_t bytes) {
    if (cudaMalloc(&p, bytes) != cudaSuccess) p = nullptr;
  }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
};

// out[t, h, :] = softmax_p(q[t, h] . k[p] * scale, p <= pos[t]) V, in f64
// over the widened bf16 K/V (k, v: (P, kv_dim)).
std::vector<double> reference(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                              const std::vector<float>& v, const std::vector<int32_t>& pos) {
  const int kv_dim = c.kv_heads * c.hd, qd = c.heads * c.hd, n_rep = c.heads / c.kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.hd));
  std::vector<double> out(static_cast<size_t>(c.T) * qd);
  for (int t = 0; t < c.T; ++t)
    for (int h = 0; h < c.heads; ++h) {
      const int g = h / n_rep, n = pos[t] + 1;
      std::vector<double> s(static_cast<size_t>(n));
      double mx = -1e300;
      for (int p = 0; p < n; ++p) {
        double d = 0;
        for (int i = 0; i < c.hd; ++i)
          d += static_cast<double>(q[static_cast<size_t>(t) * qd + h * c.hd + i]) *
               k[static_cast<size_t>(p) * kv_dim + g * c.hd + i];
        s[p] = d * scale;
        mx = std::max(mx, s[p]);
      }
      double z = 0;
      for (double& e : s) z += (e = std::exp(e - mx));
      for (int i = 0; i < c.hd; ++i) {
        double a = 0;
        for (int p = 0; p < n; ++p) a += s[p] * v[static_cast<size_t>(p) * kv_dim + g * c.hd + i];
        out[static_cast<size_t>(t) * qd + h * c.hd + i] = a / z;
      }
    }
  return out;
}

TEST(FlashPrefill, MatchesTheReference) {
  std::string why;
  if (paca::cuda::device_count(&why) == 0) GTEST_SKIP() << why;
  std::mt19937 rng(77);
  std::uniform_real_distribution<float> mag(0.05f, 1.0f);
  auto value = [&] { return (rng() & 1) ? mag(rng) : -mag(rng); };
  for (const Case& c : {Case{4, 1, 64, 16, 100, 37}, Case{8, 2, 128, 16, 300, 300}, Case{8, 8, 128, 7, 130, 1},
                        Case{32, 4, 64, 32, 129, 64}}) {
    const std::string what = "heads " + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " hd " +
                             std::to_string(c.hd) + " block " + std::to_string(c.block) + " P " +
                             std::to_string(c.P) + " T " + std::to_string(c.T);
    const int kv_dim = c.kv_heads * c.hd, qd = c.heads * c.hd;
    const int nb = (c.P + c.block - 1) / c.block;
    const size_t plane = static_cast<size_t>(c.block) * kv_dim;  // elements; one layer: K plane, V plane
    // K/V values, rounded to bf16 (what the cache holds), and their blocks
    std::vector<float> k(static_cast<size_t>(c.P) * kv_dim), v(k.size());
    for (float& e : k) e = paca::bf16_to_f32(paca::f32_to_bf16(value()));
    for (float& e : v) e = paca::bf16_to_f32(paca::f32_to_bf16(value()));
    std::vector<int> order(static_cast<size_t>(nb));
    for (int i = 0; i < nb; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<uint16_t> pool(static_cast<size_t>(nb) * 2 * plane, 0);
    for (int p = 0; p < c.P; ++p) {
      const size_t base = static_cast<size_t>(order[p / c.block]) * 2 * plane + static_cast<size_t>(p % c.block) * kv_dim;
      for (int i = 0; i < kv_dim; ++i) {
        pool[base + i] = paca::f32_to_bf16(k[static_cast<size_t>(p) * kv_dim + i]);
        pool[base + plane + i] = paca::f32_to_bf16(v[static_cast<size_t>(p) * kv_dim + i]);
      }
    }
    std::vector<float> q(static_cast<size_t>(c.T) * qd);
    for (float& e : q) e = value() * 3.0f;
    std::vector<int32_t> pos(static_cast<size_t>(c.T));
    for (int t = 0; t < c.T; ++t) pos[t] = c.P - c.T + t;

    Dev dpool(pool.size() * 2), dtable(static_cast<size_t>(nb) * sizeof(void*)), dq(q.size() * 4),
        dout(q.size() * 4), dpos(pos.size() * 4);
    ASSERT_TRUE(dpool.p && dtable.p && dq.p && dout.p && dpos.p) << what;
    std::vector<uint8_t*> table(static_cast<size_t>(nb));
    for (int b = 0; b < nb; ++b)
      table[b] = static_cast<uint8_t*>(dpool.p) + static_cast<size_t>(order[b]) * 2 * plane * 2;
    const std::vector<float> nan(q.size(), std::nanf(""));
    ASSERT_EQ(cudaMemcpy(dpool.p, pool.data(), pool.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dtable.p, table.data(), table.size() * sizeof(void*), cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dq.p, q.data(), q.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dout.p, nan.data(), nan.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dpos.p, pos.data(), pos.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
    paca::cuda::PagedKv kv;
    kv.blocks = static_cast<uint8_t* const*>(dtable.p);
    kv.block_tokens = c.block;
    kv.kv_dim = kv_dim;
    kv.elem_bytes = 2;
    kv.layer = 0;
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    ASSERT_EQ(paca::cuda::launch_flash_prefill(kv, static_cast<const float*>(dq.p), qd,
                                               static_cast<const int32_t*>(dpos.p), c.T, c.heads, c.kv_heads, c.hd,
                                               scale, static_cast<float*>(dout.p), qd, nullptr),
              cudaSuccess)
        << what;
    std::vector<float> got(q.size());
    ASSERT_EQ(cudaMemcpy(got.data(), dout.p, got.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess) << what;
    const std::vector<double> ref = reference(c, q, k, v, pos);
    double num = 0, den = 0;
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (!std::isfinite(got[i])) ++bad;
      num += (got[i] - ref[i]) * (got[i] - ref[i]);
      den += ref[i] * ref[i];
    }
    EXPECT_EQ(bad, 0u) << what << ": outputs not written or not finite";
    const double err = std::sqrt(num / den);
    EXPECT_LT(err, 1e-2) << what;
    std::printf("%s: rel L2 %.2e\n", what.c_str(), err);
  }
}

}  // namespace
