// grammar_test_util.h - helpers of the grammar tests: a vocabulary of the 256
// single bytes (so that a text is walked byte by byte) and the message of
// the paca::Error a compile step throws.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "grammar/matcher.h"
#include "util/error.h"

namespace grammartest {

// Ids 0..255: the bytes; id 256: an end token (empty piece).
inline std::shared_ptr<const paca::GrammarVocab> byte_vocab() {
  static const std::shared_ptr<const paca::GrammarVocab> v = [] {
    std::vector<std::string> pieces;
    for (int b = 0; b < 256; ++b) pieces.emplace_back(1, static_cast<char>(b));
    pieces.emplace_back();
    return std::make_shared<const paca::GrammarVocab>(pieces, std::vector<int32_t>{256});
  }();
  return v;
}

// The message of the Error(invalid_argument) that compile() throws, or "(no error)".
template <typename Compile>
std::string error_of(Compile&& compile) {
  try {
    compile();
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::invalid_argument);
    return e.what();
  }
  return "(no error)";
}

}  // namespace grammartest
