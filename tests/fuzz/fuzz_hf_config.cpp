// fuzz_hf_config.cpp - libFuzzer target for parse_hf_config. The input is
// config.json text, optionally followed by a NUL byte and the text of
// generation_config.json. paca::Error is the expected answer to bad input;
// any other exception escapes and is reported as a crash.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "format/config.h"
#include "fuzz_common.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* text = reinterpret_cast<const char*>(data);
  const void* nul = std::memchr(text, 0, size);
  const size_t n = nul ? static_cast<size_t>(static_cast<const char*>(nul) - text) : size;
  const std::string config(text, n);
  const std::string generation = nul ? std::string(text + n + 1, size - n - 1) : std::string();
  try {
    paca::ModelConfig c = paca::parse_hf_config(config, generation);
    // parse_hf_config validates what it returns.
    paca::fuzz::require(c.q_dim() > 0 && c.kv_dim() > 0);
    paca::fuzz::require(c.bos_id < c.n_vocab);
    (void)paca::rope_frequencies(c);
  } catch (const paca::Error&) {
  }
  return 0;
}
