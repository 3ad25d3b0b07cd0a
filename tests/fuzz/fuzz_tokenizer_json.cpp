// fuzz_tokenizer_json.cpp - libFuzzer target for Hugging Face tokenizer.json
// (load_hf_tokenizer) and tokenizer_config.json (apply_tokenizer_config), then
// encoding and decoding with what loaded. The input is tokenizer.json, then
// optionally a NUL and tokenizer_config.json. paca::Error is the expected
// answer to bad input; any other exception escapes and is reported as a crash.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "tokenizer/tokenizer_files.h"
#include "tokenizer_fuzz_common.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view all(reinterpret_cast<const char*>(data), size);
  size_t nul = all.find('\0');
  std::string_view json = all.substr(0, nul), config;
  if (nul != std::string_view::npos) config = all.substr(nul + 1);
  try {
    auto tok = paca::load_hf_tokenizer(json, "fuzz.json");
    if (nul != std::string_view::npos) paca::apply_tokenizer_config(*tok, config, "fuzz_config.json");
    paca::fuzz::exercise(*tok);
  } catch (const paca::Error&) {
  }
  return 0;
}
