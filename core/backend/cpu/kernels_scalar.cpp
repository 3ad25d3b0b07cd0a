// kernels_scalar.cpp - portable reference kernels and the run-time choice.
#include <array>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cpu/kernels.h"
#include "format/block_quant.h"
#include "util/error.h"
#include "util/fast_exp.h"
#include "util/fp8.h"
#include "util/half.h"

namespace paca::cpu {

namespace {

// Eight interleaved partial sums, combined pairwise: the same order the
// 8-lane vector kernels use, and better accuracy than one running sum.
template <typename Load>
float dot8(const float* x, size_t n, Load load) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += load(i + l) * x[i + l];
  float tail = 0;
  for (; i < n; ++i) tail += load(i) * x[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

float s_dot_f32(const void* w, const float* x, size_t n) {
  const float* p = static_cast<const float*>(w);
  return dot8(x, n, [p](size_t i) { return p[i]; });
}

float s_dot_f16(const void* w, const float* x, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(w);
  return dot8(x, n, [p](size_t i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    return f16_to_f32(h);
  });
}

float s_dot_bf16(const void* w, const float* x, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(w);
  return dot8(x, n, [p](size_t i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    return bf16_to_f32(h);
  });
}

float s_dot_q8_0(const void* w, const float* x, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(w);
  float sum = 0;
  for (size_t b = 0; b < n / kQ8Block; ++b, p += kQ8BlockBytes, x += kQ8Block) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    const int8_t* q = reinterpret_cast<const int8_t*>(p + 2);
    float s = dot8(x, kQ8Block, [q](size_t i) { return static_cast<float>(q[i]); });
    sum += f16_to_f32(h) * s;
  }
  return sum;
}

float s_dot_f8e4m3(const void* w, const float* x, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(w);
  const float* lut = e4m3_table();
  return dot8(x, n, [p, lut](size_t i) { return lut[p[i]]; });
}

template <float (*Dot)(const void*, const float*, size_t)>
void s_dots(const void* w, const float* x, size_t ldx, size_t tokens, size_t n, float* out, size_t ldo) {
  for (size_t t = 0; t < tokens; ++t) out[t * ldo] = Dot(w, x + t * ldx, n);
}

}  // namespace

const float* e4m3_table() {
  static const auto table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = e4m3_to_f32(static_cast<uint8_t>(c));
    return t;
  }();
  return table.data();
}

void s_gemm_pack(const float* src, float* dst, size_t n) { std::memcpy(dst, src, n * sizeof(float)); }

void s_gemm_f32(const float* w, size_t ldw, const float* x, size_t ldx, float* out, size_t ldo, size_t rows,
                size_t tokens, size_t n) {
  for (size_t t = 0; t < tokens; ++t)
    for (size_t r = 0; r < rows; ++r) out[t * ldo + r] = s_dot_f32(w + r * ldw, x + t * ldx, n);
}

void s_softmax_f32(float* x, size_t n, float scale) {
  float mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const float shift = mx * scale;
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += (x[i + l] = fast_exp(x[i + l] * scale - shift));
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) sum += (x[i] = fast_exp(x[i] * scale - shift));
  const float inv = 1.0f / sum;
  for (i = 0; i < n; ++i) x[i] *= inv;
}

void s_axpy_f32(float a, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void s_swiglu_f32(const float* g, const float* up, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = g[i] / (1.0f + fast_exp(-g[i])) * up[i];
}

void s_dot_rows_f32(const float* x, const float* rows, size_t stride, size_t count, size_t n, float* out) {
  for (size_t p = 0; p < count; ++p) out[p] = s_dot_f32(rows + p * stride, x, n);
}

void s_axpy_rows_f32(const float* a, const float* rows, size_t stride, size_t count, size_t n, float* y) {
  for (size_t p = 0; p < count; ++p) s_axpy_f32(a[p], rows + p * stride, y, n);
}

void s_dot_rows_many_f32(const float* const* xs, float* const* outs, size_t nq, const float* rows, size_t stride,
                         size_t count, size_t n) {
  for (size_t q = 0; q < nq; ++q) s_dot_rows_f32(xs[q], rows, stride, count, n, outs[q]);
}

void s_axpy_rows_many_f32(const float* const* as, float* const* ys, const size_t* counts, size_t nq, const float* rows,
                          size_t stride, size_t n) {
  for (size_t q = 0; q < nq; ++q) s_axpy_rows_f32(as[q], rows, stride, counts[q], n, ys[q]);
}

void s_widen_f16(const void* src, float* dst, size_t n) { dequant_row(DType::f16, src, dst, n); }
void s_widen_bf16(const void* src, float* dst, size_t n) { dequant_row(DType::bf16, src, dst, n); }

const Kernels& scalar_kernels() {
  static const Kernels k = [] {
    Kernels s{.isa = "scalar",
                         .dot_f32 = s_dot_f32,
                         .dot_f16 = s_dot_f16,
                         .dot_bf16 = s_dot_bf16,
                         .dot_q8_0 = s_dot_q8_0,
                         .dot_f8e4m3 = s_dot_f8e4m3,
                         .dots_f32 = s_dots<s_dot_f32>,
                         .dots_f16 = s_dots<s_dot_f16>,
                         .dots_bf16 = s_dots<s_dot_bf16>,
                         .gemm_pack = s_gemm_pack,
                         .gemm_f32 = s_gemm_f32,
                         .softmax_f32 = s_softmax_f32,
                         .axpy_f32 = s_axpy_f32,
                         .swiglu_f32 = s_swiglu_f32,
                         .dot_rows_f32 = s_dot_rows_f32,
                         .axpy_rows_f32 = s_axpy_rows_f32,
                         .dot_rows_many_f32 = s_dot_rows_many_f32,
                         .axpy_rows_many_f32 = s_axpy_rows_many_f32,
                         .widen_f16 = s_widen_f16,
                         .widen_bf16 = s_widen_bf16};
    scalar_block_dots(s);
    return s;
  }();
  return k;
}

std::vector<const Kernels*> available_kernels() {
  std::vector<const Kernels*> all{&scalar_kernels()};
  for (const Kernels* k : {avx2_kernels(), avx512_kernels()})
    if (k != nullptr) all.push_back(k);
  return all;
}

const Kernels& cpu_kernels() { return *available_kernels().back(); }

const Kernels& kernels_for(std::string_view isa) {
  const std::vector<const Kernels*> all = available_kernels();
  if (isa.empty() || isa == "auto") return *all.back();
  std::string known;
  for (const Kernels* k : all) {
    if (isa == k->isa) return *k;
    known += std::string(known.empty() ? "" : ", ") + k->isa;
  }
  fail(Status::invalid_argument, "cpu_isa '{}' is not one this build and CPU run (auto, {})", isa, known);
}

void dequant_row(DType t, const void* src, float* dst, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::f32: std::memcpy(dst, p, n * 4); return;
    case DType::f16:
    case DType::bf16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = t == DType::f16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      return;
    case DType::q8_0:
    case DType::q4_0:
    case DType::q4_1:
    case DType::q5_0:
    case DType::q5_1:
    case DType::q4_k:
    case DType::q5_k:
    case DType::q6_k: dequantize_blocks(t, p, dst, n); return;
    case DType::f8e4m3:
      for (size_t i = 0; i < n; ++i) dst[i] = e4m3_table()[p[i]];
      return;
  }
}

}  // namespace paca::cpu
