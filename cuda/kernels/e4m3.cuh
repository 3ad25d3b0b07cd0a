// e4m3.cuh - device helpers for FP8 E4M3 shared by the kernel families that
// produce or read E4M3 codes (fp8.cu, rmsnorm.cu): decoding a code, encoding
// an f32 the way the CPU's f32_to_e4m3 does (core/util/fp8.h) and the scale
// rule of dynamic per-token activation quantization.
#pragma once

#include <cuda_fp8.h>  // __nv_cvt_float_to_fp8

#include <cstdint>  // uint8_t, uint32_t

namespace paca::cuda {

// The E4M3 value of byte K of u, without a conversion instruction: the
// code's 7 magnitude bits placed at bit 20 of an f32 are exponent e (4 bits)
// and mantissa m (3 bits) of a float whose value is 2^-120 times the E4M3
// value, for normal codes (e > 0: 2^(e-127) (1 + m/8)) and subnormal ones
// alike (e = 0: the f32 is subnormal, m/8 2^-126 = 2^-120 m 2^-9): one
// multiply by 2^120 makes it exact. The NaN codes (0x7f, 0xff) decode to
// +-480 here, not NaN (weights never hold them: the upload refuses them).
template <int K>
__device__ __forceinline__ float e4m3_of(uint32_t u) {
  const uint32_t b = u >> (8 * K);
  const uint32_t bits = ((b << 24) & 0x80000000u) | ((b << 20) & 0x07f00000u);
  return __uint_as_float(bits) * 0x1p120f;
}
__device__ __forceinline__ float e4m3_byte(uint8_t b) { return e4m3_of<0>(b); }

// The value of an activation code, NaN codes as NaN (the CPU's table).
__device__ __forceinline__ float e4m3_value(uint8_t code) {
  return (code & 0x7f) == 0x7f ? __int_as_float(0x7fc00000) : e4m3_byte(code);
}

// f32 -> E4M3: round to nearest even, saturate to +-448, NaN -> NaN.
__device__ __forceinline__ uint8_t to_e4m3(float v) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

// The dynamic per-token scale of a row whose largest magnitude is amax, with
// the activation bound ub (may be +inf): the CPU's
// std::max(std::min(amax, ub), 1e-12f) / 448 (an IEEE division here too).
__device__ __forceinline__ float e4m3_act_scale(float amax, float ub) { return fmaxf(fminf(amax, ub), 1e-12f) / 448.0f; }

}  // namespace paca::cuda
