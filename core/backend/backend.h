// backend.h - the Backend interface: where tensors live and the ops the Llama
// forward pass is written in. The model code calls these ops and never asks
// which device it runs on. Activations are f32 row-major [tokens, features];
// weights are in their stored dtype ([out, in] rows).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/config.h"
#include "format/tensor.h"
#include "sample/candidates.h"

namespace paca {

// An activation buffer owned by a backend: f32 [rows, cols], row-major.
struct Act {
  float* data = nullptr;
  int rows = 0;
  int cols = 0;
  float* row(int r) const { return data + static_cast<size_t>(r) * cols; }
};

// Layout of one KV-cache block: for each layer, K then V, each
// [block_tokens, kv_dim] in `dtype`.
struct KvLayout {
  int n_layers = 0;
  int block_tokens = 16;
  int kv_dim = 0;
  DType dtype = DType::f32;  // f32 or bf16

  size_t elem_bytes() const { return dtype == DType::f32 ? 4 : 2; }
  size_t plane_bytes() const { return static_cast<size_t>(block_tokens) * kv_dim * elem_bytes(); }
  size_t block_bytes() const { return plane_bytes() * 2 * n_layers; }
  // byte offset of (layer, k or v, slot) inside a block
  size_t offset(int layer, int is_v, int slot) const {
    return plane_bytes() * (static_cast<size_t>(layer) * 2 + is_v) +
           static_cast<size_t>(slot) * kv_dim * elem_bytes();
  }
};

// The KV blocks of one sequence, in logical order: block b holds positions
// [b * block_tokens, (b + 1) * block_tokens).
struct KvSeq {
  const KvLayout* layout = nullptr;
  std::span<uint8_t* const> blocks;
};

// Memory of the device a backend computes on, in bytes: what is free now and
// the total (the host's MemAvailable / MemTotal for the CPU).
struct DeviceMemory {
  uint64_t free = 0;
  uint64_t total = 0;
};

struct AttentionShape {
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

// The host inputs of one forward step (LlamaModel::forward_batch): every
// row's token id and position, and each sequence's KV blocks and row count
// (the rows are the sequences' tokens one sequence after another).
struct StepInputs {
  std::span<const int32_t> tokens;
  std::span<const int32_t> pos;
  std::span<const KvSeq> seqs;
  std::span<const int> seq_rows;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Memory for activations and KV blocks (zero-filled).
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  // Copies bytes; dst and src may each be host memory or memory from alloc()
  // (KV blocks are copied on write and read/written by snapshots this way).
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;

  // out[t] = table[tokens[t]]
  virtual void embed(const TensorView& table, std::span<const int32_t> tokens, Act out) = 0;
  // out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w
  virtual void rmsnorm(Act x, const TensorView& w, float eps, Act out) = 0;
  // out[t, r] = sum_c x[t, c] * W[r, c]   (out.cols == W.rows)
  virtual void matmul(Act x, const TensorView& w, Act out) = 0;
  // Rotates every head of x (rows: tokens at positions pos) by pos * freqs.
  virtual void rope(Act x, int n_heads, int head_dim, std::span<const int32_t> pos, std::span<const float> freqs,
                    RopeLayout layout) = 0;
  // Stores k[t], v[t] at position pos[t] of `seq` for `layer`.
  virtual void kv_write(const KvSeq& seq, int layer, Act k, Act v, std::span<const int32_t> pos) = 0;
  // RoPE fused with the KV write, for the rows of one sequence: rotates the
  // shape.n_heads heads of q and the shape.n_kv_heads heads of k in place as
  // rope does, then stores k[t], v[t] at position pos[t] of `seq` for `layer`
  // as kv_write does. The default composes the three ops (so the CPU's
  // results are theirs, bit for bit); a device may fuse them.
  virtual void rope_kv_write(Act q, Act k, Act v, const KvSeq& seq, int layer, std::span<const int32_t> pos,
                             std::span<const float> freqs, RopeLayout layout, const AttentionShape& shape) {
    rope(q, shape.n_heads, shape.head_dim, pos, freqs, layout);
    rope(k, shape.n_kv_heads, shape.head_dim, pos, freqs, layout);
    kv_write(seq, layer, k, v, pos);
  }
  // Causal GQA attention: query row t (at position pos[t]) attends to cached
  // positions 0..pos[t]. out: [T, n_heads * head_dim].
  virtual void attention(Act q, const KvSeq& seq, int layer, std::span<const int32_t> pos,
                         const AttentionShape& shape, Act out) = 0;
  // out = silu(gate) * up
  virtual void swiglu(Act gate, Act up, Act out) = 0;
  // x += y
  virtual void add(Act x, Act y) = 0;
  // x += y, then out = rmsnorm(x) * w: the residual add fused with the norm
  // that follows it. The default composes the two ops (so the CPU's results
  // are those of add + rmsnorm, bit for bit); a device may fuse them.
  virtual void add_rmsnorm(Act x, Act y, const TensorView& w, float eps, Act out) {
    add(x, y);
    rmsnorm(x, w, eps, out);
  }
  // The two norms with a hint: `readers` are the weights of the matmuls that
  // will read `out` next, in that order, each with x = out (all its rows),
  // before any op or collective writes `out` again; the caller promises that
  // much and nothing more (it may also run fewer of them). A device may use
  // the hint to emit, in the norm's pass, what those matmuls would otherwise
  // compute from `out` first (the CUDA backend: the FP8 activation codes and
  // per-token scales of w8a8 weights, see cuda/README.md); the results are
  // those of the plain norm and matmuls, bit for bit. The defaults ignore it.
  virtual void rmsnorm_for(Act x, const TensorView& w, float eps, Act out, std::span<const TensorView* const> readers) {
    (void)readers;
    rmsnorm(x, w, eps, out);
  }
  virtual void add_rmsnorm_for(Act x, Act y, const TensorView& w, float eps, Act out,
                               std::span<const TensorView* const> readers) {
    (void)readers;
    add_rmsnorm(x, y, w, eps, out);
  }
  // Copies n floats from the backend to host memory.
  virtual void to_host(const float* src, float* dst, size_t n) = 0;
  // The k best of the n logits at `logits` (backend memory) into `out`, as
  // select_top_k (sample/candidates.h) gives them: the largest first, ties by
  // the lower index, -inf and NaN never (fewer than k when fewer are left).
  // When mass is not null it also receives logit_mass(logits, out[0].logit)
  // (0 when out is empty; any value when out[0] is +inf), the vocabulary's
  // mass top-p needs (Sampler::mass_needed). Called outside a step. The
  // default reads the n logits to the host; a device finds the k and adds up
  // the mass there, and sends only those (k <= Sampler::kMaxBest, 256).
  virtual void top_k(const float* logits, size_t n, size_t k, std::vector<Candidate>& out, uint64_t* mass);

  // Steps. A model may bracket the ops of one forward step with begin_step
  // (its host inputs, before the first op) and end_step (after the last op,
  // before any to_host of its results), or abort_step when the step fails in
  // between. Inside the bracket a backend may defer the ops' work until
  // end_step (the CUDA backend records a decode step once as a CUDA graph and
  // replays it), so the caller keeps every host array it passed to begin_step
  // or to an op (positions, token ids, block tables) alive and unchanged
  // until end_step, and reads no op output before it. abort_step drops work
  // not yet done and never throws. The defaults do nothing: ops run as they
  // are called (the CPU backend).
  virtual void begin_step(const StepInputs& in) { (void)in; }
  virtual void end_step() {}
  virtual void abort_step() noexcept {}

  // Weights. Ops always receive the checkpoint's own views (host pointers).
  // A backend whose ops read those views in place answers true here, and the
  // loader pages the mapped files in. A device backend answers false and is
  // given every weight once, before the first op, through upload_weights: it
  // copies each into its own memory (in its own dtype) and later finds the
  // copy by the view's data pointer. progress(fraction in [0, 1]) returning
  // false aborts the upload with Error(cancelled).
  virtual bool weights_on_host() const { return true; }
  // Free and total memory of the device (sizes the KV-cache pool when a
  // memory fraction is asked for; see runtime/kv_cache.h).
  virtual DeviceMemory memory() const = 0;
  virtual void upload_weights(std::span<const TensorView* const> weights, const std::function<bool(float)>& progress) {
    (void)weights;
    (void)progress;
  }
};

// Settings that choose which kernels run, and so can change the last bits of
// the results (paca_model_params' cpu_isa and cuda_* fields). The library
// never reads them from the environment; the paca command does, as developer
// overrides.
struct BackendSettings {
  std::string cpu_isa;                 // CPU kernels: "" or "auto" = the best this CPU runs, else cpu::Kernels::isa
  bool cuda_graphs = true;             // CUDA: record decode steps as graphs and replay them
  bool cuda_fp8_decode_w8a16 = false;  // CUDA FP8: w8a8 weights run weight-only at decode
  bool cuda_fp8_prefill_w8a8 = false;  // CUDA FP8: weight-only weights quantize activations at prefill
  bool cuda_fp8_fused_norm = true;     // CUDA FP8: norms quantize their output for their first reader
};

// A CPU backend with n_threads workers (<= 0: all hardware threads) on the
// kernels named cpu_isa ("" or "auto": the best this CPU runs). Throws
// Error(invalid_argument) for an ISA this build or CPU cannot run, listing those it can.
std::unique_ptr<Backend> make_cpu_backend(int n_threads, const std::string& cpu_isa = "");

// The CUDA backend on device `index` (cuda/cuda_backend.cpp). Throws
// Error(device) when this build has no CUDA backend, when there is no usable
// CUDA device (the message starts with the reason, e.g. "no CUDA device: ...")
// or when index is out of range.
std::unique_ptr<Backend> make_cuda_backend(int index, const BackendSettings& settings = {});

// The backend a device string names: "cpu" (n_threads workers), "cuda"
// (= "cuda:0") or "cuda:N". Throws Error(invalid_argument) for any other
// string and Error(device) when the device is unavailable (backend/factory.cpp).
std::unique_ptr<Backend> make_backend(const std::string& device, int n_threads, const BackendSettings& settings = {});
// The CUDA device index of a "cuda" / "cuda:N" string; -1 for anything else
// (a malformed "cuda:..." included).
int parse_cuda_device(const std::string& device);

}  // namespace paca
