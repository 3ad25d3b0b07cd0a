// cuda_backend.cpp - the Backend ops on one CUDA device (see backend.h).
//
//   weights      uploaded once (upload_weights) through pinned staging
//                buffers: matrices as bf16 [rows, cols], vectors (norm
//                weights) as f32; found again by the host view's data pointer
//   activations  f32 [tokens, features] in device memory from alloc()
//   KV cache     the paged blocks of KvLayout, f32 or bf16, in device memory
//   matmul       GEMV kernel (bf16 weights, f32 x) for <= gemv_max_tokens
//                tokens; else x -> bf16 and a cuBLASLt BF16 GEMM with f32
//                accumulation and f32 output
//   host arrays  token ids, positions, block tables and RoPE frequencies go
//                through a pinned staging ring copied on the stream; a
//                repeated upload within a step (positions and block tables
//                are the same for every layer) reuses its device copy
//
// Everything is enqueued on one stream; the only host synchronisations are
// to_host, copy, a full staging ring and the weight upload, so a decode step
// runs from embed to the logits without waiting on the device.
#include "cuda_backend.h"

#include <cuda_runtime_api.h>  // cudaMalloc, cudaMemcpyAsync, streams, events

#include <algorithm>      // std::min, std::max, std::any_of
#include <array>          // std::array
#include <cmath>          // std::sqrt
#include <cstring>        // std::memcpy, std::memcmp
#include <mutex>          // std::mutex
#include <string>         // std::string
#include <functional>     // std::hash
#include <unordered_map>  // std::unordered_map
#include <vector>         // std::vector

#include "backend/cpu/kernels.h"  // cpu::dequant_row
#include "cublaslt.h"             // LtGemm
#include "device.h"               // device_count, describe_device
#include "kernels/kernels.h"      // launch_*
#include "util/error.h"           // fail, Status
#include "util/half.h"            // f32_to_bf16

namespace paca::cuda {

int attention_splits_for(int tokens, int n_heads, int max_positions, int sm_count) {
  const long rows = static_cast<long>(tokens) * n_heads;
  const long want = 2L * std::max(sm_count, 1);
  if (rows >= want || max_positions <= 256) return 1;
  long splits = (want + rows - 1) / std::max(rows, 1L);
  splits = std::min<long>(splits, std::max(1, max_positions / 128));
  return static_cast<int>(std::clamp<long>(splits, 1, 32));
}

MatmulPath matmul_path(int tokens, int gemv_max_tokens, bool cublaslt_available) {
  return tokens <= gemv_max_tokens || !cublaslt_available ? MatmulPath::gemv : MatmulPath::cublaslt;
}

size_t device_weight_bytes(const TensorView& w) {
  const size_t n = static_cast<size_t>(w.rows) * static_cast<size_t>(w.cols);
  return w.rows > 1 ? n * 2 : n * 4;
}

namespace {

[[noreturn]] void cuda_fail(cudaError_t e, const char* what) {
  (void)cudaGetLastError();
  fail(e == cudaErrorMemoryAllocation ? Status::out_of_memory : Status::device, "CUDA {} failed: {}: {}", what,
       cudaGetErrorName(e), cudaGetErrorString(e));
}

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) cuda_fail(e, what);
}

// A weight in device memory.
struct DevWeight {
  void* data = nullptr;
  bool bf16 = true;  // else f32
  int64_t rows = 0, cols = 0;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& opt) : opt_(opt), dev_(opt.device) {
    std::string why;
    const int n = device_count(&why);
    if (n == 0) fail(Status::device, "device 'cuda:{}' is unavailable: {}", dev_, why);
    if (dev_ < 0 || dev_ >= n)
      fail(Status::device, "device 'cuda:{}' is unavailable: this machine has {} CUDA device{} (cuda:0..cuda:{})", dev_, n,
           n == 1 ? "" : "s", n - 1);
    try {
      ck(cudaSetDevice(dev_), "cudaSetDevice");
      ck(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, dev_), "cudaDeviceGetAttribute");
      ck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
      if (opt_.use_cublaslt) {
        lt_ = std::make_unique<LtGemm>();
        if (!lt_->available()) lt_note_ = lt_->why();
      } else {
        lt_note_ = "disabled";
      }
      grow_staging(size_t{1} << 20);
      desc_ = describe_device(dev_);
    } catch (...) {
      destroy();
      throw;
    }
  }

  ~CudaBackend() override { destroy(); }

  std::string name() const override {
    std::string s = "cuda:" + std::to_string(dev_) + " (" + desc_ + ", bf16 weights";
    if (lt_ == nullptr || !lt_->available())
      s += ", no cuBLASLt: " + lt_note_ + ")";
    else if (lt_fallbacks_ > 0)
      s += ", cuBLASLt; " + std::to_string(lt_fallbacks_) + " GEMMs fell back to the GEMV kernel: " + lt_note_ + ")";
    else
      s += ", cuBLASLt)";
    return s;
  }

  void* alloc(size_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 1));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      fail(e == cudaErrorMemoryAllocation ? Status::out_of_memory : Status::device,
           "cannot allocate {} bytes on cuda:{}: {}", bytes, dev_, cudaGetErrorString(e));
    }
    ck(cudaMemsetAsync(p, 0, bytes, stream_), "cudaMemsetAsync");
    return p;
  }

  // Never throws (called from destructors); cudaFree waits for the device.
  void release(void* p) override {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    cudaSetDevice(dev_);
    cudaFree(p);
    (void)cudaGetLastError();
  }

  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), "cudaMemcpyAsync (copy)");
    sync("copy");
  }

  void embed(const TensorView& table, std::span<const int32_t> tokens, Act out) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    const DevWeight& w = weight(table);
    check(w.bf16 && w.cols == out.cols && static_cast<int>(tokens.size()) <= out.rows, Status::internal,
          "embed: table {} [{}, {}] does not fit the output [{}, {}]", table.name, w.rows, w.cols, out.rows, out.cols);
    const auto* ids = static_cast<const int32_t*>(stage1(tokens.data(), tokens.size_bytes()));
    ck(launch_embed_bf16(static_cast<const uint16_t*>(w.data), static_cast<int>(w.rows), static_cast<int>(w.cols), ids,
                         static_cast<int>(tokens.size()), out.data, stream_),
       "embed kernel");
  }

  void rmsnorm(Act x, const TensorView& wv, float eps, Act out) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    const DevWeight& w = weight(wv);
    check(static_cast<int64_t>(w.rows) * w.cols == x.cols && out.cols == x.cols && out.rows >= x.rows,
          Status::internal, "rmsnorm: weight {} has {} elements for rows of {}", wv.name, w.rows * w.cols, x.cols);
    ck(launch_rmsnorm(x.data, w.data, w.bf16 ? 1 : 0, eps, x.rows, x.cols, out.data, stream_), "rmsnorm kernel");
  }

  void matmul(Act x, const TensorView& wv, Act out) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    const DevWeight& w = weight(wv);
    check(w.bf16 && w.cols == x.cols && w.rows <= out.cols && out.rows >= x.rows, Status::internal,
          "matmul: weight {} [{}, {}] against x [{}, {}] -> out [{}, {}]", wv.name, w.rows, w.cols, x.rows, x.cols,
          out.rows, out.cols);
    const int T = x.rows, R = static_cast<int>(w.rows), C = static_cast<int>(w.cols);
    const auto* W = static_cast<const uint16_t*>(w.data);
    const bool lt_ok = lt_ != nullptr && lt_->available();
    if (matmul_path(T, opt_.gemv_max_tokens, lt_ok) == MatmulPath::cublaslt) {
      const size_t n = static_cast<size_t>(T) * C;
      grow(xbf_, xbf_bytes_, n * 2);
      grow(lt_ws_, lt_ws_bytes_, kLtWorkspace);
      ck(launch_to_bf16(x.data, n, static_cast<uint16_t*>(xbf_), stream_), "to_bf16 kernel");
      std::string err;
      if (lt_->matmul(W, R, C, static_cast<const uint16_t*>(xbf_), T, out.data, out.cols, lt_ws_, lt_ws_bytes_, stream_,
                      &err))
        return;
      lt_note_ = err;  // this shape falls back to the GEMV kernel (lt_fallbacks_ counts them)
      ++lt_fallbacks_;
    }
    ck(launch_gemv_bf16(W, R, C, x.data, x.cols, T, out.data, out.cols, stream_), "gemv kernel");
  }

  void rope(Act x, int n_heads, int head_dim, std::span<const int32_t> pos, std::span<const float> freqs,
            RopeLayout layout) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    check(static_cast<int>(pos.size()) >= x.rows && static_cast<int>(freqs.size()) >= head_dim / 2 &&
              n_heads * head_dim <= x.cols,
          Status::internal, "rope: {} heads of {} over rows of {}", n_heads, head_dim, x.cols);
    const auto dev = stage<2>({HostArray{pos.data(), static_cast<size_t>(x.rows) * sizeof(int32_t)},
                               HostArray{freqs.data(), static_cast<size_t>(head_dim / 2) * sizeof(float)}});
    const auto* p = static_cast<const int32_t*>(dev[0]);
    const auto* f = static_cast<const float*>(dev[1]);
    ck(launch_rope(x.data, x.rows, x.cols, n_heads, head_dim, p, f, layout == RopeLayout::half ? 1 : 0, stream_),
       "rope kernel");
  }

  void kv_write(const KvSeq& seq, int layer, Act k, Act v, std::span<const int32_t> pos) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    const KvLayout& L = *seq.layout;
    check(k.cols >= L.kv_dim && v.cols >= L.kv_dim && static_cast<int>(pos.size()) >= k.rows, Status::internal,
          "kv_write: rows of {} for a kv_dim of {}", k.cols, L.kv_dim);
    for (int t = 0; t < k.rows; ++t)
      check(pos[t] >= 0 && static_cast<size_t>(pos[t] / L.block_tokens) < seq.blocks.size(), Status::internal,
            "kv_write: position {} has no block ({} blocks)", pos[t], seq.blocks.size());
    const auto dev = stage<2>({HostArray{seq.blocks.data(), seq.blocks.size_bytes()},
                               HostArray{pos.data(), static_cast<size_t>(k.rows) * sizeof(int32_t)}});
    const PagedKv kv = paged(seq, layer, dev[0]);
    const auto* p = static_cast<const int32_t*>(dev[1]);
    ck(launch_kv_write(kv, k.data, k.cols, v.data, v.cols, p, k.rows, stream_), "kv_write kernel");
  }

  void attention(Act q, const KvSeq& seq, int layer, std::span<const int32_t> pos, const AttentionShape& s,
                 Act out) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    const KvLayout& L = *seq.layout;
    int max_pos = 0;
    for (int t = 0; t < q.rows; ++t) {
      check(pos[t] >= 0 && static_cast<size_t>(pos[t] / L.block_tokens) < seq.blocks.size(), Status::internal,
            "attention: position {} has no block ({} blocks)", pos[t], seq.blocks.size());
      max_pos = std::max(max_pos, pos[t] + 1);
    }
    const int splits = opt_.attention_splits > 0 ? opt_.attention_splits
                                                 : attention_splits_for(q.rows, s.n_heads, max_pos, sm_count_);
    const size_t scratch = attention_scratch_floats(q.rows, s.n_heads, s.head_dim, splits);
    if (scratch > 0) grow(att_scratch_, att_scratch_bytes_, scratch * sizeof(float));
    const auto dev = stage<2>({HostArray{seq.blocks.data(), seq.blocks.size_bytes()},
                               HostArray{pos.data(), static_cast<size_t>(q.rows) * sizeof(int32_t)}});
    const PagedKv kv = paged(seq, layer, dev[0]);
    const auto* p = static_cast<const int32_t*>(dev[1]);
    ck(launch_attention(kv, q.data, q.cols, p, q.rows, s.n_heads, s.n_kv_heads, s.head_dim,
                        1.0f / std::sqrt(static_cast<float>(s.head_dim)), splits, static_cast<float*>(att_scratch_),
                        out.data, out.cols, stream_),
       "attention kernel");
  }

  void swiglu(Act gate, Act up, Act out) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    ck(launch_swiglu(gate.data, up.data, static_cast<size_t>(gate.rows) * gate.cols, out.data, stream_),
       "swiglu kernel");
  }

  void add(Act x, Act y) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    ck(launch_add(x.data, y.data, static_cast<size_t>(x.rows) * x.cols, stream_), "add kernel");
  }

  void to_host(const float* src, float* dst, size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    if (n > 0) ck(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (to_host)");
    sync("to_host");
  }

  bool weights_on_host() const override { return false; }

  cudaStream_t stream() const { return stream_; }
  int device() const { return dev_; }

  void upload_weights(std::span<const TensorView* const> views, const std::function<bool(float)>& progress) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    std::vector<const TensorView*> todo;
    uint64_t total = 0;
    for (const TensorView* v : views) {
      if (v == nullptr || v->data == nullptr || v->rows <= 0 || v->cols <= 0 || weights_.count(key_of(*v)) != 0) continue;
      bool dup = false;
      for (const TensorView* u : todo) dup = dup || key_of(*u) == key_of(*v);
      if (dup) continue;
      todo.push_back(v);
      total += device_weight_bytes(*v);
    }
    // two pinned buffers: one is filled while the other's copy runs
    constexpr size_t kStage = size_t{32} << 20;
    void* host[2] = {nullptr, nullptr};
    cudaEvent_t done[2] = {nullptr, nullptr};
    auto cleanup = [&] {
      cudaStreamSynchronize(stream_);
      for (int b = 0; b < 2; ++b) {
        if (host[b] != nullptr) cudaFreeHost(host[b]);
        if (done[b] != nullptr) cudaEventDestroy(done[b]);
      }
      (void)cudaGetLastError();
    };
    try {
      for (int b = 0; b < 2; ++b) {
        ck(cudaMallocHost(&host[b], kStage), "cudaMallocHost (weight staging)");
        ck(cudaEventCreateWithFlags(&done[b], cudaEventDisableTiming), "cudaEventCreate");
      }
      uint64_t sent = 0, next_report = 0;
      int buf = 0;
      std::vector<float> row;
      for (const TensorView* v : todo) {
        DevWeight w;
        w.rows = v->rows;
        w.cols = v->cols;
        w.bf16 = v->rows > 1;
        const size_t bytes = device_weight_bytes(*v);
        const cudaError_t e = cudaMalloc(&w.data, bytes);
        if (e != cudaSuccess) {
          (void)cudaGetLastError();
          fail(Status::out_of_memory, "cannot allocate {} bytes on cuda:{} for weight {}: {} ({} of {} bytes uploaded)",
               bytes, dev_, v->name, cudaGetErrorString(e), sent, total);
        }
        weights_.emplace(key_of(*v), w);
        const size_t cols = static_cast<size_t>(v->cols);
        const size_t out_row = cols * (w.bf16 ? 2 : 4);
        const size_t rows_per_chunk = std::max<size_t>(1, kStage / out_row);
        check(out_row <= kStage, Status::unsupported, "weight {} has rows of {} bytes (at most {})", v->name, out_row,
              kStage);
        row.resize(cols);
        for (int64_t r0 = 0; r0 < v->rows; r0 += static_cast<int64_t>(rows_per_chunk)) {
          const int64_t r1 = std::min<int64_t>(v->rows, r0 + static_cast<int64_t>(rows_per_chunk));
          ck(cudaEventSynchronize(done[buf]), "cudaEventSynchronize (weight staging)");
          auto* dst = static_cast<uint8_t*>(host[buf]);
          if (v->dtype == DType::bf16 && w.bf16) {
            std::memcpy(dst, v->row(r0), static_cast<size_t>(r1 - r0) * out_row);
          } else {
            for (int64_t r = r0; r < r1; ++r) {
              cpu::dequant_row(v->dtype, v->row(r), row.data(), cols);
              if (v->dtype == DType::f8e4m3 && v->scales != nullptr)
                for (float& x : row) x *= v->scales[r];
              uint8_t* o = dst + static_cast<size_t>(r - r0) * out_row;
              if (w.bf16) {
                for (size_t c = 0; c < cols; ++c) {
                  const uint16_t b = f32_to_bf16(row[c]);
                  std::memcpy(o + 2 * c, &b, 2);
                }
              } else {
                std::memcpy(o, row.data(), cols * 4);
              }
            }
          }
          const size_t n = static_cast<size_t>(r1 - r0) * out_row;
          ck(cudaMemcpyAsync(static_cast<uint8_t*>(w.data) + static_cast<size_t>(r0) * out_row, dst, n,
                             cudaMemcpyHostToDevice, stream_),
             "cudaMemcpyAsync (weights)");
          ck(cudaEventRecord(done[buf], stream_), "cudaEventRecord");
          buf ^= 1;
          sent += n;
          if (progress && (sent >= next_report || sent == total)) {
            if (!progress(total ? static_cast<float>(static_cast<double>(sent) / static_cast<double>(total)) : 1.0f))
              fail(Status::cancelled, "model load cancelled by the progress callback");
            next_report = sent + total / 100;
          }
        }
      }
      sync("weight upload");
    } catch (...) {
      cleanup();
      throw;
    }
    cleanup();
  }

 private:
  static constexpr size_t kLtWorkspace = size_t{32} << 20;

  void set_device() { ck(cudaSetDevice(dev_), "cudaSetDevice"); }

  // Frees everything (after the queued work); never throws.
  void destroy() noexcept {
    cudaSetDevice(dev_);
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    for (auto& [k, w] : weights_) cudaFree(w.data);
    weights_.clear();
    lt_.reset();
    for (void* p : {lt_ws_, xbf_, att_scratch_, stage_dev_}) cudaFree(p);
    if (stage_host_ != nullptr) cudaFreeHost(stage_host_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    lt_ws_ = xbf_ = att_scratch_ = stage_dev_ = stage_host_ = nullptr;
    stream_ = nullptr;
    (void)cudaGetLastError();
  }

  // Waits for the stream; the staging ring is free again afterwards.
  void sync(const char* what) {
    const cudaError_t e = cudaStreamSynchronize(stream_);
    if (e != cudaSuccess) cuda_fail(e, what);
    stage_used_ = 0;
    memo_.clear();
  }

  const DevWeight& weight(const TensorView& v) {
    auto it = weights_.find(key_of(v));
    if (it == weights_.end())
      fail(Status::internal, "weight {} was not uploaded to cuda:{} (upload_weights was not called for it)", v.name, dev_);
    return it->second;
  }

  static PagedKv paged(const KvSeq& seq, int layer, const void* dev_blocks) {
    const KvLayout& L = *seq.layout;
    PagedKv kv;
    kv.blocks = static_cast<uint8_t* const*>(dev_blocks);
    kv.block_tokens = L.block_tokens;
    kv.kv_dim = L.kv_dim;
    kv.elem_bytes = static_cast<int>(L.elem_bytes());
    kv.layer = layer;
    return kv;
  }

  // Grows a device scratch buffer to at least `bytes` (cudaFree waits for
  // the work that still reads the old one).
  void grow(void*& p, size_t& have, size_t bytes) {
    if (bytes <= have) return;
    cudaFree(p);
    p = nullptr;
    have = 0;
    ck(cudaMalloc(&p, bytes), "cudaMalloc (scratch)");
    have = bytes;
  }

  void grow_staging(size_t bytes) {
    if (stage_host_ != nullptr) {
      sync("staging");
      cudaFreeHost(stage_host_);
      cudaFree(stage_dev_);
      stage_host_ = nullptr;
      stage_dev_ = nullptr;
      stage_cap_ = 0;
    }
    ck(cudaMallocHost(&stage_host_, bytes), "cudaMallocHost (staging)");
    ck(cudaMalloc(&stage_dev_, bytes), "cudaMalloc (staging)");
    stage_cap_ = bytes;
  }

  // Device copies of a few host arrays (each {pointer, bytes}), enqueued on
  // the stream; valid until the next synchronisation. All of one call's
  // arrays are placed before any is copied, so a full ring (which waits for
  // the stream and starts over) never overwrites an array of the same call.
  struct HostArray {
    const void* src;
    size_t bytes;
  };
  template <size_t N>
  std::array<const void*, N> stage(const std::array<HostArray, N>& in) {
    std::array<const void*, N> out{};
    std::array<bool, N> hit{};
    size_t need = 0;
    for (size_t i = 0; i < N; ++i) {
      for (const Memo& m : memo_)
        if (m.bytes.size() == in[i].bytes && std::memcmp(m.bytes.data(), in[i].src, in[i].bytes) == 0) {
          out[i] = static_cast<uint8_t*>(stage_dev_) + m.offset;
          hit[i] = true;
        }
      if (!hit[i]) need += (in[i].bytes + 255) / 256 * 256;
    }
    size_t off = (stage_used_ + 255) / 256 * 256;
    if (off + need > stage_cap_) {
      if (need > stage_cap_) grow_staging(std::max(need, 2 * stage_cap_));
      sync("staging");
      off = 0;
      if (std::any_of(hit.begin(), hit.end(), [](bool h) { return h; })) {
        // the memo went with the ring: place every array anew
        need = 0;
        for (size_t i = 0; i < N; ++i) {
          hit[i] = false;
          need += (in[i].bytes + 255) / 256 * 256;
        }
        if (need > stage_cap_) grow_staging(std::max(need, 2 * stage_cap_));
      }
    }
    for (size_t i = 0; i < N; ++i) {
      if (hit[i]) continue;
      const size_t bytes = in[i].bytes;
      out[i] = static_cast<uint8_t*>(stage_dev_) + off;
      if (bytes == 0) continue;
      std::memcpy(static_cast<uint8_t*>(stage_host_) + off, in[i].src, bytes);
      ck(cudaMemcpyAsync(static_cast<uint8_t*>(stage_dev_) + off, static_cast<uint8_t*>(stage_host_) + off, bytes,
                         cudaMemcpyHostToDevice, stream_),
         "cudaMemcpyAsync (staging)");
      if (bytes <= 16384) {  // positions, RoPE frequencies, block tables up to 2048 blocks
        if (memo_.size() >= 8) memo_.erase(memo_.begin());
        const auto* b = static_cast<const uint8_t*>(in[i].src);
        memo_.push_back(Memo{std::vector<uint8_t>(b, b + bytes), off});
      }
      off += (bytes + 255) / 256 * 256;
      stage_used_ = off;
    }
    return out;
  }
  const void* stage1(const void* src, size_t bytes) { return stage<1>({HostArray{src, bytes}})[0]; }

  struct Memo {
    std::vector<uint8_t> bytes;
    size_t offset;
  };

  CudaBackendOptions opt_;
  int dev_ = 0;
  int sm_count_ = 1;
  std::string desc_;
  cudaStream_t stream_ = nullptr;
  std::mutex mu_;
  std::unique_ptr<LtGemm> lt_;
  size_t lt_fallbacks_ = 0;
  std::string lt_note_;
  // Keyed by the host view's data pointer and shape: a tensor-parallel
  // LM-head slice of tied embeddings starts where the embedding does (rank
  // 0) but has fewer rows, so it is a weight of its own.
  struct WeightKey {
    const uint8_t* data;
    int64_t rows, cols;
    bool operator==(const WeightKey&) const = default;
  };
  struct WeightKeyHash {
    size_t operator()(const WeightKey& k) const {
      return std::hash<const uint8_t*>()(k.data) ^ (std::hash<int64_t>()(k.rows) * 31) ^ std::hash<int64_t>()(k.cols);
    }
  };
  static WeightKey key_of(const TensorView& v) { return WeightKey{v.data, v.rows, v.cols}; }
  std::unordered_map<WeightKey, DevWeight, WeightKeyHash> weights_;
  void* lt_ws_ = nullptr;
  size_t lt_ws_bytes_ = 0;
  void* xbf_ = nullptr;
  size_t xbf_bytes_ = 0;
  void* att_scratch_ = nullptr;
  size_t att_scratch_bytes_ = 0;
  void* stage_host_ = nullptr;
  void* stage_dev_ = nullptr;
  size_t stage_cap_ = 0, stage_used_ = 0;
  std::vector<Memo> memo_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& opt) { return std::make_unique<CudaBackend>(opt); }

bool cuda_stream_of(Backend& backend, cudaStream_t* stream, int* device) {
  auto* cb = dynamic_cast<CudaBackend*>(&backend);
  if (cb == nullptr) return false;
  *stream = cb->stream();
  *device = cb->device();
  return true;
}

}  // namespace paca::cuda

namespace paca {

std::unique_ptr<Backend> make_cuda_backend(int index) {
  cuda::CudaBackendOptions opt;
  opt.device = index;
  return cuda::make_cuda_backend(opt);
}

}  // namespace paca
