// conformance_test.cpp - every vector of ../shared/tokenizers/vectors
// (llama.cpp's .inp/.out pairs and the extra strings) against every file the
// same vocabulary comes in: 100% agreement required, one differing id fails.
// Also the reference-doc vectors (llama-reference.md 3.1, 3.2).
#include <gtest/gtest.h>

#include "tok_test_util.h"

namespace {

using toktest::ids_str;

struct Case {
  const char* tokenizer;  // under shared/
  const char* inp;        // under shared/tokenizers/vectors
  const char* out;
};

class Conformance : public ::testing::TestWithParam<Case> {};

TEST_P(Conformance, AllVectorsAgree) {
  TOK_SKIP_WITHOUT_SHARED();
  const Case& c = GetParam();
  const std::string vec = toktest::shared_dir() + "/tokenizers/vectors/";
  const paca::Tokenizer& tok = toktest::shared_tokenizer(c.tokenizer);
  auto vectors = toktest::read_vectors(vec + c.inp, vec + c.out);
  size_t ok = 0;
  for (const auto& v : vectors) {
    std::vector<int32_t> got = tok.encode(v.text, {});
    if (got == v.ids) ++ok;
    else ADD_FAILURE() << c.tokenizer << " on \"" << v.text << "\": got " << ids_str(got) << ", want " << ids_str(v.ids);
  }
  EXPECT_EQ(ok, vectors.size());
  std::printf("[ conformance ] %s on %s: %zu/%zu\n", c.tokenizer, c.inp, ok, vectors.size());
}

const Case kCases[] = {
    // Llama 3 (llama-bpe): tokenizer.json, Meta's tiktoken tokenizer.model, a GGUF "gpt2" vocabulary
    {"tokenizers/llama3/tokenizer.json", "ggml-vocab-llama-bpe.gguf.inp", "ggml-vocab-llama-bpe.gguf.out"},
    {"tokenizers/llama3/tokenizer.json", "extra.inp", "extra.llama-bpe.out"},
    {"tokenizers/llama3/tokenizer.model", "ggml-vocab-llama-bpe.gguf.inp", "ggml-vocab-llama-bpe.gguf.out"},
    {"tokenizers/llama3/tokenizer.model", "extra.inp", "extra.llama-bpe.out"},
    {"models/gguf/tiny-llama31.gguf", "ggml-vocab-llama-bpe.gguf.inp", "ggml-vocab-llama-bpe.gguf.out"},
    {"models/gguf/tiny-llama31.gguf", "extra.inp", "extra.llama-bpe.out"},
    // Llama 2 (llama-spm): SentencePiece tokenizer.model, the vocabulary-only GGUF
    {"tokenizers/llama2/tokenizer.model", "ggml-vocab-llama-spm.gguf.inp", "ggml-vocab-llama-spm.gguf.out"},
    {"tokenizers/llama2/tokenizer.model", "extra.inp", "extra.llama-spm.out"},
    {"tokenizers/vectors/ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-spm.gguf.inp", "ggml-vocab-llama-spm.gguf.out"},
    {"tokenizers/vectors/ggml-vocab-llama-spm.gguf", "extra.inp", "extra.llama-spm.out"},
    {"models/gguf/tiny-llama2.gguf", "ggml-vocab-llama-spm.gguf.inp", "ggml-vocab-llama-spm.gguf.out"},
    // stories260K's 512-token vocabulary: llama2.c tok512.bin, its GGUF
    {"models/stories260K/tok512.bin", "ggml-vocab-llama-spm.gguf.inp", "ggml-vocab-test.tok512.out"},
    {"models/stories260K/tok512.bin", "extra.inp", "extra.tok512.out"},
    {"models/stories260K/stories260K.gguf", "ggml-vocab-llama-spm.gguf.inp", "ggml-vocab-test.tok512.out"},
    {"models/stories260K/stories260K.gguf", "extra.inp", "extra.tok512.out"},
    {"models/stories260K/tok512.model", "ggml-vocab-llama-spm.gguf.inp", "ggml-vocab-test.tok512.out"},
    {"models/stories260K/tok512.model", "extra.inp", "extra.tok512.out"},
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string s = std::string(info.param.tokenizer) + "_" + info.param.inp;
  for (char& ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Vectors, Conformance, ::testing::ValuesIn(kCases), case_name);

// llama-reference.md 3.2 (with BOS where the doc shows it: none there).
TEST(ReferenceDoc, Llama3Vectors) {
  TOK_SKIP_WITHOUT_SHARED();
  const paca::Tokenizer& tok = toktest::shared_tokenizer("tokenizers/llama3/tokenizer.json");
  struct {
    const char* text;
    std::vector<int32_t> ids;
  } cases[] = {
      {"Hello, world!", {9906, 11, 1917, 0}},
      {"user", {882}},
      {"system", {9125}},
      {"assistant", {78191}},
      {"ipython", {23799, 4690}},
      {"\n\n", {271}},
      {"   leading", {256, 6522}},
      {"I'm 12345 ok\n\n\nyes", {40, 2846, 220, 4513, 1774, 5509, 1432, 9891}},
  };
  for (const auto& c : cases) EXPECT_EQ(tok.encode(c.text, {}), c.ids) << c.text;
  EXPECT_EQ(tok.encode("Hello", {.add_special = true}), (std::vector<int32_t>{128000, 9906}));
}

// llama-reference.md 3.1 (the doc's ids include BOS).
TEST(ReferenceDoc, Llama2Vectors) {
  TOK_SKIP_WITHOUT_SHARED();
  const paca::Tokenizer& tok = toktest::shared_tokenizer("tokenizers/llama2/tokenizer.model");
  paca::EncodeOptions bos{.add_special = true};
  EXPECT_EQ(tok.encode("Hello world", bos), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tok.encode("Hello, world!", bos), (std::vector<int32_t>{1, 15043, 29892, 3186, 29991}));
  EXPECT_EQ(tok.encode("[INST] Hi [/INST]", bos), (std::vector<int32_t>{1, 518, 25580, 29962, 6324, 518, 29914, 25580, 29962}));
  // "\n" is the byte piece <0x0A> = 13 (after the dummy-prefix piece "▁" = 29871)
  EXPECT_EQ(tok.encode("\n", {}), (std::vector<int32_t>{29871, 13}));
}

}  // namespace
