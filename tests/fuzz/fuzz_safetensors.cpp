// fuzz_safetensors.cpp - libFuzzer target for parse_safetensors. The input is
// a whole safetensors file. paca::Error is the expected answer to bad input;
// any other exception escapes and is reported as a crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "format/safetensors.h"
#include "fuzz_common.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    paca::SafetensorsFile f = paca::parse_safetensors(std::span<const uint8_t>(data, size), "fuzz.safetensors");
    // What the parser promises: every tensor's bytes lie inside the data buffer
    // and match its shape and dtype.
    paca::fuzz::require(f.data_start >= 8 && f.data_start <= size);
    for (const auto& t : f.tensors) {
      uint64_t count = 1;
      for (int64_t d : t.shape) {
        paca::fuzz::require(d >= 0);
        count *= static_cast<uint64_t>(d);
      }
      paca::fuzz::require(t.begin <= t.end && t.end <= size - f.data_start);
      paca::fuzz::require(t.end - t.begin == count * paca::safetensors_dtype_size(t.dtype));
    }
  } catch (const paca::Error&) {
  }
  return 0;
}
