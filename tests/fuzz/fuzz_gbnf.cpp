// fuzz_gbnf.cpp - libFuzzer target for the GBNF parser and the recogniser:
// the input is grammar text; a grammar that parses is walked for a few
// tokens over a small vocabulary, its mask checked against the reference.
// paca::Error is the expected answer to a bad grammar (or one too ambiguous
// to walk); anything else (a crash, a sanitizer report, another exception,
// a hang, a mask that differs from the reference) is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "grammar/grammar.h"
#include "grammar_fuzz_common.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto g = std::make_shared<const paca::Grammar>(paca::parse_gbnf(text));
    paca::fuzz::walk_grammar(g, data, size, 8);
  } catch (const paca::Error&) {
  }
  return 0;
}
