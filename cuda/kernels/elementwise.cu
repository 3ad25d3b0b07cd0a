// elementwise.cu - the small kernels of the forward pass: embedding lookup,
// SwiGLU, residual add, f32 -> bf16, RoPE, and RoPE fused with the KV write
// (see kernels.h). CPU twins: the same-named ops of CpuBackend (rope_kv_write:
// Backend's composed default). Grid-stride loops; nothing here is heavy.
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

// Turns pair i of one head (head_dim elements at v) by the angle p *
// freqs[i]. Both RoPE kernels call this, and its products and sums are
// rounded one by one (no FMA contraction), so they give the same bits.
__device__ __forceinline__ void rotate_pair(float* v, int i, int half, float p, const float* __restrict__ freqs,
                                            int half_layout) {
  const float a = __fmul_rn(p, freqs[i]);  // rounded to f32 like the CPU twin before cos/sin
  float s, c;
  sincosf(a, &s, &c);
  const int ia = half_layout ? i : 2 * i;
  const int ib = half_layout ? i + half : 2 * i + 1;
  const float x0 = v[ia], x1 = v[ib];
  v[ia] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
  v[ib] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
}

// grid: (tokens, n_heads), block: min(256, half rounded up to 32).
__global__ void rope_kernel(float* x, int ld, int head_dim, const int32_t* __restrict__ pos,
                            const float* __restrict__ freqs, int half_layout) {
  const int t = static_cast<int>(blockIdx.x), h = static_cast<int>(blockIdx.y);
  const int half = head_dim / 2;
  float* v = x + static_cast<size_t>(t) * ld + static_cast<size_t>(h) * head_dim;
  const float p = static_cast<float>(pos[t]);
  for (int i = static_cast<int>(threadIdx.x); i < half; i += static_cast<int>(blockDim.x))
    rotate_pair(v, i, half, p, freqs, half_layout);
}

__device__ __forceinline__ void store_kv(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_kv(uint16_t* p, float v) { *p = __bfloat16_as_ushort(__float2bfloat16_rn(v)); }

// grid: (tokens), block: 128. Rotates q[t] and k[t] (every pair by one
// thread, as rope_kernel), then writes k[t] and v[t] into the cache slot of
// pos[t]. E: float or uint16_t (bf16 bits) cache elements.
template <typename E>
__global__ void rope_kv_write_kernel(PagedKv kv, float* q, int ldq, float* k, int ldk, const float* __restrict__ v,
                                     int ldv, const int32_t* __restrict__ pos, int n_heads, int n_kv_heads,
                                     int head_dim, const float* __restrict__ freqs, int half_layout) {
  const int t = static_cast<int>(blockIdx.x);
  const int half = head_dim / 2;
  const int p = pos[t];
  const float pf = static_cast<float>(p);
  float* qt = q + static_cast<size_t>(t) * ldq;
  float* kt = k + static_cast<size_t>(t) * ldk;
  const float* vt = v + static_cast<size_t>(t) * ldv;
  for (int i = static_cast<int>(threadIdx.x); i < n_heads * half; i += static_cast<int>(blockDim.x))
    rotate_pair(qt + static_cast<size_t>(i / half) * head_dim, i % half, half, pf, freqs, half_layout);
  uint8_t* blk = kv.blocks[p / kv.block_tokens];
  const size_t plane = static_cast<size_t>(kv.block_tokens) * kv.kv_dim * sizeof(E);
  const size_t row = static_cast<size_t>(p % kv.block_tokens) * kv.kv_dim;
  E* kd = reinterpret_cast<E*>(blk + plane * 2 * kv.layer) + row;
  E* vd = reinterpret_cast<E*>(blk + plane * (2 * kv.layer + 1)) + row;
  for (int i = static_cast<int>(threadIdx.x); i < n_kv_heads * half; i += static_cast<int>(blockDim.x)) {
    const int h = i / half, j = i % half;
    float* kh = kt + static_cast<size_t>(h) * head_dim;
    rotate_pair(kh, j, half, pf, freqs, half_layout);
    const int ia = half_layout ? j : 2 * j;
    const int ib = half_layout ? j + half : 2 * j + 1;
    store_kv(kd + h * head_dim + ia, kh[ia]);
    store_kv(kd + h * head_dim + ib, kh[ib]);
  }
  for (int i = static_cast<int>(threadIdx.x); i < kv.kv_dim; i += static_cast<int>(blockDim.x)) store_kv(vd + i, vt[i]);
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

cudaError_t launch_rope_kv_write(const PagedKv& kv, float* q, int ldq, float* k, int ldk, const float* v, int ldv,
                                 const int32_t* pos, int tokens, int n_heads, int n_kv_heads, int head_dim,
                                 const float* freqs, int half_layout, cudaStream_t stream) {
  if (kv.blocks == nullptr || kv.block_tokens <= 0 || kv.layer < 0 || (kv.elem_bytes != 4 && kv.elem_bytes != 2) ||
      tokens < 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || head_dim % 2 != 0 ||
      n_kv_heads * head_dim != kv.kv_dim || ldq < n_heads * head_dim || ldk < kv.kv_dim || ldv < kv.kv_dim ||
      q == nullptr || k == nullptr || v == nullptr || pos == nullptr || freqs == nullptr)
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  if (kv.elem_bytes == 4)
    rope_kv_write_kernel<float><<<static_cast<unsigned>(tokens), 128, 0, stream>>>(
        kv, q, ldq, k, ldk, v, ldv, pos, n_heads, n_kv_heads, head_dim, freqs, half_layout);
  else
    rope_kv_write_kernel<uint16_t><<<static_cast<unsigned>(tokens), 128, 0, stream>>>(
        kv, q, ldq, k, ldk, v, ldv, pos, n_heads, n_kv_heads, head_dim, freqs, half_layout);
  return cudaGetLastError();
}

}  // namespace paca::cuda
