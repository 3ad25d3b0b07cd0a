// kernels_avx2.cpp - AVX2 + FMA + F16C kernels. Compiled with target
// attributes so the rest of the library stays baseline x86-64; used only
// after a CPUID check.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/half.h"

#define PACA_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace paca::cpu {

namespace {

PACA_AVX2 inline float hsum8(__m256 v) {
  // lanes (0+4, 1+5, 2+6, 3+7), then pairwise: same order as the scalar dot8
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);                 // a0 a1 a2 a3
  __m128 sh = _mm_movehl_ps(s, s);               // a2 a3 . .
  __m128 p = _mm_add_ps(s, sh);                  // a0+a2 a1+a3
  // scalar order is (a0 + a1) + (a2 + a3); float addition order differs
  // slightly from this, which is fine: each ISA is deterministic by itself.
  __m128 q = _mm_add_ss(p, _mm_shuffle_ps(p, p, 1));
  return _mm_cvtss_f32(q);
}

PACA_AVX2 inline __m256 load_bf16(const uint8_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

PACA_AVX2 inline __m256 load_f16(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The summation order of every matmul output, decode and prefill alike: four
// 8-wide partial sums over the 8-element blocks of the row (block b into
// partial b % 4) while whole groups of four blocks remain, the remaining whole
// blocks into partial 0, then hsum8((p0 + p1) + (p2 + p3)), then the last
// n % 8 elements one fused multiply-add each. One row is read front to back
// with four independent FMA chains: the decode GEMV streams at memory speed
// (reading a row as four streams at once halved decode speed: the hardware
// prefetcher wants one forward stream).
template <typename Load, typename Tail>
PACA_AVX2 inline float dot_loop(const float* x, size_t n, Load load, Tail tail) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(load(i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(load(i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(load(i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(load(i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(load(i), _mm256_loadu_ps(x + i), a0);
  float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) s = std::fma(tail(i), x[i], s);
  return s;
}

// The prefill GEMM works on rows rearranged by v_gemm_pack: of the first
// 4g blocks (g = n / 32), blocks a, a + 4, a + 8, ... (partial a of dot_loop)
// are moved together into quarter a; the blocks and elements past 4g stay
// where they are. One contiguous pass per quarter then adds exactly what
// dot_loop's partial a adds, in the same order.
inline size_t quarter_floats(size_t n) { return n / 32 * 8; }

PACA_AVX2 void v_gemm_pack(const float* src, float* dst, size_t n) {
  const size_t g = n / 32;
  for (size_t k = 0; k < g; ++k)
    for (size_t a = 0; a < 4; ++a)
      _mm256_storeu_ps(dst + a * 8 * g + 8 * k, _mm256_loadu_ps(src + 32 * k + 8 * a));
  std::memcpy(dst + 32 * g, src + 32 * g, (n - 32 * g) * sizeof(float));
}

PACA_AVX2 float v_dot_f32(const void* w, const float* x, size_t n) {
  const float* p = static_cast<const float*>(w);
  return dot_loop(x, n, [p](size_t i) PACA_AVX2 { return _mm256_loadu_ps(p + i); }, [p](size_t i) { return p[i]; });
}

// 16-bit weight elements: 8 widened at a time, and one for the tail.
template <__m256 (*Wide8)(const uint8_t*), float (*Wide1)(uint16_t)>
struct Half {
  const uint8_t* p;
  PACA_AVX2 __m256 operator()(size_t i) const { return Wide8(p + 2 * i); }
  float one(size_t i) const {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    return Wide1(h);
  }
};

template <typename H>
PACA_AVX2 float v_dot_half(const void* w, const float* x, size_t n) {
  const H h{static_cast<const uint8_t*>(w)};
  return dot_loop(x, n, h, [h](size_t i) { return h.one(i); });
}

// dot_loop for G tokens at once over one stored row: each weight block is
// loaded and widened once and multiplied into every token's own four partial
// sums, in dot_loop's order, so token g gets exactly dot_loop's bits.
template <int G, typename Load, typename Tail>
PACA_AVX2 inline void dot_group(const float* x, size_t ldx, size_t n, Load load, Tail tail, float* out, size_t ldo) {
  __m256 a[G][4];
  for (int g = 0; g < G; ++g)
    for (int k = 0; k < 4; ++k) a[g][k] = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 w0 = load(i), w1 = load(i + 8), w2 = load(i + 16), w3 = load(i + 24);
    for (int g = 0; g < G; ++g) {
      const float* xg = x + g * ldx + i;
      a[g][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xg), a[g][0]);
      a[g][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xg + 8), a[g][1]);
      a[g][2] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xg + 16), a[g][2]);
      a[g][3] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xg + 24), a[g][3]);
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 w = load(i);
    for (int g = 0; g < G; ++g) a[g][0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + g * ldx + i), a[g][0]);
  }
  for (int g = 0; g < G; ++g) {
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a[g][0], a[g][1]), _mm256_add_ps(a[g][2], a[g][3])));
    for (size_t j = i; j < n; ++j) s = std::fma(tail(j), x[g * ldx + j], s);
    out[g * ldo] = s;
  }
}

// Every token in groups of up to 3 (12 accumulators); the row stays in L1
// between groups.
template <typename Load, typename Tail>
PACA_AVX2 inline void dots_loop(const float* x, size_t ldx, size_t tokens, size_t n, Load load, Tail tail, float* out,
                                size_t ldo) {
  size_t t = 0;
  for (; t + 3 <= tokens; t += 3) dot_group<3>(x + t * ldx, ldx, n, load, tail, out + t * ldo, ldo);
  if (tokens - t == 2) dot_group<2>(x + t * ldx, ldx, n, load, tail, out + t * ldo, ldo);
  if (tokens - t == 1) dot_group<1>(x + t * ldx, ldx, n, load, tail, out + t * ldo, ldo);
}

PACA_AVX2 void v_dots_f32(const void* w, const float* x, size_t ldx, size_t tokens, size_t n, float* out, size_t ldo) {
  const float* p = static_cast<const float*>(w);
  dots_loop(x, ldx, tokens, n, [p](size_t i) PACA_AVX2 { return _mm256_loadu_ps(p + i); }, [p](size_t i) { return p[i]; },
            out, ldo);
}

template <typename H>
PACA_AVX2 void v_dots_half(const void* w, const float* x, size_t ldx, size_t tokens, size_t n, float* out, size_t ldo) {
  const H h{static_cast<const uint8_t*>(w)};
  dots_loop(x, ldx, tokens, n, h, [h](size_t i) { return h.one(i); }, out, ldo);
}

using Bf16 = Half<load_bf16, bf16_to_f32>;
using F16 = Half<load_f16, f16_to_f32>;

PACA_AVX2 float v_dot_q8_0(const void* w, const float* x, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(w);
  __m256 acc = _mm256_setzero_ps();
  for (size_t b = 0; b < n / kQ8Block; ++b, p += kQ8BlockBytes, x += kQ8Block) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
    __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    __m256 f0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0));
    __m256 f1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8)));
    __m256 f2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1));
    __m256 f3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8)));
    __m256 s = _mm256_mul_ps(f0, _mm256_loadu_ps(x));
    s = _mm256_fmadd_ps(f1, _mm256_loadu_ps(x + 8), s);
    s = _mm256_fmadd_ps(f2, _mm256_loadu_ps(x + 16), s);
    s = _mm256_fmadd_ps(f3, _mm256_loadu_ps(x + 24), s);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_to_f32(h)), s, acc);
  }
  return hsum8(acc);
}

PACA_AVX2 float v_dot_f8e4m3(const void* w, const float* x, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(w);
  const float* lut = e4m3_table();
  return dot_loop(x, n,
                  [p, lut](size_t i) PACA_AVX2 {
                    __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + i));
                    return _mm256_i32gather_ps(lut, _mm256_cvtepu8_epi32(b), 4);
                  },
                  [p, lut](size_t i) { return lut[p[i]]; });
}

// One partial sum for R rows x T tokens over the 8-float blocks of [i0, end),
// one accumulator per output, stored to part.
template <int R, int T>
PACA_AVX2 inline void gemm_pass(const float* w, size_t ldw, const float* x, size_t ldx, size_t i0, size_t end,
                                __m256 (*part)[T]) {
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  for (size_t i = i0; i < end; i += 8) {
    __m256 xv[T];
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * ldx + i);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_loadu_ps(w + r * ldw + i);
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) part[r][t] = acc[r][t];
}

// R rows x T tokens of outputs (R*T <= 12 accumulators in registers) on
// packed rows: one contiguous pass per quarter with the register tile, so
// every output gets exactly the operations dot_loop gives it on the stored row.
template <int R, int T>
PACA_AVX2 inline void gemm_tile(const float* w, size_t ldw, const float* x, size_t ldx, float* out, size_t ldo, size_t n) {
  const size_t q = quarter_floats(n), n8 = n / 8 * 8;
  __m256 p[4][R][T];
  for (size_t a = 0; a < 4; ++a) gemm_pass<R, T>(w, ldw, x, ldx, a * q, (a + 1) * q, p[a]);
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      __m256 p0 = p[0][r][t];
      for (size_t i = 4 * q; i < n8; i += 8)  // whole blocks past the four quarters go on in partial 0
        p0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + r * ldw + i), _mm256_loadu_ps(x + t * ldx + i), p0);
      float s = hsum8(_mm256_add_ps(_mm256_add_ps(p0, p[1][r][t]), _mm256_add_ps(p[2][r][t], p[3][r][t])));
      for (size_t j = n8; j < n; ++j) s = std::fma(w[r * ldw + j], x[t * ldx + j], s);
      out[t * ldo + r] = s;
    }
}

template <int T>
PACA_AVX2 inline void gemm_rows(const float* w, size_t ldw, const float* x, size_t ldx, float* out, size_t ldo,
                                size_t rows, size_t n) {
  size_t r = 0;
  for (; r + 4 <= rows; r += 4) gemm_tile<4, T>(w + r * ldw, ldw, x, ldx, out + r, ldo, n);
  for (; r < rows; ++r) gemm_tile<1, T>(w + r * ldw, ldw, x, ldx, out + r, ldo, n);
}

PACA_AVX2 void v_gemm_f32(const float* w, size_t ldw, const float* x, size_t ldx, float* out, size_t ldo, size_t rows,
                          size_t tokens, size_t n) {
  size_t t = 0;
  for (; t + 3 <= tokens; t += 3) gemm_rows<3>(w, ldw, x + t * ldx, ldx, out + t * ldo, ldo, rows, n);
  for (; t < tokens; ++t) gemm_rows<1>(w, ldw, x + t * ldx, ldx, out + t * ldo, ldo, rows, n);
}

// exp(x) 8 wide: fast_exp's range reduction and polynomial (util/fast_exp.h).
PACA_AVX2 inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.0f);
  const __m256 zero = _mm256_cmp_ps(x, lo, _CMP_NGE_UQ);  // x < -87 or NaN: the result is 0
  x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(zero, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

PACA_AVX2 void v_softmax_f32(float* x, size_t n, float scale) {
  __m256 mv = _mm256_set1_ps(x[0]);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
  float m8[8];
  _mm256_storeu_ps(m8, mv);
  float mx = m8[0];
  for (int l = 1; l < 8; ++l) mx = m8[l] > mx ? m8[l] : mx;
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const __m256 sv = _mm256_set1_ps(scale), shift = _mm256_set1_ps(mx * scale);
  __m256 acc = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + i), sv, shift));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  float sum = hsum8(acc);
  for (; i < n; ++i) {
    float tail[8] = {};
    tail[0] = x[i];
    __m256 e = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(tail), sv, shift));
    sum += (x[i] = _mm256_cvtss_f32(e));
  }
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i) x[i] *= 1.0f / sum;
}

PACA_AVX2 void v_axpy_f32(float a, const float* x, float* y, size_t n) {
  const __m256 av = _mm256_set1_ps(a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// SwiGLU 8 wide: exp8 of -g (the polynomial of fast_exp), one divide.
PACA_AVX2 void v_swiglu_f32(const float* g, const float* up, float* out, size_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 e = exp8(_mm256_xor_ps(gv, neg));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  if (i < n) {  // the tail through the same vector code on a padded copy
    float gt[8] = {}, ut[8] = {}, ot[8];
    std::memcpy(gt, g + i, (n - i) * sizeof(float));
    std::memcpy(ut, up + i, (n - i) * sizeof(float));
    v_swiglu_f32(gt, ut, ot, 8);
    std::memcpy(out + i, ot, (n - i) * sizeof(float));
  }
}

// Lane j of the result = the sum of the 8 lanes of a[j]:
// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
PACA_AVX2 inline __m256 hsum8x8(const __m256 a[8]) {
  const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);  // [low halves | high halves]
  return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
}

// Eight rows at a time, one accumulator per row. A last group of fewer rows
// repeats its final row in the missing slots, so every score is computed by
// the same operations whatever the number of rows.
PACA_AVX2 void v_dot_rows_f32(const float* x, const float* rows, size_t stride, size_t count, size_t n, float* out) {
  for (size_t p0 = 0; p0 < count; p0 += 8) {
    const float* r[8];
    for (size_t j = 0; j < 8; ++j) r[j] = rows + std::min(p0 + j, count - 1) * stride;
    __m256 acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 xv = _mm256_loadu_ps(x + i);
      for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(r[j] + i), xv, acc[j]);
    }
    float s[8];
    _mm256_storeu_ps(s, hsum8x8(acc));
    const size_t m = std::min<size_t>(8, count - p0);
    for (size_t j = 0; j < m; ++j) {
      for (size_t k = i; k < n; ++k) s[j] = std::fma(r[j][k], x[k], s[j]);
      out[p0 + j] = s[j];
    }
  }
}

// y[i] accumulates a[p] * rows[p][i] over p in order (the same order for
// every i); two vectors of y per pass share each broadcast of a[p].
PACA_AVX2 void v_axpy_rows_f32(const float* a, const float* rows, size_t stride, size_t count, size_t n, float* y) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 y0 = _mm256_loadu_ps(y + i), y1 = _mm256_loadu_ps(y + i + 8);
    for (size_t p = 0; p < count; ++p) {
      const __m256 ap = _mm256_set1_ps(a[p]);
      const float* r = rows + p * stride + i;
      y0 = _mm256_fmadd_ps(ap, _mm256_loadu_ps(r), y0);
      y1 = _mm256_fmadd_ps(ap, _mm256_loadu_ps(r + 8), y1);
    }
    _mm256_storeu_ps(y + i, y0);
    _mm256_storeu_ps(y + i + 8, y1);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 acc = _mm256_loadu_ps(y + i);
    for (size_t p = 0; p < count; ++p) acc = _mm256_fmadd_ps(_mm256_set1_ps(a[p]), _mm256_loadu_ps(rows + p * stride + i), acc);
    _mm256_storeu_ps(y + i, acc);
  }
  for (; i < n; ++i)
    for (size_t p = 0; p < count; ++p) y[i] = std::fma(a[p], rows[p * stride + i], y[i]);
}

// Two queries x four rows per register tile (eight accumulators, reduced
// together by hsum8x8); every score gets the single-query kernel's
// operations: its FMA chain over the 8-float chunks in order, the same lane
// sum, the same scalar tail. Leftover queries go through v_dot_rows_f32.
PACA_AVX2 void v_dot_rows_many_f32(const float* const* xs, float* const* outs, size_t nq, const float* rows,
                                   size_t stride, size_t count, size_t n) {
  size_t q = 0;
  const size_t n8 = n / 8 * 8;
  for (; q + 2 <= nq; q += 2) {
    const float* x0 = xs[q];
    const float* x1 = xs[q + 1];
    for (size_t p0 = 0; p0 < count; p0 += 4) {
      const float* r[4];
      for (size_t j = 0; j < 4; ++j) r[j] = rows + std::min(p0 + j, count - 1) * stride;
      __m256 acc[8];
      for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
      for (size_t i = 0; i < n8; i += 8) {
        const __m256 a = _mm256_loadu_ps(x0 + i), b = _mm256_loadu_ps(x1 + i);
        for (int j = 0; j < 4; ++j) {
          const __m256 k = _mm256_loadu_ps(r[j] + i);
          acc[j] = _mm256_fmadd_ps(k, a, acc[j]);
          acc[4 + j] = _mm256_fmadd_ps(k, b, acc[4 + j]);
        }
      }
      float s[8];
      _mm256_storeu_ps(s, hsum8x8(acc));
      const size_t m = std::min<size_t>(4, count - p0);
      for (size_t j = 0; j < m; ++j) {
        float s0 = s[j], s1 = s[4 + j];
        for (size_t k = n8; k < n; ++k) {
          s0 = std::fma(r[j][k], x0[k], s0);
          s1 = std::fma(r[j][k], x1[k], s1);
        }
        outs[q][p0 + j] = s0;
        outs[q + 1][p0 + j] = s1;
      }
    }
  }
  for (; q < nq; ++q) v_dot_rows_f32(xs[q], rows, stride, count, n, outs[q]);
}

// Four queries at a time over each 16-float slice of y: the rows both
// queries of the group see are taken together (one load of each row slice
// for four queries), then each query's own further rows; per query the
// rows are still added in order, one FMA each, as v_axpy_rows_f32 does.
PACA_AVX2 void v_axpy_rows_many_f32(const float* const* as, float* const* ys, const size_t* counts, size_t nq,
                                    const float* rows, size_t stride, size_t n) {
  size_t q = 0;
  const size_t n16 = n / 16 * 16;
  for (; q + 4 <= nq && n16 > 0; q += 4) {
    const size_t shared = std::min(std::min(counts[q], counts[q + 1]), std::min(counts[q + 2], counts[q + 3]));
    for (size_t i = 0; i < n16; i += 16) {
      __m256 y[4][2];
      for (int g = 0; g < 4; ++g) {
        y[g][0] = _mm256_loadu_ps(ys[q + g] + i);
        y[g][1] = _mm256_loadu_ps(ys[q + g] + i + 8);
      }
      for (size_t p = 0; p < shared; ++p) {
        const float* r = rows + p * stride + i;
        const __m256 v0 = _mm256_loadu_ps(r), v1 = _mm256_loadu_ps(r + 8);
        for (int g = 0; g < 4; ++g) {
          const __m256 ap = _mm256_set1_ps(as[q + g][p]);
          y[g][0] = _mm256_fmadd_ps(ap, v0, y[g][0]);
          y[g][1] = _mm256_fmadd_ps(ap, v1, y[g][1]);
        }
      }
      for (int g = 0; g < 4; ++g) {
        for (size_t p = shared; p < counts[q + g]; ++p) {
          const __m256 ap = _mm256_set1_ps(as[q + g][p]);
          const float* r = rows + p * stride + i;
          y[g][0] = _mm256_fmadd_ps(ap, _mm256_loadu_ps(r), y[g][0]);
          y[g][1] = _mm256_fmadd_ps(ap, _mm256_loadu_ps(r + 8), y[g][1]);
        }
        _mm256_storeu_ps(ys[q + g] + i, y[g][0]);
        _mm256_storeu_ps(ys[q + g] + i + 8, y[g][1]);
      }
    }
    if (n16 < n)  // the columns past the last 16: the single-query kernel on their slice
      for (int g = 0; g < 4; ++g)
        v_axpy_rows_f32(as[q + g], rows + n16, stride, counts[q + g], n - n16, ys[q + g] + n16);
  }
  for (; q < nq; ++q) v_axpy_rows_f32(as[q], rows, stride, counts[q], n, ys[q]);
}

PACA_AVX2 void v_widen_f16(const void* src, float* dst, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16(p + 2 * i));
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = f16_to_f32(h);
  }
}

PACA_AVX2 void v_widen_bf16(const void* src, float* dst, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16(p + 2 * i));
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = bf16_to_f32(h);
  }
}

}  // namespace

const Kernels* avx2_kernels() {
  static const Kernels k = [] {
    Kernels v{.isa = "avx2",
                         .dot_f32 = v_dot_f32,
                         .dot_f16 = v_dot_half<F16>,
                         .dot_bf16 = v_dot_half<Bf16>,
                         .dot_q8_0 = v_dot_q8_0,
                         .dot_f8e4m3 = v_dot_f8e4m3,
                         .dots_f32 = v_dots_f32,
                         .dots_f16 = v_dots_half<F16>,
                         .dots_bf16 = v_dots_half<Bf16>,
                         .gemm_pack = v_gemm_pack,
                         .gemm_f32 = v_gemm_f32,
                         .softmax_f32 = v_softmax_f32,
                         .axpy_f32 = v_axpy_f32,
                         .swiglu_f32 = v_swiglu_f32,
                         .dot_rows_f32 = v_dot_rows_f32,
                         .axpy_rows_f32 = v_axpy_rows_f32,
                         .dot_rows_many_f32 = v_dot_rows_many_f32,
                         .axpy_rows_many_f32 = v_axpy_rows_many_f32,
                         .widen_f16 = v_widen_f16,
                         .widen_bf16 = v_widen_bf16};
    avx2_block_dots(v);
    return v;
  }();
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &k;
  return nullptr;
}

}  // namespace paca::cpu

#else
namespace paca::cpu {
const Kernels* avx2_kernels() { return nullptr; }
}  // namespace paca::cpu
#endif
