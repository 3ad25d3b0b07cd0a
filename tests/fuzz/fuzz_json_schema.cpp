// fuzz_json_schema.cpp - libFuzzer target for the JSON Schema compiler: the
// input is a schema; what it compiles to must be GBNF that parses (a parse
// error of the generated text is a finding, except left recursion a schema
// can ask for, e.g. {"$ref":"#"}, and the size limit), and the grammar is
// walked for a few tokens with its mask checked against the reference.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "grammar/json_schema.h"
#include "grammar_fuzz_common.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string gbnf;
  try {
    gbnf = paca::json_schema_to_gbnf(text);
  } catch (const paca::Error& e) {
    paca::fuzz::require(std::string_view(e.what()).substr(0, 12) == "json_schema:");
    return 0;
  }
  std::shared_ptr<const paca::Grammar> g;
  try {
    g = std::make_shared<const paca::Grammar>(paca::parse_gbnf(gbnf));
  } catch (const paca::Error& e) {
    const std::string_view msg = e.what();
    paca::fuzz::require(msg.find("left recursion") != std::string_view::npos ||
                        msg.find("too large") != std::string_view::npos);
    return 0;
  }
  try {
    paca::fuzz::walk_grammar(g, data, size, 8);
  } catch (const paca::Error&) {
  }
  return 0;
}
