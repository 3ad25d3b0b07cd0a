// block_quant.cpp - see block_quant.h for the layouts.
#include "format/block_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/error.h"
#include "util/half.h"

namespace paca {

namespace {

// f16 fields saturate at +-65504: a scale past the f16 range stays finite
// (the values it decodes are then clipped, never inf).
float f16_saturate(float v) { return std::clamp(v, -65504.0f, 65504.0f); }

void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(f16_saturate(v));
  std::memcpy(p, &h, 2);
}

uint8_t lo(uint8_t b) { return b & 0xF; }
uint8_t hi(uint8_t b) { return b >> 4; }

// The 6-bit scale and min of sub-block s of a Q4_K/Q5_K super-block.
void scale_min_k(const uint8_t* scales, int s, int& sc, int& m) {
  if (s < 4) {
    sc = scales[s] & 63;
    m = scales[s + 4] & 63;
  } else {
    sc = lo(scales[s + 4]) | ((scales[s - 4] >> 6) << 4);
    m = hi(scales[s + 4]) | ((scales[s] >> 6) << 4);
  }
}

void pack_scale_min_k(const int* sc, const int* m, uint8_t* scales) {
  for (int s = 0; s < 4; ++s) {
    scales[s] = static_cast<uint8_t>((sc[s] & 63) | ((sc[s + 4] >> 4) << 6));
    scales[s + 4] = static_cast<uint8_t>((m[s] & 63) | ((m[s + 4] >> 4) << 6));
    scales[s + 8] = static_cast<uint8_t>((sc[s + 4] & 0xF) | ((m[s + 4] & 0xF) << 4));
  }
}

// ---- dequantization, one block --------------------------------------------

void deq_q8_0(const uint8_t* b, float* y) {
  const float d = f16_load(b);
  for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(b[2 + j]));
}

// Q4_0/Q4_1/Q5_0/Q5_1: the 32 integer codes of a legacy block.
void legacy_codes(DType t, const uint8_t* b, int* q) {
  const bool has_min = t == DType::q4_1 || t == DType::q5_1;
  const bool five = t == DType::q5_0 || t == DType::q5_1;
  const uint8_t* p = b + (has_min ? 4 : 2);
  uint32_t qh = 0;
  if (five) {
    std::memcpy(&qh, p, 4);
    p += 4;
  }
  for (int j = 0; j < 16; ++j) {
    q[j] = lo(p[j]);
    q[j + 16] = hi(p[j]);
    if (five) {
      q[j] |= static_cast<int>((qh >> j) & 1u) << 4;
      q[j + 16] |= static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    }
  }
}

void deq_legacy(DType t, const uint8_t* b, float* y) {
  int q[32];
  legacy_codes(t, b, q);
  const float d = f16_load(b);
  if (t == DType::q4_1 || t == DType::q5_1) {
    const float m = f16_load(b + 2);
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(q[j]) + m;
  } else {
    const int off = t == DType::q4_0 ? 8 : 16;
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(q[j] - off);
  }
}

// Q4_K/Q5_K: the 256 codes (0..15 or 0..31) of a super-block.
void k_codes(bool five, const uint8_t* b, int* q) {
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + (five ? 48 : 16);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      q[64 * c + l] = lo(qs[32 * c + l]);
      q[64 * c + 32 + l] = hi(qs[32 * c + l]);
      if (five) {
        q[64 * c + l] |= ((qh[l] >> (2 * c)) & 1) << 4;
        q[64 * c + 32 + l] |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
      }
    }
}

void deq_k(bool five, const uint8_t* b, float* y) {
  int q[256];
  k_codes(five, b, q);
  const float d = f16_load(b), dmin = f16_load(b + 2);
  for (int s = 0; s < 8; ++s) {
    int sc, m;
    scale_min_k(b + 4, s, sc, m);
    const float ds = d * static_cast<float>(sc), ms = dmin * static_cast<float>(m);
    for (int j = 0; j < 32; ++j) y[32 * s + j] = ds * static_cast<float>(q[32 * s + j]) - ms;
  }
}

// Q6_K: the 256 codes (0..63) of a super-block.
void q6k_codes(const uint8_t* b, int* q) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b + 64 * h;
    const uint8_t* qh = b + 128 + 32 * h;
    int* o = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      o[l] = lo(ql[l]) | (((qh[l] >> 0) & 3) << 4);
      o[l + 32] = lo(ql[l + 32]) | (((qh[l] >> 2) & 3) << 4);
      o[l + 64] = hi(ql[l]) | (((qh[l] >> 4) & 3) << 4);
      o[l + 96] = hi(ql[l + 32]) | (((qh[l] >> 6) & 3) << 4);
    }
  }
}

void deq_q6k(const uint8_t* b, float* y) {
  int q[256];
  q6k_codes(b, q);
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16_load(b + 208);
  for (int e = 0; e < 256; ++e) y[e] = d * static_cast<float>(scales[e / 16]) * static_cast<float>(q[e] - 32);
}

// ---- quantization ----------------------------------------------------------

int round_clamp(float v, int qmin, int qmax) {
  if (!(v == v)) return qmin < 0 ? 0 : qmin;  // NaN (0/0 scales are avoided by the callers)
  const float r = std::nearbyint(std::clamp(v, static_cast<float>(qmin), static_cast<float>(qmax)));
  return static_cast<int>(r);
}

// Symmetric codes q in [qmin, qmax] with x ~ d * q. The scale maps the
// largest-magnitude element to qmin (which has the larger magnitude) or to
// qmax, scaled by a few factors; the one with the least squared error wins.
float sym_scale(const float* x, int n, int qmin, int qmax) {
  float m = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > std::fabs(m)) m = x[i];
  if (m == 0) return 0;
  float best_d = m / static_cast<float>(qmin), best_err = INFINITY;
  for (float base : {m / static_cast<float>(qmin), m / static_cast<float>(-qmax)}) {
    for (int k = -4; k <= 4; ++k) {
      const float d = base * (1.0f + 0.025f * static_cast<float>(k));
      float err = 0;
      for (int i = 0; i < n; ++i) {
        const float e = x[i] - d * static_cast<float>(round_clamp(x[i] / d, qmin, qmax));
        err += e * e;
      }
      if (err < best_err) {
        best_err = err;
        best_d = d;
      }
    }
  }
  return best_d;
}

// Asymmetric codes q in [0, qmax] with x ~ scale * q + lo; lo <= 0 when
// min_le_zero. Starts from the range and refits (scale, lo) by least squares
// on the codes a few times, keeping the best.
void asym_fit(const float* x, int n, int qmax, bool min_le_zero, float& scale_out, float& lo_out) {
  float mn = x[0], mx = x[0];
  for (int i = 1; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  if (min_le_zero) mn = std::min(mn, 0.0f);
  scale_out = 0;
  lo_out = mn;
  if (mx <= mn) return;
  float scale = (mx - mn) / static_cast<float>(qmax), lo_v = mn, best = INFINITY;
  for (int it = 0; it < 4; ++it) {
    double sq = 0, sqq = 0, sx = 0, sxq = 0, err = 0;
    for (int i = 0; i < n; ++i) {
      const int q = round_clamp((x[i] - lo_v) / scale, 0, qmax);
      const double e = x[i] - (scale * static_cast<float>(q) + lo_v);
      err += e * e;
      sq += q;
      sqq += static_cast<double>(q) * q;
      sx += x[i];
      sxq += static_cast<double>(x[i]) * q;
    }
    if (err < best) {
      best = static_cast<float>(err);
      scale_out = scale;
      lo_out = lo_v;
    }
    // least squares of x on (q, 1)
    const double det = n * sqq - sq * sq;
    if (det <= 0) break;
    double s = (n * sxq - sq * sx) / det;
    double l = (sx - s * sq) / n;
    if (min_le_zero && l > 0) {
      l = 0;
      s = sqq > 0 ? sxq / sqq : 0;
    }
    if (!(s > 0)) break;
    scale = static_cast<float>(s);
    lo_v = static_cast<float>(l);
  }
}

float f16_round(float v) { return f16_to_f32(f32_to_f16(f16_saturate(v))); }

// A block scale as stored: f16_round, except that a nonzero scale never
// underflows to 0 (which would zero the whole block): it becomes the
// smallest f16 subnormal, 2^-24, and the codes absorb the rest.
float f16_scale(float v) {
  const float r = f16_round(v);
  return r == 0 && v != 0 ? std::copysign(0x1p-24f, v) : r;
}

void quant_q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = f16_scale(amax / 127.0f);
  put_f16(b, d);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(d == 0 ? 0 : round_clamp(x[j] / d, -127, 127)));
}

void quant_legacy(DType t, const float* x, uint8_t* b) {
  const bool has_min = t == DType::q4_1 || t == DType::q5_1;
  const bool five = t == DType::q5_0 || t == DType::q5_1;
  const int levels = five ? 32 : 16;
  int q[32];
  if (has_min) {
    float scale, lo_v;
    asym_fit(x, 32, levels - 1, false, scale, lo_v);
    const float d = f16_scale(scale), m = f16_round(lo_v);
    put_f16(b, d);
    put_f16(b + 2, m);
    for (int j = 0; j < 32; ++j) q[j] = d == 0 ? 0 : round_clamp((x[j] - m) / d, 0, levels - 1);
  } else {
    const int off = levels / 2;
    const float d = f16_scale(sym_scale(x, 32, -off, off - 1));
    put_f16(b, d);
    for (int j = 0; j < 32; ++j) q[j] = (d == 0 ? 0 : round_clamp(x[j] / d, -off, off - 1)) + off;
  }
  uint8_t* p = b + (has_min ? 4 : 2);
  if (five) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
    std::memcpy(p, &qh, 4);
    p += 4;
  }
  for (int j = 0; j < 16; ++j) p[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
}

void quant_k(bool five, const float* x, uint8_t* b) {
  const int qmax = five ? 31 : 15;
  float scale[8], mins[8], max_scale = 0, max_min = 0;
  for (int s = 0; s < 8; ++s) {
    float lo_v;
    asym_fit(x + 32 * s, 32, qmax, true, scale[s], lo_v);
    mins[s] = -lo_v;
    max_scale = std::max(max_scale, scale[s]);
    max_min = std::max(max_min, mins[s]);
  }
  const float d = f16_scale(max_scale / 63.0f), dmin = f16_scale(max_min / 63.0f);
  put_f16(b, d);
  put_f16(b + 2, dmin);
  int sc[8], m[8];
  for (int s = 0; s < 8; ++s) {
    sc[s] = d == 0 ? 0 : round_clamp(scale[s] / d, 0, 63);
    m[s] = dmin == 0 ? 0 : round_clamp(mins[s] / dmin, 0, 63);
  }
  pack_scale_min_k(sc, m, b + 4);
  int q[256];
  for (int s = 0; s < 8; ++s) {
    const float ds = d * static_cast<float>(sc[s]), ms = dmin * static_cast<float>(m[s]);
    for (int j = 0; j < 32; ++j) q[32 * s + j] = ds == 0 ? 0 : round_clamp((x[32 * s + j] + ms) / ds, 0, qmax);
  }
  uint8_t* qh = b + 16;
  uint8_t* qs = b + (five ? 48 : 16);
  if (five) std::memset(qh, 0, 32);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      const int a = q[64 * c + l], z = q[64 * c + 32 + l];
      qs[32 * c + l] = static_cast<uint8_t>((a & 0xF) | ((z & 0xF) << 4));
      if (five) qh[l] = static_cast<uint8_t>(qh[l] | (((a >> 4) & 1) << (2 * c)) | (((z >> 4) & 1) << (2 * c + 1)));
    }
}

void quant_q6k(const float* x, uint8_t* b) {
  float sub[16], amax = 0;
  for (int s = 0; s < 16; ++s) {
    sub[s] = sym_scale(x + 16 * s, 16, -32, 31);
    amax = std::max(amax, std::fabs(sub[s]));
  }
  const float d = f16_scale(amax / 127.0f);
  auto* scales = reinterpret_cast<int8_t*>(b + 192);
  int q[256];
  for (int s = 0; s < 16; ++s) {
    scales[s] = static_cast<int8_t>(d == 0 ? 0 : round_clamp(sub[s] / d, -127, 127));
    const float ds = d * static_cast<float>(scales[s]);
    for (int j = 0; j < 16; ++j) q[16 * s + j] = (ds == 0 ? 0 : round_clamp(x[16 * s + j] / ds, -32, 31)) + 32;
  }
  put_f16(b + 208, d);
  for (int h = 0; h < 2; ++h) {
    uint8_t* ql = b + 64 * h;
    uint8_t* qh = b + 128 + 32 * h;
    const int* o = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((o[l] & 0xF) | ((o[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((o[l + 32] & 0xF) | ((o[l + 96] & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((o[l] >> 4) | ((o[l + 32] >> 4) << 2) | ((o[l + 64] >> 4) << 4) | ((o[l + 96] >> 4) << 6));
    }
  }
}

void check_block_type(DType t, size_t n, const char* what) {
  check(t == DType::q8_0 || is_block_quant(t), Status::invalid_argument, "{}: {} is not a block type", what,
        dtype_name(t));
  check(n % block_shape(t).elems == 0, Status::invalid_argument, "{}: a row of {} is not a multiple of the {} block {}",
        what, n, dtype_name(t), block_shape(t).elems);
}

}  // namespace

void dequantize_blocks(DType t, const uint8_t* src, float* dst, size_t n) {
  check_block_type(t, n, "dequantize");
  const BlockShape bs = block_shape(t);
  for (size_t b = 0; b < n / bs.elems; ++b, src += bs.bytes, dst += bs.elems) {
    switch (t) {
      case DType::q8_0: deq_q8_0(src, dst); break;
      case DType::q4_0:
      case DType::q4_1:
      case DType::q5_0:
      case DType::q5_1: deq_legacy(t, src, dst); break;
      case DType::q4_k: deq_k(false, src, dst); break;
      case DType::q5_k: deq_k(true, src, dst); break;
      case DType::q6_k: deq_q6k(src, dst); break;
      default: break;
    }
  }
}

void quantize_blocks(DType t, const float* src, uint8_t* dst, size_t n) {
  check_block_type(t, n, "quantize");
  const BlockShape bs = block_shape(t);
  float x[256];
  for (size_t b = 0; b < n / bs.elems; ++b, src += bs.elems, dst += bs.bytes) {
    for (size_t i = 0; i < bs.elems; ++i) x[i] = std::isfinite(src[i]) ? src[i] : 0.0f;
    switch (t) {
      case DType::q8_0: quant_q8_0(x, dst); break;
      case DType::q4_0:
      case DType::q4_1:
      case DType::q5_0:
      case DType::q5_1: quant_legacy(t, x, dst); break;
      case DType::q4_k: quant_k(false, x, dst); break;
      case DType::q5_k: quant_k(true, x, dst); break;
      case DType::q6_k: quant_q6k(x, dst); break;
      default: break;
    }
  }
}

void block_codes(DType t, const uint8_t* block, int* q) {
  switch (t) {
    case DType::q4_0:
    case DType::q4_1:
    case DType::q5_0:
    case DType::q5_1: legacy_codes(t, block, q); return;
    case DType::q4_k: k_codes(false, block, q); return;
    case DType::q5_k: k_codes(true, block, q); return;
    case DType::q6_k: q6k_codes(block, q); return;
    default: fail(Status::invalid_argument, "block_codes: {} has no codes", dtype_name(t));
  }
}

void k_scale_min(const uint8_t* scales12, int s, int& sc, int& m) { scale_min_k(scales12, s, sc, m); }

uint32_t ggml_type_of(DType t) {
  switch (t) {
    case DType::f32: return 0;
    case DType::f16: return 1;
    case DType::q4_0: return 2;
    case DType::q4_1: return 3;
    case DType::q5_0: return 6;
    case DType::q5_1: return 7;
    case DType::q8_0: return 8;
    case DType::q4_k: return 12;
    case DType::q5_k: return 13;
    case DType::q6_k: return 14;
    case DType::bf16: return 30;
    case DType::f8e4m3: break;
  }
  fail(Status::unsupported, "{} has no GGUF tensor type", dtype_name(t));
}

bool dtype_of_ggml(uint32_t ggml_type, DType& out) {
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1,
                  DType::q4_k, DType::q5_k, DType::q6_k})
    if (ggml_type_of(t) == ggml_type) {
      out = t;
      return true;
    }
  return false;
}

}  // namespace paca
