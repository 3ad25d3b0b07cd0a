// fuzz_common.h - checks shared by the fuzz targets. A violated invariant
// traps, which libFuzzer reports as a crash and saves the input.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/checkpoint.h"

namespace paca::fuzz {

inline void require(bool cond) {
  if (!cond) __builtin_trap();
}

// Every tensor view of a checkpoint that passed check_llama_tensors must lie
// inside the input [data, data + size). Touching its first and last byte lets
// ASan confirm it too.
inline void check_views(const Checkpoint& ck, const uint8_t* data, size_t size) {
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const auto end = begin + size;
  volatile uint8_t sink = 0;
  for (const auto& [canon, v] : ck.tensors) {
    const auto p = reinterpret_cast<uintptr_t>(v.data);
    const size_t n = v.bytes();
    require(v.rows >= 0 && v.cols >= 0);
    require(p >= begin && p <= end && n <= end - p);
    if (n > 0) sink = sink + v.data[0] + v.data[n - 1];
  }
}

}  // namespace paca::fuzz
