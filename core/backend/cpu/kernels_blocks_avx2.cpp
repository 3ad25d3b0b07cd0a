// kernels_blocks_avx2.cpp - the block dots with AVX2 integer arithmetic:
// weights unpacked to bytes, multiplied with the 8-bit activations by
// vpmaddubsw (pairs, exact in int16 for these ranges) and vpmaddwd (to the
// eight int32 lanes of kernels.h, times the sub-block scale), then one f32
// fma per block. The lanes and the fma order are the scalar kernels', so
// the results are bit-identical to kernels_blocks.cpp.
#include "backend/cpu/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "model/block_quant.h"
#include "util/half.h"

#define PACA_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace paca::cpu {

namespace {

// ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)), as lanes_sum.
PACA_AVX2 inline float lanes_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // a_i + a_{i+4}
  __m128 p = _mm_add_ps(s, _mm_movehl_ps(s, s));                                   // s0 + s2, s1 + s3
  return _mm_cvtss_f32(_mm_add_ss(p, _mm_shuffle_ps(p, p, 1)));
}

PACA_AVX2 inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 16 packed bytes -> 32 bytes: the low nibbles (elements 0..15), then the high ones.
PACA_AVX2 inline __m256i nibbles16(const uint8_t* p) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

// Bit j of x -> byte j = 0x10 (set) or 0.
PACA_AVX2 inline __m256i bit4_from_bits(uint32_t x) {
  const __m256i sel = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                         0x0303030303030303);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x)), sel);  // byte j = byte j/8 of x
  v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));                // all other bits set
  v = _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

// Eight int32 lanes of 32 unsigned codes u (0..63) times 32 signed activations.
PACA_AVX2 inline __m256i lanes_u(__m256i u, __m256i x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
}
// The same for signed codes w (|w| <= 32): |w| times x with w's sign.
PACA_AVX2 inline __m256i lanes_s(__m256i w, __m256i x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)), _mm256_set1_epi16(1));
}

template <DType T>
PACA_AVX2 float v_dot_legacy(const void* wv, const void* xv, size_t n) {
  constexpr bool kMin = T == DType::q4_1 || T == DType::q5_1;
  constexpr bool kFive = T == DType::q5_0 || T == DType::q5_1;
  constexpr size_t kBytes = block_shape(T).bytes;
  const auto* w = static_cast<const uint8_t*>(wv);
  const auto* x = static_cast<const ActQ32*>(xv);
  __m256 acc = _mm256_setzero_ps();
  float accm = 0;
  for (size_t b = 0; b < n / 32; ++b, w += kBytes, ++x) {
    const uint8_t* qs = w + (kMin ? 4 : 2);
    __m256i q;
    if constexpr (kFive) {
      uint32_t qh;
      std::memcpy(&qh, qs, 4);
      q = _mm256_or_si256(nibbles16(qs + 4), bit4_from_bits(qh));
    } else {
      q = nibbles16(qs);
    }
    const __m256i xq = load32(x->q);
    __m256i lanes;
    if constexpr (kMin) {
      lanes = lanes_u(q, xq);
    } else {
      lanes = lanes_s(_mm256_sub_epi8(q, _mm256_set1_epi8(kFive ? 16 : 8)), xq);
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_load(w) * x->d), _mm256_cvtepi32_ps(lanes), acc);
    if constexpr (kMin) accm = std::fma(f16_load(w + 2), x->s, accm);
  }
  return lanes_sum(acc) + accm;
}

// NT activation rows x_t = x0 + t * stride bytes against one weight row:
// out[t * ldo] = the block dot of row t, each with exactly the operations of
// a single dot (the unpacked codes and scales are shared, nothing else).
template <bool kFive, int NT>
PACA_AVX2 void v_dot_k_n(const uint8_t* w, const uint8_t* x0, size_t stride, size_t n, float* out, size_t ldo) {
  constexpr size_t kBytes = kFive ? 176 : 144;
  const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  const ActQ256* x[NT];
  __m256 acc[NT];
  float accm[NT];
  for (int t = 0; t < NT; ++t) {
    x[t] = reinterpret_cast<const ActQ256*>(x0 + t * stride);
    acc[t] = _mm256_setzero_ps();
    accm[t] = 0;
  }
  for (size_t b = 0; b < n / 256; ++b, w += kBytes) {
    // The eight 6-bit scales and mins (k_scale_min) four at a time: bytes
    // 0..3 hold sc[0..3] and the top bits of sc[4..7], bytes 4..7 m[0..3] and
    // the top bits of m[4..7], bytes 8..11 the low nibbles of sc/m[4..7].
    uint32_t u[3];
    std::memcpy(u, w + 4, 12);
    const uint32_t sc_lo = u[0] & 0x3f3f3f3fu, m_lo = u[1] & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    const uint32_t m_hi = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    uint8_t sc[8];
    std::memcpy(sc, &sc_lo, 4);
    std::memcpy(sc + 4, &sc_hi, 4);
    // each min twice, against the 16 bsums: sum_s m[s] * (bsum[2s] + bsum[2s+1]) exactly in int32
    const __m128i m8 = _mm_set_epi32(0, 0, static_cast<int>(m_hi), static_cast<int>(m_lo));
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    const uint8_t* qs = w + (kFive ? 48 : 16);
    const __m256i qh = kFive ? load32(w + 16) : _mm256_setzero_si256();
    __m256i lanes[NT];
    for (int t = 0; t < NT; ++t) lanes[t] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i raw = load32(qs + 32 * c);
      __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
      if constexpr (kFive) {
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
      }
      const __m256i s0 = _mm256_set1_epi16(static_cast<int16_t>(sc[2 * c]));
      const __m256i s1 = _mm256_set1_epi16(static_cast<int16_t>(sc[2 * c + 1]));
      for (int t = 0; t < NT; ++t) {
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load32(x[t]->q + 64 * c)), s0);
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load32(x[t]->q + 64 * c + 32)), s1);
        lanes[t] = _mm256_add_epi32(lanes[t], _mm256_add_epi32(p0, p1));
      }
    }
    const float dw = f16_load(w), dmin = f16_load(w + 2);
    for (int t = 0; t < NT; ++t) {
      const __m256i mb = _mm256_madd_epi16(m16, load32(x[t]->bsum));
      __m128i ms = _mm_add_epi32(_mm256_castsi256_si128(mb), _mm256_extracti128_si256(mb, 1));
      ms = _mm_add_epi32(ms, _mm_shuffle_epi32(ms, 0x4e));
      ms = _mm_add_epi32(ms, _mm_shuffle_epi32(ms, 0xb1));
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * x[t]->d), _mm256_cvtepi32_ps(lanes[t]), acc[t]);
      accm[t] = std::fma(dmin * x[t]->d, static_cast<float>(_mm_cvtsi128_si32(ms)), accm[t]);
      ++x[t];
    }
  }
  for (int t = 0; t < NT; ++t) out[t * ldo] = lanes_sum(acc[t]) - accm[t];
}

template <int NT>
PACA_AVX2 void v_dot_q6_k_n(const uint8_t* w, const uint8_t* x0, size_t stride, size_t n, float* out, size_t ldo) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
  const ActQ256* x[NT];
  __m256 acc[NT];
  float accm[NT];
  for (int t = 0; t < NT; ++t) {
    x[t] = reinterpret_cast<const ActQ256*>(x0 + t * stride);
    acc[t] = _mm256_setzero_ps();
    accm[t] = 0;
  }
  for (size_t b = 0; b < n / 256; ++b, w += 210) {
    const auto* sc = reinterpret_cast<const int8_t*>(w + 192);
    __m256i lanes[NT];
    for (int t = 0; t < NT; ++t) lanes[t] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load32(w + 64 * h), ql1 = load32(w + 64 * h + 32), qh = load32(w + 128 + 32 * h);
      __m256i g[4];
      g[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
      g[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
      g[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
      g[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
      for (int j = 0; j < 4; ++j) {
        const int grp = 4 * h + j;
        const __m256i scales = _mm256_set_m128i(_mm_set1_epi16(sc[2 * grp + 1]), _mm_set1_epi16(sc[2 * grp]));
        for (int t = 0; t < NT; ++t) {
          // q * x in pairs (0..63 times -127..127: exact in int16)
          const __m256i pairs = _mm256_maddubs_epi16(g[j], load32(x[t]->q + 32 * grp));
          lanes[t] = _mm256_add_epi32(lanes[t], _mm256_madd_epi16(pairs, scales));
        }
      }
    }
    const float dw = f16_load(w + 208);
    // the offset of 32: sum_s sc[s] * bsum[s], exact in int32
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
    for (int t = 0; t < NT; ++t) {
      const float D = dw * x[t]->d;
      const __m256i ob = _mm256_madd_epi16(sc16, load32(x[t]->bsum));
      __m128i os = _mm_add_epi32(_mm256_castsi256_si128(ob), _mm256_extracti128_si256(ob, 1));
      os = _mm_add_epi32(os, _mm_shuffle_epi32(os, 0x4e));
      os = _mm_add_epi32(os, _mm_shuffle_epi32(os, 0xb1));
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(D), _mm256_cvtepi32_ps(lanes[t]), acc[t]);
      accm[t] = std::fma(D, static_cast<float>(32 * _mm_cvtsi128_si32(os)), accm[t]);
      ++x[t];
    }
  }
  for (int t = 0; t < NT; ++t) out[t * ldo] = lanes_sum(acc[t]) - accm[t];
}

template <bool kFive>
PACA_AVX2 float v_dot_k(const void* w, const void* x, size_t n) {
  float r;
  v_dot_k_n<kFive, 1>(static_cast<const uint8_t*>(w), static_cast<const uint8_t*>(x), 0, n, &r, 0);
  return r;
}
PACA_AVX2 float v_dot_q6_k(const void* w, const void* x, size_t n) {
  float r;
  v_dot_q6_k_n<1>(static_cast<const uint8_t*>(w), static_cast<const uint8_t*>(x), 0, n, &r, 0);
  return r;
}

// Four activation rows at a time, then the rest.
template <void (*F1)(const uint8_t*, const uint8_t*, size_t, size_t, float*, size_t),
          void (*F2)(const uint8_t*, const uint8_t*, size_t, size_t, float*, size_t),
          void (*F3)(const uint8_t*, const uint8_t*, size_t, size_t, float*, size_t),
          void (*F4)(const uint8_t*, const uint8_t*, size_t, size_t, float*, size_t)>
void v_dots(const void* wv, const void* xv, size_t stride, size_t tokens, size_t n, float* out, size_t ldo) {
  const auto* w = static_cast<const uint8_t*>(wv);
  const auto* x = static_cast<const uint8_t*>(xv);
  size_t t = 0;
  for (; t + 4 <= tokens; t += 4) F4(w, x + t * stride, stride, n, out + t * ldo, ldo);
  switch (tokens - t) {
    case 3: F3(w, x + t * stride, stride, n, out + t * ldo, ldo); break;
    case 2: F2(w, x + t * stride, stride, n, out + t * ldo, ldo); break;
    case 1: F1(w, x + t * stride, stride, n, out + t * ldo, ldo); break;
    default: break;
  }
}

}  // namespace

void avx2_block_dots(Kernels& k) {
  k.dot_q4_0 = v_dot_legacy<DType::q4_0>;
  k.dot_q4_1 = v_dot_legacy<DType::q4_1>;
  k.dot_q5_0 = v_dot_legacy<DType::q5_0>;
  k.dot_q5_1 = v_dot_legacy<DType::q5_1>;
  k.dot_q4_k = v_dot_k<false>;
  k.dot_q5_k = v_dot_k<true>;
  k.dot_q6_k = v_dot_q6_k;
  k.dots_q4_0 = dots_by_loop<v_dot_legacy<DType::q4_0>>;
  k.dots_q4_1 = dots_by_loop<v_dot_legacy<DType::q4_1>>;
  k.dots_q5_0 = dots_by_loop<v_dot_legacy<DType::q5_0>>;
  k.dots_q5_1 = dots_by_loop<v_dot_legacy<DType::q5_1>>;
  k.dots_q4_k = v_dots<v_dot_k_n<false, 1>, v_dot_k_n<false, 2>, v_dot_k_n<false, 3>, v_dot_k_n<false, 4>>;
  k.dots_q5_k = v_dots<v_dot_k_n<true, 1>, v_dot_k_n<true, 2>, v_dot_k_n<true, 3>, v_dot_k_n<true, 4>>;
  k.dots_q6_k = v_dots<v_dot_q6_k_n<1>, v_dot_q6_k_n<2>, v_dot_q6_k_n<3>, v_dot_q6_k_n<4>>;
}

}  // namespace paca::cpu

#else
namespace paca::cpu {
void avx2_block_dots(Kernels& k) { scalar_block_dots(k); }
}  // namespace paca::cpu
#endif
