// fuzz_gguf_vocab.cpp - libFuzzer target for the tokenizer.ggml.* keys of a
// GGUF file (parse_gguf + load_gguf_tokenizer), then encoding and decoding
// with what loaded. The input is a whole GGUF file. paca::Error is the
// expected answer to bad input; any other exception escapes and is reported
// as a crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "format/gguf.h"
#include "tokenizer/tokenizer_files.h"
#include "tokenizer_fuzz_common.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> file(data, size);
  try {
    paca::GgufFile g = paca::parse_gguf(file, "fuzz.gguf");
    auto tok = paca::load_gguf_tokenizer(g, file, "fuzz.gguf");
    if (tok) paca::fuzz::exercise(*tok);
  } catch (const paca::Error&) {
  }
  return 0;
}
