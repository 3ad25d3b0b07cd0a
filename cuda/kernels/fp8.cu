// fp8.cu - FP8 E4M3 weights on the device (see kernels.h): the decode GEMV
// over E4M3 codes with per-row f32 scales, the per-token activation
// quantizer of w8a8 (dynamic per-row or static scale), the widening of E4M3
// codes to bf16 tiles (w8a16 prefill through the BF16 GEMM) and the epilogue
// that applies row x token scales to an f32 GEMM result. CPU twin:
// CpuBackend::matmul / quantize_activations (core/backend/cpu/cpu_backend.cpp).
//
// E4M3 <-> f32: kernels/e4m3.cuh (decoding by bit placement; encoding with
// __nv_cvt_float_to_fp8 and __NV_SATFINITE, the CPU's f32_to_e4m3).
#include <cstdint>  // uint8_t, uintptr_t

#include "kernels/e4m3.cuh"    // e4m3_of, to_e4m3, e4m3_act_scale
#include "kernels/kernels.h"  // launch_gemv_f8, launch_quantize_e4m3, ...

namespace paca::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 8;
constexpr int kUnroll = 4;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// acc[k][t] += dot(4 weights of row k in word u[k], x[t, c0 .. c0 + 4)): each
// x load serves RW rows; each row's sums run in the same order whatever RW is
template <int NT, int RW>
__device__ __forceinline__ void fma4(const uint32_t (&u)[RW], const float* __restrict__ x, int ldx, int c0,
                                     float (&acc)[RW][NT]) {
  float w[RW][4];
#pragma unroll
  for (int k = 0; k < RW; ++k) {
    w[k][0] = e4m3_of<0>(u[k]);
    w[k][1] = e4m3_of<1>(u[k]);
    w[k][2] = e4m3_of<2>(u[k]);
    w[k][3] = e4m3_of<3>(u[k]);
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(x + static_cast<size_t>(t) * ldx + c0));
#pragma unroll
    for (int k = 0; k < RW; ++k) {
      float s = acc[k][t];
      s = fmaf(w[k][0], a.x, s);
      s = fmaf(w[k][1], a.y, s);
      s = fmaf(w[k][2], a.z, s);
      s = fmaf(w[k][3], a.w, s);
      acc[k][t] = s;
    }
  }
}

template <int NT, int RW>
__device__ __forceinline__ void fma16(const uint4 (&p)[RW], const float* __restrict__ x, int ldx, int c0,
                                      float (&acc)[RW][NT]) {
  uint32_t u[RW];
#pragma unroll
  for (int k = 0; k < RW; ++k) u[k] = p[k].x;
  fma4<NT, RW>(u, x, ldx, c0, acc);
#pragma unroll
  for (int k = 0; k < RW; ++k) u[k] = p[k].y;
  fma4<NT, RW>(u, x, ldx, c0 + 4, acc);
#pragma unroll
  for (int k = 0; k < RW; ++k) u[k] = p[k].z;
  fma4<NT, RW>(u, x, ldx, c0 + 8, acc);
#pragma unroll
  for (int k = 0; k < RW; ++k) u[k] = p[k].w;
  fma4<NT, RW>(u, x, ldx, c0 + 12, acc);
}

// grid: ceil(rows / (8 RW)), block: 256 (each warp RW consecutive rows). W:
// (rows, cols) E4M3 codes, ws: (rows) f32, x: (NT, ldx) f32, xs: (NT) f32 or
// null, y: (NT, ldy). A warp's rows past the last are read as the last row
// (no branch in the loop) and not written.
template <int NT, int RW, bool kVec>
__global__ void __launch_bounds__(kRowsPerBlock * kWarp)
    gemv_f8_kernel(const uint8_t* __restrict__ W, const float* __restrict__ ws, int rows, int cols,
                   const float* __restrict__ x, int ldx, const float* __restrict__ xs, float* __restrict__ y, int ldy) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int row0 = (static_cast<int>(blockIdx.x) * kRowsPerBlock + static_cast<int>(threadIdx.x) / kWarp) * RW;
  if (row0 >= rows) return;
  const uint8_t* w[RW];
#pragma unroll
  for (int k = 0; k < RW; ++k) w[k] = W + static_cast<size_t>(min(row0 + k, rows - 1)) * cols;
  float acc[RW][NT];
#pragma unroll
  for (int k = 0; k < RW; ++k)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[k][t] = 0.0f;
  if constexpr (kVec) {
    const int n16 = cols / 16;
    int i = lane;
    for (; i + (kUnroll - 1) * kWarp < n16; i += kUnroll * kWarp) {
      uint4 p[kUnroll][RW];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int k = 0; k < RW; ++k) p[u][k] = __ldcs(reinterpret_cast<const uint4*>(w[k]) + i + u * kWarp);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) fma16<NT, RW>(p[u], x, ldx, (i + u * kWarp) * 16, acc);
    }
    for (; i < n16; i += kWarp) {
      uint4 p[RW];
#pragma unroll
      for (int k = 0; k < RW; ++k) p[k] = __ldcs(reinterpret_cast<const uint4*>(w[k]) + i);
      fma16<NT, RW>(p, x, ldx, i * 16, acc);
    }
  } else {
    for (int c = lane; c < cols; c += kWarp) {
#pragma unroll
      for (int k = 0; k < RW; ++k) {
        const float wc = e4m3_byte(w[k][c]);
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[k][t] = fmaf(wc, x[static_cast<size_t>(t) * ldx + c], acc[k][t]);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < RW; ++k) {
    const int row = row0 + k;
    const float rs = ws[min(row, rows - 1)];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const float s = warp_sum(acc[k][t]);
      // the CPU's order: (dot * token scale) * row scale
      if (lane == 0 && row < rows) y[static_cast<size_t>(t) * ldy + row] = (xs != nullptr ? s * xs[t] : s) * rs;
    }
  }
}

template <int NT, int RW>
void launch_f8_rw(bool vec, const uint8_t* w, const float* ws, int rows, int cols, const float* x, int ldx,
                  const float* xs, float* y, int ldy, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((rows + kRowsPerBlock * RW - 1) / (kRowsPerBlock * RW)));
  const dim3 block(kRowsPerBlock * kWarp);
  if (vec)
    gemv_f8_kernel<NT, RW, true><<<grid, block, 0, stream>>>(w, ws, rows, cols, x, ldx, xs, y, ldy);
  else
    gemv_f8_kernel<NT, RW, false><<<grid, block, 0, stream>>>(w, ws, rows, cols, x, ldx, xs, y, ldy);
}

template <int NT>
void launch_f8_nt(int rw, bool vec, const uint8_t* w, const float* ws, int rows, int cols, const float* x, int ldx,
                  const float* xs, float* y, int ldy, cudaStream_t stream) {
  if (rw == 2)
    launch_f8_rw<NT, 2>(vec, w, ws, rows, cols, x, ldx, xs, y, ldy, stream);
  else
    launch_f8_rw<NT, 1>(vec, w, ws, rows, cols, x, ldx, xs, y, ldy, stream);
}

// ---- activation quantizer ------------------------------------------------

constexpr int kQuantThreads = 256;

// grid: rows (+ pad rows), block: 256. Row t < rows: scale s_t (static, or
// max(min(max|x_t|, ub), 1e-12) / 448 as on the CPU), codes e4m3(x / s_t)
// into q8 (if any) and their values into qf (if any). Rows in [rows,
// gridDim.x): zero codes and a scale of 1 (padding of a GEMM's token count).
__global__ void __launch_bounds__(kQuantThreads)
    quantize_kernel(const float* __restrict__ x, int ldx, int rows, int cols, int dynamic, float ub, float static_scale,
                    uint8_t* __restrict__ q8, int ldq8, float* __restrict__ qf, int ldqf, float* __restrict__ scales) {
  const int t = static_cast<int>(blockIdx.x);
  if (t >= rows) {
    if (q8 != nullptr)
      for (int c = static_cast<int>(threadIdx.x); c < cols; c += kQuantThreads)
        q8[static_cast<size_t>(t) * ldq8 + c] = 0;
    if (threadIdx.x == 0) scales[t] = 1.0f;
    return;
  }
  const float* xr = x + static_cast<size_t>(t) * ldx;
  float s = static_scale;
  if (dynamic) {
    __shared__ float part[kQuantThreads / kWarp];
    float mx = 0.0f;
    for (int c = static_cast<int>(threadIdx.x); c < cols; c += kQuantThreads) mx = fmaxf(mx, fabsf(xr[c]));
#pragma unroll
    for (int o = kWarp / 2; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (threadIdx.x % kWarp == 0) part[threadIdx.x / kWarp] = mx;
    __syncthreads();
    mx = part[0];
#pragma unroll
    for (int i = 1; i < kQuantThreads / kWarp; ++i) mx = fmaxf(mx, part[i]);
    s = e4m3_act_scale(mx, ub);
  }
  for (int c = static_cast<int>(threadIdx.x); c < cols; c += kQuantThreads) {
    const uint8_t code = to_e4m3(xr[c] / s);
    if (q8 != nullptr) q8[static_cast<size_t>(t) * ldq8 + c] = code;
    if (qf != nullptr) qf[static_cast<size_t>(t) * ldqf + c] = e4m3_value(code);
  }
  if (threadIdx.x == 0) scales[t] = s;
}

// ---- widening to bf16 and the scale epilogue --------------------------------

// out[i] = bf16 bits of e4m3(codes[i]) (exact: every E4M3 value is a bf16)
__global__ void e4m3_to_bf16_kernel(const uint8_t* __restrict__ codes, size_t n, uint16_t* __restrict__ out) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<uint16_t>(__float_as_uint(e4m3_byte(codes[i])) >> 16);
}

// y[t, r] = (src[t, r] * xs[t]) * ws[r] (xs null: src[t, r] * ws[r])
// (src may be y: each element is read once, then written)
__global__ void scale_kernel(const float* src, int lds, int rows, int tokens, const float* __restrict__ ws,
                             const float* __restrict__ xs, float* y, int ldy) {
  const size_t n = static_cast<size_t>(rows) * tokens;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int t = static_cast<int>(i / static_cast<size_t>(rows)), r = static_cast<int>(i % static_cast<size_t>(rows));
    const float v = src[static_cast<size_t>(t) * lds + r];
    y[static_cast<size_t>(t) * ldy + r] = (xs != nullptr ? v * xs[t] : v) * ws[r];
  }
}

unsigned grid_for(size_t n) {
  const size_t blocks = (n + 255) / 256;
  return static_cast<unsigned>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

}  // namespace

cudaError_t launch_gemv_f8(const uint8_t* w, const float* w_scales, int rows, int cols, const float* x, int ldx,
                           const float* x_scales, int tokens, float* y, int ldy, int rows_per_warp,
                           cudaStream_t stream) {
  if (rows < 0 || cols <= 0 || tokens < 0 || ldx < cols || ldy < rows || w == nullptr || w_scales == nullptr ||
      x == nullptr || y == nullptr || (rows_per_warp != 1 && rows_per_warp != 2))
    return cudaErrorInvalidValue;
  if (rows == 0 || tokens == 0) return cudaSuccess;
  const bool vec = cols % 16 == 0 && ldx % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(w) % 16 == 0;
  const int rw = rows_per_warp;
  for (int t0 = 0, n = 0; t0 < tokens; t0 += n) {
    const int rem = tokens - t0;
    n = rem >= 8 ? 8 : rem >= 4 ? 4 : rem >= 2 ? 2 : 1;
    const float* xt = x + static_cast<size_t>(t0) * ldx;
    const float* st = x_scales != nullptr ? x_scales + t0 : nullptr;
    float* yt = y + static_cast<size_t>(t0) * ldy;
    switch (n) {
      case 1: launch_f8_nt<1>(rw, vec, w, w_scales, rows, cols, xt, ldx, st, yt, ldy, stream); break;
      case 2: launch_f8_nt<2>(rw, vec, w, w_scales, rows, cols, xt, ldx, st, yt, ldy, stream); break;
      case 4: launch_f8_nt<4>(rw, vec, w, w_scales, rows, cols, xt, ldx, st, yt, ldy, stream); break;
      default: launch_f8_nt<8>(rw, vec, w, w_scales, rows, cols, xt, ldx, st, yt, ldy, stream); break;
    }
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

cudaError_t launch_quantize_e4m3(const float* x, int ldx, int rows, int cols, int pad_rows, int dynamic, float act_ub,
                                 float act_scale, uint8_t* q8, int ldq8, float* qf, int ldqf, float* scales,
                                 cudaStream_t stream) {
  if (rows < 0 || pad_rows < rows || cols <= 0 || ldx < cols || x == nullptr || scales == nullptr ||
      (q8 == nullptr && qf == nullptr) || (q8 != nullptr && ldq8 < cols) || (qf != nullptr && ldqf < cols) ||
      (pad_rows > rows && qf != nullptr) || (dynamic == 0 && !(act_scale > 0.0f)) || (dynamic != 0 && !(act_ub > 0.0f)))
    return cudaErrorInvalidValue;
  if (pad_rows == 0) return cudaSuccess;
  quantize_kernel<<<static_cast<unsigned>(pad_rows), kQuantThreads, 0, stream>>>(x, ldx, rows, cols, dynamic, act_ub,
                                                                                 act_scale, q8, ldq8, qf, ldqf, scales);
  return cudaGetLastError();
}

cudaError_t launch_e4m3_to_bf16(const uint8_t* codes, size_t n, uint16_t* out, cudaStream_t stream) {
  if (codes == nullptr || out == nullptr) return n == 0 ? cudaSuccess : cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  e4m3_to_bf16_kernel<<<grid_for(n), 256, 0, stream>>>(codes, n, out);
  return cudaGetLastError();
}

cudaError_t launch_scale_rows_tokens(const float* src, int lds, int rows, int tokens, const float* w_scales,
                                     const float* x_scales, float* y, int ldy, cudaStream_t stream) {
  if (rows < 0 || tokens < 0 || lds < rows || ldy < rows || src == nullptr || w_scales == nullptr || y == nullptr)
    return cudaErrorInvalidValue;
  if (rows == 0 || tokens == 0) return cudaSuccess;
  scale_kernel<<<grid_for(static_cast<size_t>(rows) * tokens), 256, 0, stream>>>(src, lds, rows, tokens, w_scales,
                                                                                  x_scales, y, ldy);
  return cudaGetLastError();
}

}  // namespace paca::cuda
