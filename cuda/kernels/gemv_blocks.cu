// gemv_blocks.cu - y = x W^T for a handful of tokens with block-quantized
// weights as stored in GGUF (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)
// and f32 activations, accumulated in f32; and the dequantization of such
// weights to bf16 for the prefill GEMM. CPU twin: dequantize_blocks
// (core/format/block_quant.cpp), whose layouts this file reads the same way.
//
// The unit of work is 32 consecutive weights of a row: one block of the
// legacy types and Q8_0, one sub-block (Q4_K/Q5_K: one scale and min) or two
// 16-weight sub-blocks (Q6_K) of a 256-weight super-block. One warp per
// weight row, 8 rows per 256-thread block; lane i takes units i, i + 32, ...,
// decodes its 32 weights into registers once and applies them to up to NT
// tokens (each pass over W serves NT tokens). The weights are w4a16-style:
// the activations stay f32 (no activation quantization on the device), so a
// row's sum is the f32 dot of the dequantized weights with x, in the lanes'
// order, then a warp shuffle sum. The weights are the host's values bit for
// bit (products and sums unfused where the host rounds twice).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/kernels.h"  // launch_gemv_blocks, launch_dequant_blocks_bf16

namespace paca::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 8;

// GGUF tensor type ids (ggml_type) of the block types.
enum : int { kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14 };

// Bytes per block and weights per block of a type (0 for an unknown type).
__host__ __device__ constexpr int block_bytes(int t) {
  return t == kQ4_0 ? 18 : t == kQ4_1 ? 20 : t == kQ5_0 ? 22 : t == kQ5_1 ? 24 : t == kQ8_0 ? 34 : t == kQ4_K ? 144
         : t == kQ5_K ? 176 : t == kQ6_K ? 210 : 0;
}
__host__ __device__ constexpr int block_elems(int t) { return t >= kQ4_K ? 256 : 32; }

__device__ __forceinline__ float f16_at(const uint8_t* p) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(p[0] | (p[1] << 8))));
}
__device__ __forceinline__ uint32_t u32_at(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// The 6-bit scale and min of sub-block s of a Q4_K/Q5_K super-block.
__device__ __forceinline__ void scale_min_k(const uint8_t* sc12, int s, int& sc, int& m) {
  if (s < 4) {
    sc = sc12[s] & 63;
    m = sc12[s + 4] & 63;
  } else {
    sc = (sc12[s + 4] & 0xF) | ((sc12[s - 4] >> 6) << 4);
    m = (sc12[s + 4] >> 4) | ((sc12[s] >> 6) << 4);
  }
}

// The 32 weights of unit u of a row of type T (see the header comment).
template <int T>
__device__ __forceinline__ void unit_weights(const uint8_t* __restrict__ row, int u, float (&w)[32]) {
  if constexpr (T == kQ8_0) {
    const uint8_t* b = row + static_cast<size_t>(u) * 34;
    const float d = f16_at(b);
#pragma unroll
    for (int j = 0; j < 32; ++j) w[j] = d * static_cast<float>(static_cast<int8_t>(b[2 + j]));
  } else if constexpr (T == kQ4_0 || T == kQ4_1 || T == kQ5_0 || T == kQ5_1) {
    constexpr bool kMin = T == kQ4_1 || T == kQ5_1, kFive = T == kQ5_0 || T == kQ5_1;
    const uint8_t* b = row + static_cast<size_t>(u) * block_bytes(T);
    const float d = f16_at(b), m = kMin ? f16_at(b + 2) : 0.0f;
    const uint8_t* p = b + (kMin ? 4 : 2);
    const uint32_t qh = kFive ? u32_at(p) : 0u;
    if (kFive) p += 4;
    constexpr int kOff = kMin ? 0 : kFive ? 16 : 8;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      int lo = p[j] & 0xF, hi = p[j] >> 4;
      if (kFive) {
        lo |= static_cast<int>((qh >> j) & 1u) << 4;
        hi |= static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      }
      if (kMin) {  // unfused, as the host's dequantize_blocks rounds it
        w[j] = __fadd_rn(__fmul_rn(d, static_cast<float>(lo)), m);
        w[j + 16] = __fadd_rn(__fmul_rn(d, static_cast<float>(hi)), m);
      } else {
        w[j] = d * static_cast<float>(lo - kOff);
        w[j + 16] = d * static_cast<float>(hi - kOff);
      }
    }
  } else if constexpr (T == kQ4_K || T == kQ5_K) {
    constexpr bool kFive = T == kQ5_K;
    const uint8_t* b = row + static_cast<size_t>(u / 8) * block_bytes(T);
    const int s = u % 8, c = s / 2, shift = 4 * (s & 1);
    int sc, m;
    scale_min_k(b + 4, s, sc, m);
    const float ds = f16_at(b) * static_cast<float>(sc), ms = f16_at(b + 2) * static_cast<float>(m);
    const uint8_t* qs = b + (kFive ? 48 : 16) + 32 * c;
    const uint8_t* qh = b + 16;
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      int q = (qs[l] >> shift) & 0xF;
      if (kFive) q |= ((qh[l] >> s) & 1) << 4;
      w[l] = __fsub_rn(__fmul_rn(ds, static_cast<float>(q)), ms);  // unfused, as the host rounds it
    }
  } else {  // Q6_K
    const uint8_t* b = row + static_cast<size_t>(u / 8) * 210;
    const int g = u % 8, h = g / 4, k = g % 4;
    const uint8_t* ql = b + 64 * h + (k & 1) * 32;
    const uint8_t* qh = b + 128 + 32 * h;
    const int lshift = (k >> 1) * 4, hshift = 2 * k;
    const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
    const float d = f16_at(b + 208);
    const float d0 = d * static_cast<float>(scales[2 * g]), d1 = d * static_cast<float>(scales[2 * g + 1]);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
      const int q = ((ql[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4);
      w[l] = (l < 16 ? d0 : d1) * static_cast<float>(q - 32);
    }
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// grid: (ceil(rows / 8)), block: 256. W: rows of row_bytes, x: (NT, ldx), y: (NT, ldy)
template <int T, int NT>
__global__ void __launch_bounds__(kRowsPerBlock * kWarp)
    gemv_blocks_kernel(const uint8_t* __restrict__ W, size_t row_bytes, int rows, int cols, const float* __restrict__ x,
                       int ldx, float* __restrict__ y, int ldy) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int r = static_cast<int>(blockIdx.x) * kRowsPerBlock + static_cast<int>(threadIdx.x) / kWarp;
  if (r >= rows) return;
  const uint8_t* row = W + static_cast<size_t>(r) * row_bytes;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  const int units = cols / 32;
  for (int u = lane; u < units; u += kWarp) {
    float w[32];
    unit_weights<T>(row, u, w);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const float* xt = x + static_cast<size_t>(t) * ldx + 32 * u;
      float s = acc[t];
#pragma unroll
      for (int j = 0; j < 32; ++j) s = fmaf(w[j], __ldg(xt + j), s);
      acc[t] = s;
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float s = warp_sum(acc[t]);
    if (lane == 0) y[static_cast<size_t>(t) * ldy + r] = s;
  }
}

// One thread per unit: 32 bf16 values (round to nearest even) into out (rows, cols).
template <int T>
__global__ void dequant_blocks_kernel(const uint8_t* __restrict__ W, size_t row_bytes, int rows, int cols,
                                      uint16_t* __restrict__ out) {
  const int units = cols / 32;
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(rows) * units) return;
  const int r = static_cast<int>(i / units), u = static_cast<int>(i % units);
  float w[32];
  unit_weights<T>(W + static_cast<size_t>(r) * row_bytes, u, w);
  uint16_t* o = out + static_cast<size_t>(r) * cols + 32 * u;
#pragma unroll
  for (int j = 0; j < 32; ++j) o[j] = __bfloat16_as_ushort(__float2bfloat16_rn(w[j]));
}

// One thread per unit of the looked-up rows: out[t, :] = W[ids[t], :] in f32
// (ids outside [0, rows) give zeros, as launch_embed_bf16 does).
template <int T>
__global__ void embed_blocks_kernel(const uint8_t* __restrict__ W, size_t row_bytes, int rows, int cols,
                                    const int32_t* __restrict__ ids, int n, float* __restrict__ out) {
  const int units = cols / 32;
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(n) * units) return;
  const int t = static_cast<int>(i / units), u = static_cast<int>(i % units);
  const int id = ids[t];
  float* o = out + static_cast<size_t>(t) * cols + 32 * u;
  if (id < 0 || id >= rows) {
#pragma unroll
    for (int j = 0; j < 32; ++j) o[j] = 0.0f;
    return;
  }
  float w[32];
  unit_weights<T>(W + static_cast<size_t>(id) * row_bytes, u, w);
#pragma unroll
  for (int j = 0; j < 32; ++j) o[j] = w[j];
}

template <int T, int NT>
void launch_nt(const uint8_t* w, size_t row_bytes, int rows, int cols, const float* x, int ldx, float* y, int ldy,
               cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock));
  gemv_blocks_kernel<T, NT><<<grid, kRowsPerBlock * kWarp, 0, stream>>>(w, row_bytes, rows, cols, x, ldx, y, ldy);
}

template <int T>
cudaError_t gemv_type(const uint8_t* w, int rows, int cols, const float* x, int ldx, int tokens, float* y, int ldy,
                      cudaStream_t stream) {
  const size_t row_bytes = static_cast<size_t>(cols / block_elems(T)) * block_bytes(T);
  for (int t0 = 0, n = 0; t0 < tokens; t0 += n) {
    const int rem = tokens - t0;
    n = rem >= 8 ? 8 : rem >= 4 ? 4 : rem >= 2 ? 2 : 1;
    const float* xt = x + static_cast<size_t>(t0) * ldx;
    float* yt = y + static_cast<size_t>(t0) * ldy;
    switch (n) {
      case 1: launch_nt<T, 1>(w, row_bytes, rows, cols, xt, ldx, yt, ldy, stream); break;
      case 2: launch_nt<T, 2>(w, row_bytes, rows, cols, xt, ldx, yt, ldy, stream); break;
      case 4: launch_nt<T, 4>(w, row_bytes, rows, cols, xt, ldx, yt, ldy, stream); break;
      default: launch_nt<T, 8>(w, row_bytes, rows, cols, xt, ldx, yt, ldy, stream); break;
    }
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

template <int T>
cudaError_t dequant_type(const uint8_t* w, int rows, int cols, uint16_t* out, cudaStream_t stream) {
  const size_t row_bytes = static_cast<size_t>(cols / block_elems(T)) * block_bytes(T);
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols / 32);
  constexpr unsigned kThreads = 256;
  dequant_blocks_kernel<T><<<static_cast<unsigned>((n + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      w, row_bytes, rows, cols, out);
  return cudaGetLastError();
}

template <int T>
cudaError_t embed_type(const uint8_t* w, int rows, int cols, const int32_t* ids, int n, float* out,
                       cudaStream_t stream) {
  const size_t row_bytes = static_cast<size_t>(cols / block_elems(T)) * block_bytes(T);
  const size_t units = static_cast<size_t>(n) * static_cast<size_t>(cols / 32);
  constexpr unsigned kThreads = 256;
  embed_blocks_kernel<T><<<static_cast<unsigned>((units + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      w, row_bytes, rows, cols, ids, n, out);
  return cudaGetLastError();
}

// return fn<type>(args...) for a type id (checked by the caller).
#define PACA_BLOCK_TYPE_SWITCH(type, fn, ...)          \
  switch (type) {                                      \
    case kQ4_0: return fn<kQ4_0>(__VA_ARGS__);         \
    case kQ4_1: return fn<kQ4_1>(__VA_ARGS__);         \
    case kQ5_0: return fn<kQ5_0>(__VA_ARGS__);         \
    case kQ5_1: return fn<kQ5_1>(__VA_ARGS__);         \
    case kQ8_0: return fn<kQ8_0>(__VA_ARGS__);         \
    case kQ4_K: return fn<kQ4_K>(__VA_ARGS__);         \
    case kQ5_K: return fn<kQ5_K>(__VA_ARGS__);         \
    default: return fn<kQ6_K>(__VA_ARGS__);            \
  }

}  // namespace

bool gemv_blocks_supported(int ggml_type) { return block_bytes(ggml_type) != 0; }

size_t blocks_row_bytes(int ggml_type, int cols) {
  if (block_bytes(ggml_type) == 0 || cols <= 0 || cols % block_elems(ggml_type) != 0) return 0;
  return static_cast<size_t>(cols / block_elems(ggml_type)) * static_cast<size_t>(block_bytes(ggml_type));
}

cudaError_t launch_gemv_blocks(int ggml_type, const uint8_t* w, int rows, int cols, const float* x, int ldx,
                               int tokens, float* y, int ldy, cudaStream_t stream) {
  if (rows < 0 || tokens < 0 || blocks_row_bytes(ggml_type, cols) == 0 || ldx < cols || ldy < rows || w == nullptr ||
      x == nullptr || y == nullptr)
    return cudaErrorInvalidValue;
  if (rows == 0 || tokens == 0) return cudaSuccess;
  PACA_BLOCK_TYPE_SWITCH(ggml_type, gemv_type, w, rows, cols, x, ldx, tokens, y, ldy, stream)
}

cudaError_t launch_dequant_blocks_bf16(int ggml_type, const uint8_t* w, int rows, int cols, uint16_t* out,
                                       cudaStream_t stream) {
  if (rows < 0 || blocks_row_bytes(ggml_type, cols) == 0 || w == nullptr || out == nullptr) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  PACA_BLOCK_TYPE_SWITCH(ggml_type, dequant_type, w, rows, cols, out, stream)
}

cudaError_t launch_embed_blocks(int ggml_type, const uint8_t* w, int rows, int cols, const int32_t* ids, int n,
                                float* out, cudaStream_t stream) {
  if (rows <= 0 || n < 0 || blocks_row_bytes(ggml_type, cols) == 0 || w == nullptr || ids == nullptr || out == nullptr)
    return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  PACA_BLOCK_TYPE_SWITCH(ggml_type, embed_type, w, rows, cols, ids, n, out, stream)
}

}  // namespace paca::cuda
