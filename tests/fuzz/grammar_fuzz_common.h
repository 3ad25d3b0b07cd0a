// grammar_fuzz_common.h - what the grammar fuzz targets share: a small
// vocabulary (every single byte, some multi-byte pieces, an end token) and a
// walk of a few steps through a grammar checking the mask against the
// reference (each token's bytes walked from the state).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "grammar/matcher.h"

namespace paca::fuzz {

inline std::shared_ptr<const GrammarVocab> grammar_vocab() {
  static const std::shared_ptr<const GrammarVocab> v = [] {
    std::vector<std::string> pieces;
    for (int b = 0; b < 256; ++b) pieces.emplace_back(1, static_cast<char>(b));
    for (const char* p : {"{\"", "\":", "\",", "true", "null", " \"", "\n  ", "ab", "abc", "12", "é", "\xe6\x97\xa5",
                          "\xf0\x9f", "\x98\x80", "\"}", "\"]", "[{", "-0", ".5", "e+"})
      pieces.emplace_back(p);
    pieces.emplace_back();  // the end token
    const auto end = static_cast<int32_t>(pieces.size() - 1);
    return std::make_shared<const GrammarVocab>(pieces, std::vector<int32_t>{end});
  }();
  return v;
}

// Up to `steps` tokens through g, each the allowed token picked by the input's
// bytes; the mask must equal allows() for every token.
inline void walk_grammar(const std::shared_ptr<const Grammar>& g, const uint8_t* pick, size_t n_pick, int steps) {
  const auto v = grammar_vocab();
  GrammarMatcher m(g, v);
  std::vector<uint64_t> mask;
  for (int s = 0; s < steps; ++s) {
    const size_t n = m.fill_mask(mask);
    std::vector<int32_t> allowed;
    for (int32_t id = 0; id < v->n_vocab(); ++id) {
      const bool ref = m.allows(id);
      require(ref == (((mask[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1) != 0));
      if (ref) allowed.push_back(id);
    }
    require(n == allowed.size());
    if (allowed.empty()) return;
    const int32_t t = allowed[(n_pick > 0 ? pick[static_cast<size_t>(s) % n_pick] : 0) % allowed.size()];
    m.accept(t);
    if (m.ended()) return;
  }
}

}  // namespace paca::fuzz
