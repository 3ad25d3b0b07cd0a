// topk.cu - the k best logits on the device (see kernels.h, launch_top_k, and
// topk.h for the keys), so that a sampler that needs only those gets k
// candidates instead of the whole vocabulary.
//
// k == 1 (greedy): one pass, each block's largest key by warp shuffles, then
// one atomicMax per block on the output key.
// k > 1: rounds. A block loads a chunk of kTopKChunk keys into shared memory
// (zeros past the end), sorts them in descending order with a bitonic
// network and writes its first k; a round over n keys leaves
// ceil(n / kTopKChunk) * k, and the last round (one chunk) writes the
// answer. 128256 logits, k = 256: 63 blocks, then 8, then 1.
//
// The mass (launch_logit_mass): each thread adds its logits' terms in 64-bit
// integers, a warp adds its threads' by shuffles and one atomicAdd per warp
// adds that to the output. Integer sums: the order of the adds does not
// matter, so the result is the host's bit for bit.
#include <cstdint>

#include "kernels/kernels.h"
#include "kernels/topk.h"

namespace paca::cuda {
namespace {

constexpr int kArgmaxThreads = 256;
constexpr int kSortThreads = kTopKChunk / 2;  // one compare-exchange per thread per stage

__global__ void argmax_keys(const float* __restrict__ logits, int n, unsigned long long* out) {
  uint64_t best = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const uint64_t key = topk_key(logits[i], static_cast<uint32_t>(i));
    best = key > best ? key : best;
  }
  for (int o = 16; o > 0; o >>= 1) {
    const uint64_t other = __shfl_down_sync(0xFFFFFFFFu, best, o);
    best = other > best ? other : best;
  }
  __shared__ uint64_t warp_best[kArgmaxThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_best[warp] = best;
  __syncthreads();
  if (warp == 0) {
    best = lane < kArgmaxThreads / 32 ? warp_best[lane] : 0;
    for (int o = 16; o > 0; o >>= 1) {
      const uint64_t other = __shfl_down_sync(0xFFFFFFFFu, best, o);
      best = other > best ? other : best;
    }
    if (lane == 0 && best != 0) atomicMax(out, static_cast<unsigned long long>(best));
  }
}

// One round: block b sorts keys [b * kTopKChunk, ...) of its input (the
// logits themselves in the first round) and writes its best k at out + b * k.
__global__ void __launch_bounds__(kSortThreads) topk_round(const float* __restrict__ logits,
                                                           const uint64_t* __restrict__ keys, int n, int k,
                                                           uint64_t* __restrict__ out) {
  __shared__ uint64_t s[kTopKChunk];
  const int base = blockIdx.x * kTopKChunk;
  for (int i = threadIdx.x; i < kTopKChunk; i += blockDim.x) {
    const int g = base + i;
    uint64_t key = 0;
    if (g < n) key = logits != nullptr ? topk_key(logits[g], static_cast<uint32_t>(g)) : keys[g];
    s[i] = key;
  }
  // bitonic network: runs of `size` are sorted descending where (i & size)
  // is 0 and ascending elsewhere, so each merge sees a bitonic sequence; the
  // last size (the whole chunk) leaves it all descending
  for (int size = 2; size <= kTopKChunk; size <<= 1) {
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      __syncthreads();
      const int t = threadIdx.x;
      const int i = 2 * stride * (t / stride) + (t % stride);
      const int j = i + stride;
      const uint64_t a = s[i], b = s[j];
      const bool descending = (i & size) == 0;
      if (descending ? a < b : a > b) {
        s[i] = b;
        s[j] = a;
      }
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < k; i += blockDim.x) out[static_cast<size_t>(blockIdx.x) * k + i] = s[i];
}

__global__ void logit_mass_kernel(const float* __restrict__ logits, int n, const uint64_t* __restrict__ best_key,
                                  double scale, unsigned long long* out) {
  const float m = topk_key_logit(*best_key);
  unsigned long long sum = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    sum += logit_mass_term(logits[i], m, scale);
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_down_sync(0xFFFFFFFFu, sum, o);
  if (threadIdx.x % 32 == 0 && sum != 0) atomicAdd(out, sum);
}

}  // namespace

cudaError_t launch_logit_mass(const float* logits, int n, const uint64_t* best_key, double scale, uint64_t* out,
                              cudaStream_t stream) {
  if (n < 0 || logits == nullptr || best_key == nullptr || out == nullptr || !(scale >= 1.0 && scale <= 0x1p52))
    return cudaErrorInvalidValue;
  cudaError_t e = cudaMemsetAsync(out, 0, sizeof(uint64_t), stream);
  if (e != cudaSuccess || n == 0) return e;
  const int blocks = n / (kArgmaxThreads * 8) + 1 < 264 ? n / (kArgmaxThreads * 8) + 1 : 264;
  logit_mass_kernel<<<blocks, kArgmaxThreads, 0, stream>>>(logits, n, best_key, scale,
                                                           reinterpret_cast<unsigned long long*>(out));
  return cudaGetLastError();
}

cudaError_t launch_top_k(const float* logits, int n, int k, uint64_t* scratch, uint64_t* out_keys,
                         cudaStream_t stream) {
  if (n < 0 || k < 1 || k > kTopKMaxK || logits == nullptr || out_keys == nullptr ||
      (n > kTopKChunk && k > 1 && scratch == nullptr))
    return cudaErrorInvalidValue;
  cudaError_t e = cudaMemsetAsync(out_keys, 0, static_cast<size_t>(k) * sizeof(uint64_t), stream);
  if (e != cudaSuccess || n == 0) return e;
  if (k == 1) {
    const int blocks = n / (kArgmaxThreads * 8) + 1 < 264 ? n / (kArgmaxThreads * 8) + 1 : 264;
    argmax_keys<<<blocks, kArgmaxThreads, 0, stream>>>(logits, n, reinterpret_cast<unsigned long long*>(out_keys));
    return cudaGetLastError();
  }
  // rounds: logits -> scratch A -> scratch B -> A ... -> out_keys
  uint64_t* bufs[2] = {scratch, scratch != nullptr ? scratch + topk_scratch_keys(n, k) / 2 : nullptr};
  const uint64_t* in = nullptr;
  int have = n, which = 0;
  for (;;) {
    const int chunks = topk_chunks(have);
    uint64_t* dst = chunks == 1 ? out_keys : bufs[which];
    topk_round<<<chunks, kSortThreads, 0, stream>>>(in == nullptr ? logits : nullptr, in, have, k, dst);
    if ((e = cudaGetLastError()) != cudaSuccess || chunks == 1) return e;
    in = dst;
    have = chunks * k;
    which ^= 1;
  }
}

}  // namespace paca::cuda
