// kernels.h - the CPU inner loops, in a portable scalar version and an
// AVX2/FMA/F16C version chosen at run time (cpu_kernels()). Every function
// computes one result with a fixed summation order, so results do not depend
// on how work is split across threads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/tensor.h"

namespace paca::cpu {

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
  // Attention over `count` cached rows spaced `stride` floats apart:
  // out[p] = dot(rows[p], x) and y += sum_p a[p] * rows[p] (in order of p).
  void (*dot_rows_f32)(const float* x, const float* rows, size_t stride, size_t count, size_t n, float* out);
  void (*axpy_rows_f32)(const float* a, const float* rows, size_t stride, size_t count, size_t n, float* y);
  // dst[i] = src[i] widened to f32 for F16/BF16 rows (exact)
  void (*widen_f16)(const void* src, float* dst, size_t n);
  void (*widen_bf16)(const void* src, float* dst, size_t n);
};

// E4M3 code -> f32 for all 256 codes.
const float* e4m3_table();

const Kernels& scalar_kernels();
const Kernels* avx2_kernels();  // nullptr when not compiled in

// The kernels for this machine: AVX2 when the CPU has AVX2+FMA+F16C, else
// scalar. The environment variable PACA_CPU_ISA=scalar forces scalar.
const Kernels& cpu_kernels();

// Row dot product for any weight dtype.
inline float dot_row(const Kernels& k, DType t, const void* w, const float* x, size_t n) {
  switch (t) {
    case DType::f32: return k.dot_f32(w, x, n);
    case DType::f16: return k.dot_f16(w, x, n);
    case DType::bf16: return k.dot_bf16(w, x, n);
    case DType::q8_0: return k.dot_q8_0(w, x, n);
    case DType::f8e4m3: return k.dot_f8e4m3(w, x, n);
  }
  return 0;
}

// Converts one stored row to f32 (FP8: unscaled code values).
void dequant_row(DType t, const void* src, float* dst, size_t n);

}  // namespace paca::cpu
