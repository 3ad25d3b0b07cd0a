// tok_test_util.h - helpers of the tokenizer tests (core API): where the
// shared test data is, cached tokenizers (the Llama 3 tokenizer.json takes a
// moment to load), and the llama.cpp .inp/.out vector files.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace toktest {

// ../shared (or $PACA_SHARED_DIR); "" when absent.
std::string shared_dir();
std::string read_file(const std::string& path);

// A tokenizer loaded once per process from a path under shared_dir()
// (load_tokenizer_file). Fails the test on a load error.
const paca::Tokenizer& shared_tokenizer(const std::string& rel_path);

struct Vector {
  std::string text;
  std::vector<int32_t> ids;
};
// Pairs the strings of an .inp file (separated by "\n__ggml_vocab_test__\n")
// with the lines of ids of an .out file.
std::vector<Vector> read_vectors(const std::string& inp, const std::string& out);

std::string ids_str(const std::vector<int32_t>& ids);

}  // namespace toktest

#define TOK_SKIP_WITHOUT_SHARED()                                                            \
  do {                                                                                       \
    if (toktest::shared_dir().empty()) GTEST_SKIP() << "../shared test data not found (set PACA_SHARED_DIR)"; \
  } while (0)
