// fast_exp.h - a branch-free expf the compiler vectorizes, for the sampler's
// passes over a whole vocabulary (softmax weights, log-sum-exp) and the CPU
// attention's softmax (the AVX2 kernels evaluate the same polynomial 8 wide).
//
// Cephes' expf: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 minimax
// polynomial, 2^n put into the exponent bits. Relative error about 2 ulp over
// [-87, 88] (checked in tests against std::exp). Below -87 (results under
// FLT_MIN), -inf and NaN give 0: a weight that does not count.
#pragma once

#include <bit>
#include <cstdint>

namespace paca {

inline float fast_exp(float x) {
  const bool zero = !(x >= -87.0f);  // also NaN
  x = zero ? -87.0f : x;
  x = x < 88.0f ? x : 88.0f;
  // n = round(x / ln 2), by the 1.5 * 2^23 trick (round to nearest even)
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;  // ln 2 in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  return zero ? 0.0f : p * two_n;
}

}  // namespace paca
