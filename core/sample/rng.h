// rng.h - the sampler's counter-based random numbers: Philox4x32-10
// (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
//
// A draw is a pure function of (seed, sequence position, draw index): there
// is no generator state to carry, share or snapshot, so the same seed gives
// the same token at the same position whatever the thread count, the batch
// the sequence ran in, or whether earlier positions were rewound and redone.
#pragma once

#include <array>
#include <cstdint>

namespace paca {

using Philox4x32 = std::array<uint32_t, 4>;

// One Philox4x32-10 block: 10 rounds over `ctr` under `key`. Matches the
// Random123 reference (its known-answer vectors are checked in the tests).
constexpr Philox4x32 philox4x32_10(Philox4x32 ctr, std::array<uint32_t, 2> key) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // key schedule (Weyl) increments
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kW0;
      key[1] += kW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kM0) * ctr[0];
    const uint64_t p1 = static_cast<uint64_t>(kM1) * ctr[2];
    ctr = {static_cast<uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<uint32_t>(p1),
           static_cast<uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<uint32_t>(p0)};
  }
  return ctr;
}

// A uniform double in [0, 1) with 53 random bits, determined by
// (seed, position, draw): key = seed, counter = (position, draw, 0).
constexpr double sampler_uniform(uint64_t seed, uint64_t position, uint32_t draw = 0) {
  const Philox4x32 r = philox4x32_10(
      {static_cast<uint32_t>(position), static_cast<uint32_t>(position >> 32), draw, 0u},
      {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  const uint64_t bits = (static_cast<uint64_t>(r[0]) << 21) ^ (r[1] >> 11);  // 53 bits
  return static_cast<double>(bits) * 0x1.0p-53;
}

}  // namespace paca
