// rmsnorm.cu - the RMSNorm kernel family: y = x / sqrt(mean(x^2) + eps) * w
// for f32 activations and f32 or bf16 weights (see kernels.h for shapes).
// CPU twin: CpuBackend::rmsnorm in core/backend/cpu/cpu_backend.cpp.
//
// One block per row. Each thread accumulates x^2 over a block-strided slice
// of the row in f32, the block reduces with warp shuffles (within a warp),
// then through shared memory (across warps), and every thread scales its
// slice. The row is read twice; the second read normally hits L2/L1.
//
// add_rmsnorm_kernel is the same with the residual add in front: each thread
// adds r to its own slice of x (writing x back), accumulating the sums of
// squares of the new values in the same order, so its results equal
// add_kernel + rmsnorm_kernel bit for bit. CPU twin: Backend::add_rmsnorm's
// default (add, then rmsnorm).
#include <cstdint>  // uint16_t, uint32_t

#include "kernels/kernels.h"  // launch_rmsnorm

namespace paca::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 1024;  // so at most 32 warps, one shared slot each

// Weight loaders, one per stored dtype.
struct WeightF32 {
  using Stored = float;
  static __device__ __forceinline__ float load(const Stored* w, int i) { return w[i]; }
};
struct WeightBf16 {
  using Stored = uint16_t;  // bf16 bits: the top half of an f32
  static __device__ __forceinline__ float load(const Stored* w, int i) {
    return __uint_as_float(static_cast<uint32_t>(w[i]) << 16);
  }
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum of v over the block; every thread gets the result.
// blockDim.x must be a multiple of 32 and at most kMaxThreads.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[kMaxThreads / kWarp];  // one per warp
  __shared__ float total;
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  const int n_warps = static_cast<int>(blockDim.x) / kWarp;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < n_warps ? partial[lane] : 0.0f;
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// grid: (rows), block: (threads) with threads % 32 == 0.
//   x: (rows, cols) f32, w: (cols) W::Stored, y: (rows, cols) f32
template <typename W>
__global__ void rmsnorm_kernel(const float* x, const typename W::Stored* w, float eps, int cols, float* y) {
  const size_t row = blockIdx.x;
  const float* xr = x + row * static_cast<size_t>(cols);
  float* yr = y + row * static_cast<size_t>(cols);

  float ss = 0.0f;
  for (int i = static_cast<int>(threadIdx.x); i < cols; i += static_cast<int>(blockDim.x)) {
    const float v = xr[i];
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(cols) + eps);

  for (int i = static_cast<int>(threadIdx.x); i < cols; i += static_cast<int>(blockDim.x))
    yr[i] = xr[i] * inv * W::load(w, i);
}

// grid: (rows), block: (threads) with threads % 32 == 0.
//   x: (rows, cols) f32 (in place), r: (rows, cols) f32, w: (cols) W::Stored,
//   y: (rows, cols) f32 (no alias of x or r)
template <typename W>
__global__ void add_rmsnorm_kernel(float* x, const float* __restrict__ r, const typename W::Stored* w, float eps, int cols,
                                   float* __restrict__ y) {
  const size_t row = blockIdx.x;
  float* xr = x + row * static_cast<size_t>(cols);
  const float* rr = r + row * static_cast<size_t>(cols);
  float* yr = y + row * static_cast<size_t>(cols);

  float ss = 0.0f;
  for (int i = static_cast<int>(threadIdx.x); i < cols; i += static_cast<int>(blockDim.x)) {
    const float v = xr[i] + rr[i];
    xr[i] = v;
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(cols) + eps);

  // each thread reads back only the elements it wrote above
  for (int i = static_cast<int>(threadIdx.x); i < cols; i += static_cast<int>(blockDim.x))
    yr[i] = xr[i] * inv * W::load(w, i);
}

// Explicit instantiations: one per weight dtype.
template __global__ void rmsnorm_kernel<WeightF32>(const float*, const float*, float, int, float*);
template __global__ void rmsnorm_kernel<WeightBf16>(const float*, const uint16_t*, float, int, float*);
template __global__ void add_rmsnorm_kernel<WeightF32>(float*, const float*, const float*, float, int, float*);
template __global__ void add_rmsnorm_kernel<WeightBf16>(float*, const float*, const uint16_t*, float, int, float*);

// Threads per block: enough warps to cover the row once, up to kMaxThreads.
int rmsnorm_threads(int cols) {
  const int warps = (cols + kWarp - 1) / kWarp;
  return warps >= kMaxThreads / kWarp ? kMaxThreads : warps * kWarp;
}

}  // namespace

cudaError_t launch_rmsnorm(const float* x, const void* w, int w_is_bf16, float eps, int rows, int cols, float* y,
                           cudaStream_t stream) {
  if (rows < 0 || cols <= 0 || x == nullptr || w == nullptr || y == nullptr) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(rows));
  const dim3 block(static_cast<unsigned>(rmsnorm_threads(cols)));
  if (w_is_bf16)
    rmsnorm_kernel<WeightBf16><<<grid, block, 0, stream>>>(x, static_cast<const uint16_t*>(w), eps, cols, y);
  else
    rmsnorm_kernel<WeightF32><<<grid, block, 0, stream>>>(x, static_cast<const float*>(w), eps, cols, y);
  return cudaGetLastError();
}

cudaError_t launch_add_rmsnorm(float* x, const float* r, const void* w, int w_is_bf16, float eps, int rows, int cols,
                               float* y, cudaStream_t stream) {
  if (rows < 0 || cols <= 0 || x == nullptr || r == nullptr || w == nullptr || y == nullptr || y == x || y == r)
    return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(rows));
  const dim3 block(static_cast<unsigned>(rmsnorm_threads(cols)));
  if (w_is_bf16)
    add_rmsnorm_kernel<WeightBf16><<<grid, block, 0, stream>>>(x, r, static_cast<const uint16_t*>(w), eps, cols, y);
  else
    add_rmsnorm_kernel<WeightF32><<<grid, block, 0, stream>>>(x, r, static_cast<const float*>(w), eps, cols, y);
  return cudaGetLastError();
}

}  // namespace paca::cuda
