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
//
// Both take a kQuant variant (launch_rmsnorm_quant, issue 7): after a row of
// y is written, each thread reads back its own elements of it, the block
// finds the row's largest magnitude (a max: the same whatever the order) and
// every thread writes the E4M3 codes of its elements with the scale of the
// activation quantizer (fp8.cu; shared rule in e4m3.cuh), so the FP8 GEMM or
// GEMV that reads y needs no quantizer launch of its own. CPU twin: rmsnorm,
// then CpuBackend's activation quantization in matmul.
#include <cstdint>  // uint16_t, uint32_t

#include "kernels/e4m3.cuh"   // to_e4m3, e4m3_value, e4m3_act_scale
#include "kernels/kernels.h"  // launch_rmsnorm, launch_rmsnorm_quant

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

// The two reductions: a sum (the norms) and a max (of magnitudes, >= 0).
struct Sum {
  static __device__ __forceinline__ float op(float a, float b) { return a + b; }
};
struct Max {
  static __device__ __forceinline__ float op(float a, float b) { return fmaxf(a, b); }
};

template <typename Op>
__device__ __forceinline__ float warp_reduce(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v = Op::op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Op over v of the whole block (0 is the identity: v >= 0 for Max); every
// thread gets the result. blockDim.x must be a multiple of 32 and at most
// kMaxThreads. Each Op has its own shared slots.
template <typename Op>
__device__ __forceinline__ float block_reduce(float v) {
  __shared__ float partial[kMaxThreads / kWarp];  // one per warp
  __shared__ float total;
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warp = static_cast<int>(threadIdx.x) / kWarp;
  const int n_warps = static_cast<int>(blockDim.x) / kWarp;
  v = warp_reduce<Op>(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float s = lane < n_warps ? partial[lane] : 0.0f;
    s = warp_reduce<Op>(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// The quantization of row t of y (yr), once this thread has written its
// elements of it: those it reads back (its own writes, no barrier needed).
__device__ __forceinline__ void quantize_row(const float* yr, int cols, int t, const E4m3Quant& q) {
  float s = q.act_scale;
  if (q.dynamic) {
    float mx = 0.0f;
    for (int i = static_cast<int>(threadIdx.x); i < cols; i += static_cast<int>(blockDim.x))
      mx = fmaxf(mx, fabsf(yr[i]));
    s = e4m3_act_scale(block_reduce<Max>(mx), q.act_ub);
  }
  const bool codes = t < q.code_rows;
  uint8_t* q8 = codes ? q.q8 + static_cast<size_t>(t) * q.ldq8 : nullptr;
  float* qf = codes ? nullptr : q.qf + static_cast<size_t>(t - q.code_rows) * q.ldqf;
  for (int i = static_cast<int>(threadIdx.x); i < cols; i += static_cast<int>(blockDim.x)) {
    const uint8_t code = to_e4m3(yr[i] / s);
    if (codes)
      q8[i] = code;
    else
      qf[i] = e4m3_value(code);
  }
  if (threadIdx.x == 0) q.scales[t] = s;
}

// grid: (rows), block: (threads) with threads % 32 == 0.
//   x: (rows, cols) f32, w: (cols) W::Stored, y: (rows, cols) f32
//   kQuant: q as for launch_rmsnorm_quant
template <typename W, bool kQuant>
__global__ void rmsnorm_kernel(const float* x, const typename W::Stored* w, float eps, int cols, float* y,
                               E4m3Quant q) {
  const size_t row = blockIdx.x;
  const float* xr = x + row * static_cast<size_t>(cols);
  float* yr = y + row * static_cast<size_t>(cols);

  float ss = 0.0f;
  for (int i = static_cast<int>(threadIdx.x); i < cols; i += static_cast<int>(blockDim.x)) {
    const float v = xr[i];
    ss = fmaf(v, v, ss);
  }
  ss = block_reduce<Sum>(ss);
  const float inv = rsqrtf(ss / static_cast<float>(cols) + eps);

  for (int i = static_cast<int>(threadIdx.x); i < cols; i += static_cast<int>(blockDim.x))
    yr[i] = xr[i] * inv * W::load(w, i);
  if constexpr (kQuant) quantize_row(yr, cols, static_cast<int>(row), q);
}

// grid: (rows), block: (threads) with threads % 32 == 0.
//   x: (rows, cols) f32 (in place), r: (rows, cols) f32, w: (cols) W::Stored,
//   y: (rows, cols) f32 (no alias of x or r); kQuant: q as for launch_rmsnorm_quant
template <typename W, bool kQuant>
__global__ void add_rmsnorm_kernel(float* x, const float* __restrict__ r, const typename W::Stored* w, float eps, int cols,
                                   float* __restrict__ y, E4m3Quant q) {
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
  ss = block_reduce<Sum>(ss);
  const float inv = rsqrtf(ss / static_cast<float>(cols) + eps);

  // each thread reads back only the elements it wrote above
  for (int i = static_cast<int>(threadIdx.x); i < cols; i += static_cast<int>(blockDim.x))
    yr[i] = xr[i] * inv * W::load(w, i);
  if constexpr (kQuant) quantize_row(yr, cols, static_cast<int>(row), q);
}

// Explicit instantiations: one per weight dtype, plain or quantizing.
template __global__ void rmsnorm_kernel<WeightF32, false>(const float*, const float*, float, int, float*, E4m3Quant);
template __global__ void rmsnorm_kernel<WeightBf16, false>(const float*, const uint16_t*, float, int, float*, E4m3Quant);
template __global__ void rmsnorm_kernel<WeightF32, true>(const float*, const float*, float, int, float*, E4m3Quant);
template __global__ void rmsnorm_kernel<WeightBf16, true>(const float*, const uint16_t*, float, int, float*, E4m3Quant);
template __global__ void add_rmsnorm_kernel<WeightF32, false>(float*, const float*, const float*, float, int, float*,
                                                              E4m3Quant);
template __global__ void add_rmsnorm_kernel<WeightBf16, false>(float*, const float*, const uint16_t*, float, int, float*,
                                                               E4m3Quant);
template __global__ void add_rmsnorm_kernel<WeightF32, true>(float*, const float*, const float*, float, int, float*,
                                                             E4m3Quant);
template __global__ void add_rmsnorm_kernel<WeightBf16, true>(float*, const float*, const uint16_t*, float, int, float*,
                                                              E4m3Quant);

// The quantization argument of the plain norms (unused there).
constexpr E4m3Quant kNone{};

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
    rmsnorm_kernel<WeightBf16, false><<<grid, block, 0, stream>>>(x, static_cast<const uint16_t*>(w), eps, cols, y, kNone);
  else
    rmsnorm_kernel<WeightF32, false><<<grid, block, 0, stream>>>(x, static_cast<const float*>(w), eps, cols, y, kNone);
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
    add_rmsnorm_kernel<WeightBf16, false><<<grid, block, 0, stream>>>(x, r, static_cast<const uint16_t*>(w), eps, cols, y,
                                                                      kNone);
  else
    add_rmsnorm_kernel<WeightF32, false><<<grid, block, 0, stream>>>(x, r, static_cast<const float*>(w), eps, cols, y,
                                                                     kNone);
  return cudaGetLastError();
}

cudaError_t launch_rmsnorm_quant(float* x, const float* r, const void* w, int w_is_bf16, float eps, int rows, int cols,
                                 float* y, const E4m3Quant& q, cudaStream_t stream) {
  if (rows < 0 || cols <= 0 || x == nullptr || w == nullptr || y == nullptr || q.scales == nullptr ||
      (r != nullptr && (y == x || y == r)) || q.code_rows < 0 || q.code_rows > rows ||
      (q.code_rows > 0 && (q.q8 == nullptr || q.ldq8 < cols)) ||
      (q.code_rows < rows && (q.qf == nullptr || q.ldqf < cols)) || (q.dynamic != 0 && !(q.act_ub > 0.0f)) ||
      (q.dynamic == 0 && !(q.act_scale > 0.0f)))
    return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(rows));
  const dim3 block(static_cast<unsigned>(rmsnorm_threads(cols)));
  const auto* wb = static_cast<const uint16_t*>(w);
  const auto* wf = static_cast<const float*>(w);
  if (r == nullptr && w_is_bf16)
    rmsnorm_kernel<WeightBf16, true><<<grid, block, 0, stream>>>(x, wb, eps, cols, y, q);
  else if (r == nullptr)
    rmsnorm_kernel<WeightF32, true><<<grid, block, 0, stream>>>(x, wf, eps, cols, y, q);
  else if (w_is_bf16)
    add_rmsnorm_kernel<WeightBf16, true><<<grid, block, 0, stream>>>(x, r, wb, eps, cols, y, q);
  else
    add_rmsnorm_kernel<WeightF32, true><<<grid, block, 0, stream>>>(x, r, wf, eps, cols, y, q);
  return cudaGetLastError();
}

}  // namespace paca::cuda
