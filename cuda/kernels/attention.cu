// attention.cu - the paged KV cache on the device: writing K/V rows into
// their blocks, and causal GQA attention over them (see kernels.h).
// CPU twins: CpuBackend::kv_write and CpuBackend::attention.
//
// Attention: one thread block of 4 warps per (query head, token[, split]).
// The head's query lives in registers spread over the lanes (lane owns
// elements lane, lane + 32, ...). The warps take the cached positions in
// turn; for each position the warp reads the K row (coalesced), reduces the
// dot product with shuffles, and updates its running maximum, normaliser and
// V accumulator (online softmax, f32). The four warps' states then merge in
// shared memory. With splits > 1 the positions of a row are cut into that
// many ranges handled by separate blocks, which write (max, sum, unnormalised
// accumulator) records that attention_combine_kernel merges - the split-K
// path for decode at long context, where heads alone leave the GPU idle.
// Prefill uses the same kernel (one block per (head, token)); a tiled,
// tensor-core prefill kernel is future work.
#include <cuda_bf16.h>  // __float2bfloat16_rn

#include <cmath>    // INFINITY
#include <cstdint>  // uint8_t, uint16_t

#include "kernels/kernels.h"

namespace paca::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarps = 4;
constexpr int kMaxHeadDim = 256;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float load_elem(const float* p) { return *p; }
__device__ __forceinline__ float load_elem(const uint16_t* p) { return __uint_as_float(static_cast<uint32_t>(*p) << 16); }
__device__ __forceinline__ void store_elem(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_elem(uint16_t* p, float v) { *p = __bfloat16_as_ushort(__float2bfloat16_rn(v)); }

// Byte offset of the K plane of kv.layer inside a block (V: + plane).
__device__ __forceinline__ size_t plane_bytes(const PagedKv& kv) {
  return static_cast<size_t>(kv.block_tokens) * kv.kv_dim * kv.elem_bytes;
}

// grid: (tokens), block: 256. E: float or uint16_t (bf16 bits)
template <typename E>
__global__ void kv_write_kernel(PagedKv kv, const float* __restrict__ k, int ldk, const float* __restrict__ v, int ldv,
                                const int32_t* __restrict__ pos) {
  const int t = static_cast<int>(blockIdx.x);
  const int p = pos[t];
  uint8_t* blk = kv.blocks[p / kv.block_tokens];
  const size_t plane = plane_bytes(kv);
  const size_t row = static_cast<size_t>(p % kv.block_tokens) * kv.kv_dim;
  E* kd = reinterpret_cast<E*>(blk + plane * 2 * kv.layer) + row;
  E* vd = reinterpret_cast<E*>(blk + plane * (2 * kv.layer + 1)) + row;
  const float* ks = k + static_cast<size_t>(t) * ldk;
  const float* vs = v + static_cast<size_t>(t) * ldv;
  for (int i = static_cast<int>(threadIdx.x); i < kv.kv_dim; i += static_cast<int>(blockDim.x)) {
    store_elem(kd + i, ks[i]);
    store_elem(vd + i, vs[i]);
  }
}

// grid: (n_heads, tokens, splits), block: kWarps * 32.
// PER: elements of the head each lane owns (head_dim <= 32 * PER).
template <typename E, int PER>
__global__ void __launch_bounds__(kWarps * kWarp)
    attention_kernel(PagedKv kv, const float* __restrict__ q, int ldq, const int32_t* __restrict__ pos, int n_rep,
                     int head_dim, float scale, float* __restrict__ scratch, float* __restrict__ out, int ldo) {
  const int h = static_cast<int>(blockIdx.x), t = static_cast<int>(blockIdx.y), split = static_cast<int>(blockIdx.z);
  const int splits = static_cast<int>(gridDim.z), n_heads = static_cast<int>(gridDim.x);
  const int g = h / n_rep;
  const int lane = static_cast<int>(threadIdx.x) % kWarp, warp = static_cast<int>(threadIdx.x) / kWarp;
  const int n = pos[t] + 1;
  const int chunk = (n + splits - 1) / splits;
  const int p0 = split * chunk;
  const int p1 = min(n, p0 + chunk);

  const float* qh = q + static_cast<size_t>(t) * ldq + static_cast<size_t>(h) * head_dim;
  float qr[PER], acc[PER];
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int d = lane + kWarp * i;
    qr[i] = d < head_dim ? qh[d] * scale : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const size_t plane = plane_bytes(kv);
  const size_t koff = plane * 2 * kv.layer, voff = koff + plane;
  for (int p = p0 + warp; p < p1; p += kWarps) {
    const uint8_t* blk = kv.blocks[p / kv.block_tokens];
    const size_t row = static_cast<size_t>(p % kv.block_tokens) * kv.kv_dim + static_cast<size_t>(g) * head_dim;
    const E* kr = reinterpret_cast<const E*>(blk + koff) + row;
    const E* vr = reinterpret_cast<const E*>(blk + voff) + row;
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int d = lane + kWarp * i;
      if (d < head_dim) s = fmaf(qr[i], load_elem(kr + d), s);
    }
    s = warp_sum(s);
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);  // 0 for the first position (m = -inf)
    const float e = expf(s - m_new);
    l = l * corr + e;
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int d = lane + kWarp * i;
      if (d < head_dim) acc[i] = fmaf(e, load_elem(vr + d), acc[i] * corr);
    }
    m = m_new;
  }

  // merge the warps
  __shared__ float s_m[kWarps], s_l[kWarps];
  __shared__ float s_acc[kWarps][kMaxHeadDim];
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int d = lane + kWarp * i;
    if (d < head_dim) s_acc[warp][d] = acc[i];
  }
  __syncthreads();
  float M = -INFINITY;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, s_m[w]);
  float f[kWarps], L = 0.0f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    f[w] = s_m[w] == -INFINITY ? 0.0f : expf(s_m[w] - M);
    L += s_l[w] * f[w];
  }
  if (splits == 1) {
    float* o = out + static_cast<size_t>(t) * ldo + static_cast<size_t>(h) * head_dim;
    const float inv = 1.0f / L;  // L > 0: position 0 is always in range
    for (int d = static_cast<int>(threadIdx.x); d < head_dim; d += static_cast<int>(blockDim.x)) {
      float a = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) a += s_acc[w][d] * f[w];
      o[d] = a * inv;
    }
  } else {
    float* rec = scratch + ((static_cast<size_t>(t) * n_heads + h) * splits + split) * (head_dim + 2);
    if (threadIdx.x == 0) {
      rec[0] = M;
      rec[1] = L;
    }
    for (int d = static_cast<int>(threadIdx.x); d < head_dim; d += static_cast<int>(blockDim.x)) {
      float a = 0.0f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) a += s_acc[w][d] * f[w];
      rec[2 + d] = a;
    }
  }
}

// grid: (n_heads, tokens), block: 128. Merges the splits' records of each row.
__global__ void attention_combine_kernel(const float* __restrict__ scratch, int splits, int head_dim,
                                         float* __restrict__ out, int ldo) {
  const int h = static_cast<int>(blockIdx.x), t = static_cast<int>(blockIdx.y), n_heads = static_cast<int>(gridDim.x);
  const float* recs = scratch + (static_cast<size_t>(t) * n_heads + h) * splits * (head_dim + 2);
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, recs[static_cast<size_t>(s) * (head_dim + 2)]);
  float L = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* r = recs + static_cast<size_t>(s) * (head_dim + 2);
    L += r[0] == -INFINITY ? 0.0f : r[1] * expf(r[0] - M);
  }
  const float inv = 1.0f / L;
  float* o = out + static_cast<size_t>(t) * ldo + static_cast<size_t>(h) * head_dim;
  for (int d = static_cast<int>(threadIdx.x); d < head_dim; d += static_cast<int>(blockDim.x)) {
    float a = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float* r = recs + static_cast<size_t>(s) * (head_dim + 2);
      if (r[0] != -INFINITY) a += r[2 + d] * expf(r[0] - M);
    }
    o[d] = a * inv;
  }
}

template <typename E>
cudaError_t attention_for(const PagedKv& kv, const float* q, int ldq, const int32_t* pos, int tokens, int n_heads,
                          int n_rep, int head_dim, float scale, int splits, float* scratch, float* out, int ldo,
                          cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(n_heads), static_cast<unsigned>(tokens), static_cast<unsigned>(splits));
  const dim3 block(kWarps * kWarp);
  const int per = (head_dim + kWarp - 1) / kWarp;
  if (per <= 1)
    attention_kernel<E, 1><<<grid, block, 0, stream>>>(kv, q, ldq, pos, n_rep, head_dim, scale, scratch, out, ldo);
  else if (per <= 2)
    attention_kernel<E, 2><<<grid, block, 0, stream>>>(kv, q, ldq, pos, n_rep, head_dim, scale, scratch, out, ldo);
  else if (per <= 4)
    attention_kernel<E, 4><<<grid, block, 0, stream>>>(kv, q, ldq, pos, n_rep, head_dim, scale, scratch, out, ldo);
  else
    attention_kernel<E, 8><<<grid, block, 0, stream>>>(kv, q, ldq, pos, n_rep, head_dim, scale, scratch, out, ldo);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || splits == 1) return err;
  attention_combine_kernel<<<dim3(static_cast<unsigned>(n_heads), static_cast<unsigned>(tokens)), 128, 0, stream>>>(
      scratch, splits, head_dim, out, ldo);
  return cudaGetLastError();
}

bool kv_ok(const PagedKv& kv) {
  return kv.blocks != nullptr && kv.block_tokens > 0 && kv.kv_dim > 0 && (kv.elem_bytes == 4 || kv.elem_bytes == 2) &&
         kv.layer >= 0;
}

}  // namespace

cudaError_t launch_kv_write(const PagedKv& kv, const float* k, int ldk, const float* v, int ldv, const int32_t* pos,
                            int tokens, cudaStream_t stream) {
  if (!kv_ok(kv) || tokens < 0 || k == nullptr || v == nullptr || pos == nullptr || ldk < kv.kv_dim ||
      ldv < kv.kv_dim)
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  if (kv.elem_bytes == 4)
    kv_write_kernel<float><<<static_cast<unsigned>(tokens), 256, 0, stream>>>(kv, k, ldk, v, ldv, pos);
  else
    kv_write_kernel<uint16_t><<<static_cast<unsigned>(tokens), 256, 0, stream>>>(kv, k, ldk, v, ldv, pos);
  return cudaGetLastError();
}

cudaError_t launch_attention(const PagedKv& kv, const float* q, int ldq, const int32_t* pos, int tokens, int n_heads,
                             int n_kv_heads, int head_dim, float scale, int splits, float* scratch, float* out, int ldo,
                             cudaStream_t stream) {
  if (!kv_ok(kv) || tokens < 0 || n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || head_dim <= 0 ||
      head_dim > kMaxHeadDim || n_kv_heads * head_dim > kv.kv_dim || ldq < n_heads * head_dim ||
      ldo < n_heads * head_dim || splits < 1 || splits > 65535 || q == nullptr || pos == nullptr || out == nullptr ||
      (splits > 1 && scratch == nullptr))
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  const int n_rep = n_heads / n_kv_heads;
  if (kv.elem_bytes == 4)
    return attention_for<float>(kv, q, ldq, pos, tokens, n_heads, n_rep, head_dim, scale, splits, scratch, out, ldo,
                                stream);
  return attention_for<uint16_t>(kv, q, ldq, pos, tokens, n_heads, n_rep, head_dim, scale, splits, scratch, out, ldo,
                                 stream);
}

}  // namespace paca::cuda
