// elementwise.cu - the small kernels of the forward pass: embedding lookup,
// SwiGLU, residual add, f32 -> bf16, RoPE (see kernels.h). CPU twins: the
// same-named ops of CpuBackend. Grid-stride loops; nothing here is heavy.
#include <cuda_bf16.h>  // __float2bfloat16_rn

#include <cstdint>  // uint16_t, int32_t

#include "kernels/kernels.h"

namespace paca::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(size_t n) {
  size_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b > 65535 * 4 ? 65535 * 4 : b);
}

// grid: (tokens), block: 256. table: (rows, cols) bf16, out: (tokens, cols) f32
__global__ void embed_kernel(const uint16_t* __restrict__ table, int rows, int cols, const int32_t* __restrict__ ids,
                             float* __restrict__ out) {
  const int t = static_cast<int>(blockIdx.x);
  const int id = ids[t];
  float* o = out + static_cast<size_t>(t) * cols;
  const bool ok = id >= 0 && id < rows;
  const uint16_t* r = table + static_cast<size_t>(ok ? id : 0) * cols;
  for (int c = static_cast<int>(threadIdx.x); c < cols; c += static_cast<int>(blockDim.x))
    o[c] = ok ? __uint_as_float(static_cast<uint32_t>(r[c]) << 16) : 0.0f;
}

__global__ void swiglu_kernel(const float* gate, const float* up, size_t n, float* out) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void add_kernel(float* x, const float* __restrict__ y, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

__global__ void to_bf16_kernel(const float* __restrict__ x, size_t n, uint16_t* __restrict__ out) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x[i]));
}

// grid: (tokens, n_heads), block: min(256, half rounded up to 32).
__global__ void rope_kernel(float* x, int ld, int head_dim, const int32_t* __restrict__ pos,
                            const float* __restrict__ freqs, int half_layout) {
  const int t = static_cast<int>(blockIdx.x), h = static_cast<int>(blockIdx.y);
  const int half = head_dim / 2;
  float* v = x + static_cast<size_t>(t) * ld + static_cast<size_t>(h) * head_dim;
  const float p = static_cast<float>(pos[t]);
  for (int i = static_cast<int>(threadIdx.x); i < half; i += static_cast<int>(blockDim.x)) {
    const float a = p * freqs[i];  // rounded to f32 like the CPU twin before cos/sin
    float s, c;
    sincosf(a, &s, &c);
    const int ia = half_layout ? i : 2 * i;
    const int ib = half_layout ? i + half : 2 * i + 1;
    const float x0 = v[ia], x1 = v[ib];
    v[ia] = x0 * c - x1 * s;
    v[ib] = x0 * s + x1 * c;
  }
}

}  // namespace

cudaError_t launch_embed_bf16(const uint16_t* table, int rows, int cols, const int32_t* ids, int tokens, float* out,
                              cudaStream_t stream) {
  if (rows <= 0 || cols <= 0 || tokens < 0 || table == nullptr || ids == nullptr || out == nullptr)
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  embed_kernel<<<static_cast<unsigned>(tokens), kThreads, 0, stream>>>(table, rows, cols, ids, out);
  return cudaGetLastError();
}

cudaError_t launch_swiglu(const float* gate, const float* up, size_t n, float* out, cudaStream_t stream) {
  if (gate == nullptr || up == nullptr || out == nullptr) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  swiglu_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, n, out);
  return cudaGetLastError();
}

cudaError_t launch_add(float* x, const float* y, size_t n, cudaStream_t stream) {
  if (x == nullptr || y == nullptr) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n);
  return cudaGetLastError();
}

cudaError_t launch_to_bf16(const float* x, size_t n, uint16_t* out, cudaStream_t stream) {
  if (x == nullptr || out == nullptr) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  to_bf16_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, n, out);
  return cudaGetLastError();
}

cudaError_t launch_rope(float* x, int tokens, int ld, int n_heads, int head_dim, const int32_t* pos,
                        const float* freqs, int half_layout, cudaStream_t stream) {
  if (tokens < 0 || n_heads <= 0 || head_dim <= 0 || head_dim % 2 != 0 || ld < n_heads * head_dim || x == nullptr ||
      pos == nullptr || freqs == nullptr)
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  const int half = head_dim / 2;
  const int threads = half >= 256 ? 256 : (half + 31) / 32 * 32;
  rope_kernel<<<dim3(static_cast<unsigned>(tokens), static_cast<unsigned>(n_heads)), threads, 0, stream>>>(
      x, ld, head_dim, pos, freqs, half_layout);
  return cudaGetLastError();
}

}  // namespace paca::cuda
