// cuda_backend.h - the CUDA backend (CudaBackend in cuda_backend.cpp) with the
// knobs tests turn, and its host-side planning, which is plain C++ and
// tested without a device. core reaches the backend only through
// paca::make_cuda_backend (backend/backend.h).
#pragma once

#include <cuda_runtime_api.h>  // cudaStream_t

#include <cstdint>     // uint64_t
#include <functional>  // std::function
#include <list>        // std::list
#include <memory>      // std::unique_ptr
#include <optional>    // std::optional
#include <span>        // std::span
#include <string>      // std::string
#include <vector>      // std::vector

#include "backend/backend.h"  // paca::Backend

namespace paca::cuda {

struct CudaBackendOptions {
  int device = 0;
  bool use_cublaslt = true;   // false: every matmul through the GEMV kernel
  int gemv_max_tokens = 8;    // matmuls of at most this many tokens take the GEMV kernel
  int attention_splits = 0;   // 0: chosen by attention_splits_for; else forced (>= 1)
  // Attention calls with at least this many query rows (prefill) take the
  // tensor-core kernel (launch_flash_prefill) when it supports the shape;
  // 0: never (every call through launch_attention).
  int flash_min_rows = 16;
  // Record decode steps as CUDA graphs and replay them (see "CUDA graphs"
  // below). The library reads no environment variable: these options come
  // from paca_model_params (the paca command and paca-bench map their
  // developer variables PACA_CUDA_* onto those fields, examples/cli/dev_env.h).
  bool graphs = true;
  // FP8 weights (issue 7): see Fp8Policy below.
  bool fp8_decode_w8a16 = false;
  bool fp8_prefill_w8a8 = false;
  // The FP8 GEMM applies row x token scales itself (cuBLASLt's outer-vector
  // scale mode) when it can; false: always unscaled plus the epilogue kernel.
  bool fp8_lt_scales = true;
  // Rows per warp of the FP8 GEMV (1 or 2); 0: fp8_gemv_rows_per_warp.
  int fp8_gemv_rows_per_warp = 0;
  // A norm told its readers (Backend::rmsnorm_for) quantizes its output for
  // the first w8a8 reader in the same kernel, and the matmuls that quantize
  // the same way reuse it (see NormQuantMemo); false: every matmul quantizes
  // for itself.
  bool fp8_fused_norm = true;
};

// Throws Error(device) when the device is unavailable ("no CUDA device: ..."
// leads the message when there is none) or index is out of range.
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& opt);

// The stream every op of a CUDA backend is enqueued on, and its device: what
// NcclComm needs to run collectives in order with the backend's work. False
// (outputs untouched) for any other backend.
bool cuda_stream_of(Backend& backend, cudaStream_t* stream, int* device);

// ---- host-side planning -----------------------------------------------------

// Splits of each attention row's positions over blocks: 1 unless the (token,
// head) rows alone would fill fewer than 2 blocks per multiprocessor and the
// longest row has more than 256 positions; then enough splits of at least 128
// positions each to reach that, at most 32.
int attention_splits_for(int tokens, int n_heads, int max_positions, int sm_count);

// Whether an attention call of `rows` query rows goes to the flash prefill
// kernel: flash_min_rows > 0, rows >= flash_min_rows, head_dim 64 or 128
// (the backend also asks flash_prefill_supports about the cache).
bool use_flash_prefill(int flash_min_rows, int rows, int head_dim);

enum class MatmulPath { gemv, cublaslt };
// GEMV for up to gemv_max_tokens tokens or when cuBLASLt is unavailable.
MatmulPath matmul_path(int tokens, int gemv_max_tokens, bool cublaslt_available);

// Bytes a weight of this shape takes on the device: bf16 for matrices
// (rows > 1), f32 for vectors (norm weights); FP8 weights stay FP8: one byte
// per element, padded to 256 bytes, plus one f32 scale per row; block-
// quantized matrices (Q8_0, Q4_0 .. Q6_K) stay as stored (keeps_blocks).
size_t device_weight_bytes(const TensorView& w);
// Whether the device keeps this weight's GGUF blocks as they are (read by the
// block GEMV kernels, dequantized to bf16 per prefill GEMM).
bool keeps_blocks(const TensorView& w);

// ---- FP8 weights (issue 7) ----------------------------------------------------
//
// An FP8 weight keeps its E4M3 codes, its per-row f32 scales and its
// activation treatment (TensorView::act, act_ub, act_scale) on the device.
// How one matmul with it runs:
enum class Fp8Path {
  gemv,        // weight-only: the FP8 GEMV on the f32 activations
  quant_gemv,  // w8a8: activations quantized per token (values kept as f32), then the FP8 GEMV
  quant_lt,    // w8a8: activations quantized to E4M3 codes, cuBLASLt FP8 GEMM, row x token scales
  bf16_lt,     // weight-only: codes widened to bf16 tiles (exact), activations rounded to
               // bf16, cuBLASLt BF16 GEMM, row scales applied to its f32 result
};
// The knobs of the choice. Defaults keep every tensor's own activation
// treatment (the CPU's arithmetic); the two switches are the A/B the
// benchmarks measure (cuda-kernels-bench, paca-bench --fp8-mode):
//   decode_w8a16: at decode (<= gemv_max_tokens) w8a8 weights run weight-only
//     (no activation rounding, one launch fewer per matmul, same bytes);
//     PACA_CUDA_FP8_DECODE=w8a16 (or "auto", the default: as the tensor says).
//   prefill_w8a8: above that, weight-only weights quantize their activations
//     per token (dynamic, no bound) for the FP8 tensor cores instead of the
//     BF16 GEMM on widened tiles; PACA_CUDA_FP8_PREFILL=w8a8 (or "auto").
struct Fp8Policy {
  int gemv_max_tokens = 8;
  bool decode_w8a16 = false;
  bool prefill_w8a8 = false;
};
struct Fp8Plan {
  Fp8Path path = Fp8Path::gemv;
  ActQuant act = ActQuant::none;  // the activation treatment that path applies
};
// The path of a matmul of `tokens` tokens with an FP8 weight (rows, cols)
// whose activation treatment is `act`. The FP8 GEMM needs rows and cols that
// are multiples of 16 (it takes the tokens in whole 16s, the GEMV the rest);
// other w8a8 shapes take quant_gemv.
Fp8Plan plan_fp8_matmul(int tokens, int rows, int cols, ActQuant act, const Fp8Policy& policy,
                        bool cublaslt_available);
// Rows per warp of the FP8 GEMV for a weight of `rows` rows: 2 (each load of
// the activations serves two rows) when that still gives every
// multiprocessor a block of 8 warps, else 1.
int fp8_gemv_rows_per_warp(int rows, int sm_count);
// Rows of an FP8 weight (rows, cols) widened to bf16 at a time for the
// weight-only prefill GEMM: a multiple of 16 whose tile takes at most 32 MiB
// (at least 16 rows), never more than rows.
int fp8_tile_rows(int rows, int cols);
// How a matmul with an FP8 weight quantizes its activations, when it does:
// the treatment (dynamic per-token scales with the bound ub, or the static
// scale) and which rows take the FP8 GEMM as E4M3 codes, [0, code_rows)
// (quant_lt: the whole 16s of tokens), the rest going to the GEMV as the
// codes' f32 values. Equal when every field is, the floats bit for bit.
struct Fp8ActQuant {
  int dynamic = 1;
  float ub = 0;     // dynamic: bound of the row maxima (+inf: none)
  float scale = 0;  // static: the scale
  int code_rows = 0;
  bool operator==(const Fp8ActQuant& o) const;
};
// The activation quantization of a matmul of `tokens` tokens with an FP8
// weight (rows, cols) of treatment act (bound act_ub, static scale
// act_scale), as plan_fp8_matmul plans it; nullopt when it quantizes
// nothing (weight-only paths).
std::optional<Fp8ActQuant> fp8_act_quant(int tokens, int rows, int cols, ActQuant act, float act_ub, float act_scale,
                                         const Fp8Policy& policy, bool cublaslt_available);

// What the backend remembers of the quantized output of its last fused norm
// (launch_rmsnorm_quant): the f32 buffer it normalised into, its shape and
// quantization. A matmul may take the codes instead of quantizing again
// only when it reads exactly that buffer and shape and quantizes exactly
// that way (usable). The memory is forgotten by every other op (the backend
// calls forget at their start: any of them may write the buffer), by a
// matmul whose output overlaps the buffer (wrote) and by the next norm;
// between a norm and its readers the caller promises no other writes
// (Backend::rmsnorm_for). Plain host state, read only while ops are issued:
// a recorded decode step holds the launches it chose, so a graph replays
// the fused kernel and its readers together or neither.
class NormQuantMemo {
 public:
  void made(const float* out, int rows, int cols, const Fp8ActQuant& q);
  bool usable(const float* x, int rows, int cols, const Fp8ActQuant& q) const;
  // [p, p + bytes) was written: forget when it overlaps the remembered buffer
  void wrote(const void* p, size_t bytes);
  void forget() { valid_ = false; }
  bool valid() const { return valid_; }

 private:
  bool valid_ = false;
  const float* out_ = nullptr;
  int rows_ = 0, cols_ = 0;
  Fp8ActQuant q_;
};

// Refuses an FP8 weight the device cannot run as the CPU does, with
// Error(format): no scales, an activation bound or static scale that is not
// positive, or E4M3 NaN codes (0x7f / 0xff) in its bytes.
void check_fp8_weight(const TensorView& w);
// True when any of n E4M3 codes is a NaN (0x7f or 0xff).
bool has_e4m3_nan(const uint8_t* codes, size_t n);

// Error(out_of_memory) "too little memory on <device> for <what>: need X
// bytes, have Y free of Z" when need > free.
void check_fits(const std::string& device, const char* what, uint64_t need, uint64_t free, uint64_t total);

// ---- CUDA graphs of decode steps ------------------------------------------
//
// A step bracketed by begin_step/end_step (backend.h) whose sequences each
// bring one token, at most kMaxGraphSeqs of them, is a decode step: its host
// inputs (token ids, positions, block tables) go once into fixed device
// buffers that the kernels read, its ops are recorded instead of launched,
// and end_step replays the CUDA graph recorded for exactly those launches
// (captured the first time). The attention split plan of such a step comes
// from its context bucket, not its exact length, so the launches stay the
// same from one step to the next; blocks past a row's length find no
// positions and the combine kernel skips them.

constexpr int kMaxGraphSeqs = 8;

// The positions an attention split plan is sized for: the next power of two
// >= positions, at least 256.
int context_bucket(int positions);

struct DecodeGraphPlan {
  bool graph = false;    // record and replay this step
  int ctx_bucket = 0;    // context_bucket of the longest sequence
  int table_blocks = 0;  // block-table row capacity of the fixed buffers (>= every sequence's blocks)
};
// The plan of a step with these sequences (rows = tokens per sequence,
// blocks = KV blocks per sequence, max_positions = longest sequence after
// the step). table_blocks keeps `current_table_blocks` when it is enough,
// else the next power of two >= 16 that is.
DecodeGraphPlan plan_decode_graph(bool enabled, std::span<const int> rows, std::span<const size_t> blocks,
                                  int max_positions, int current_table_blocks);

// Recorded graphs keyed by the exact launch signature of a step's ops
// (kernel, pointers, sizes, in order): a step replays a graph only when it
// would launch the same kernels on the same memory. At most `capacity`
// graphs; the least recently used one is destroyed first.
class GraphCache {
 public:
  using Key = std::vector<uint64_t>;
  using Destroy = std::function<void(void*)>;
  GraphCache(size_t capacity, Destroy destroy) : capacity_(capacity), destroy_(std::move(destroy)) {}
  ~GraphCache() { clear(); }
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;
  void* find(const Key& key);           // the graph of key (now the most recent), or nullptr
  void insert(Key key, void* graph);    // key must be absent
  size_t size() const { return entries_.size(); }
  void clear();

 private:
  struct Entry {
    Key key;
    void* graph;
  };
  size_t capacity_;
  Destroy destroy_;
  std::list<Entry> entries_;  // most recently used first
};

// Counters of a CUDA backend's graphs and of its flash prefill calls (zeros
// for any other backend).
struct GraphStats {
  uint64_t recorded = 0;   // graphs captured
  uint64_t replayed = 0;   // steps run by launching a graph (the first launch included)
  uint64_t eager = 0;      // bracketed steps that ran op by op (not decode-shaped, graphs off, or a fallback)
  uint64_t fallbacks = 0;  // decode steps that left recording (an input not from begin_step, a capture error)
  uint64_t flash_prefill = 0;  // attention calls that took the flash prefill kernel (not a graph counter)
  uint64_t rope_kv_fused = 0;  // rope_kv_write calls that took the fused kernel (not a graph counter)
  uint64_t norm_quant_fused = 0;   // norms that quantized their output for FP8 readers (not a graph counter)
  uint64_t norm_quant_reused = 0;  // FP8 matmuls that took a norm's codes instead of quantizing (idem)
};
GraphStats graph_stats(const Backend& backend);

}  // namespace paca::cuda
