// kernels.h - the CPU inner loops, in a portable scalar version, an
// AVX2/FMA/F16C version and an AVX-512 (F/BW/VL + VNNI) version, chosen at
// run time (cpu_kernels()). Every function
// computes one result with a fixed summation order, so results do not depend
// on how work is split across threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "format/tensor.h"

namespace paca::cpu {

// Activations entering a matmul with block-quantized weights are quantized
// once per token row to 8 bits, per block of the weight type:
//   legacy types (32-blocks): d = max|x| / 127, q = round(x / d) (ties to even), s = d * sum q
//   K types (256-blocks): the same d and q per 256, and bsum[k] = sum of q[16k .. 16k+15]
// (a row with a non-finite value gets d = NaN, so its outputs are NaN, not garbage).
struct ActQ32 {
  float d;
  float s;
  int8_t q[32];
};
struct ActQ256 {
  float d;
  int8_t q[256];
  int16_t bsum[16];
};
static_assert(sizeof(ActQ32) == 40 && sizeof(ActQ256) == 292);

// The activation format a block type reads: 32 (ActQ32) or 256 (ActQ256).
inline size_t act_block(DType t) { return block_shape(t).elems; }
inline size_t act_row_bytes(DType t, size_t n) {
  return act_block(t) == 256 ? n / 256 * sizeof(ActQ256) : n / 32 * sizeof(ActQ32);
}
// Quantizes one row of n activations for weights of type t (n a multiple
// of its block): the scalar definition. Every kernel set's quantize_acts
// writes exactly its bytes (codes, d, s and bsum), so every ISA reads the
// same codes.
void quantize_activations(DType t, const float* x, void* out, size_t n);
// The q = round(x * id) multiplier of a block whose largest magnitude is
// amax: 127 / amax, capped at FLT_MAX (a block of subnormals would give inf
// and inf * 0 = NaN), 0 for a zero block.
inline float activation_inverse_scale(float amax) {
  if (!(amax > 0)) return 0.0f;
  const float id = 127.0f / amax;
  return id < 3.402823466e38f ? id : 3.402823466e38f;
}

// The block dots: sum over the row of dequantized w times the
// dequantized activations, in one fixed order that every ISA follows bit for
// bit: eight f32 lanes, lane l of each 32 consecutive elements taking the
// exact integer sum over elements 4l .. 4l+3 (times the integer sub-block
// scale of the K types), each block (legacy) or super-block (K) adding
// fma(d_w * d_x, lane, acc[l]); at the end
// ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
// The weight mins: Q4_1/Q5_1 add fma(m, s_x, accm) per block to one scalar
// chain, added last; Q4_K/Q5_K subtract, right after each super-block's fma,
// lane l += -(d_min * d_x) * (m[l] * (bsum[2l] + bsum[2l+1])) (one fma per
// lane, sub-block l's min in lane l: no horizontal sum per super-block).
// Q6_K's lanes take its unsigned codes (0..63) and its offset of 32 as the
// integer 32 * (scale[2l] * bsum[2l] + scale[2l+1] * bsum[2l+1]) taken from
// lane l before the fma (exact in int32: |lane| < 2^26).
using BlockDot = float (*)(const void* w, const void* xq, size_t n);
// The same dot of `rows` weight rows `row_bytes` apart with `tokens`
// activation rows `stride` bytes apart: out[t * ldo + r] =
// BlockDot(w + r * row_bytes, xq + t * stride, n), bit for bit, each weight
// row unpacked once for several tokens and (legacy types on x86) two rows
// sharing each activation load (prefill, batches).
using BlockDots = void (*)(const void* w, size_t row_bytes, size_t rows, const void* xq, size_t stride, size_t tokens,
                           size_t n, float* out, size_t ldo);

struct Kernels {
  const char* isa;
  // sum_i w[i] * x[i] for a weight row of n elements in each dtype
  float (*dot_f32)(const void* w, const float* x, size_t n);
  float (*dot_f16)(const void* w, const float* x, size_t n);
  float (*dot_bf16)(const void* w, const float* x, size_t n);
  float (*dot_q8_0)(const void* w, const float* x, size_t n);  // n % 32 == 0
  float (*dot_f8e4m3)(const void* w, const float* x, size_t n);  // unscaled: sum e4m3(w[i]) * x[i]
  // The same dot of one stored row with `tokens` activation rows ldx floats
  // apart: out[t * ldo] = dot(w, x + t * ldx), each with exactly the dot
  // kernel's bits, the row read from memory once (small batches).
  void (*dots_f32)(const void* w, const float* x, size_t ldx, size_t tokens, size_t n, float* out, size_t ldo);
  void (*dots_f16)(const void* w, const float* x, size_t ldx, size_t tokens, size_t n, float* out, size_t ldo);
  void (*dots_bf16)(const void* w, const float* x, size_t ldx, size_t tokens, size_t n, float* out, size_t ldo);
  // Rearranges one row of n f32 values into the order gemm_f32 reads
  // (dst and src do not overlap; the scalar version copies).
  void (*gemm_pack)(const float* src, float* dst, size_t n);
  // Blocked f32 matmul for prefill: out[t * ldo + r] = sum_i w[r * ldw + i] *
  // x[t * ldx + i] for r < rows, t < tokens, where the rows of w and x were
  // rearranged by gemm_pack. Each output is computed with the same operations
  // in the same order however rows and tokens are grouped, and the same as
  // the dot kernels compute it on the stored (unpacked) row: a token gives
  // the same bits alone (decode), inside a prefill or inside a batch.
  void (*gemm_f32)(const float* w, size_t ldw, const float* x, size_t ldx, float* out, size_t ldo, size_t rows,
                   size_t tokens, size_t n);
  // In place: x[i] = exp(x[i] * scale - max_j x[j] * scale) / sum (scale > 0, n >= 1).
  void (*softmax_f32)(float* x, size_t n, float scale);
  // y[i] += a * x[i]
  void (*axpy_f32)(float a, const float* x, float* y, size_t n);
  // out[i] = g[i] / (1 + exp(-g[i])) * up[i] (SwiGLU; exp is fast_exp's
  // polynomial, 8 wide on x86; out may alias g or up)
  void (*swiglu_f32)(const float* g, const float* up, float* out, size_t n);
  // Attention over `count` cached rows spaced `stride` floats apart:
  // out[p] = dot(rows[p], x) and y += sum_p a[p] * rows[p] (in order of p).
  void (*dot_rows_f32)(const float* x, const float* rows, size_t stride, size_t count, size_t n, float* out);
  void (*axpy_rows_f32)(const float* a, const float* rows, size_t stride, size_t count, size_t n, float* y);
  // The same for nq queries sharing the rows (a prefill tile): outs[q][p] =
  // dot_rows_f32's score of row p < count for query xs[q]; ys[q] +=
  // axpy_rows_f32 of as[q] over the first counts[q] rows. Each query gets
  // exactly the bits of its own single-query call (the rows are loaded once
  // for several queries).
  void (*dot_rows_many_f32)(const float* const* xs, float* const* outs, size_t nq, const float* rows, size_t stride,
                            size_t count, size_t n);
  void (*axpy_rows_many_f32)(const float* const* as, float* const* ys, const size_t* counts, size_t nq,
                             const float* rows, size_t stride, size_t n);
  // dst[i] = src[i] widened to f32 for F16/BF16 rows (exact)
  void (*widen_f16)(const void* src, float* dst, size_t n);
  void (*widen_bf16)(const void* src, float* dst, size_t n);
  // cpu::quantize_activations, bit for bit (vectorized on x86)
  void (*quantize_acts)(DType t, const float* x, void* out, size_t n);
  // block dots (see BlockDot) for Q8_0 (on quantized activations, unlike
  // dot_q8_0 above), Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K
  BlockDot dot_q8_0q, dot_q4_0, dot_q4_1, dot_q5_0, dot_q5_1, dot_q4_k, dot_q5_k, dot_q6_k;
  // their token-batched forms (see BlockDots)
  BlockDots dots_q8_0q, dots_q4_0, dots_q4_1, dots_q5_0, dots_q5_1, dots_q4_k, dots_q5_k, dots_q6_k;
};

// The block dot of k for a block type (nullptr for any other dtype).
inline BlockDot block_dot(const Kernels& k, DType t) {
  switch (t) {
    case DType::q8_0: return k.dot_q8_0q;
    case DType::q4_0: return k.dot_q4_0;
    case DType::q4_1: return k.dot_q4_1;
    case DType::q5_0: return k.dot_q5_0;
    case DType::q5_1: return k.dot_q5_1;
    case DType::q4_k: return k.dot_q4_k;
    case DType::q5_k: return k.dot_q5_k;
    case DType::q6_k: return k.dot_q6_k;
    default: return nullptr;
  }
}

// The batched form of a single dot: one call per (row, activation row) (the
// reference, and what a type without its own batched kernel uses).
template <BlockDot Dot>
void dots_by_loop(const void* w, size_t row_bytes, size_t rows, const void* xq, size_t stride, size_t tokens, size_t n,
                  float* out, size_t ldo) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t t = 0; t < tokens; ++t)
      out[t * ldo + r] =
          Dot(static_cast<const uint8_t*>(w) + r * row_bytes, static_cast<const uint8_t*>(xq) + t * stride, n);
}

// The token-batched block dots of k for a block type (nullptr for any other dtype).
inline BlockDots block_dots(const Kernels& k, DType t) {
  switch (t) {
    case DType::q8_0: return k.dots_q8_0q;
    case DType::q4_0: return k.dots_q4_0;
    case DType::q4_1: return k.dots_q4_1;
    case DType::q5_0: return k.dots_q5_0;
    case DType::q5_1: return k.dots_q5_1;
    case DType::q4_k: return k.dots_q4_k;
    case DType::q5_k: return k.dots_q5_k;
    case DType::q6_k: return k.dots_q6_k;
    default: return nullptr;
  }
}

// The scalar block dots and their batched forms (the reference every ISA
// matches bit for bit).
void scalar_block_dots(Kernels& k);
// The AVX2 block dots (the scalar ones when AVX2 is not compiled in); the
// legacy types' batched forms loop over the single dot.
void avx2_block_dots(Kernels& k);

// E4M3 code -> f32 for all 256 codes.
const float* e4m3_table();

const Kernels& scalar_kernels();
const Kernels* avx2_kernels();    // nullptr when not compiled in or not on this CPU
const Kernels* avx512_kernels();  // the same

// Every kernel set this machine can run, scalar first (tests compare each
// with scalar).
std::vector<const Kernels*> available_kernels();

// The kernels for this machine: the widest of avx512, avx2 and scalar the
// CPU runs.
const Kernels& cpu_kernels();
// The set named isa ("scalar", "avx2", "avx512"; "" or "auto": cpu_kernels()).
// Throws Error(invalid_argument), listing the sets it can run, for a name
// this build or CPU cannot (paca_model_params.cpu_isa).
const Kernels& kernels_for(std::string_view isa);

// Row dot product for any weight dtype.
inline float dot_row(const Kernels& k, DType t, const void* w, const float* x, size_t n) {
  switch (t) {
    case DType::f32: return k.dot_f32(w, x, n);
    case DType::f16: return k.dot_f16(w, x, n);
    case DType::bf16: return k.dot_bf16(w, x, n);
    case DType::q8_0: return k.dot_q8_0(w, x, n);
    case DType::f8e4m3: return k.dot_f8e4m3(w, x, n);
    default: break;  // block types read quantized activations (block_dot)
  }
  return 0;
}

// Converts one stored row to f32 (FP8: unscaled code values).
void dequant_row(DType t, const void* src, float* dst, size_t n);

}  // namespace paca::cpu
