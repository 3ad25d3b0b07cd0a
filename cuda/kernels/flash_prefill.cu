// flash_prefill.cu - causal GQA attention for prefill on tensor cores
// (launch_flash_prefill, see kernels.h). CPU twin: CpuBackend::attention;
// for few query rows (decode) the backend keeps launch_attention (attention.cu).
//
// Rows. The query heads that share a kv head are packed into one row space:
// row m = t * n_rep + r is query head (kv_head * n_rep + r) of token t, at
// position pos[t]. A thread block (4 warps) takes 64 consecutive rows of one
// kv head, so every K/V tile it stages serves all n_rep heads of the group.
// Blocks with the most positions are launched first (causal load balance).
//
// Per block, for each tile of 64 cached positions up to the block's largest
// position:
//   - K and V rows (bf16; an f32 cache is rounded to bf16 on the way) are
//     staged in shared memory, rows padded by 16 bytes so that ldmatrix and
//     the 16-byte stores hit distinct banks; the next tile's bf16 rows are
//     fetched with cp.async while this one is computed (double buffering);
//   - each warp (16 rows) computes S = Q K^T with mma.sync m16n8k16 (bf16 in,
//     f32 accumulate); Q lives in registers as A fragments, rounded to bf16
//     after scaling by softmax_scale * log2(e), so scores are in log2 units;
//   - the causal mask is applied only where the tile reaches past the
//     warp's smallest position; a warp whose rows all end before the tile
//     skips it (its warps still join the barriers);
//   - online softmax in f32 with exp2; P is rounded to bf16 and reused from
//     the S accumulators as the A fragments of O += P V (V's B fragments by
//     ldmatrix.trans); the row sums stay in f32.
// At the end O / l goes to out in f32.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16): lane = 4 * g + q;
//   A (16x16): regs {(g, 2q..2q+1), (g+8, 2q..), (g, 2q+8..), (g+8, 2q+8..)}
//   B (16x8):  regs {(k = 2q..2q+1, n = g), (k = 2q+8.., n = g)}
//   C (16x8):  {(g, 2q), (g, 2q+1), (g+8, 2q), (g+8, 2q+1)}
#include <cuda_bf16.h>  // __float2bfloat16_rn

#include <cmath>    // INFINITY
#include <cstdint>  // uint8_t, uint16_t, uint32_t

#include "kernels/kernels.h"

namespace paca::cuda {
namespace {

constexpr int kRowsPerBlock = 64;  // 4 warps x 16 rows
constexpr int kTilePositions = 64;
constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;

// Shared memory of one block: [2 stages][K, V][kTilePositions][D + 8] bf16.
template <int D>
struct Tiles {
  static constexpr int kStride = D + 8;  // elements per staged row (16 bytes of padding)
  static constexpr int kElems = kTilePositions * kStride;
  static constexpr size_t kBytes = size_t{2} * 2 * kElems * sizeof(uint16_t);
};

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const uint32_t a = __bfloat16_as_ushort(__float2bfloat16_rn(lo));
  const uint32_t b = __bfloat16_as_ushort(__float2bfloat16_rn(hi));
  return a | (b << 16);
}

// c += a * b: 16x8 f32 tile, a 16x16 bf16 (row), b 16x8 bf16 (col).
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8x8 bf16 matrices; lane l gives the address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p))
               : "memory");
}

// 16 bytes global -> shared, asynchronous; zero-filled when !full.
__device__ __forceinline__ void cp_async16(uint16_t* dst, const void* src, bool full) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(full ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Stages cached positions [p0, p0 + kTilePositions) of kv head g into sk/sv;
// positions >= end are zeros (never read from the cache: their blocks may
// not exist). bf16 caches go through cp.async (complete at the next
// wait_group), f32 caches are loaded, rounded and stored at once.
template <typename E, int D>
__device__ __forceinline__ void stage_tile(const PagedKv& kv, size_t koff, size_t plane, int g, int p0, int end,
                                           uint16_t* sk, uint16_t* sv) {
  constexpr int kChunks = D / 8;  // 8 elements (16 bytes of bf16) per chunk
  for (int i = static_cast<int>(threadIdx.x); i < kTilePositions * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    const int p = p0 + r;
    const bool ok = p < end;
    uint16_t* dk = sk + r * Tiles<D>::kStride + c * 8;
    uint16_t* dv = sv + r * Tiles<D>::kStride + c * 8;
    const uint8_t* blk = kv.blocks[ok ? p / kv.block_tokens : 0];
    const size_t elem =
        ok ? static_cast<size_t>(p % kv.block_tokens) * kv.kv_dim + static_cast<size_t>(g) * D + c * 8 : 0;
    const E* ks = reinterpret_cast<const E*>(blk + koff) + elem;
    const E* vs = reinterpret_cast<const E*>(blk + koff + plane) + elem;
    if constexpr (sizeof(E) == 2) {
      cp_async16(dk, ks, ok);
      cp_async16(dv, vs, ok);
    } else {
      uint4 wk = make_uint4(0, 0, 0, 0), wv = make_uint4(0, 0, 0, 0);
      if (ok) {
        const float4 k0 = reinterpret_cast<const float4*>(ks)[0], k1 = reinterpret_cast<const float4*>(ks)[1];
        const float4 v0 = reinterpret_cast<const float4*>(vs)[0], v1 = reinterpret_cast<const float4*>(vs)[1];
        wk = make_uint4(pack_bf16(k0.x, k0.y), pack_bf16(k0.z, k0.w), pack_bf16(k1.x, k1.y), pack_bf16(k1.z, k1.w));
        wv = make_uint4(pack_bf16(v0.x, v0.y), pack_bf16(v0.z, v0.w), pack_bf16(v1.x, v1.y), pack_bf16(v1.z, v1.w));
      }
      *reinterpret_cast<uint4*>(dk) = wk;
      *reinterpret_cast<uint4*>(dv) = wv;
    }
  }
}

// grid: (ceil(tokens * n_rep / 64), n_kv_heads), block: 128, dynamic shared
// memory: Tiles<D>::kBytes. E: float or uint16_t (bf16 bits) cache elements.
template <typename E, int D>
__global__ void __launch_bounds__(kThreads)
    flash_prefill_kernel(PagedKv kv, const float* __restrict__ q, int ldq, const int32_t* __restrict__ pos, int tokens,
                         int n_rep, float qscale, float* __restrict__ out, int ldo) {
  extern __shared__ __align__(16) uint16_t tiles[];
  __shared__ int s_warp_max[kThreads / 32];
  constexpr int kStride = Tiles<D>::kStride;
  constexpr int KC = D / 16;                   // k-chunks of S = Q K^T
  constexpr int NT = kTilePositions / 8;       // n-tiles of S
  constexpr int DT = D / 8;                    // n-tiles of O
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  const int gr = lane >> 2, qd = lane & 3;  // fragment row group, thread in group
  const int kvh = static_cast<int>(blockIdx.y);
  const int rows = tokens * n_rep;
  const int m0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * kRowsPerBlock;

  // this thread's two rows (gr and gr + 8 of its warp's 16); rows past the
  // end compute a copy of the last row and store nothing
  int prow[2];
  bool valid[2];
  const float* qrow[2];
  float* orow[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    int m = m0 + warp * 16 + gr + 8 * i;
    valid[i] = m < rows;
    m = min(m, rows - 1);
    const int t = m / n_rep, h = kvh * n_rep + m % n_rep;
    prow[i] = pos[t];
    qrow[i] = q + static_cast<size_t>(t) * ldq + static_cast<size_t>(h) * D;
    orow[i] = out + static_cast<size_t>(t) * ldo + static_cast<size_t>(h) * D;
  }
  int wmin = min(prow[0], prow[1]), wmax = max(prow[0], prow[1]);
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    wmin = min(wmin, __shfl_xor_sync(0xffffffffu, wmin, o));
    wmax = max(wmax, __shfl_xor_sync(0xffffffffu, wmax, o));
  }
  if (lane == 0) s_warp_max[warp] = wmax;

  // Q as A fragments, bf16, in log2 units
  uint32_t qa[KC][4];
#pragma unroll
  for (int kc = 0; kc < KC; ++kc) {
    const int c = kc * 16 + 2 * qd;
    const float2 x0 = *reinterpret_cast<const float2*>(qrow[0] + c);
    const float2 x1 = *reinterpret_cast<const float2*>(qrow[1] + c);
    const float2 x2 = *reinterpret_cast<const float2*>(qrow[0] + c + 8);
    const float2 x3 = *reinterpret_cast<const float2*>(qrow[1] + c + 8);
    qa[kc][0] = pack_bf16(x0.x * qscale, x0.y * qscale);
    qa[kc][1] = pack_bf16(x1.x * qscale, x1.y * qscale);
    qa[kc][2] = pack_bf16(x2.x * qscale, x2.y * qscale);
    qa[kc][3] = pack_bf16(x3.x * qscale, x3.y * qscale);
  }
  __syncthreads();
  int end = 0;  // one past the block's largest position
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) end = max(end, s_warp_max[w] + 1);
  const int n_tiles = (end + kTilePositions - 1) / kTilePositions;

  const size_t plane = static_cast<size_t>(kv.block_tokens) * kv.kv_dim * kv.elem_bytes;
  const size_t koff = plane * 2 * kv.layer;

  float o[DT][4];
#pragma unroll
  for (int d = 0; d < DT; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};

  stage_tile<E, D>(kv, koff, plane, kvh, 0, end, tiles, tiles + Tiles<D>::kElems);
  cp_async_commit();
  for (int j = 0; j < n_tiles; ++j) {
    const int p0 = j * kTilePositions;
    if (j + 1 < n_tiles) {
      uint16_t* next = tiles + ((j + 1) & 1) * 2 * Tiles<D>::kElems;
      stage_tile<E, D>(kv, koff, plane, kvh, p0 + kTilePositions, end, next, next + Tiles<D>::kElems);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (p0 <= wmax) {  // warp-uniform: some row of this warp sees the tile
      const uint16_t* sk = tiles + (j & 1) * 2 * Tiles<D>::kElems;
      const uint16_t* sv = sk + Tiles<D>::kElems;
      float s[NT][4];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
        for (int kc2 = 0; kc2 < KC / 2; ++kc2) {
          uint32_t b[4];  // k-chunks 2 kc2 and 2 kc2 + 1 of positions nt * 8 ..
          ldmatrix_x4(b, sk + (nt * 8 + (lane & 7)) * kStride + kc2 * 32 + (lane >> 3) * 8);
          mma_bf16(s[nt], qa[2 * kc2], b[0], b[1]);
          mma_bf16(s[nt], qa[2 * kc2 + 1], b[2], b[3]);
        }
      }
      if (p0 + kTilePositions - 1 > wmin) {  // the diagonal: mask positions past each row's own
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (p0 + nt * 8 + 2 * qd + (e & 1) > prow[e >> 1]) s[nt][e] = -INFINITY;
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = mrow[r];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // mx is finite: position 0 (tile 0, never masked) came first
        const float corr = exp2f(mrow[r] - mx);  // 0 on the first tile (mrow = -inf)
        mrow[r] = mx;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          s[nt][2 * r] = exp2f(s[nt][2 * r] - mx);
          s[nt][2 * r + 1] = exp2f(s[nt][2 * r + 1] - mx);
          sum += s[nt][2 * r] + s[nt][2 * r + 1];
        }
        lrow[r] = lrow[r] * corr + sum;  // this thread's columns; the quad's sums add up at the end
#pragma unroll
        for (int d = 0; d < DT; ++d) {
          o[d][2 * r] *= corr;
          o[d][2 * r + 1] *= corr;
        }
      }
#pragma unroll
      for (int kk = 0; kk < kTilePositions / 16; ++kk) {
        const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int d2 = 0; d2 < D / 16; ++d2) {
          uint32_t b[4];  // positions kk * 16 .. + 15, dims d2 * 16 .. + 15
          ldmatrix_x4_trans(b, sv + (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * kStride + d2 * 16 +
                                   (lane >> 4) * 8);
          mma_bf16(o[2 * d2], pa, b[0], b[1]);
          mma_bf16(o[2 * d2 + 1], pa, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the stage just read is refilled next iteration
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = lrow[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = 1.0f / l;  // l >= 1: the row's maximum contributes exp2(0)
    if (!valid[r]) continue;
#pragma unroll
    for (int d = 0; d < DT; ++d)
      *reinterpret_cast<float2*>(orow[r] + d * 8 + 2 * qd) = make_float2(o[d][2 * r] * inv, o[d][2 * r + 1] * inv);
  }
}

template <typename E, int D>
cudaError_t flash_for(const PagedKv& kv, const float* q, int ldq, const int32_t* pos, int tokens, int n_heads,
                      int n_kv_heads, float qscale, float* out, int ldo, cudaStream_t stream) {
  const int n_rep = n_heads / n_kv_heads;
  const long rows = static_cast<long>(tokens) * n_rep;
  const dim3 grid(static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock), static_cast<unsigned>(n_kv_heads));
  cudaError_t err = cudaFuncSetAttribute(flash_prefill_kernel<E, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(Tiles<D>::kBytes));
  if (err != cudaSuccess) return err;
  flash_prefill_kernel<E, D><<<grid, kThreads, Tiles<D>::kBytes, stream>>>(kv, q, ldq, pos, tokens, n_rep, qscale,
                                                                           out, ldo);
  return cudaGetLastError();
}

bool aligned(const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

}  // namespace

bool flash_prefill_supports(const PagedKv& kv, int n_heads, int n_kv_heads, int head_dim) {
  return (head_dim == 64 || head_dim == 128) && n_kv_heads > 0 && n_heads % n_kv_heads == 0 &&
         (kv.elem_bytes == 2 || kv.elem_bytes == 4) && kv.kv_dim % 8 == 0 && n_kv_heads * head_dim <= kv.kv_dim &&
         kv.block_tokens > 0;
}

cudaError_t launch_flash_prefill(const PagedKv& kv, const float* q, int ldq, const int32_t* pos, int tokens,
                                 int n_heads, int n_kv_heads, int head_dim, float scale, float* out, int ldo,
                                 cudaStream_t stream) {
  if (kv.blocks == nullptr || kv.layer < 0 || !flash_prefill_supports(kv, n_heads, n_kv_heads, head_dim) ||
      tokens < 0 || static_cast<long>(tokens) * (n_heads / n_kv_heads) > (1L << 30) || q == nullptr ||
      pos == nullptr || out == nullptr || ldq < n_heads * head_dim || ldo < n_heads * head_dim || ldq % 2 != 0 ||
      ldo % 2 != 0 || !aligned(q, 8) || !aligned(out, 8))
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  const float qscale = scale * kLog2e;
  if (kv.elem_bytes == 2) {
    if (head_dim == 64)
      return flash_for<uint16_t, 64>(kv, q, ldq, pos, tokens, n_heads, n_kv_heads, qscale, out, ldo, stream);
    return flash_for<uint16_t, 128>(kv, q, ldq, pos, tokens, n_heads, n_kv_heads, qscale, out, ldo, stream);
  }
  if (head_dim == 64) return flash_for<float, 64>(kv, q, ldq, pos, tokens, n_heads, n_kv_heads, qscale, out, ldo, stream);
  return flash_for<float, 128>(kv, q, ldq, pos, tokens, n_heads, n_kv_heads, qscale, out, ldo, stream);
}

}  // namespace paca::cuda
