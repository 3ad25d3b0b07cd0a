// kernels_blocks.cpp - the activation quantizer and the scalar block dots
// (kernels.h states their summation order; kernels_blocks_avx2.cpp follows it
// bit for bit).
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "format/block_quant.h"
#include "util/half.h"

namespace paca::cpu {

namespace {

// d and the codes of m activations (m = 32 or 256).
float quantize_run(const float* x, int8_t* q, size_t m) {
  float amax = 0;
  bool finite = true;
  for (size_t i = 0; i < m; ++i) {
    finite = finite && std::isfinite(x[i]);
    amax = std::fmax(amax, std::fabs(x[i]));
  }
  if (!finite) {
    std::memset(q, 0, m);
    return NAN;
  }
  const float d = amax / 127.0f;
  const float id = activation_inverse_scale(amax);
  for (size_t i = 0; i < m; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
  return d;
}

// The eight lanes' sum in the order every ISA uses.
float lanes_sum(const float* a) { return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])); }

// Lane l of 32 weight codes w (offset already applied) times 32 activations.
int lane_dot(const int* w, const int8_t* x, int l) {
  int s = 0;
  for (int k = 4 * l; k < 4 * l + 4; ++k) s += w[k] * x[k];
  return s;
}

template <DType T>
float s_dot_legacy(const void* wv, const void* xv, size_t n) {
  constexpr bool kMin = T == DType::q4_1 || T == DType::q5_1;
  constexpr int kOff = T == DType::q4_0 ? 8 : T == DType::q5_0 ? 16 : 0;
  constexpr size_t kBytes = block_shape(T).bytes;
  const auto* w = static_cast<const uint8_t*>(wv);
  const auto* x = static_cast<const ActQ32*>(xv);
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, accm = 0;
  int q[32];
  for (size_t b = 0; b < n / 32; ++b, w += kBytes, ++x) {
    if constexpr (T == DType::q8_0) {
      for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(w[2 + j]);
    } else {
      block_codes(T, w, q);
      for (int& v : q) v -= kOff;
    }
    const float D = f16_load(w) * x->d;
    for (int l = 0; l < 8; ++l) acc[l] = std::fma(D, static_cast<float>(lane_dot(q, x->q, l)), acc[l]);
    if (kMin) accm = std::fma(f16_load(w + 2), x->s, accm);
  }
  return lanes_sum(acc) + accm;
}

template <DType T>
float s_dot_k(const void* wv, const void* xv, size_t n) {
  constexpr size_t kBytes = block_shape(T).bytes;
  const auto* w = static_cast<const uint8_t*>(wv);
  const auto* x = static_cast<const ActQ256*>(xv);
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int q[256];
  for (size_t b = 0; b < n / 256; ++b, w += kBytes, ++x) {
    block_codes(T, w, q);
    int lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if constexpr (T == DType::q6_k) {
      const auto* sc = reinterpret_cast<const int8_t*>(w + 192);
      for (int g = 0; g < 8; ++g)
        for (int l = 0; l < 8; ++l) lanes[l] += sc[2 * g + (l >= 4)] * lane_dot(q + 32 * g, x->q + 32 * g, l);
      // the codes' offset of 32, sub-blocks 2l and 2l+1 in lane l
      for (int l = 0; l < 8; ++l) lanes[l] -= 32 * (sc[2 * l] * x->bsum[2 * l] + sc[2 * l + 1] * x->bsum[2 * l + 1]);
      const float D = f16_load(w + 208) * x->d;
      for (int l = 0; l < 8; ++l) acc[l] = std::fma(D, static_cast<float>(lanes[l]), acc[l]);
    } else {
      int mins[8];
      for (int s = 0; s < 8; ++s) {
        int sc, m;
        k_scale_min(w + 4, s, sc, m);
        for (int l = 0; l < 8; ++l) lanes[l] += sc * lane_dot(q + 32 * s, x->q + 32 * s, l);
        mins[s] = m * (x->bsum[2 * s] + x->bsum[2 * s + 1]);
      }
      const float D = f16_load(w) * x->d, Dmin = f16_load(w + 2) * x->d;
      for (int l = 0; l < 8; ++l) {
        acc[l] = std::fma(D, static_cast<float>(lanes[l]), acc[l]);
        acc[l] = std::fma(-Dmin, static_cast<float>(mins[l]), acc[l]);
      }
    }
  }
  return lanes_sum(acc);
}

}  // namespace

void quantize_activations(DType t, const float* x, void* out, size_t n) {
  if (act_block(t) == 256) {
    auto* o = static_cast<ActQ256*>(out);
    for (size_t b = 0; b < n / 256; ++b, x += 256, ++o) {
      o->d = quantize_run(x, o->q, 256);
      for (int k = 0; k < 16; ++k) {
        int s = 0;
        for (int i = 0; i < 16; ++i) s += o->q[16 * k + i];
        o->bsum[k] = static_cast<int16_t>(s);
      }
    }
  } else {
    auto* o = static_cast<ActQ32*>(out);
    for (size_t b = 0; b < n / 32; ++b, x += 32, ++o) {
      o->d = quantize_run(x, o->q, 32);
      int s = 0;
      for (int8_t v : o->q) s += v;
      o->s = o->d * static_cast<float>(s);
    }
  }
}

void scalar_block_dots(Kernels& k) {
  k.quantize_acts = quantize_activations;
  k.dot_q8_0q = s_dot_legacy<DType::q8_0>;
  k.dot_q4_0 = s_dot_legacy<DType::q4_0>;
  k.dot_q4_1 = s_dot_legacy<DType::q4_1>;
  k.dot_q5_0 = s_dot_legacy<DType::q5_0>;
  k.dot_q5_1 = s_dot_legacy<DType::q5_1>;
  k.dot_q4_k = s_dot_k<DType::q4_k>;
  k.dot_q5_k = s_dot_k<DType::q5_k>;
  k.dot_q6_k = s_dot_k<DType::q6_k>;
  k.dots_q8_0q = dots_by_loop<s_dot_legacy<DType::q8_0>>;
  k.dots_q4_0 = dots_by_loop<s_dot_legacy<DType::q4_0>>;
  k.dots_q4_1 = dots_by_loop<s_dot_legacy<DType::q4_1>>;
  k.dots_q5_0 = dots_by_loop<s_dot_legacy<DType::q5_0>>;
  k.dots_q5_1 = dots_by_loop<s_dot_legacy<DType::q5_1>>;
  k.dots_q4_k = dots_by_loop<s_dot_k<DType::q4_k>>;
  k.dots_q5_k = dots_by_loop<s_dot_k<DType::q5_k>>;
  k.dots_q6_k = dots_by_loop<s_dot_k<DType::q6_k>>;
}

}  // namespace paca::cpu
