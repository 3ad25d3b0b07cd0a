// fuzz_llama2c_tokenizer.cpp - libFuzzer target for the loader of a llama2.c tokenizer .bin,
// then encoding and decoding with what it loaded. The input is the whole
// file. paca::Error is the expected answer to bad input; any other exception
// escapes and is reported as a crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "tokenizer/tokenizer_files.h"
#include "tokenizer_fuzz_common.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> file(data, size);
  try {
    auto tok = paca::load_llama2c_tokenizer(file, 0, "fuzz.bin");
    paca::fuzz::exercise(*tok);
  } catch (const paca::Error&) {
  }
  return 0;
}
