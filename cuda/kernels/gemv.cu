// gemv.cu - y = x W^T for a handful of tokens with bf16 weights and f32
// activations, accumulated in f32: the decode-step matmul, bound by the
// bytes of W (see kernels.h). CPU twin: CpuBackend::matmul.
//
// One warp per weight row, 8 rows per 256-thread block. Each lane reads 16
// bytes (8 bf16) of the row per step, four steps' loads issued before the
// first use, with the streaming cache hint (the weights are read once per
// token; x stays in L1/L2). Each loaded weight vector is applied to up to
// NT tokens, so a pass over W serves NT tokens. The lanes' partial sums meet
// through warp shuffles. Rows whose length is not a multiple of 8 (or an
// unaligned x) take a scalar path.
#include <cstdint>  // uint16_t, uintptr_t

#include "kernels/kernels.h"  // launch_gemv_bf16

namespace paca::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 8;
constexpr int kUnroll = 4;

__device__ __forceinline__ float bf16_lo(uint32_t v) { return __uint_as_float(v << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t v) { return __uint_as_float(v & 0xffff0000u); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// acc[t] += dot(8 weights in p, x[t, c0 .. c0 + 8))
template <int NT>
__device__ __forceinline__ void fma8(const uint4& p, const float* __restrict__ x, int ldx, int c0, float (&acc)[NT]) {
  const float w0 = bf16_lo(p.x), w1 = bf16_hi(p.x), w2 = bf16_lo(p.y), w3 = bf16_hi(p.y);
  const float w4 = bf16_lo(p.z), w5 = bf16_hi(p.z), w6 = bf16_lo(p.w), w7 = bf16_hi(p.w);
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float4* xv = reinterpret_cast<const float4*>(x + static_cast<size_t>(t) * ldx + c0);
    const float4 a = __ldg(xv), b = __ldg(xv + 1);
    float s = acc[t];
    s = fmaf(w0, a.x, s);
    s = fmaf(w1, a.y, s);
    s = fmaf(w2, a.z, s);
    s = fmaf(w3, a.w, s);
    s = fmaf(w4, b.x, s);
    s = fmaf(w5, b.y, s);
    s = fmaf(w6, b.z, s);
    s = fmaf(w7, b.w, s);
    acc[t] = s;
  }
}

// grid: (ceil(rows / 8)), block: 256. W: (rows, cols) bf16, x: (NT, ldx), y: (NT, ldy)
template <int NT, bool kVec>
__global__ void __launch_bounds__(kRowsPerBlock * kWarp) gemv_kernel(const uint16_t* __restrict__ W, int rows, int cols,
                                                                     const float* __restrict__ x, int ldx,
                                                                     float* __restrict__ y, int ldy) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int row = static_cast<int>(blockIdx.x) * kRowsPerBlock + static_cast<int>(threadIdx.x) / kWarp;
  if (row >= rows) return;
  const uint16_t* w = W + static_cast<size_t>(row) * cols;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  if constexpr (kVec) {
    const uint4* w4 = reinterpret_cast<const uint4*>(w);
    const int n8 = cols / 8;
    int i = lane;
    for (; i + (kUnroll - 1) * kWarp < n8; i += kUnroll * kWarp) {
      uint4 p[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) p[u] = __ldcs(w4 + i + u * kWarp);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) fma8<NT>(p[u], x, ldx, (i + u * kWarp) * 8, acc);
    }
    for (; i < n8; i += kWarp) fma8<NT>(__ldcs(w4 + i), x, ldx, i * 8, acc);
  } else {
    for (int c = lane; c < cols; c += kWarp) {
      const float wc = __uint_as_float(static_cast<uint32_t>(w[c]) << 16);
#pragma unroll
      for (int t = 0; t < NT; ++t) acc[t] = fmaf(wc, x[static_cast<size_t>(t) * ldx + c], acc[t]);
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float s = warp_sum(acc[t]);
    if (lane == 0) y[static_cast<size_t>(t) * ldy + row] = s;
  }
}

template <int NT>
void launch_nt(bool vec, const uint16_t* w, int rows, int cols, const float* x, int ldx, float* y, int ldy,
               cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock));
  const dim3 block(kRowsPerBlock * kWarp);
  if (vec)
    gemv_kernel<NT, true><<<grid, block, 0, stream>>>(w, rows, cols, x, ldx, y, ldy);
  else
    gemv_kernel<NT, false><<<grid, block, 0, stream>>>(w, rows, cols, x, ldx, y, ldy);
}

}  // namespace

cudaError_t launch_gemv_bf16(const uint16_t* w, int rows, int cols, const float* x, int ldx, int tokens, float* y,
                             int ldy, cudaStream_t stream) {
  if (rows < 0 || cols <= 0 || tokens < 0 || ldx < cols || ldy < rows || w == nullptr || x == nullptr || y == nullptr)
    return cudaErrorInvalidValue;
  if (rows == 0 || tokens == 0) return cudaSuccess;
  const bool vec = cols % 8 == 0 && ldx % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(w) % 16 == 0;
  for (int t0 = 0, n = 0; t0 < tokens; t0 += n) {
    const int rem = tokens - t0;
    n = rem >= 8 ? 8 : rem >= 4 ? 4 : rem >= 2 ? 2 : 1;
    const float* xt = x + static_cast<size_t>(t0) * ldx;
    float* yt = y + static_cast<size_t>(t0) * ldy;
    switch (n) {
      case 1: launch_nt<1>(vec, w, rows, cols, xt, ldx, yt, ldy, stream); break;
      case 2: launch_nt<2>(vec, w, rows, cols, xt, ldx, yt, ldy, stream); break;
      case 4: launch_nt<4>(vec, w, rows, cols, xt, ldx, yt, ldy, stream); break;
      default: launch_nt<8>(vec, w, rows, cols, xt, ldx, yt, ldy, stream); break;
    }
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace paca::cuda
