// cpu_backend.cpp - the Backend ops on the host: a thread pool splits every
// op over independent outputs (rows of a matmul, (token, head) pairs of
// attention), so each output is computed by exactly one thread in a fixed
// order and results are identical for any thread count.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "util/error.h"
#include "util/fp8.h"
#include "util/half.h"
#include "util/thread_pool.h"

namespace paca {

namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads) : pool_(n_threads), k_(cpu::cpu_kernels()) {}

  std::string name() const override { return std::string("cpu (") + k_.isa + ", " + std::to_string(pool_.size()) + " threads)"; }

  void* alloc(size_t bytes) override {
    void* p = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
    if (p == nullptr) fail(Status::out_of_memory, "cannot allocate {} bytes", bytes);
    std::memset(p, 0, bytes);
    return p;
  }
  void release(void* p) override { std::free(p); }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);
  }

  void embed(const TensorView& table, std::span<const int32_t> tokens, Act out) override {
    for (size_t t = 0; t < tokens.size(); ++t)
      cpu::dequant_row(table.dtype, table.row(tokens[t]), out.row(static_cast<int>(t)), static_cast<size_t>(table.cols));
  }

  void rmsnorm(Act x, const TensorView& w, float eps, Act out) override {
    std::vector<float> g(static_cast<size_t>(w.cols));
    cpu::dequant_row(w.dtype, w.data, g.data(), g.size());
    for (int t = 0; t < x.rows; ++t) {
      const float* xr = x.row(t);
      float* o = out.row(t);
      double ss = 0;
      for (int i = 0; i < x.cols; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      float inv = static_cast<float>(1.0 / std::sqrt(ss / x.cols + eps));
      for (int i = 0; i < x.cols; ++i) o[i] = xr[i] * inv * g[i];
    }
  }

  void matmul(Act x, const TensorView& w, Act out) override {
    const size_t n = static_cast<size_t>(w.cols);
    const size_t rb = row_bytes(w.dtype, n);
    const int T = x.rows;
    const bool fp8 = w.dtype == DType::f8e4m3;
    const float* xs = x.data;
    if (fp8 && w.act != ActQuant::none) {
      quantize_activations(x, w);
      xs = xq_.data();
    }
    // ~32 KiB of weights per chunk keeps a chunk in L1/L2 while all tokens pass over it
    size_t grain = std::max<size_t>(1, 32768 / std::max<size_t>(rb, 1));
    pool_.parallel_for(static_cast<size_t>(w.rows), grain, [&](size_t r0, size_t r1) {
      for (int t = 0; t < T; ++t) {
        const float* xr = xs + static_cast<size_t>(t) * n;
        float* o = out.row(t);
        for (size_t r = r0; r < r1; ++r) o[r] = cpu::dot_row(k_, w.dtype, w.data + r * rb, xr, n);
        if (fp8) {
          const float xscale = w.act == ActQuant::none ? 1.0f : xq_scale_[t];
          for (size_t r = r0; r < r1; ++r) o[r] = o[r] * xscale * w.scales[r];
        }
      }
    });
  }

  void rope(Act x, int n_heads, int head_dim, std::span<const int32_t> pos, std::span<const float> freqs,
            RopeLayout layout) override {
    const int half = head_dim / 2;
    std::vector<float> cs(static_cast<size_t>(half) * 2);
    for (int t = 0; t < x.rows; ++t) {
      for (int i = 0; i < half; ++i) {
        float a = static_cast<float>(pos[t]) * freqs[i];
        cs[2 * i] = std::cos(a);
        cs[2 * i + 1] = std::sin(a);
      }
      for (int h = 0; h < n_heads; ++h) {
        float* v = x.row(t) + static_cast<size_t>(h) * head_dim;
        for (int i = 0; i < half; ++i) {
          int a = layout == RopeLayout::interleaved ? 2 * i : i;
          int b = layout == RopeLayout::interleaved ? 2 * i + 1 : i + half;
          float c = cs[2 * i], s = cs[2 * i + 1];
          float x0 = v[a], x1 = v[b];
          v[a] = x0 * c - x1 * s;
          v[b] = x0 * s + x1 * c;
        }
      }
    }
  }

  void kv_write(const KvSeq& seq, int layer, Act k, Act v, std::span<const int32_t> pos) override {
    const KvLayout& L = *seq.layout;
    for (int t = 0; t < k.rows; ++t) {
      uint8_t* block = seq.blocks[pos[t] / L.block_tokens];
      int slot = pos[t] % L.block_tokens;
      store(L, block + L.offset(layer, 0, slot), k.row(t));
      store(L, block + L.offset(layer, 1, slot), v.row(t));
    }
  }

  void attention(Act q, const KvSeq& seq, int layer, std::span<const int32_t> pos, const AttentionShape& s,
                 Act out) override {
    const KvLayout& L = *seq.layout;
    const int n_rep = s.n_heads / s.n_kv_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    const size_t jobs = static_cast<size_t>(q.rows) * s.n_heads;
    pool_.parallel_for(jobs, 1, [&](size_t j0, size_t j1) {
      thread_local std::vector<float> scores, krow, vacc;
      krow.resize(s.head_dim);
      vacc.resize(s.head_dim);
      for (size_t j = j0; j < j1; ++j) {
        int t = static_cast<int>(j / s.n_heads), h = static_cast<int>(j % s.n_heads);
        int kvh = h / n_rep;
        const float* qh = q.row(t) + static_cast<size_t>(h) * s.head_dim;
        int n = pos[t] + 1;
        if (scores.size() < static_cast<size_t>(n)) scores.resize(n);
        float mx = -INFINITY;
        for (int p = 0; p < n; ++p) {
          const uint8_t* kp = seq.blocks[p / L.block_tokens] + L.offset(layer, 0, p % L.block_tokens) +
                              static_cast<size_t>(kvh) * s.head_dim * L.elem_bytes();
          float d = L.dtype == DType::f32 ? k_.dot_f32(kp, qh, s.head_dim) : k_.dot_bf16(kp, qh, s.head_dim);
          scores[p] = d * scale;
          mx = std::max(mx, scores[p]);
        }
        double sum = 0;
        for (int p = 0; p < n; ++p) {
          scores[p] = std::exp(scores[p] - mx);
          sum += scores[p];
        }
        float inv = static_cast<float>(1.0 / sum);
        std::fill(vacc.begin(), vacc.end(), 0.0f);
        for (int p = 0; p < n; ++p) {
          const uint8_t* vp = seq.blocks[p / L.block_tokens] + L.offset(layer, 1, p % L.block_tokens) +
                              static_cast<size_t>(kvh) * s.head_dim * L.elem_bytes();
          float w = scores[p] * inv;
          if (L.dtype == DType::f32) {
            const float* vf = reinterpret_cast<const float*>(vp);
            for (int i = 0; i < s.head_dim; ++i) vacc[i] += w * vf[i];
          } else {
            for (int i = 0; i < s.head_dim; ++i) {
              uint16_t b;
              std::memcpy(&b, vp + 2 * i, 2);
              vacc[i] += w * bf16_to_f32(b);
            }
          }
        }
        std::memcpy(out.row(t) + static_cast<size_t>(h) * s.head_dim, vacc.data(), s.head_dim * sizeof(float));
      }
    });
  }

  void swiglu(Act gate, Act up, Act out) override {
    size_t n = static_cast<size_t>(gate.rows) * gate.cols;
    for (size_t i = 0; i < n; ++i) {
      float g = gate.data[i];
      out.data[i] = g / (1.0f + std::exp(-g)) * up.data[i];
    }
  }

  void add(Act x, Act y) override {
    size_t n = static_cast<size_t>(x.rows) * x.cols;
    for (size_t i = 0; i < n; ++i) x.data[i] += y.data[i];
  }

  void to_host(const float* src, float* dst, size_t n) override { std::memcpy(dst, src, n * sizeof(float)); }

 private:
  static void store(const KvLayout& L, uint8_t* dst, const float* src) {
    if (L.dtype == DType::f32) {
      std::memcpy(dst, src, static_cast<size_t>(L.kv_dim) * 4);
    } else {
      for (int i = 0; i < L.kv_dim; ++i) {
        uint16_t b = f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &b, 2);
      }
    }
  }

  // FP8 w8a8: rounds each token row of x to E4M3 after dividing by its scale
  // (per token: min(max|x|, ub) / 448, floored at 1e-12; or the static input
  // scale). xq_ holds the rounded values as floats, xq_scale_ the scales.
  void quantize_activations(Act x, const TensorView& w) {
    xq_.resize(static_cast<size_t>(x.rows) * x.cols);
    xq_scale_.resize(static_cast<size_t>(x.rows));
    const float* lut = cpu::e4m3_table();
    for (int t = 0; t < x.rows; ++t) {
      const float* xr = x.row(t);
      float s;
      if (w.act == ActQuant::static_tensor) {
        s = w.act_scale;
      } else {
        float mx = 0;
        for (int i = 0; i < x.cols; ++i) mx = std::max(mx, std::fabs(xr[i]));
        s = std::max(std::min(mx, w.act_ub), 1e-12f) / kE4M3Max;
      }
      float* q = xq_.data() + static_cast<size_t>(t) * x.cols;
      for (int i = 0; i < x.cols; ++i) q[i] = lut[f32_to_e4m3(xr[i] / s)];
      xq_scale_[t] = s;
    }
  }

  ThreadPool pool_;
  const cpu::Kernels& k_;
  std::vector<float> xq_, xq_scale_;  // FP8 activation scratch (ops run under the model's compute lock)
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

}  // namespace paca
