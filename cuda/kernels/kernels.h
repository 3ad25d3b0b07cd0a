// kernels.h - host entry points of the CUDA kernel families in cuda/kernels/.
// One family per .cu file; every launch_<op> enqueues its work on `stream`
// and returns at once (no host synchronisation). Each has a CPU twin in
// core/backend/cpu and a test in cuda/tests that compares the two.
//
// Conventions for every launch_<op>:
//   - all pointers are device pointers (or managed memory) owned by the caller;
//   - an empty problem (rows == 0) is a no-op that returns cudaSuccess;
//   - bad arguments return cudaErrorInvalidValue before anything is enqueued;
//   - otherwise the result is cudaGetLastError() after the launch, i.e. a
//     launch failure; errors while the kernel runs surface at the next
//     synchronising call on the stream, as usual in CUDA.
// Nothing here aborts or exits the process.
#pragma once

#include <cuda_runtime_api.h>  // cudaError_t, cudaStream_t

namespace paca::cuda {

// RMSNorm over the rows of x (rmsnorm.cu):
//   y[t, i] = x[t, i] / sqrt(mean_i(x[t, :]^2) + eps) * w[i]
//   x: (rows, cols) f32, row-major, contiguous
//   w: (cols) f32, or bf16 stored as uint16_t bits when w_is_bf16 != 0
//   y: (rows, cols) f32; may alias x (in place)
// Accumulates in f32. One thread block per row.
// Returns cudaErrorInvalidValue when rows < 0, cols <= 0 or a pointer is null.
cudaError_t launch_rmsnorm(const float* x, const void* w, int w_is_bf16, float eps, int rows, int cols, float* y,
                           cudaStream_t stream);

// The residual add fused with RMSNorm (rmsnorm.cu):
//   x[t, i] += r[t, i];  y[t, i] = x[t, i] / sqrt(mean_i(x[t, :]^2) + eps) * w[i]
//   x: (rows, cols) f32, updated in place; r: (rows, cols) f32; y: (rows, cols)
//   f32, must not alias x or r; w as for launch_rmsnorm.
// The same bits as launch_add followed by launch_rmsnorm (same sums in the
// same order), one pass over x instead of three.
// Returns cudaErrorInvalidValue when rows < 0, cols <= 0, a pointer is null
// or y aliases x or r.
cudaError_t launch_add_rmsnorm(float* x, const float* r, const void* w, int w_is_bf16, float eps, int rows, int cols,
                               float* y, cudaStream_t stream);

}  // namespace paca::cuda

// ---- the CudaBackend's kernel families -------------------------------------
// bf16 values are passed as their bits (uint16_t); f32 activations are
// row-major with a leading dimension (elements between rows).
#include <cstddef>  // size_t
#include <cstdint>  // uint16_t, uint8_t, int32_t

namespace paca::cuda {

// GEMV for a few tokens (gemv.cu): y[t, r] = sum_c x[t, c] * W[r, c]
//   W: (rows, cols) bf16, x: (tokens, ldx) f32, y: (tokens, ldy) f32.
// One warp per weight row, 16-byte weight loads when cols % 8 == 0 and x is
// 16-byte aligned (ldx % 4 == 0); each pass over W serves up to 8 tokens.
cudaError_t launch_gemv_bf16(const uint16_t* w, int rows, int cols, const float* x, int ldx, int tokens, float* y,
                             int ldy, cudaStream_t stream);

// Block-quantized weights as stored in GGUF (gemv_blocks.cu), the type given
// by its GGUF id (ggml_type: Q4_0 2, Q4_1 3, Q5_0 6, Q5_1 7, Q8_0 8, Q4_K 12,
// Q5_K 13, Q6_K 14); W is rows of blocks_row_bytes(type, cols) bytes.
// GEMV for a few tokens: y[t, r] = sum_c x[t, c] * W[r, c], W dequantized
// exactly as the CPU's dequantize_blocks does, f32 activations and sums. One
// warp per row, each lane decoding 32 weights at a time once for up to 8 tokens.
// Dequantization to bf16 (round to nearest even): out (rows, cols), for the
// prefill GEMM.
// Both return cudaErrorInvalidValue for an unknown type, cols not a multiple
// of the type's block, ldx < cols, ldy < rows or a null pointer.
bool gemv_blocks_supported(int ggml_type);
size_t blocks_row_bytes(int ggml_type, int cols);  // 0 when unsupported or cols is not a multiple of the block
cudaError_t launch_gemv_blocks(int ggml_type, const uint8_t* w, int rows, int cols, const float* x, int ldx,
                               int tokens, float* y, int ldy, cudaStream_t stream);
cudaError_t launch_dequant_blocks_bf16(int ggml_type, const uint8_t* w, int rows, int cols, uint16_t* out,
                                       cudaStream_t stream);
// The embedding lookup from a block-quantized table: out[t, :] = W[ids[t], :]
// in f32 (an id outside [0, rows) gives a zero row, as launch_embed_bf16).
cudaError_t launch_embed_blocks(int ggml_type, const uint8_t* w, int rows, int cols, const int32_t* ids, int n,
                                float* out, cudaStream_t stream);

// FP8 E4M3 weights (fp8.cu). Codes are bytes; every weight row r has an f32
// scale ws[r] (W[r, c] = e4m3(codes[r, c]) * ws[r]).
// GEMV for a few tokens: y[t, r] = (sum_c e4m3(W[r, c]) * x[t, c] * xs[t]) * ws[r]
//   (the CPU's order; without xs (null) the token factor is left out).
//   W: (rows, cols) codes, x: (tokens, ldx) f32 (for w8a8: the quantized
//   values from launch_quantize_e4m3), y: (tokens, ldy) f32. Each warp
//   takes rows_per_warp (1 or 2) rows, so that one load of x serves them all;
//   16-byte loads of 16 codes when cols % 16 == 0 and x is 16-byte aligned
//   (ldx % 4 == 0), else a scalar path; f32 accumulation, each row's sums in
//   the same order for either rows_per_warp (the same bits).
cudaError_t launch_gemv_f8(const uint8_t* w, const float* w_scales, int rows, int cols, const float* x, int ldx,
                           const float* x_scales, int tokens, float* y, int ldy, int rows_per_warp,
                           cudaStream_t stream);
// Per-token quantization of x (rows, ldx) f32 to E4M3, as the CPU does it:
//   dynamic != 0: s_t = max(min(max_c |x[t, c]|, act_ub), 1e-12) / 448 (act_ub
//   may be +inf); else s_t = act_scale (> 0). code = e4m3(x / s_t), round to
//   nearest even, saturated to +-448. Writes scales[t] = s_t, the codes into
//   q8 (ld ldq8) and/or their values (f32, exact) into qf (ld ldqf); either
//   may be null, not both. Rows rows..pad_rows-1 (q8 only) get zero codes and
//   scale 1: the padding of a GEMM whose token count must be a multiple of 16.
cudaError_t launch_quantize_e4m3(const float* x, int ldx, int rows, int cols, int pad_rows, int dynamic, float act_ub,
                                 float act_scale, uint8_t* q8, int ldq8, float* qf, int ldqf, float* scales,
                                 cudaStream_t stream);
// RMSNorm, or the residual add fused with RMSNorm, that also quantizes its
// output per token (rmsnorm.cu): y, and x when r is given, get exactly the
// bits of launch_rmsnorm (r null: x is only read, y may alias it) or
// launch_add_rmsnorm (r given: x += r first; y must not alias x or r), and
// q gets what launch_quantize_e4m3 (no padding) would compute from that y:
// the same scale rule and codes, bit for bit. Rows [0, code_rows) are
// written as codes into q8 (row t at q8 + t * ldq8), rows [code_rows, rows)
// as values into qf (row t at qf + (t - code_rows) * ldqf): the split of an
// FP8 GEMM over whole 16s of tokens plus the GEMV over the rest; scales
// (rows) gets every row's scale. One thread block per row, as the norms.
struct E4m3Quant {
  int dynamic = 1;        // per-token scales from the row maxima, else act_scale
  float act_ub = 0;       // dynamic: the bound of the row maxima (> 0, may be +inf)
  float act_scale = 0;    // static: the scale (> 0)
  int code_rows = 0;      // rows [0, code_rows) as codes, the rest as values
  uint8_t* q8 = nullptr;  // (code_rows, ldq8) codes; may be null when code_rows == 0
  int ldq8 = 0;
  float* qf = nullptr;    // (rows - code_rows, ldqf) values; may be null when code_rows == rows
  int ldqf = 0;
  float* scales = nullptr;  // (rows) f32
};
// Returns cudaErrorInvalidValue for what the two norms refuse, a missing
// output, a leading dimension below cols, code_rows outside [0, rows], or a
// bound / static scale that is not positive.
cudaError_t launch_rmsnorm_quant(float* x, const float* r, const void* w, int w_is_bf16, float eps, int rows, int cols,
                                 float* y, const E4m3Quant& q, cudaStream_t stream);
// out[i] = e4m3(codes[i]) as bf16 bits, n elements (exact).
cudaError_t launch_e4m3_to_bf16(const uint8_t* codes, size_t n, uint16_t* out, cudaStream_t stream);
// The epilogue of an unscaled FP8/BF16 GEMM: y[t, r] = (src[t, r] * xs[t]) * ws[r]
// for t < tokens, r < rows (xs null: src[t, r] * ws[r]); src may be y (same ld).
cudaError_t launch_scale_rows_tokens(const float* src, int lds, int rows, int tokens, const float* w_scales,
                                     const float* x_scales, float* y, int ldy, cudaStream_t stream);

// Elementwise (elementwise.cu).
// out[t, :] = widen(table[ids[t], :]) for a bf16 table (rows, cols); an id
// outside [0, rows) gives a row of zeros.
cudaError_t launch_embed_bf16(const uint16_t* table, int rows, int cols, const int32_t* ids, int tokens, float* out,
                              cudaStream_t stream);
// out = silu(gate) * up over n elements (out may alias gate or up).
cudaError_t launch_swiglu(const float* gate, const float* up, size_t n, float* out, cudaStream_t stream);
// x += y over n elements.
cudaError_t launch_add(float* x, const float* y, size_t n, cudaStream_t stream);
// out[i] = bf16(x[i]) (round to nearest even) over n elements.
cudaError_t launch_to_bf16(const float* x, size_t n, uint16_t* out, cudaStream_t stream);
// Rotates x (tokens, ld) in place: for every head h < n_heads and pair i <
// head_dim / 2, the pair (a, b) = (2i, 2i + 1) (interleaved) or (i, i + head_dim / 2)
// (half) turns by the angle pos[t] * freqs[i].
cudaError_t launch_rope(float* x, int tokens, int ld, int n_heads, int head_dim, const int32_t* pos,
                        const float* freqs, int half_layout, cudaStream_t stream);

// Paged KV cache (attention.cu). A block holds, per layer, K then V, each
// (block_tokens, kv_dim) f32 or bf16 (elem_bytes 4 or 2): the K row of slot s
// of layer l starts at l * 2 * plane + s * kv_dim * elem_bytes, V one plane
// later (plane = block_tokens * kv_dim * elem_bytes).
struct PagedKv {
  uint8_t* const* blocks = nullptr;  // device array: block b holds positions [b * block_tokens, ...)
  int block_tokens = 0;
  int kv_dim = 0;
  int elem_bytes = 4;
  int layer = 0;
};
// Stores k[t], v[t] (tokens, ld*) at position pos[t].
cudaError_t launch_kv_write(const PagedKv& kv, const float* k, int ldk, const float* v, int ldv, const int32_t* pos,
                            int tokens, cudaStream_t stream);
// Causal GQA attention: query head h of token t (at pos[t]) attends to cached
// positions 0..pos[t] of kv head h / (n_heads / n_kv_heads), softmax in f32
// with a running maximum (online softmax). q: (tokens, ldq), out: (tokens, ldo).
// head_dim <= 256. splits > 1 divides each row's positions over that many
// blocks, whose partial results (scratch: tokens * n_heads * splits *
// (head_dim + 2) floats) a second kernel combines: for decode at long context.
cudaError_t launch_attention(const PagedKv& kv, const float* q, int ldq, const int32_t* pos, int tokens, int n_heads,
                             int n_kv_heads, int head_dim, float scale, int splits, float* scratch, float* out, int ldo,
                             cudaStream_t stream);
// RoPE fused with the KV write (elementwise.cu): for each token t, rotates
// the n_heads query heads of q[t] and the n_kv_heads heads of k[t] in place
// exactly as launch_rope does (same angles, same rounding), then stores the
// rotated k[t] and v[t] at position pos[t] like launch_kv_write: the bits of
// launch_rope(q), launch_rope(k), launch_kv_write in one pass.
// n_kv_heads * head_dim must equal kv.kv_dim.
cudaError_t launch_rope_kv_write(const PagedKv& kv, float* q, int ldq, float* k, int ldk, const float* v, int ldv,
                                 const int32_t* pos, int tokens, int n_heads, int n_kv_heads, int head_dim,
                                 const float* freqs, int half_layout, cudaStream_t stream);
// Causal GQA attention for prefill on tensor cores (flash_prefill.cu): the
// result of launch_attention (splits 1) with Q, K, V and the softmax weights
// P rounded to bf16 for the products (f32 accumulation, softmax in f32), so
// it agrees with the f32 kernels to about 1e-2 relative L2, not 1e-5. Rows
// of a token are causal over its own position pos[t] (any order of rows).
// Needs flash_prefill_supports; q and out 8-byte aligned, ldq and ldo even.
cudaError_t launch_flash_prefill(const PagedKv& kv, const float* q, int ldq, const int32_t* pos, int tokens,
                                 int n_heads, int n_kv_heads, int head_dim, float scale, float* out, int ldo,
                                 cudaStream_t stream);
// Shapes launch_flash_prefill takes: head_dim 64 or 128, n_heads a multiple
// of n_kv_heads, kv_dim a multiple of 8, f32 or bf16 cache.
bool flash_prefill_supports(const PagedKv& kv, int n_heads, int n_kv_heads, int head_dim);
// The k best of n logits (topk.cu; keys in topk.h), 1 <= k <= kTopKMaxK:
// out_keys[0..k) (device) gets their keys in descending order, which is
// select_top_k's order (sample/sampler.h); keys of -inf and NaN logits, and
// the slots past the last candidate, are 0. scratch: topk_scratch_keys(n, k)
// keys (none needed when n <= kTopKChunk or k == 1).
cudaError_t launch_top_k(const float* logits, int n, int k, uint64_t* scratch, uint64_t* out_keys,
                         cudaStream_t stream);
// The sampler's mass of n logits (logit_mass, sample/sampler.h) against the
// logit of *best_key (a key of topk.h, on the device: launch_top_k's first),
// with scale = mass_scale(n), into *out (device memory). No host wait.
cudaError_t launch_logit_mass(const float* logits, int n, const uint64_t* best_key, double scale, uint64_t* out,
                              cudaStream_t stream);

// Floats of scratch launch_attention needs.
inline size_t attention_scratch_floats(int tokens, int n_heads, int head_dim, int splits) {
  return splits <= 1 ? 0 : static_cast<size_t>(tokens) * n_heads * splits * (static_cast<size_t>(head_dim) + 2);
}

}  // namespace paca::cuda
