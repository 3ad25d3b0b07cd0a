// fuzz_gguf.cpp - libFuzzer target for the GGUF path: parse_gguf with every
// accessor on every key, then the full GGUF -> model path
// (read_gguf_checkpoint + check_llama_tensors). The input is a whole GGUF
// file. paca::Error is the expected answer to bad input; any other exception
// escapes and is reported as a crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "format/gguf.h"
#include "fuzz_common.h"
#include "model/checkpoint.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> file(data, size);
  try {
    paca::GgufFile g = paca::parse_gguf(file, "fuzz.gguf");
    paca::fuzz::require(g.data_start <= size);
    for (const auto& [key, value] : g.kv) {
      try { (void)g.get_int(key); } catch (const paca::Error&) {}
      try { (void)g.get_float(key); } catch (const paca::Error&) {}
      try { (void)g.get_string(key); } catch (const paca::Error&) {}
    }
    for (const auto& t : g.tensors) {
      (void)paca::ggml_type_name(t.type);
      if (t.bytes != 0) paca::fuzz::require(t.offset <= size - g.data_start && t.bytes <= size - g.data_start - t.offset);
    }
  } catch (const paca::Error&) {
    return 0;
  }
  try {
    paca::Checkpoint ck;
    paca::read_gguf_checkpoint(file, "fuzz.gguf", ck);
    paca::check_llama_tensors(ck);
    paca::fuzz::check_views(ck, data, size);
  } catch (const paca::Error&) {
  }
  return 0;
}
