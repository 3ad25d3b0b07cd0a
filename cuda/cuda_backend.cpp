// cuda_backend.cpp - the Backend ops on one CUDA device (see backend.h).
//
//   weights      uploaded once (upload_weights) through pinned staging
//                buffers: matrices as bf16 [rows, cols], vectors (norm
//                weights) as f32, FP8 weights as their E4M3 codes plus f32
//                row scales; found again by the host view's data pointer
//   activations  f32 [tokens, features] in device memory from alloc()
//   KV cache     the paged blocks of KvLayout, f32 or bf16, in device memory
//   matmul       GEMV kernel (bf16 weights, f32 x) for <= gemv_max_tokens
//                tokens; else x -> bf16 and a cuBLASLt BF16 GEMM with f32
//                accumulation and f32 output; FP8 weights: see
//                plan_fp8_matmul (cuda_backend.h) and matmul_f8
//   host arrays  token ids, positions, block tables and RoPE frequencies go
//                through a pinned staging ring copied on the stream; a
//                repeated upload within a step (positions and block tables
//                are the same for every layer) reuses its device copy
//
//   graphs       a decode step (begin_step .. end_step, one token per
//                sequence, at most kMaxGraphSeqs sequences) uploads its
//                inputs once into fixed device buffers, records its ops
//                instead of launching them and replays the CUDA graph
//                captured for exactly those launches (see cuda_backend.h)
//
// Everything is enqueued on one stream; the only host synchronisations are
// to_host, copy outside a step, alloc, a full staging ring and the weight upload,
// so a step runs from embed to the logits without waiting on the device.
#include "cuda_backend.h"

#include <cuda_runtime_api.h>  // cudaMalloc, cudaMemcpyAsync, streams, events

#include <algorithm>      // std::min, std::max, std::any_of
#include <array>          // std::array
#include <bit>            // std::bit_cast
#include <cmath>          // std::sqrt
#include <cstdint>        // INT32_MAX
#include <cstring>        // std::memcpy, std::memcmp
#include <functional>     // std::function
#include <mutex>          // std::mutex
#include <optional>       // std::optional
#include <utility>        // std::pair
#include <string>         // std::string
#include <type_traits>    // std::is_pointer_v
#include <unordered_map>  // std::unordered_map
#include <unordered_set>  // std::unordered_set
#include <vector>         // std::vector

#include "backend/cpu/kernels.h"  // cpu::dequant_row
#include "cublaslt.h"             // LtGemm
#include "device.h"               // device_count, describe_device
#include "format/block_quant.h"   // ggml_type_of
#include "kernels/kernels.h"      // launch_*
#include "kernels/topk.h"         // topk_key_id, topk_key_logit, topk_scratch_keys
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

bool use_flash_prefill(int flash_min_rows, int rows, int head_dim) {
  return flash_min_rows > 0 && rows >= flash_min_rows && (head_dim == 64 || head_dim == 128);
}

namespace {
// FP8 weights: codes first, the row scales from the next multiple of 256 bytes
size_t fp8_scales_offset(size_t codes) { return (codes + 255) / 256 * 256; }
}  // namespace

MatmulPath matmul_path(int tokens, int gemv_max_tokens, bool cublaslt_available) {
  return tokens <= gemv_max_tokens || !cublaslt_available ? MatmulPath::gemv : MatmulPath::cublaslt;
}

bool keeps_blocks(const TensorView& w) {
  return (w.dtype == DType::q8_0 || is_block_quant(w.dtype)) && w.rows > 1 &&
         blocks_row_bytes(static_cast<int>(ggml_type_of(w.dtype)), static_cast<int>(w.cols)) ==
             row_bytes(w.dtype, static_cast<size_t>(w.cols));
}

size_t device_weight_bytes(const TensorView& w) {
  const size_t n = static_cast<size_t>(w.rows) * static_cast<size_t>(w.cols);
  if (keeps_blocks(w)) return w.bytes();
  if (w.dtype == DType::f8e4m3) return fp8_scales_offset(n) + static_cast<size_t>(w.rows) * sizeof(float);
  return w.rows > 1 ? n * 2 : n * 4;
}

Fp8Plan plan_fp8_matmul(int tokens, int rows, int cols, ActQuant act, const Fp8Policy& policy,
                        bool cublaslt_available) {
  Fp8Plan p;
  if (matmul_path(tokens, policy.gemv_max_tokens, cublaslt_available) == MatmulPath::gemv) {
    p.act = policy.decode_w8a16 && tokens <= policy.gemv_max_tokens ? ActQuant::none : act;
    p.path = p.act == ActQuant::none ? Fp8Path::gemv : Fp8Path::quant_gemv;
    return p;
  }
  p.act = act == ActQuant::none && policy.prefill_w8a8 ? ActQuant::dynamic_row : act;
  if (p.act == ActQuant::none)
    p.path = Fp8Path::bf16_lt;
  else
    p.path = rows % 16 == 0 && cols % 16 == 0 ? Fp8Path::quant_lt : Fp8Path::quant_gemv;
  return p;
}

bool Fp8ActQuant::operator==(const Fp8ActQuant& o) const {
  return dynamic == o.dynamic && std::bit_cast<uint32_t>(ub) == std::bit_cast<uint32_t>(o.ub) &&
         std::bit_cast<uint32_t>(scale) == std::bit_cast<uint32_t>(o.scale) && code_rows == o.code_rows;
}

std::optional<Fp8ActQuant> fp8_act_quant(int tokens, int rows, int cols, ActQuant act, float act_ub, float act_scale,
                                         const Fp8Policy& policy, bool cublaslt_available) {
  const Fp8Plan plan = plan_fp8_matmul(tokens, rows, cols, act, policy, cublaslt_available);
  if (plan.act == ActQuant::none) return std::nullopt;
  Fp8ActQuant q;
  q.dynamic = plan.act == ActQuant::dynamic_row ? 1 : 0;
  // a weight-only tensor quantized at prefill by the policy has no bound of its own
  q.ub = q.dynamic != 0 ? (act == ActQuant::dynamic_row ? act_ub : INFINITY) : 0.0f;
  q.scale = q.dynamic != 0 ? 0.0f : act_scale;
  q.code_rows = plan.path == Fp8Path::quant_lt ? tokens / 16 * 16 : 0;
  return q;
}

void NormQuantMemo::made(const float* out, int rows, int cols, const Fp8ActQuant& q) {
  valid_ = true;
  out_ = out;
  rows_ = rows;
  cols_ = cols;
  q_ = q;
}

bool NormQuantMemo::usable(const float* x, int rows, int cols, const Fp8ActQuant& q) const {
  return valid_ && x == out_ && rows == rows_ && cols == cols_ && q == q_;
}

void NormQuantMemo::wrote(const void* p, size_t bytes) {
  if (!valid_ || bytes == 0) return;
  const auto b = reinterpret_cast<uintptr_t>(out_);
  const uintptr_t e = b + static_cast<size_t>(rows_) * static_cast<size_t>(cols_) * sizeof(float);
  const auto q = reinterpret_cast<uintptr_t>(p);
  if (q < e && q + bytes > b) valid_ = false;
}

int fp8_gemv_rows_per_warp(int rows, int sm_count) { return rows >= 16 * std::max(sm_count, 1) ? 2 : 1; }

int fp8_tile_rows(int rows, int cols) {
  constexpr size_t kTileBytes = size_t{32} << 20;
  const size_t fit = kTileBytes / (static_cast<size_t>(std::max(cols, 1)) * 2) / 16 * 16;
  const size_t r = std::max<size_t>(16, fit);
  return static_cast<int>(std::min<size_t>(r, static_cast<size_t>(std::max(rows, 1))));
}

bool has_e4m3_nan(const uint8_t* codes, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, codes + i, 8);
    // a byte whose low 7 bits are all ones carries into its bit 7 (no carry
    // crosses bytes: each low part is at most 0x7f before the +1)
    if ((((v & 0x7f7f7f7f7f7f7f7full) + 0x0101010101010101ull) & 0x8080808080808080ull) != 0) return true;
  }
  for (; i < n; ++i)
    if ((codes[i] & 0x7f) == 0x7f) return true;
  return false;
}

void check_fp8_weight(const TensorView& w) {
  check(w.scales != nullptr, Status::format, "FP8 weight {} has no scales (one f32 per row is needed on CUDA)", w.name);
  check(w.act != ActQuant::dynamic_row || w.act_ub > 0, Status::format,
        "FP8 weight {}: per-token activation quantization needs a positive bound, not {}", w.name, w.act_ub);
  check(w.act != ActQuant::static_tensor || (w.act_scale > 0 && std::isfinite(w.act_scale)), Status::format,
        "FP8 weight {}: the static activation scale {} is not a positive number", w.name, w.act_scale);
  for (int64_t r = 0; r < w.rows; ++r)
    check(!has_e4m3_nan(w.row(r), static_cast<size_t>(w.cols)), Status::format,
          "FP8 weight {} holds an E4M3 NaN code (0x7f or 0xff) in row {}", w.name, r);
}

void check_fits(const std::string& device, const char* what, uint64_t need, uint64_t free, uint64_t total) {
  if (need > free)
    fail(Status::out_of_memory, "too little memory on {} for {}: need {} bytes, have {} free of {}", device, what, need,
         free, total);
}

int context_bucket(int positions) {
  int b = 256;
  while (b < positions && b < (1 << 30)) b *= 2;
  return b;
}

DecodeGraphPlan plan_decode_graph(bool enabled, std::span<const int> rows, std::span<const size_t> blocks,
                                  int max_positions, int current_table_blocks) {
  DecodeGraphPlan p;
  if (!enabled || rows.empty() || rows.size() > static_cast<size_t>(kMaxGraphSeqs) || rows.size() != blocks.size())
    return p;
  for (int r : rows)
    if (r != 1) return p;
  size_t need = 1;
  for (size_t b : blocks) need = std::max(need, b);
  if (need > (size_t{1} << 24)) return p;
  p.graph = true;
  p.ctx_bucket = context_bucket(max_positions);
  if (static_cast<size_t>(current_table_blocks) >= need) {
    p.table_blocks = current_table_blocks;
  } else {
    int t = 16;
    while (static_cast<size_t>(t) < need) t *= 2;
    p.table_blocks = t;
  }
  return p;
}

void* GraphCache::find(const Key& key) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->key == key) {
      entries_.splice(entries_.begin(), entries_, it);
      return entries_.front().graph;
    }
  return nullptr;
}

void GraphCache::insert(Key key, void* graph) {
  entries_.push_front(Entry{std::move(key), graph});
  while (entries_.size() > std::max<size_t>(capacity_, 1)) {
    if (destroy_) destroy_(entries_.back().graph);
    entries_.pop_back();
  }
}

void GraphCache::clear() {
  for (Entry& e : entries_)
    if (destroy_) destroy_(e.graph);
  entries_.clear();
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
  bool bf16 = true;  // else f32, or FP8 when f8, or GGUF blocks when blocks
  bool f8 = false;   // E4M3 codes (rows, cols), then the row scales at `scales`
  int blocks = 0;    // the GGUF type id of block-quantized rows kept as stored (keeps_blocks), else 0
  int64_t rows = 0, cols = 0;
  const float* scales = nullptr;  // FP8: (rows) f32, inside the allocation at data
  ActQuant act = ActQuant::none;  // FP8: the tensor's activation treatment
  float act_ub = 0, act_scale = 0;
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
      graphs_ = opt_.graphs;
      fp8_.gemv_max_tokens = opt_.gemv_max_tokens;
      fp8_.decode_w8a16 = opt_.fp8_decode_w8a16;
      fp8_.prefill_w8a8 = opt_.fp8_prefill_w8a8;
      fused_norm_ = opt_.fp8_fused_norm;
    } catch (...) {
      destroy();
      throw;
    }
  }

  ~CudaBackend() override { destroy(); }

  std::string name() const override {
    std::string s = "cuda:" + std::to_string(dev_) + " (" + desc_ + ", bf16" + (any_f8_ ? "/fp8" : "") + " weights, " +
                    (graphs_ ? "CUDA graphs" : "no CUDA graphs") + (graph_note_.empty() ? "" : " (" + graph_note_ + ")");
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
    enter_op();
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 1));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      fail(e == cudaErrorMemoryAllocation ? Status::out_of_memory : Status::device,
           "cannot allocate {} bytes on cuda:{}: {}", bytes, dev_, cudaGetErrorString(e));
    }
    ck(cudaMemsetAsync(p, 0, bytes, stream_), "cudaMemsetAsync");
    // zero before anyone writes: the memory may be written on another stream
    // (ranks sharing a GPU share the KV blocks of rank 0's backend)
    sync("alloc");
    return p;
  }

  // Never throws (called from destructors); cudaFree waits for the device.
  void release(void* p) override {
    if (p == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    norm_q_.forget();  // the buffer may come back from alloc
    cudaSetDevice(dev_);
    cudaFree(p);
    (void)cudaGetLastError();
  }

  void embed(const TensorView& table, std::span<const int32_t> tokens, Act out) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    const DevWeight& w = weight(table);
    check(!w.f8, Status::unsupported, "embed: the FP8 table {} is not supported on CUDA", table.name);
    check((w.bf16 || w.blocks != 0) && w.cols == out.cols && static_cast<int>(tokens.size()) <= out.rows, Status::internal,
          "embed: table {} [{}, {}] does not fit the output [{}, {}]", table.name, w.rows, w.cols, out.rows, out.cols);
    const auto* ids = static_cast<const int32_t*>(step_input(tokens.data(), tokens.size_bytes(), step_.tokens, 0));
    if (ids == nullptr) {
      leave_recording();  // a staged copy lives until the next sync: never in a recorded op
      ids = static_cast<const int32_t*>(stage1(tokens.data(), tokens.size_bytes()));
    }
    const int rows = static_cast<int>(w.rows), cols = static_cast<int>(w.cols), T = static_cast<int>(tokens.size());
    float* o = out.data;
    if (w.blocks != 0) {
      const auto* tab = static_cast<const uint8_t*>(w.data);
      const int type = w.blocks;
      submit("embed kernel (blocks)",
             [=, this] { return launch_embed_blocks(type, tab, rows, cols, ids, T, o, stream_); },
             {kOpEmbedBlocks, u(type), u(tab), u(rows), u(cols), u(ids), u(T), u(o)});
      return;
    }
    const auto* tab = static_cast<const uint16_t*>(w.data);
    submit("embed kernel", [=, this] { return launch_embed_bf16(tab, rows, cols, ids, T, o, stream_); },
           {kOpEmbed, u(tab), u(rows), u(cols), u(ids), u(T), u(o)});
  }

  void rmsnorm(Act x, const TensorView& wv, float eps, Act out) override { norm(x, nullptr, wv, eps, out, {}); }
  void add_rmsnorm(Act x, Act y, const TensorView& wv, float eps, Act out) override {
    norm(x, &y, wv, eps, out, {});
  }
  void rmsnorm_for(Act x, const TensorView& wv, float eps, Act out,
                   std::span<const TensorView* const> readers) override {
    norm(x, nullptr, wv, eps, out, readers);
  }
  void add_rmsnorm_for(Act x, Act y, const TensorView& wv, float eps, Act out,
                       std::span<const TensorView* const> readers) override {
    norm(x, &y, wv, eps, out, readers);
  }

  // rmsnorm (y null) or add_rmsnorm; quantized for the first reader that
  // quantizes its activations (see NormQuantMemo in cuda_backend.h)
  void norm(Act x, const Act* y, const TensorView& wv, float eps, Act out, std::span<const TensorView* const> readers) {
    const char* op = y != nullptr ? "add_rmsnorm" : "rmsnorm";
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    const DevWeight& w = weight(wv);
    check(!w.f8, Status::unsupported, "{}: the FP8 norm weight {} is not supported on CUDA", op, wv.name);
    check(static_cast<int64_t>(w.rows) * w.cols == x.cols && out.cols == x.cols && out.rows >= x.rows &&
              (y == nullptr || (y->cols == x.cols && y->rows >= x.rows && out.data != x.data && out.data != y->data)),
          Status::internal, "{}: weight {} has {} elements for rows of {}", op, wv.name, w.rows * w.cols, x.cols);
    const void* wd = w.data;
    const int bf = w.bf16 ? 1 : 0;
    float* r = y != nullptr ? y->data : nullptr;
    const std::optional<Fp8ActQuant> want = norm_quant_for(x.rows, x.cols, readers);
    if (!want) {
      if (r == nullptr)
        submit("rmsnorm kernel",
               [=, this] { return launch_rmsnorm(x.data, wd, bf, eps, x.rows, x.cols, out.data, stream_); },
               {kOpRmsnorm, u(x.data), u(wd), u(bf), f(eps), u(x.rows), u(x.cols), u(out.data)});
      else
        submit("add_rmsnorm kernel",
               [=, this] { return launch_add_rmsnorm(x.data, r, wd, bf, eps, x.rows, x.cols, out.data, stream_); },
               {kOpAddRmsnorm, u(x.data), u(r), u(wd), u(bf), f(eps), u(x.rows), u(x.cols), u(out.data)});
      return;
    }
    // the norm's quantized output: codes of rows [0, code_rows), then the
    // values of the rest, then the scales, each from a 256-byte boundary
    const int T = x.rows, C = x.cols;
    const size_t codes = (static_cast<size_t>(want->code_rows) * C + 255) / 256 * 256;
    const size_t values = (static_cast<size_t>(T - want->code_rows) * C * sizeof(float) + 255) / 256 * 256;
    const size_t bytes = codes + values + static_cast<size_t>(T) * sizeof(float);
    if (bytes > f8n_.bytes) {
      leave_recording();  // recorded ops hold the old buffer
      grow(f8n_.p, f8n_.bytes, bytes);
    }
    E4m3Quant q;
    q.dynamic = want->dynamic;
    q.act_ub = want->ub;
    q.act_scale = want->scale;
    q.code_rows = want->code_rows;
    q.q8 = static_cast<uint8_t*>(f8n_.p);
    q.ldq8 = C;
    q.qf = reinterpret_cast<float*>(static_cast<uint8_t*>(f8n_.p) + codes);
    q.ldqf = C;
    q.scales = reinterpret_cast<float*>(static_cast<uint8_t*>(f8n_.p) + codes + values);
    ++stats_.norm_quant_fused;
    submit("fused norm + fp8 quantize kernel",
           [=, this] { return launch_rmsnorm_quant(x.data, r, wd, bf, eps, T, C, out.data, q, stream_); },
           {kOpNormQuant, u(x.data), u(r), u(wd), u(bf), f(eps), u(T), u(C), u(out.data), u(q.dynamic), f(q.act_ub),
            f(q.act_scale), u(q.code_rows), u(q.q8), u(q.qf), u(q.scales)});
    norm_q_.made(out.data, T, C, *want);
    norm_qbuf_ = q;
  }

  // The quantization the first FP8 reader of a norm's output (T, C) that
  // quantizes its activations applies; nullopt when none does, when fusion
  // is off or a reader is unknown or of another width (its matmul will say).
  std::optional<Fp8ActQuant> norm_quant_for(int T, int C, std::span<const TensorView* const> readers) const {
    if (!fused_norm_ || T <= 0) return std::nullopt;
    const bool lt_ok = lt_ != nullptr && lt_->available();
    for (const TensorView* v : readers) {
      if (v == nullptr) return std::nullopt;
      const auto it = weights_.find(key_of(*v));
      if (it == weights_.end() || it->second.cols != C) return std::nullopt;
      const DevWeight& w = it->second;
      if (!w.f8) continue;
      auto q = fp8_act_quant(T, static_cast<int>(w.rows), C, w.act, w.act_ub, w.act_scale, fp8_, lt_ok);
      if (q) return q;
    }
    return std::nullopt;
  }

  void matmul(Act x, const TensorView& wv, Act out) override {
    std::lock_guard<std::mutex> lock(mu_);
    set_device();
    const DevWeight& w = weight(wv);
    // the output may overwrite the buffer of the norm's quantized output
    norm_q_.wrote(out.data, static_cast<size_t>(std::max(out.rows, 0)) * std::max(out.cols, 0) * sizeof(float));
    if (w.f8) {
      matmul_f8(x, wv, w, out);
      return;
    }
    if (w.blocks != 0) {
      matmul_blocks(x, wv, w, out);
      return;
    }
    check(w.bf16 && w.cols == x.cols && w.rows <= out.cols && out.rows >= x.rows, Status::internal,
          "matmul: weight {} [{}, {}] against x [{}, {}] -> out [{}, {}]", wv.name, w.rows, w.cols, x.rows, x.cols,
          out.rows, out.cols);
    const int T = x.rows, R = static_cast<int>(w.rows), C = static_cast<int>(w.cols);
    const auto* W = static_cast<const uint16_t*>(w.data);
    const bool lt_ok = lt_ != nullptr && lt_->available();
    if (matmul_path(T, opt_.gemv_max_tokens, lt_ok) == MatmulPath::cublaslt) {
      leave_recording();  // recorded steps have at most kMaxGraphSeqs tokens: GEMV only
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
    submit("gemv kernel", [=, this] { return launch_gemv_bf16(W, R, C, x.data, x.cols, T, out.data, out.cols, stream_); },
           {kOpGemv, u(W), u(R), u(C), u(x.data), u(x.cols), u(T), u(out.data), u(out.cols)});
  }

  // Block-quantized weight: the block GEMV up to gemv_max_tokens tokens
  // (f32 activations; a recordable launch); above, the rows dequantized to
  // bf16 a slice at a time into a scratch buffer, each slice one cuBLASLt
  // GEMM (as for bf16 weights: activations rounded to bf16).
  void matmul_blocks(Act x, const TensorView& wv, const DevWeight& w, Act out) {
    check(w.cols == x.cols && w.rows <= out.cols && out.rows >= x.rows, Status::internal,
          "matmul: block weight {} [{}, {}] against x [{}, {}] -> out [{}, {}]", wv.name, w.rows, w.cols, x.rows,
          x.cols, out.rows, out.cols);
    const int T = x.rows, R = static_cast<int>(w.rows), C = static_cast<int>(w.cols), type = w.blocks;
    const auto* W = static_cast<const uint8_t*>(w.data);
    const bool lt_ok = lt_ != nullptr && lt_->available();
    if (matmul_path(T, opt_.gemv_max_tokens, lt_ok) == MatmulPath::cublaslt) {
      leave_recording();
      const size_t n = static_cast<size_t>(T) * C;
      grow(xbf_, xbf_bytes_, n * 2);
      grow(lt_ws_, lt_ws_bytes_, kLtWorkspace);
      ck(launch_to_bf16(x.data, n, static_cast<uint16_t*>(xbf_), stream_), "to_bf16 kernel");
      // slices of rows as the FP8 weight-only tiles (fp8_tile_rows), in the same scratch
      const int slice = fp8_tile_rows(R, C);
      grow(f8tile_.p, f8tile_.bytes, static_cast<size_t>(slice) * C * 2);
      auto* tile = static_cast<uint16_t*>(f8tile_.p);
      const size_t row_b = blocks_row_bytes(type, C);
      bool all = true;
      std::string err;
      for (int r0 = 0; r0 < R && all; r0 += slice) {
        const int rs = std::min(slice, R - r0);
        ck(launch_dequant_blocks_bf16(type, W + static_cast<size_t>(r0) * row_b, rs, C, tile, stream_),
           "dequant_blocks kernel");
        all = lt_->matmul(tile, rs, C, static_cast<const uint16_t*>(xbf_), T, out.data + r0, out.cols, lt_ws_,
                          lt_ws_bytes_, stream_, &err);
      }
      if (all) return;
      lt_note_ = err;  // this shape falls back to the block GEMV (lt_fallbacks_ counts them)
      ++lt_fallbacks_;
    }
    submit("gemv kernel (blocks)",
           [=, this] { return launch_gemv_blocks(type, W, R, C, x.data, x.cols, T, out.data, out.cols, stream_); },
           {kOpGemvBlocks, u(type), u(W), u(R), u(C), u(x.data), u(x.cols), u(T), u(out.data), u(out.cols)});
  }

  // FP8 weight (see plan_fp8_matmul in cuda_backend.h). Decode paths are
  // recordable launches; the cuBLASLt paths leave a recorded step.
  void matmul_f8(Act x, const TensorView& wv, const DevWeight& w, Act out) {
    check(w.cols == x.cols && w.rows <= out.cols && out.rows >= x.rows, Status::internal,
          "matmul: FP8 weight {} [{}, {}] against x [{}, {}] -> out [{}, {}]", wv.name, w.rows, w.cols, x.rows, x.cols,
          out.rows, out.cols);
    int T = x.rows;
    const int R = static_cast<int>(w.rows), C = static_cast<int>(w.cols);
    const auto* W = static_cast<const uint8_t*>(w.data);
    const float* ws = w.scales;
    const bool lt_ok = lt_ != nullptr && lt_->available();
    Fp8Plan plan = plan_fp8_matmul(T, R, C, w.act, fp8_, lt_ok);
    const std::optional<Fp8ActQuant> aq = fp8_act_quant(T, R, C, w.act, w.act_ub, w.act_scale, fp8_, lt_ok);
    const int dyn = aq ? aq->dynamic : 0;
    const float ub = aq ? aq->ub : 0.0f, sscale = aq ? aq->scale : 0.0f;
    // the norm that wrote x quantized it this way: its codes, values and
    // scales (rows [0, code_rows) as codes, the rest as values)
    const E4m3Quant* made = aq && norm_q_.usable(x.data, T, C, *aq) ? &norm_qbuf_ : nullptr;
    int row0 = 0;  // the first row of x still to do (rows of made are counted from the norm's row 0)
    if (plan.path == Fp8Path::quant_lt || plan.path == Fp8Path::bf16_lt) {
      leave_recording();  // recorded steps have at most kMaxGraphSeqs tokens: GEMV only
      grow(lt_ws_, lt_ws_bytes_, kLtWorkspace);
      std::string err;
      // w8a8: the FP8 GEMM takes the tokens in whole 16s, the last T % 16 go
      // through the GEMV below (no padded GEMM, no scratch for its result)
      const int Tm = plan.path == Fp8Path::quant_lt ? T / 16 * 16 : T;
      bool done = Tm == 0;
      if (Tm > 0) {
        const Act xm{x.data, Tm, x.cols}, om{out.data, Tm, out.cols};
        done = plan.path == Fp8Path::quant_lt ? lt_quant_f8(xm, W, ws, R, C, dyn, ub, sscale, made, om, &err)
                                              : lt_bf16_tiles(xm, W, ws, R, C, om, &err);
      }
      if (done && Tm == T) {
        if (made != nullptr) ++stats_.norm_quant_reused;
        return;
      }
      if (done) {
        x = Act{x.row(Tm), T - Tm, x.cols};
        out = Act{out.row(Tm), T - Tm, out.cols};
        T -= Tm;
        row0 = Tm;
      } else {
        lt_note_ = err;  // this shape falls back to the FP8 GEMV
        ++lt_fallbacks_;
        made = nullptr;  // the GEMV takes values, the norm made codes for these rows
      }
      plan.path = plan.act == ActQuant::none ? Fp8Path::gemv : Fp8Path::quant_gemv;
    }
    float* o = out.data;
    const int ldo = out.cols;
    const int rw = opt_.fp8_gemv_rows_per_warp > 0 ? opt_.fp8_gemv_rows_per_warp : fp8_gemv_rows_per_warp(R, sm_count_);
    if (plan.path == Fp8Path::gemv) {
      const float* xd = x.data;
      const int ldx = x.cols;
      submit("fp8 gemv kernel",
             [=, this] { return launch_gemv_f8(W, ws, R, C, xd, ldx, nullptr, T, o, ldo, rw, stream_); },
             {kOpGemvF8, u(W), u(ws), u(R), u(C), u(xd), u(ldx), u(0), u(T), u(o), u(ldo), u(rw)});
      return;
    }
    const float* qf = nullptr;
    const float* xs = nullptr;
    if (made != nullptr) {  // quant_gemv on the norm's values (rows from its code_rows on)
      qf = made->qf + static_cast<size_t>(row0 - made->code_rows) * made->ldqf;
      xs = made->scales + row0;
      ++stats_.norm_quant_reused;
    } else {  // quant_gemv: quantized values (f32) at 0, the token scales after them
      const size_t qbytes = (static_cast<size_t>(T) * C * sizeof(float) + 255) / 256 * 256;
      if (qbytes + static_cast<size_t>(T) * sizeof(float) > f8q_.bytes) {
        leave_recording();  // recorded ops hold the old buffer
        grow(f8q_.p, f8q_.bytes, qbytes + static_cast<size_t>(T) * sizeof(float));
      }
      auto* q = static_cast<float*>(f8q_.p);
      auto* s = reinterpret_cast<float*>(static_cast<uint8_t*>(f8q_.p) + qbytes);
      const float* xd = x.data;
      const int ldx = x.cols;
      submit("fp8 quantize kernel",
             [=, this] { return launch_quantize_e4m3(xd, ldx, T, C, T, dyn, ub, sscale, nullptr, 0, q, C, s, stream_); },
             {kOpQuantF8, u(xd), u(ldx), u(T), u(C), u(dyn), f(ub), f(sscale), u(q), u(s)});
      qf = q;
      xs = s;
    }
    submit("fp8 gemv kernel", [=, this] { return launch_gemv_f8(W, ws, R, C, qf, C, xs, T, o, ldo, rw, stream_); },
           {kOpGemvF8, u(W), u(ws), u(R), u(C), u(qf), u(C), u(xs), u(T), u(o), u(ldo), u(rw)});
  }

  // w8a8 through the FP8 GEMM (x.rows a multiple of 16): activations to
  // E4M3 codes, then cuBLASLt with the row x token scales in the GEMM
  // (outer-vector mode) or, where that has no algorithm, unscaled plus the
  // scale epilogue, straight into out. False (err set) when cuBLASLt fails.
  // made: the codes and scales of these rows from the norm that wrote x
  // (launch_rmsnorm_quant), or null: quantized here.
  bool lt_quant_f8(Act x, const uint8_t* W, const float* ws, int R, int C, int dyn, float ub, float sscale,
                   const E4m3Quant* made, Act out, std::string* err) {
    const int T = x.rows;
    const uint8_t* q8 = made != nullptr ? made->q8 : nullptr;
    const float* xs = made != nullptr ? made->scales : nullptr;
    if (made == nullptr) {
      const size_t qbytes = (static_cast<size_t>(T) * C + 255) / 256 * 256;
      grow(f8q_.p, f8q_.bytes, qbytes + static_cast<size_t>(T) * sizeof(float));
      auto* q = static_cast<uint8_t*>(f8q_.p);
      auto* s = reinterpret_cast<float*>(q + qbytes);
      ck(launch_quantize_e4m3(x.data, x.cols, T, C, T, dyn, ub, sscale, q, C, nullptr, 0, s, stream_),
         "fp8 quantize kernel");
      q8 = q;
      xs = s;
    }
    std::string vec_err;
    if (opt_.fp8_lt_scales &&
        lt_->matmul_f8(W, R, C, q8, T, out.data, out.cols, ws, xs, lt_ws_, lt_ws_bytes_, stream_, &vec_err))
      return true;
    if (!lt_->matmul_f8(W, R, C, q8, T, out.data, out.cols, nullptr, nullptr, lt_ws_, lt_ws_bytes_, stream_, err))
      return false;
    ck(launch_scale_rows_tokens(out.data, out.cols, R, T, ws, xs, out.data, out.cols, stream_), "fp8 scale kernel");
    return true;
  }

  // Weight-only at prefill: the codes widened to bf16 a tile of rows at a
  // time (exact), the BF16 GEMM per tile into its columns of out, then the
  // row scales. False (err set) when cuBLASLt fails.
  bool lt_bf16_tiles(Act x, const uint8_t* W, const float* ws, int R, int C, Act out, std::string* err) {
    const int T = x.rows;
    const size_t n = static_cast<size_t>(T) * C;
    grow(xbf_, xbf_bytes_, n * 2);
    ck(launch_to_bf16(x.data, n, static_cast<uint16_t*>(xbf_), stream_), "to_bf16 kernel");
    const int tile_rows = fp8_tile_rows(R, C);
    grow(f8tile_.p, f8tile_.bytes, static_cast<size_t>(tile_rows) * C * 2);
    auto* tile = static_cast<uint16_t*>(f8tile_.p);
    for (int r0 = 0; r0 < R; r0 += tile_rows) {
      const int rows = std::min(tile_rows, R - r0);
      ck(launch_e4m3_to_bf16(W + static_cast<size_t>(r0) * C, static_cast<size_t>(rows) * C, tile, stream_),
         "fp8 widen kernel");
      if (!lt_->matmul(tile, rows, C, static_cast<const uint16_t*>(xbf_), T, out.data + r0, out.cols, lt_ws_,
                       lt_ws_bytes_, stream_, err))
        return false;
    }
    ck(launch_scale_rows_tokens(out.data, out.cols, R, T, ws, nullptr, out.data, out.cols, stream_),
       "fp8 scale kernel");
    return true;
  }

  void rope(Act x, int n_heads, int head_dim, std::span<const int32_t> pos, std::span<const float> freqs,
            RopeLayout layout) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    check(static_cast<int>(pos.size()) >= x.rows && static_cast<int>(freqs.size()) >= head_dim / 2 &&
              n_heads * head_dim <= x.cols,
          Status::internal, "rope: {} heads of {} over rows of {}", n_heads, head_dim, x.cols);
    const size_t pos_bytes = static_cast<size_t>(x.rows) * sizeof(int32_t);
    const size_t freq_bytes = static_cast<size_t>(head_dim / 2) * sizeof(float);
    const auto* p = static_cast<const int32_t*>(step_input(pos.data(), pos_bytes, step_.pos, kStepPosOffset));
    const auto* fr = p != nullptr ? static_cast<const float*>(constant(freqs.data(), freq_bytes)) : nullptr;
    if (p == nullptr || fr == nullptr) {
      leave_recording();
      const auto dev = stage<2>({HostArray{pos.data(), pos_bytes}, HostArray{freqs.data(), freq_bytes}});
      p = static_cast<const int32_t*>(dev[0]);
      fr = static_cast<const float*>(dev[1]);
    }
    const int half = layout == RopeLayout::half ? 1 : 0;
    submit("rope kernel",
           [=, this] { return launch_rope(x.data, x.rows, x.cols, n_heads, head_dim, p, fr, half, stream_); },
           {kOpRope, u(x.data), u(x.rows), u(x.cols), u(n_heads), u(head_dim), u(p), u(fr), u(half)});
  }

  void kv_write(const KvSeq& seq, int layer, Act k, Act v, std::span<const int32_t> pos) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    const KvLayout& L = *seq.layout;
    check(k.cols >= L.kv_dim && v.cols >= L.kv_dim && static_cast<int>(pos.size()) >= k.rows, Status::internal,
          "kv_write: rows of {} for a kv_dim of {}", k.cols, L.kv_dim);
    for (int t = 0; t < k.rows; ++t)
      check(pos[t] >= 0 && static_cast<size_t>(pos[t] / L.block_tokens) < seq.blocks.size(), Status::internal,
            "kv_write: position {} has no block ({} blocks)", pos[t], seq.blocks.size());
    const auto [table, p] = paged_inputs(seq, pos, k.rows);
    const PagedKv kv = paged(seq, layer, table);
    submit("kv_write kernel",
           [=, this] { return launch_kv_write(kv, k.data, k.cols, v.data, v.cols, p, k.rows, stream_); },
           {kOpKvWrite, u(kv.blocks), u(kv.block_tokens), u(kv.kv_dim), u(kv.elem_bytes), u(kv.layer), u(k.data),
            u(k.cols), u(v.data), u(v.cols), u(p), u(k.rows)});
  }

  // One kernel (launch_rope_kv_write) with the bits of rope, rope and
  // kv_write on this device; the composed default when the heads do not
  // fill the cache rows exactly.
  void rope_kv_write(Act q, Act k, Act v, const KvSeq& seq, int layer, std::span<const int32_t> pos,
                     std::span<const float> freqs, RopeLayout layout, const AttentionShape& s) override {
    const KvLayout& L = *seq.layout;
    if (s.n_kv_heads * s.head_dim != L.kv_dim || s.head_dim % 2 != 0) {
      Backend::rope_kv_write(q, k, v, seq, layer, pos, freqs, layout, s);  // takes the lock op by op
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    check(q.rows == k.rows && v.rows >= k.rows && static_cast<int>(pos.size()) >= k.rows &&
              s.n_heads * s.head_dim <= q.cols && k.cols >= L.kv_dim && v.cols >= L.kv_dim &&
              static_cast<int>(freqs.size()) >= s.head_dim / 2,
          Status::internal, "rope_kv_write: {} heads of {} over rows of {} (k: {}, kv_dim {})", s.n_heads, s.head_dim,
          q.cols, k.cols, L.kv_dim);
    for (int t = 0; t < k.rows; ++t)
      check(pos[t] >= 0 && static_cast<size_t>(pos[t] / L.block_tokens) < seq.blocks.size(), Status::internal,
            "rope_kv_write: position {} has no block ({} blocks)", pos[t], seq.blocks.size());
    const size_t freq_bytes = static_cast<size_t>(s.head_dim / 2) * sizeof(float);
    const size_t pos_bytes = static_cast<size_t>(k.rows) * sizeof(int32_t);
    // a recorded step: the fixed step buffers and the kept frequencies
    const void* table = step_table(seq);
    const auto* p =
        table != nullptr ? static_cast<const int32_t*>(step_input(pos.data(), pos_bytes, step_.pos, kStepPosOffset))
                         : nullptr;
    const auto* fr = p != nullptr ? static_cast<const float*>(constant(freqs.data(), freq_bytes)) : nullptr;
    if (fr == nullptr) {
      leave_recording();
      // staged together, so that a full ring cannot drop one of them
      const auto dev = stage<3>({HostArray{seq.blocks.data(), seq.blocks.size_bytes()},
                                 HostArray{pos.data(), pos_bytes}, HostArray{freqs.data(), freq_bytes}});
      table = dev[0];
      p = static_cast<const int32_t*>(dev[1]);
      fr = static_cast<const float*>(dev[2]);
    }
    const PagedKv kv = paged(seq, layer, table);
    const int half = layout == RopeLayout::half ? 1 : 0;
    ++stats_.rope_kv_fused;
    submit("rope_kv_write kernel",
           [=, this] {
             return launch_rope_kv_write(kv, q.data, q.cols, k.data, k.cols, v.data, v.cols, p, k.rows, s.n_heads,
                                         s.n_kv_heads, s.head_dim, fr, half, stream_);
           },
           {kOpRopeKvWrite, u(kv.blocks), u(kv.block_tokens), u(kv.kv_dim), u(kv.elem_bytes), u(kv.layer), u(q.data),
            u(q.cols), u(k.data), u(k.cols), u(v.data), u(v.cols), u(p), u(k.rows), u(s.n_heads), u(s.n_kv_heads),
            u(s.head_dim), u(fr), u(half)});
  }

  void attention(Act q, const KvSeq& seq, int layer, std::span<const int32_t> pos, const AttentionShape& s,
                 Act out) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    const KvLayout& L = *seq.layout;
    int max_pos = 0;
    for (int t = 0; t < q.rows; ++t) {
      check(pos[t] >= 0 && static_cast<size_t>(pos[t] / L.block_tokens) < seq.blocks.size(), Status::internal,
            "attention: position {} has no block ({} blocks)", pos[t], seq.blocks.size());
      max_pos = std::max(max_pos, pos[t] + 1);
    }
    const auto [table, p] = paged_inputs(seq, pos, q.rows);
    const PagedKv kv = paged(seq, layer, table);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    if (use_flash_prefill(opt_.flash_min_rows, q.rows, s.head_dim) &&
        flash_prefill_supports(kv, s.n_heads, s.n_kv_heads, s.head_dim) && even_aligned(q) && even_aligned(out)) {
      ++stats_.flash_prefill;
      submit("flash prefill kernel",
             [=, this] {
               return launch_flash_prefill(kv, q.data, q.cols, p, q.rows, s.n_heads, s.n_kv_heads, s.head_dim, scale,
                                           out.data, out.cols, stream_);
             },
             {kOpFlashPrefill, u(kv.blocks), u(kv.block_tokens), u(kv.kv_dim), u(kv.elem_bytes), u(kv.layer),
              u(q.data), u(q.cols), u(p), u(q.rows), u(s.n_heads), u(s.n_kv_heads), u(s.head_dim), f(scale),
              u(out.data), u(out.cols)});
      return;
    }
    // a recorded step plans its splits for its context bucket, so that the
    // launch is the same at every length within the bucket
    const int plan_positions = step_.mode == StepMode::record ? step_.ctx_bucket : max_pos;
    const int splits = opt_.attention_splits > 0 ? opt_.attention_splits
                                                 : attention_splits_for(q.rows, s.n_heads, plan_positions, sm_count_);
    const size_t scratch = attention_scratch_floats(q.rows, s.n_heads, s.head_dim, splits);
    if (scratch * sizeof(float) > att_scratch_bytes_) {
      leave_recording();  // recorded ops hold the old buffer: run them before it is freed
      grow(att_scratch_, att_scratch_bytes_, scratch * sizeof(float));
    }
    auto* sc = splits > 1 ? static_cast<float*>(att_scratch_) : nullptr;
    submit("attention kernel",
           [=, this] {
             return launch_attention(kv, q.data, q.cols, p, q.rows, s.n_heads, s.n_kv_heads, s.head_dim, scale, splits,
                                     sc, out.data, out.cols, stream_);
           },
           {kOpAttention, u(kv.blocks), u(kv.block_tokens), u(kv.kv_dim), u(kv.elem_bytes), u(kv.layer), u(q.data),
            u(q.cols), u(p), u(q.rows), u(s.n_heads), u(s.n_kv_heads), u(s.head_dim), f(scale), u(splits), u(sc),
            u(out.data), u(out.cols)});
  }

  void swiglu(Act gate, Act up, Act out) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    const size_t n = static_cast<size_t>(gate.rows) * gate.cols;
    submit("swiglu kernel", [=, this] { return launch_swiglu(gate.data, up.data, n, out.data, stream_); },
           {kOpSwiglu, u(gate.data), u(up.data), u(n), u(out.data)});
  }

  void add(Act x, Act y) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    const size_t n = static_cast<size_t>(x.rows) * x.cols;
    submit("add kernel", [=, this] { return launch_add(x.data, y.data, n, stream_); },
           {kOpAdd, u(x.data), u(y.data), u(n)});
  }

  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    if (in_step_ && is_device(dst) && is_device(src)) {
      // inside a step: device to device, in stream order, no wait
      submit("cudaMemcpyAsync (copy)",
             [=, this] { return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_); },
             {kOpCopy, u(dst), u(src), u(bytes)});
      return;
    }
    leave_recording();
    ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), "cudaMemcpyAsync (copy)");
    sync("copy");
  }

  void to_host(const float* src, float* dst, size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    leave_recording();
    if (n > 0) ck(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync (to_host)");
    sync("to_host");
  }

  // The k best logits found on the device (kernels/topk.cu): k keys come
  // back instead of n floats. Beyond kTopKMaxK, the default (read them all).
  void top_k(const float* logits, size_t n, size_t k, std::vector<Candidate>& out, uint64_t* mass) override {
    if (k == 0 || k > static_cast<size_t>(kTopKMaxK) || n > static_cast<size_t>(INT32_MAX / 2)) {
      Backend::top_k(logits, n, k, out, mass);
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    leave_recording();
    const int ni = static_cast<int>(n), ki = static_cast<int>(k);
    const size_t keys = k == 1 ? 0 : topk_scratch_keys(ni, ki);
    // [round scratch][k keys][the mass]: one copy brings keys and mass back
    grow(topk_dev_, topk_dev_bytes_, (keys + k + 1) * sizeof(uint64_t));
    if (topk_host_ == nullptr)
      ck(cudaMallocHost(&topk_host_, static_cast<size_t>(kTopKMaxK + 1) * sizeof(uint64_t)),
         "cudaMallocHost (top_k)");
    auto* dev = static_cast<uint64_t*>(topk_dev_);
    ck(launch_top_k(logits, ni, ki, keys > 0 ? dev : nullptr, dev + keys, stream_), "top_k kernel");
    if (mass != nullptr)
      ck(launch_logit_mass(logits, ni, dev + keys, mass_scale(n), dev + keys + k, stream_), "logit mass kernel");
    const size_t back = k + (mass != nullptr ? 1 : 0);
    ck(cudaMemcpyAsync(topk_host_, dev + keys, back * sizeof(uint64_t), cudaMemcpyDeviceToHost, stream_),
       "cudaMemcpyAsync (top_k)");
    sync("top_k");
    out.clear();
    const auto* host = static_cast<const uint64_t*>(topk_host_);
    for (size_t i = 0; i < k && host[i] != 0; ++i)
      out.push_back({static_cast<int32_t>(topk_key_id(host[i])), topk_key_logit(host[i])});
    if (mass != nullptr) *mass = out.empty() ? 0 : host[k];
  }

  DeviceMemory memory() const override {
    std::lock_guard<std::mutex> lock(mu_);
    DeviceMemory m;
    size_t free = 0, total = 0;
    cudaSetDevice(dev_);
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) {
      m.free = free;
      m.total = total;
    }
    (void)cudaGetLastError();
    return m;
  }

  // ---- steps (see cuda_backend.h, "CUDA graphs") ----------------------------

  void begin_step(const StepInputs& in) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    if (step_.mode != StepMode::none) drop_step();  // a step nobody ended
    in_step_ = true;
    std::vector<size_t>& blocks = step_.blocks_scratch;
    blocks.clear();
    for (const KvSeq& s : in.seqs) blocks.push_back(s.blocks.size());
    int max_positions = 0;
    for (int32_t p : in.pos) max_positions = std::max(max_positions, p + 1);
    const DecodeGraphPlan plan = plan_decode_graph(graphs_, in.seq_rows, blocks, max_positions, step_.table_blocks);
    const size_t rows = in.pos.size();
    if (!plan.graph || in.tokens.size() != rows || rows != in.seqs.size()) {
      step_.mode = StepMode::eager;
      ++stats_.eager;
      return;
    }
    // the fixed input buffers: [tokens: 8 x i32][positions: 8 x i32] at 0 and
    // kStepPosOffset, then one block-table row of table_blocks pointers per sequence
    const size_t bytes = kStepTablesOffset + static_cast<size_t>(kMaxGraphSeqs) * plan.table_blocks * sizeof(void*);
    if (step_.table_blocks != plan.table_blocks || step_.dev == nullptr) {
      release_step_buffers();
      ck(cudaMallocHost(&step_.host, bytes), "cudaMallocHost (step inputs)");
      ck(cudaMalloc(&step_.dev, bytes), "cudaMalloc (step inputs)");
      step_.table_blocks = plan.table_blocks;
      step_.bytes = bytes;
    }
    // the previous step's upload has left the pinned buffer
    if (step_.uploaded != nullptr) ck(cudaEventSynchronize(step_.uploaded), "cudaEventSynchronize (step inputs)");
    auto* h = static_cast<uint8_t*>(step_.host);
    std::memset(h, 0, bytes);
    std::memcpy(h, in.tokens.data(), in.tokens.size_bytes());
    std::memcpy(h + kStepPosOffset, in.pos.data(), in.pos.size_bytes());
    for (size_t i = 0; i < in.seqs.size(); ++i)
      std::memcpy(h + table_offset(static_cast<int>(i)), in.seqs[i].blocks.data(), in.seqs[i].blocks.size_bytes());
    ck(cudaMemcpyAsync(step_.dev, step_.host, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (step inputs)");
    if (step_.uploaded == nullptr)
      ck(cudaEventCreateWithFlags(&step_.uploaded, cudaEventDisableTiming), "cudaEventCreate (step inputs)");
    ck(cudaEventRecord(step_.uploaded, stream_), "cudaEventRecord (step inputs)");
    step_.tokens = in.tokens;
    step_.pos = in.pos;
    step_.seqs.assign(in.seqs.begin(), in.seqs.end());
    step_.ctx_bucket = plan.ctx_bucket;
    step_.ops.clear();
    step_.key.assign({kOpStep, u(rows), u(step_.table_blocks), u(step_.dev)});
    step_.mode = StepMode::record;
  }

  void end_step() override {
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    in_step_ = false;
    if (step_.mode != StepMode::record) {
      step_.mode = StepMode::none;
      return;
    }
    step_.mode = StepMode::none;
    std::vector<Recorded> ops;
    ops.swap(step_.ops);
    auto* exec = static_cast<cudaGraphExec_t>(graphs_cache_.find(step_.key));
    if (exec == nullptr) exec = capture(ops);
    if (exec == nullptr) {  // capture failed: run the ops one by one
      ++stats_.fallbacks;
      ++stats_.eager;
      for (const Recorded& r : ops) ck(r.launch(), r.what);
      return;
    }
    ck(cudaGraphLaunch(exec, stream_), "cudaGraphLaunch");
    ++stats_.replayed;
  }

  void abort_step() noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    norm_q_.forget();
    drop_step();
  }

  GraphStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  bool weights_on_host() const override { return false; }

  cudaStream_t stream() const { return stream_; }
  int device() const { return dev_; }

  void upload_weights(std::span<const TensorView* const> views, const std::function<bool(float)>& progress) override {
    std::lock_guard<std::mutex> lock(mu_);
    enter_op();
    uint64_t total = 0;
    const std::vector<const TensorView*> todo = weights_to_upload(views, total);
    {
      size_t free = 0, dev_total = 0;
      ck(cudaMemGetInfo(&free, &dev_total), "cudaMemGetInfo");
      check_fits("cuda:" + std::to_string(dev_), "the weights", total, free, dev_total);
    }
    Staging staging(stream_);
    uint64_t sent = 0, next_report = 0;
    std::vector<float> row;
    for (const TensorView* v : todo) {
      const DevWeight w = allocate_weight(*v, sent, total);
      weights_.emplace(key_of(*v), w);
      const size_t out_row = device_row_bytes(*v, w);
      check(out_row <= Staging::kBytes, Status::unsupported, "weight {} has rows of {} bytes (at most {})", v->name,
            out_row, Staging::kBytes);
      const int64_t rows_per_chunk = static_cast<int64_t>(std::max<size_t>(1, Staging::kBytes / out_row));
      for (int64_t r0 = 0; r0 < v->rows; r0 += rows_per_chunk) {
        const int64_t r1 = std::min<int64_t>(v->rows, r0 + rows_per_chunk);
        uint8_t* dst = staging.next();
        stage_rows(*v, w, r0, r1, out_row, dst, row);
        const size_t n = static_cast<size_t>(r1 - r0) * out_row;
        staging.send(static_cast<uint8_t*>(w.data) + static_cast<size_t>(r0) * out_row, n);
        sent += n;
        if (progress && (sent >= next_report || sent == total)) {
          if (!progress(total ? static_cast<float>(static_cast<double>(sent) / static_cast<double>(total)) : 1.0f))
            fail(Status::cancelled, "model load cancelled by the progress callback");
          next_report = sent + total / 100;
        }
      }
    }
    sync("weight upload");
  }

 private:
  // Two pinned host buffers for the weight upload: one is filled while the
  // other's copy runs. The destructor waits for the stream and frees them, on
  // success and on a throw alike.
  class Staging {
   public:
    static constexpr size_t kBytes = size_t{32} << 20;
    explicit Staging(cudaStream_t stream) : stream_(stream) {
      for (int b = 0; b < 2; ++b) {
        ck(cudaMallocHost(&host_[b], kBytes), "cudaMallocHost (weight staging)");
        ck(cudaEventCreateWithFlags(&done_[b], cudaEventDisableTiming), "cudaEventCreate");
      }
    }
    ~Staging() {
      cudaStreamSynchronize(stream_);
      for (int b = 0; b < 2; ++b) {
        if (host_[b] != nullptr) cudaFreeHost(host_[b]);
        if (done_[b] != nullptr) cudaEventDestroy(done_[b]);
      }
      (void)cudaGetLastError();
    }
    Staging(const Staging&) = delete;
    Staging& operator=(const Staging&) = delete;
    // The buffer to fill next, once its previous copy has finished.
    uint8_t* next() {
      ck(cudaEventSynchronize(done_[buf_]), "cudaEventSynchronize (weight staging)");
      return static_cast<uint8_t*>(host_[buf_]);
    }
    // Copies the first n bytes of the buffer next() gave to dst on the device.
    void send(void* dst, size_t n) {
      ck(cudaMemcpyAsync(dst, host_[buf_], n, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync (weights)");
      ck(cudaEventRecord(done_[buf_], stream_), "cudaEventRecord");
      buf_ ^= 1;
    }

   private:
    cudaStream_t stream_;
    void* host_[2] = {nullptr, nullptr};
    cudaEvent_t done_[2] = {nullptr, nullptr};
    int buf_ = 0;
  };

  // The views not on the device yet, each once (views may repeat a tensor,
  // e.g. tied embeddings), and the device bytes they need. FP8 weights are
  // checked here, before anything is allocated.
  std::vector<const TensorView*> weights_to_upload(std::span<const TensorView* const> views, uint64_t& total) const {
    std::vector<const TensorView*> todo;
    std::unordered_set<WeightKey, WeightKeyHash> seen;
    total = 0;
    for (const TensorView* v : views) {
      if (v == nullptr || v->data == nullptr || v->rows <= 0 || v->cols <= 0 || weights_.count(key_of(*v)) != 0) continue;
      if (!seen.insert(key_of(*v)).second) continue;
      if (v->dtype == DType::f8e4m3) check_fp8_weight(*v);
      todo.push_back(v);
      total += device_weight_bytes(*v);
    }
    return todo;
  }

  // The device copy of v: its form (FP8 codes and row scales, GGUF blocks,
  // BF16 matrix or f32 vector) and memory; an FP8 weight's scales are sent
  // here (counted in sent).
  DevWeight allocate_weight(const TensorView& v, uint64_t& sent, uint64_t total) {
    DevWeight w;
    w.rows = v.rows;
    w.cols = v.cols;
    w.f8 = v.dtype == DType::f8e4m3;
    w.blocks = keeps_blocks(v) ? static_cast<int>(ggml_type_of(v.dtype)) : 0;
    w.bf16 = !w.f8 && w.blocks == 0 && v.rows > 1;
    const size_t bytes = device_weight_bytes(v);
    const cudaError_t e = cudaMalloc(&w.data, bytes);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      fail(Status::out_of_memory, "cannot allocate {} bytes on cuda:{} for weight {}: {} ({} of {} bytes uploaded)", bytes,
           dev_, v.name, cudaGetErrorString(e), sent, total);
    }
    if (w.f8) {
      // the row scales behind the codes, sent with them
      const size_t codes = static_cast<size_t>(v.rows) * static_cast<size_t>(v.cols);
      w.scales = reinterpret_cast<const float*>(static_cast<uint8_t*>(w.data) + fp8_scales_offset(codes));
      w.act = v.act;
      w.act_ub = v.act_ub;
      w.act_scale = v.act_scale;
      any_f8_ = true;
      const cudaError_t c = cudaMemcpyAsync(const_cast<float*>(w.scales), v.scales,
                                            static_cast<size_t>(v.rows) * sizeof(float), cudaMemcpyHostToDevice, stream_);
      if (c != cudaSuccess) {
        cudaFree(w.data);
        cuda_fail(c, "cudaMemcpyAsync (FP8 scales)");
      }
      // scales and padding, as device_weight_bytes counted them in total
      sent += static_cast<size_t>(v.rows) * sizeof(float) + (fp8_scales_offset(codes) - codes);
    }
    return w;
  }

  // Bytes of one row of w on the device.
  static size_t device_row_bytes(const TensorView& v, const DevWeight& w) {
    const size_t cols = static_cast<size_t>(v.cols);
    return w.blocks != 0 ? row_bytes(v.dtype, cols) : w.f8 ? cols : cols * (w.bf16 ? 2 : 4);
  }

  // Rows [r0, r1) of v in w's device form into dst: copied as they are (BF16,
  // FP8 codes, GGUF blocks) or widened and rounded (to BF16 or f32).
  static void stage_rows(const TensorView& v, const DevWeight& w, int64_t r0, int64_t r1, size_t out_row, uint8_t* dst,
                         std::vector<float>& row) {
    if ((v.dtype == DType::bf16 && w.bf16) || w.f8 || w.blocks != 0) {
      std::memcpy(dst, v.row(r0), static_cast<size_t>(r1 - r0) * out_row);
      return;
    }
    const size_t cols = static_cast<size_t>(v.cols);
    row.resize(cols);
    for (int64_t r = r0; r < r1; ++r) {
      cpu::dequant_row(v.dtype, v.row(r), row.data(), cols);
      if (v.dtype == DType::f8e4m3 && v.scales != nullptr)
        for (float& x : row) x *= v.scales[r];
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

  static constexpr size_t kLtWorkspace = size_t{32} << 20;

  // ---- recording (see cuda_backend.h, "CUDA graphs") -----------------------

  // Signature words of a recorded op: an op code, then its launch arguments.
  enum : uint64_t {
    kOpStep = 0x5354455000000000ull,
    kOpEmbed,
    kOpRmsnorm,
    kOpAddRmsnorm,
    kOpGemv,
    kOpRope,
    kOpKvWrite,
    kOpAttention,
    kOpSwiglu,
    kOpAdd,
    kOpCopy,
    kOpGemvF8,
    kOpQuantF8,
    kOpRopeKvWrite,
    kOpFlashPrefill,
    kOpNormQuant,
    kOpGemvBlocks,
    kOpEmbedBlocks
  };
  template <typename T>
  static uint64_t u(T v) {
    if constexpr (std::is_pointer_v<T>)
      return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(v));
    else
      return static_cast<uint64_t>(v);
  }
  static uint64_t f(float v) { return std::bit_cast<uint32_t>(v); }

  // The fixed input buffers of a recorded step: token ids at 0, positions at
  // kStepPosOffset, block-table rows from kStepTablesOffset.
  static constexpr size_t kStepPosOffset = 128;
  static constexpr size_t kStepTablesOffset = 256;
  static_assert(kMaxGraphSeqs * sizeof(int32_t) <= kStepPosOffset &&
                kStepPosOffset + kMaxGraphSeqs * sizeof(int32_t) <= kStepTablesOffset);
  size_t table_offset(int seq) const {
    return kStepTablesOffset + static_cast<size_t>(seq) * step_.table_blocks * sizeof(void*);
  }

  enum class StepMode { none, eager, record };
  struct Recorded {
    std::function<cudaError_t()> launch;
    const char* what;
  };
  struct StepState {
    StepMode mode = StepMode::none;
    std::span<const int32_t> tokens, pos;  // the caller's arrays (alive until end_step)
    std::vector<KvSeq> seqs;
    std::vector<size_t> blocks_scratch;
    int ctx_bucket = 0;
    int table_blocks = 0;
    void* host = nullptr;  // pinned: what was uploaded
    void* dev = nullptr;   // the fixed device buffers
    size_t bytes = 0;
    cudaEvent_t uploaded = nullptr;
    std::vector<Recorded> ops;
    GraphCache::Key key;
  };

  // Runs the op now, or records it when a decode step is being recorded.
  void submit(const char* what, std::function<cudaError_t()> launch, std::initializer_list<uint64_t> sig) {
    if (step_.mode == StepMode::record) {
      step_.key.insert(step_.key.end(), sig.begin(), sig.end());
      step_.ops.push_back(Recorded{std::move(launch), what});
      return;
    }
    ck(launch(), what);
  }

  // A recorded step that meets an op it cannot record (an input that did
  // not come through begin_step, a cuBLASLt GEMM, a growing buffer, a sync)
  // runs what it recorded and the rest of the step op by op.
  void leave_recording() {
    if (step_.mode != StepMode::record) return;
    step_.mode = StepMode::eager;
    ++stats_.fallbacks;
    ++stats_.eager;
    std::vector<Recorded> ops;
    ops.swap(step_.ops);
    for (const Recorded& r : ops) ck(r.launch(), r.what);
  }

  void drop_step() noexcept {
    step_.mode = StepMode::none;
    step_.ops.clear();
    in_step_ = false;
  }

  // The device copy, in the fixed buffers, of host bytes [ptr, ptr + bytes)
  // that lie inside `whole` (an array given to begin_step, uploaded at
  // dev_offset) and still hold what was uploaded; nullptr otherwise or when
  // no step is being recorded.
  const void* step_input(const void* ptr, size_t bytes, std::span<const int32_t> whole, size_t dev_offset) const {
    if (step_.mode != StepMode::record || bytes == 0 || whole.empty()) return nullptr;
    const uintptr_t b = reinterpret_cast<uintptr_t>(whole.data()), e = b + whole.size_bytes();
    const uintptr_t q = reinterpret_cast<uintptr_t>(ptr);
    if (q < b || q + bytes > e) return nullptr;
    const size_t off = dev_offset + (q - b);
    if (std::memcmp(ptr, static_cast<const uint8_t*>(step_.host) + off, bytes) != 0) return nullptr;
    return static_cast<const uint8_t*>(step_.dev) + off;
  }

  // The fixed block-table row of one of the step's sequences; nullptr as above.
  const void* step_table(const KvSeq& seq) const {
    if (step_.mode != StepMode::record) return nullptr;
    for (size_t i = 0; i < step_.seqs.size(); ++i) {
      const KvSeq& s = step_.seqs[i];
      if (s.blocks.data() != seq.blocks.data() || s.blocks.size() != seq.blocks.size() || s.layout != seq.layout)
        continue;
      const size_t off = table_offset(static_cast<int>(i));
      if (std::memcmp(seq.blocks.data(), static_cast<const uint8_t*>(step_.host) + off, seq.blocks.size_bytes()) != 0)
        return nullptr;
      return static_cast<const uint8_t*>(step_.dev) + off;
    }
    return nullptr;
  }

  // The device block table of seq and the device copy of pos[0, rows): the
  // fixed step buffers while a step is recorded, else (leaving the recording)
  // staged copies.
  std::pair<const void*, const int32_t*> paged_inputs(const KvSeq& seq, std::span<const int32_t> pos, int rows) {
    const size_t pos_bytes = static_cast<size_t>(rows) * sizeof(int32_t);
    const void* table = step_table(seq);
    const void* p = table != nullptr ? step_input(pos.data(), pos_bytes, step_.pos, kStepPosOffset) : nullptr;
    if (p == nullptr) {
      leave_recording();
      const auto dev = stage<2>({HostArray{seq.blocks.data(), seq.blocks.size_bytes()}, HostArray{pos.data(), pos_bytes}});
      table = dev[0];
      p = dev[1];
    }
    return {table, static_cast<const int32_t*>(p)};
  }

  // A device copy of a host array that never changes (RoPE frequencies),
  // found by its address and checked against its bytes; nullptr when the
  // bytes changed or too many arrays are kept.
  const void* constant(const void* ptr, size_t bytes) {
    for (const Constant& c : constants_)
      if (c.host == ptr)
        return c.bytes.size() == bytes && std::memcmp(c.bytes.data(), ptr, bytes) == 0 ? c.dev : nullptr;
    if (constants_.size() >= 16 || bytes == 0) return nullptr;
    Constant c;
    c.host = ptr;
    c.bytes.assign(static_cast<const uint8_t*>(ptr), static_cast<const uint8_t*>(ptr) + bytes);
    ck(cudaMalloc(&c.dev, bytes), "cudaMalloc (constants)");
    constants_.push_back(c);  // freed by destroy() from here on
    // from pageable memory: the bytes are taken before the call returns
    ck(cudaMemcpyAsync(c.dev, constants_.back().bytes.data(), bytes, cudaMemcpyHostToDevice, stream_),
       "cudaMemcpyAsync (constants)");
    return c.dev;
  }
  struct Constant {
    const void* host = nullptr;
    std::vector<uint8_t> bytes;
    void* dev = nullptr;
  };

  // Captures the recorded ops as a graph (added to the cache under the
  // step's key); nullptr when capture fails.
  cudaGraphExec_t capture(const std::vector<Recorded>& ops) {
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    cudaError_t err = cudaSuccess;
    for (const Recorded& r : ops) {
      err = r.launch();
      if (err != cudaSuccess) break;
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    cudaGraphExec_t exec = nullptr;
    if (err == cudaSuccess && end == cudaSuccess && graph != nullptr)
      err = cudaGraphInstantiate(&exec, graph, 0);
    else if (err == cudaSuccess)
      err = end;
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (err != cudaSuccess || exec == nullptr) {
      (void)cudaGetLastError();
      graph_note_ = std::string("capture failed: ") + cudaGetErrorName(err);
      if (exec != nullptr) cudaGraphExecDestroy(exec);
      return nullptr;
    }
    graphs_cache_.insert(step_.key, exec);
    ++stats_.recorded;
    return exec;
  }

  void release_step_buffers() noexcept {
    if (step_.uploaded != nullptr) cudaEventSynchronize(step_.uploaded);
    if (step_.host != nullptr) cudaFreeHost(step_.host);
    if (step_.dev != nullptr) cudaFree(step_.dev);
    step_.host = step_.dev = nullptr;
    step_.bytes = 0;
    step_.table_blocks = 0;
    (void)cudaGetLastError();
  }

  static bool is_device(const void* p) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return a.type == cudaMemoryTypeDevice;
  }


  void set_device() { ck(cudaSetDevice(dev_), "cudaSetDevice"); }
  // The start of every op but matmul: the device, and the quantized output
  // of the last fused norm is forgotten (the op may write its buffer).
  void enter_op() {
    norm_q_.forget();
    set_device();
  }

  // Rows the flash prefill kernel can take: 8-byte aligned, an even stride.
  static bool even_aligned(Act a) { return reinterpret_cast<uintptr_t>(a.data) % 8 == 0 && a.cols % 2 == 0; }

  // Frees everything (after the queued work); never throws.
  void destroy() noexcept {
    cudaSetDevice(dev_);
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    graphs_cache_.clear();
    release_step_buffers();
    if (step_.uploaded != nullptr) cudaEventDestroy(step_.uploaded);
    step_.uploaded = nullptr;
    for (Constant& c : constants_) cudaFree(c.dev);
    constants_.clear();
    for (auto& [k, w] : weights_) cudaFree(w.data);
    weights_.clear();
    lt_.reset();
    for (void* p : {lt_ws_, xbf_, att_scratch_, stage_dev_, topk_dev_, f8q_.p, f8tile_.p, f8n_.p}) cudaFree(p);
    for (void* p : {stage_host_, topk_host_})
      if (p != nullptr) cudaFreeHost(p);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    lt_ws_ = xbf_ = att_scratch_ = stage_dev_ = stage_host_ = topk_dev_ = topk_host_ = nullptr;
    f8q_ = f8tile_ = f8n_ = Scratch{};
    norm_q_.forget();
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
  mutable std::mutex mu_;
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
  void* topk_dev_ = nullptr;  // top_k: round scratch, then the k output keys
  size_t topk_dev_bytes_ = 0;
  void* topk_host_ = nullptr;  // pinned, kTopKMaxK keys
  // FP8: quantized activations and token scales; bf16 tiles
  Fp8Policy fp8_;
  bool any_f8_ = false;
  struct Scratch {
    void* p = nullptr;
    size_t bytes = 0;
  };
  Scratch f8q_, f8tile_;
  // the fused norm's quantized output (NormQuantMemo): one buffer, rewritten
  // by every fused norm, and where its parts are
  bool fused_norm_ = true;
  Scratch f8n_;
  NormQuantMemo norm_q_;
  E4m3Quant norm_qbuf_;
  void* stage_host_ = nullptr;
  void* stage_dev_ = nullptr;
  size_t stage_cap_ = 0, stage_used_ = 0;
  std::vector<Memo> memo_;
  // graphs
  bool graphs_ = false;
  bool in_step_ = false;  // between begin_step and end_step
  StepState step_;
  std::vector<Constant> constants_;
  GraphCache graphs_cache_{16, [](void* e) { cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(e)); }};
  GraphStats stats_;
  std::string graph_note_;
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

GraphStats graph_stats(const Backend& backend) {
  const auto* cb = dynamic_cast<const CudaBackend*>(&backend);
  return cb != nullptr ? cb->stats() : GraphStats{};
}

}  // namespace paca::cuda

namespace paca {

std::unique_ptr<Backend> make_cuda_backend(int index, const BackendSettings& settings) {
  cuda::CudaBackendOptions opt;
  opt.device = index;
  opt.graphs = settings.cuda_graphs;
  opt.fp8_decode_w8a16 = settings.cuda_fp8_decode_w8a16;
  opt.fp8_prefill_w8a8 = settings.cuda_fp8_prefill_w8a8;
  opt.fp8_fused_norm = settings.cuda_fp8_fused_norm;
  return cuda::make_cuda_backend(opt);
}

}  // namespace paca
