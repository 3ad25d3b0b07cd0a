// cpu_backend.cpp - the Backend ops on the host: a thread pool splits every
// op over independent outputs (rows of a matmul, (token, head) pairs of
// attention), so each output is computed by exactly one thread in a fixed
// order and results are identical for any thread count.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "util/error.h"
#include "util/fp8.h"
#include "util/half.h"
#include "util/mmap.h"
#include "util/thread_pool.h"

namespace paca {

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(int n_threads, const cpu::Kernels& k) : pool_(n_threads), k_(k) {}

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
    std::vector<float>& g = norm_scratch_;  // no allocation once it has grown
    g.resize(static_cast<size_t>(w.cols));
    cpu::dequant_row(w.dtype, w.data, g.data(), g.size());
    per_token(x.rows, [&](int t) {
      const float* xr = x.row(t);
      float* o = out.row(t);
      double ss = 0;
      for (int i = 0; i < x.cols; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      float inv = static_cast<float>(1.0 / std::sqrt(ss / x.cols + eps));
      for (int i = 0; i < x.cols; ++i) o[i] = xr[i] * inv * g[i];
    });
  }

  void matmul(Act x, const TensorView& w, Act out) override {
    const size_t n = static_cast<size_t>(w.cols);
    const size_t rb = row_bytes(w.dtype, n);
    const int T = x.rows;
    const bool fp8 = w.dtype == DType::f8e4m3;
    if (is_block_quant(w.dtype) || w.dtype == DType::q8_0) {  // 8-bit activations, integer dots
      matmul_blocks(x, w, out);
      return;
    }
    const float* xs = x.data;
    if (fp8 && w.act != ActQuant::none) {
      quantize_activations(x, w);
      xs = xq_.data();
    }
    // ~32 KiB of weights per chunk keeps a chunk in L1/L2 while all tokens pass over it
    const size_t grain = std::max<size_t>(1, 32768 / std::max<size_t>(rb, 1));
    if (T >= 2 && (w.dtype == DType::f32 || w.dtype == DType::f16 || w.dtype == DType::bf16)) {
      // The same bits per output as the dot below, either way. Up to 8 tokens
      // (batched decode) each stored row is read once and dotted with every
      // token; above that the widened, L2-resident tiles of the blocked GEMM
      // win (measured on the 110M shape, 2 threads: batch 4 2.1x and batch 8
      // 1.4x the tokens/s of the GEMM, batch 16 0.8x).
      constexpr int kRowBatch = 8;
      if (T > kRowBatch) {
        matmul_blocked(x, w, out);
        return;
      }
      const auto dots = w.dtype == DType::f32 ? k_.dots_f32 : w.dtype == DType::f16 ? k_.dots_f16 : k_.dots_bf16;
      const size_t ldo = static_cast<size_t>(out.cols);
      pool_.parallel_for(static_cast<size_t>(w.rows), grain, [&](size_t r0, size_t r1) {
        for (size_t r = r0; r < r1; ++r) dots(w.data + r * rb, xs, n, static_cast<size_t>(T), n, out.row(0) + r, ldo);
      });
      return;
    }
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

  // Block-quantized weights (and Q8_0): each token row is quantized to 8 bits once
  // (the kernels' quantize_acts, rows split over the threads), then each
  // thread takes chunks of weight rows and dots each row with every token
  // (cpu::BlockDots: the row unpacked once per few tokens, the activations
  // L2-resident), with the single dot's bits, so decode, prefill and
  // batches give the same bits per output.
  void matmul_blocks(Act x, const TensorView& w, Act out) {
    const size_t n = static_cast<size_t>(w.cols);
    const size_t T = static_cast<size_t>(x.rows);
    const size_t rb = row_bytes(w.dtype, n), xb = cpu::act_row_bytes(w.dtype, n);
    xq8_.resize(T * xb);
    const auto quantize = [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t)
        k_.quantize_acts(w.dtype, x.row(static_cast<int>(t)), xq8_.data() + t * xb, n);
    };
    if (T >= 8) {
      pool_.parallel_for(T, 1, quantize);
    } else {
      quantize(0, T);  // a decode step: not worth waking the pool
    }
    const cpu::BlockDots dots = cpu::block_dots(k_, w.dtype);
    const size_t grain = std::max<size_t>(1, 32768 / rb);
    const size_t ldo = static_cast<size_t>(out.cols);
    // Tokens in blocks of ~16 KiB of quantized activations (a multiple of
    // the kernels' four), so a block stays in L1 while every row of the
    // thread's range passes over it; whole prompts of activations streamed
    // from L2/L3 once per row before.
    const size_t tblock = std::max<size_t>(4, 16384 / xb / 4 * 4);
    pool_.parallel_for(static_cast<size_t>(w.rows), grain, [&](size_t r0, size_t r1) {
      for (size_t t0 = 0; t0 < T; t0 += tblock) {
        const size_t tn = std::min(tblock, T - t0);
        dots(w.data + r0 * rb, rb, r1 - r0, xq8_.data() + t0 * xb, xb, tn, n, out.row(static_cast<int>(t0)) + r0, ldo);
      }
    });
  }

  // Prefill: the activation rows are packed once (gemm_pack), then each
  // thread takes chunks of rows, widens and packs them to f32 once (~192 KiB,
  // L2-resident: each pass of the activations over a chunk then serves 64
  // rows of a 768-wide layer, 1.0-1.09x the 64 KiB chunks on a Zen 3 with
  // 512 KiB of L2) and runs the register-blocked kernel over blocks of tokens,
  // so every weight is read from memory once per call and from cache once per
  // 3 tokens.
  void matmul_blocked(Act x, const TensorView& w, Act out) {
    const size_t n = static_cast<size_t>(w.cols);
    const size_t T = static_cast<size_t>(x.rows);
    xpack_.resize(T * n);
    for (size_t t = 0; t < T; ++t) k_.gemm_pack(x.row(static_cast<int>(t)), xpack_.data() + t * n, n);
    const size_t rows_per_chunk = std::max<size_t>(4, (196608 / (n * sizeof(float))) / 4 * 4);
    constexpr size_t kTokenBlock = 48;  // 48 activation rows of a 4096-wide layer: 768 KiB
    pool_.parallel_for(static_cast<size_t>(w.rows), rows_per_chunk, [&](size_t r0, size_t r1) {
      thread_local std::vector<float> tile, wide;
      wide.resize(n);
      for (size_t c0 = r0; c0 < r1; c0 += rows_per_chunk) {
        const size_t c1 = std::min(r1, c0 + rows_per_chunk);
        tile.resize((c1 - c0) * n);
        for (size_t r = c0; r < c1; ++r) {
          const float* src = reinterpret_cast<const float*>(w.row(static_cast<int64_t>(r)));
          if (w.dtype != DType::f32) {
            (w.dtype == DType::f16 ? k_.widen_f16 : k_.widen_bf16)(w.row(static_cast<int64_t>(r)), wide.data(), n);
            src = wide.data();
          }
          k_.gemm_pack(src, tile.data() + (r - c0) * n, n);
        }
        for (size_t t0 = 0; t0 < T; t0 += kTokenBlock) {
          const size_t tn = std::min(kTokenBlock, T - t0);
          k_.gemm_f32(tile.data(), n, xpack_.data() + t0 * n, n, out.row(static_cast<int>(t0)) + c0,
                      static_cast<size_t>(out.cols), c1 - c0, tn, n);
        }
      }
    });
  }

  void rope(Act x, int n_heads, int head_dim, std::span<const int32_t> pos, std::span<const float> freqs,
            RopeLayout layout) override {
    const int half = head_dim / 2;
    per_token(x.rows, [&](int t) {
      thread_local std::vector<float> cs;
      cs.resize(static_cast<size_t>(half) * 2);
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
    });
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

  // One job per (block of up to kQueryTile query tokens, kv head): the
  // queries of the block and the query heads that share the kv head walk the
  // cache together, block by block, so each K/V block is read from memory
  // once per job and reused from L1 by every query of it (a 512-token
  // prefill read the whole cache once per token before). Every query gets
  // exactly the operations it gets alone: its scores from dot_rows_f32 over
  // its own rows (dot_rows gives a score the same bits whatever the row
  // count), its softmax, and axpy_rows_f32 over its rows in order, so a
  // token's output does not depend on which other tokens share its job.
  void attention(Act q, const KvSeq& seq, int layer, std::span<const int32_t> pos, const AttentionShape& s,
                 Act out) override {
    constexpr size_t kQueryTile = 16;
    const KvLayout& L = *seq.layout;
    const size_t n_rep = static_cast<size_t>(s.n_heads / s.n_kv_heads);
    const size_t d = static_cast<size_t>(s.head_dim), bt = static_cast<size_t>(L.block_tokens);
    const size_t ld = static_cast<size_t>(L.kv_dim);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    const size_t T = static_cast<size_t>(q.rows), tiles = (T + kQueryTile - 1) / kQueryTile;
    const size_t jobs = tiles * static_cast<size_t>(s.n_kv_heads);
    pool_.parallel_for(jobs, 1, [&](size_t j0, size_t j1) {
      thread_local std::vector<float> scores, vacc, kbuf, vbuf;
      thread_local std::vector<std::pair<size_t, size_t>> qs;  // (token, query head in the group) of a block
      thread_local std::vector<size_t> counts;
      thread_local std::vector<const float*> xs, as;
      thread_local std::vector<float*> outs;
      for (size_t j = j0; j < j1; ++j) {
        // tiles in the order 0, last, 1, last - 1, ...: a causal tile's work grows with its
        // position, and parallel_for gives each thread a contiguous range of jobs
        const size_t jt = j / static_cast<size_t>(s.n_kv_heads);
        const size_t tile = jt % 2 == 0 ? jt / 2 : tiles - 1 - jt / 2;
        const size_t t0 = tile * kQueryTile, t1 = std::min(T, t0 + kQueryTile);
        const size_t g = j % static_cast<size_t>(s.n_kv_heads);
        size_t n_max = 0;  // the longest context of the tile
        for (size_t t = t0; t < t1; ++t) n_max = std::max(n_max, static_cast<size_t>(pos[t]) + 1);
        // query (t, r): scores at [((t - t0) * n_rep + r) * n_max, + n_t), output at [((t - t0) * n_rep + r) * d, + d)
        scores.resize((t1 - t0) * n_rep * n_max);
        vacc.assign((t1 - t0) * n_rep * d, 0.0f);
        const auto score_row = [&](size_t t, size_t r) { return scores.data() + ((t - t0) * n_rep + r) * n_max; };
        const auto query = [&](size_t t, size_t r) { return q.row(static_cast<int>(t)) + (g * n_rep + r) * d; };
        // For each cache block (K: is_v 0, V: 1): the queries of the tile that see its first row, each
        // with the number of its rows it sees, then f(rows, queries, counts, cnt) with cnt the most
        // any of them sees. The kernels take all those queries at once (each block's rows loaded
        // once per few queries), with every query's own bits.
        const auto walk = [&](int is_v, std::vector<float>& buf, auto&& f) {
          for (size_t p0 = 0; p0 < n_max; p0 += bt) {
            const size_t cnt = std::min(bt, n_max - p0);
            const float* rows = kv_rows(L, seq.blocks[p0 / bt], layer, is_v, static_cast<int>(g), d, cnt, buf);
            qs.clear();
            counts.clear();
            for (size_t t = t0; t < t1; ++t) {
              const size_t n = static_cast<size_t>(pos[t]) + 1;
              if (n <= p0) continue;
              for (size_t r = 0; r < n_rep; ++r) {
                qs.push_back({t, r});
                counts.push_back(std::min(bt, n - p0));
              }
            }
            f(p0, rows, cnt);
          }
        };
        // scores past a query's own context (up to cnt) are computed too, inside its score row
        // (p0 + cnt <= n_max), and never read: its softmax and its V pass stop at its context
        walk(0, kbuf, [&](size_t p0, const float* kb, size_t cnt) {
          xs.clear();
          outs.clear();
          for (const auto& [t, r] : qs) {
            xs.push_back(query(t, r));
            outs.push_back(score_row(t, r) + p0);
          }
          k_.dot_rows_many_f32(xs.data(), outs.data(), xs.size(), kb, ld, cnt, d);
        });
        for (size_t t = t0; t < t1; ++t)
          for (size_t r = 0; r < n_rep; ++r) k_.softmax_f32(score_row(t, r), static_cast<size_t>(pos[t]) + 1, scale);
        walk(1, vbuf, [&](size_t p0, const float* vb, size_t) {
          as.clear();
          outs.clear();
          for (const auto& [t, r] : qs) {
            as.push_back(score_row(t, r) + p0);
            outs.push_back(vacc.data() + ((t - t0) * n_rep + r) * d);
          }
          k_.axpy_rows_many_f32(as.data(), outs.data(), counts.data(), as.size(), vb, ld, d);
        });
        for (size_t t = t0; t < t1; ++t)
          std::memcpy(out.row(static_cast<int>(t)) + g * n_rep * d, vacc.data() + (t - t0) * n_rep * d,
                      n_rep * d * sizeof(float));
      }
    });
  }

  void swiglu(Act gate, Act up, Act out) override {
    per_token(gate.rows, [&](int t) { k_.swiglu_f32(gate.row(t), up.row(t), out.row(t), static_cast<size_t>(gate.cols)); });
  }

  void add(Act x, Act y) override {
    size_t n = static_cast<size_t>(x.rows) * x.cols;
    for (size_t i = 0; i < n; ++i) x.data[i] += y.data[i];
  }

  void to_host(const float* src, float* dst, size_t n) override { std::memcpy(dst, src, n * sizeof(float)); }
  void top_k(const float* logits, size_t n, size_t k, std::vector<Candidate>& out, uint64_t* mass) override {
    const std::span<const float> l(logits, n);  // host memory: read in place
    select_top_k(l, k, out);
    if (mass != nullptr) *mass = out.empty() ? 0 : logit_mass(l, out[0].logit);
  }

  DeviceMemory memory() const override {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    DeviceMemory m;
    m.total = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
    m.free = available_memory();
    return m;
  }

 private:
  // f(t) for every token row t < rows: over the pool for a prefill or a
  // batch, on the calling thread for a few rows (a decode step is not worth
  // waking the pool). Each row is computed by one thread in one way, so the
  // split does not change any bits.
  template <typename F>
  void per_token(int rows, F&& f) {
    const auto run = [&](size_t t0, size_t t1) {
      for (size_t t = t0; t < t1; ++t) f(static_cast<int>(t));
    };
    if (rows >= 8)
      pool_.parallel_for(static_cast<size_t>(rows), 1, run);
    else
      run(0, static_cast<size_t>(rows));
  }

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

  // The first `cnt` rows of kv head g in one block (K when is_v is 0) as f32
  // rows kv_dim floats apart: a pointer into the block for an f32 cache, else
  // the rows widened into buf.
  static const float* kv_rows(const KvLayout& L, const uint8_t* block, int layer, int is_v, int g, size_t d, size_t cnt,
                              std::vector<float>& buf) {
    const uint8_t* base = block + L.offset(layer, is_v, 0) + static_cast<size_t>(g) * d * L.elem_bytes();
    if (L.dtype == DType::f32) return reinterpret_cast<const float*>(base);
    buf.resize(cnt * static_cast<size_t>(L.kv_dim));
    for (size_t p = 0; p < cnt; ++p)
      cpu::dequant_row(L.dtype, base + p * static_cast<size_t>(L.kv_dim) * 2, buf.data() + p * L.kv_dim, d);
    return buf.data();
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
  std::vector<float> norm_scratch_;
  std::vector<float> xpack_;  // activations packed for gemm_f32
  std::vector<uint8_t> xq8_;  // activations quantized for the block dots (cpu::ActQ32 / ActQ256 rows)
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads, const std::string& cpu_isa) {
  return std::make_unique<CpuBackend>(n_threads, cpu::kernels_for(cpu_isa));
}

}  // namespace paca
