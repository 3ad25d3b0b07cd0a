// topk.h - the keys of the device top-k (topk.cu), shared by the kernels and
// the host that decodes their result (and tests them without a GPU).
//
// A logit x at index id becomes one 64-bit key whose unsigned order is the
// candidate order of select_top_k (sample/sampler.h): larger logit first,
// ties by the lower index. The high word is x's bits made monotonic (flip
// all bits of a negative, the sign bit of a positive; -0 counts as +0), the
// low word 0xFFFFFFFF - id. -inf and NaN, never candidates, get key 0, below
// every real key (the smallest, -FLT_MAX at the largest index, is
// 0x00800000'00000000 or more), so a sorted run of keys ends with its
// non-candidates.
#pragma once

#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define PACA_HD __host__ __device__
#else
#define PACA_HD
#endif

namespace paca::cuda {

PACA_HD inline uint64_t topk_key(float x, uint32_t id) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  if (b == 0xFF800000u || (b & 0x7FFFFFFFu) > 0x7F800000u) return 0;  // -inf, NaN
  if (b == 0x80000000u) b = 0;                                         // -0 == +0
  const uint32_t ord = (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
  return (static_cast<uint64_t>(ord) << 32) | (0xFFFFFFFFu - id);
}

// The index and logit a nonzero key stands for (a -0 logit comes back +0).
PACA_HD inline uint32_t topk_key_id(uint64_t key) { return 0xFFFFFFFFu - static_cast<uint32_t>(key); }
PACA_HD inline float topk_key_logit(uint64_t key) {
  const uint32_t ord = static_cast<uint32_t>(key >> 32);
  const uint32_t b = (ord & 0x80000000u) != 0 ? (ord & 0x7FFFFFFFu) : ~ord;
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// The sampler's mass of one logit (sample/sampler.h, "Weights": token_mass
// at temperature 1) for the device to add up (launch_logit_mass): fast_exp
// (util/fast_exp.h) step by step with correctly rounded operations, never
// fused (the device's __f*_rn intrinsics; on the host plain operations, which
// ISO C++ mode does not contract), so both give the same bits.
#ifdef __CUDA_ARCH__
#define PACA_MUL(a, b) __fmul_rn(a, b)
#define PACA_ADD(a, b) __fadd_rn(a, b)
#define PACA_SUB(a, b) __fsub_rn(a, b)
#else
#define PACA_MUL(a, b) ((a) * (b))
#define PACA_ADD(a, b) ((a) + (b))
#define PACA_SUB(a, b) ((a) - (b))
#endif
PACA_HD inline float mass_exp(float x) {
  const bool zero = !(x >= -87.0f);  // also NaN
  x = zero ? -87.0f : x;
  x = x < 88.0f ? x : 88.0f;
  const float n = PACA_SUB(PACA_ADD(PACA_MUL(x, 1.44269504088896341f), 12582912.0f), 12582912.0f);
  const float r = PACA_SUB(PACA_SUB(x, PACA_MUL(n, 0.693359375f)), PACA_MUL(n, -2.12194440e-4f));
  float p = 1.9875691500e-4f;
  p = PACA_ADD(PACA_MUL(p, r), 1.3981999507e-3f);
  p = PACA_ADD(PACA_MUL(p, r), 8.3334519073e-3f);
  p = PACA_ADD(PACA_MUL(p, r), 4.1665795894e-2f);
  p = PACA_ADD(PACA_MUL(p, r), 1.6666665459e-1f);
  p = PACA_ADD(PACA_MUL(p, r), 5.0000001201e-1f);
  p = PACA_ADD(PACA_ADD(PACA_MUL(PACA_MUL(p, r), r), r), 1.0f);
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return zero ? 0.0f : PACA_MUL(p, two_n);
}
// floor(mass_exp(logit - max) * scale), scale = 2^s <= 2^52: the product of
// a float and a power of two is exact in double, so truncation is the floor.
PACA_HD inline uint64_t logit_mass_term(float logit, float max_logit, double scale) {
  const double d = static_cast<double>(mass_exp(PACA_SUB(logit, max_logit))) * scale;
  return static_cast<uint64_t>(d);
}
#undef PACA_MUL
#undef PACA_ADD
#undef PACA_SUB

// Each round of launch_top_k sorts chunks of kTopKChunk keys (one thread
// block each, in shared memory) and keeps each chunk's best k; the rounds
// repeat on the kept keys until one chunk is left, whose best k are the
// answer. k <= kTopKMaxK keeps every round at most 1/8 of its input (+ k).
constexpr int kTopKChunk = 2048;
constexpr int kTopKMaxK = 256;

// Chunks (thread blocks) of the round with n keys in.
PACA_HD inline int topk_chunks(int n) { return (n + kTopKChunk - 1) / kTopKChunk; }

// Keys of scratch launch_top_k needs for n logits: the first round's output
// and the second's, ping-pong (0 when one round does it all).
inline size_t topk_scratch_keys(int n, int k) {
  if (n <= kTopKChunk) return 0;
  const size_t first = static_cast<size_t>(topk_chunks(n)) * static_cast<size_t>(k);
  return 2 * first;
}

}  // namespace paca::cuda
