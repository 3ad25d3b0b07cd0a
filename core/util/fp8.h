// fp8.h - the FP8 E4M3 ("fn", finite) format: 1 sign, 4 exponent (bias 7),
// 3 mantissa bits; max 448; no infinities; NaN = 0x7f / 0xff.
// Conversion from f32 rounds to nearest even and saturates to +-448
// (the behaviour of CUDA's __NV_SATFINITE and of Meta's quantizers, which
// clamp before converting). NaN converts to NaN (0x7f, sign kept).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace paca {

constexpr float kE4M3Max = 448.0f;

inline float e4m3_to_f32(uint8_t v) {
  const uint32_t sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 0x7;
  float mag;
  if (exp == 0xf && man == 0x7) {
    mag = NAN;
  } else if (exp == 0) {
    mag = std::ldexp(static_cast<float>(man), -9);  // subnormal: man/8 * 2^-6
  } else {
    mag = std::ldexp(1.0f + static_cast<float>(man) / 8.0f, static_cast<int>(exp) - 7);
  }
  return sign ? -mag : mag;
}

inline uint8_t f32_to_e4m3(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80);
  if (std::isnan(f)) return static_cast<uint8_t>(sign | 0x7f);
  float a = std::fabs(f);
  if (a >= kE4M3Max) return static_cast<uint8_t>(sign | 0x7e);  // saturate (infinities too)
  if (a < std::ldexp(1.0f, -6)) {
    // subnormal range: multiples of 2^-9; rint rounds half to even
    float q = std::nearbyint(a * 512.0f);  // 0..8 (8 = smallest normal)
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(q));
  }
  int e;
  float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  // a = (1 + k/8) * 2^(e-1); scaled mantissa in [8, 16)
  float scaled = std::nearbyint(std::ldexp(m, 4));  // 8..16
  int exp = e - 1 + 7;
  if (scaled >= 16.0f) {
    scaled = 8.0f;
    ++exp;
  }
  uint8_t code = static_cast<uint8_t>((exp << 3) | (static_cast<int>(scaled) - 8));
  if (code > 0x7e) code = 0x7e;  // 464 rounds up past 448: saturate
  return static_cast<uint8_t>(sign | code);
}

}  // namespace paca
