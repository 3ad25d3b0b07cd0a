// fuzz_llama2c.cpp - libFuzzer target for the llama2.c path:
// read_llama2c_checkpoint + check_llama_tensors. The input is a whole
// llama2.c checkpoint (legacy v0 or version 1). paca::Error is the expected
// answer to bad input; any other exception escapes and is reported as a crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_common.h"
#include "model/checkpoint.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    paca::Checkpoint ck;
    paca::read_llama2c_checkpoint(std::span<const uint8_t>(data, size), "fuzz.bin", ck);
    paca::check_llama_tensors(ck);
    paca::fuzz::check_views(ck, data, size);
  } catch (const paca::Error&) {
  }
  return 0;
}
