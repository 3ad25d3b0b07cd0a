// tokenizer_test.cpp - the tokenizer C ABI through paca.h only: every golden
// prompt of ../shared/models tokenizes to its prompt_tokens (in every format
// the model comes in), buffers and size queries, detokenizing, pieces,
// attributes, the streaming detokenizer, models without a tokenizer, and the
// tokenizer_path parameter.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

Ids tokenize(paca_model* m, const std::string& text, uint32_t flags) {
  size_t n = 0;
  paca_status st = paca_tokenize(m, text.data(), text.size(), flags, nullptr, 0, &n);
  EXPECT_TRUE(st == PACA_OK || st == PACA_ERR_BUFFER_TOO_SMALL) << paca_last_error();
  Ids ids(n);
  EXPECT_EQ(paca_tokenize(m, text.data(), text.size(), flags, ids.data(), ids.size(), &n), PACA_OK) << paca_last_error();
  ids.resize(n);
  return ids;
}

std::string detokenize(paca_model* m, const Ids& ids, uint32_t flags) {
  size_t need = 0;
  paca_status st = paca_detokenize(m, ids.data(), ids.size(), flags, nullptr, 0, &need);
  EXPECT_TRUE(st == PACA_OK || st == PACA_ERR_BUFFER_TOO_SMALL) << paca_last_error();
  std::string s(need, '\0');
  EXPECT_EQ(paca_detokenize(m, ids.data(), ids.size(), flags, s.data(), s.size(), &need), PACA_OK) << paca_last_error();
  s.resize(need - 1);
  return s;
}

struct GoldenCase {
  const char* model;   // under shared/models
  const char* golden;  // golden.json with cases[].text and prompt_tokens
};

class GoldenPrompts : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenPrompts, TextTokenizesToPromptTokens) {
  SKIP_WITHOUT_SHARED();
  const std::string dir = test::shared_dir() + "/models/";
  auto bytes = test::read_file(dir + GetParam().golden);
  json g = json::parse(bytes.begin(), bytes.end());
  paca_model* m = test::load_or_die(dir + GetParam().model, 1);
  ASSERT_NE(m, nullptr);
  size_t n = 0;
  for (const auto& c : g["cases"]) {
    std::string text = c["text"].get<std::string>();
    Ids want = c["prompt_tokens"].get<Ids>();
    EXPECT_EQ(tokenize(m, text, PACA_TOKENIZE_ADD_BOS), want) << GetParam().model << ": " << text;
    // and back: the prompt without BOS decodes to the text
    EXPECT_EQ(detokenize(m, want, 0), text);
    ++n;
  }
  EXPECT_GE(n, 1u);
  paca_model_free(m);
}

const GoldenCase kGolden[] = {
    {"tiny-llama2", "tiny-llama2/golden.json"},
    {"tiny-llama3", "tiny-llama3/golden.json"},
    {"tiny-llama31", "tiny-llama31/golden.json"},
    {"tiny-llama32", "tiny-llama32/golden.json"},
    {"tiny-llama31-fp8", "tiny-llama31-fp8/golden.json"},
    {"gguf/tiny-llama2.gguf", "tiny-llama2/golden.json"},
    {"gguf/tiny-llama31.gguf", "tiny-llama31/golden.json"},
    {"gguf/tiny-llama3.q8_0.gguf", "gguf/tiny-llama3.q8_0.golden.json"},
    {"stories260K/stories260K.bin", "stories260K/golden.json"},
    {"stories260K/stories260K.gguf", "stories260K/golden.json"},
};

std::string golden_name(const ::testing::TestParamInfo<GoldenCase>& info) {
  std::string s = info.param.model;
  for (char& ch : s)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenPrompts, ::testing::ValuesIn(kGolden), golden_name);

TEST(Tokenizer, StoriesGreedyTextDecodes) {
  SKIP_WITHOUT_SHARED();
  auto bytes = test::read_file(test::shared_dir() + "/models/stories260K/golden.json");
  json g = json::parse(bytes.begin(), bytes.end());
  paca_model* m = test::load_or_die(test::shared_dir() + "/models/stories260K/stories260K.bin", 1);
  const auto& c = g["cases"][0];
  Ids ids = c["prompt_tokens"].get<Ids>();
  for (int32_t id : c["greedy"].get<Ids>()) ids.push_back(id);
  std::string text = detokenize(m, ids, 0);
  std::string prefix = c["greedy_text_prefix"].get<std::string>();
  // greedy_text_prefix may run past the 48 greedy ids: the two agree on their common length
  size_t common = std::min(text.size(), prefix.size());
  EXPECT_GE(common, 100u);
  EXPECT_EQ(text.substr(0, common), prefix.substr(0, common)) << text;
  // streamed one id at a time, the generated part continues the prompt
  paca_detokenizer* d = nullptr;
  ASSERT_EQ(paca_detokenizer_create(m, PACA_DETOKENIZE_KEEP_LEADING_SPACE, &d), PACA_OK) << paca_last_error();
  paca_model_free(m);  // the detokenizer keeps the tokenizer alive
  std::string streamed;
  for (int32_t id : c["greedy"].get<Ids>()) {
    const char* piece = nullptr;
    size_t len = 0;
    ASSERT_EQ(paca_detokenizer_push(d, id, &piece, &len), PACA_OK) << paca_last_error();
    EXPECT_EQ(std::strlen(piece), len);
    streamed.append(piece, len);
  }
  const char* rest = nullptr;
  ASSERT_EQ(paca_detokenizer_flush(d, &rest, nullptr), PACA_OK);
  streamed += rest;
  EXPECT_EQ("Once upon a time" + streamed, text);
  paca_detokenizer_free(d);
}

TEST(Tokenizer, BuffersFlagsAndSpecialTokens) {
  SKIP_WITHOUT_SHARED();
  paca_model* m = test::load_or_die(test::shared_dir() + "/models/tiny-llama31", 1);
  const std::string text = "<|start_header_id|>user<|end_header_id|>\n\nHi";
  size_t n = 0;
  int32_t small[2];
  EXPECT_EQ(paca_tokenize(m, text.data(), text.size(), PACA_TOKENIZE_SPECIAL, small, 2, &n), PACA_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(n, 5u);
  EXPECT_NE(std::string(paca_last_error()).find("5 needed"), std::string::npos);
  EXPECT_EQ(tokenize(m, text, PACA_TOKENIZE_SPECIAL), (Ids{128006, 882, 128007, 271, 13347}));
  Ids plain = tokenize(m, text, PACA_TOKENIZE_ADD_BOS);
  EXPECT_EQ(plain.front(), 128000);
  for (size_t i = 1; i < plain.size(); ++i) EXPECT_LT(plain[i], 128000) << "user text made a control token";
  EXPECT_EQ(tokenize(m, "", PACA_TOKENIZE_ADD_BOS), (Ids{128000}));
  EXPECT_EQ(paca_tokenize(m, nullptr, 0, 0, nullptr, 0, &n), PACA_OK);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(paca_tokenize(m, nullptr, 3, 0, nullptr, 0, &n), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_tokenize(m, "a", 1, 0x100, nullptr, 0, &n), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_tokenize(nullptr, "a", 1, 0, nullptr, 0, &n), PACA_ERR_INVALID_ARGUMENT);
  // text with a NUL byte and invalid UTF-8 (replaced by U+FFFD)
  const std::string odd("a\0b\xFF", 4);
  EXPECT_EQ(detokenize(m, tokenize(m, odd, 0), 0), std::string("a\0b\xEF\xBF\xBD", 6));

  EXPECT_EQ(detokenize(m, Ids{128000, 9906, 11, 1917, 0, 128009}, 0), "Hello, world!");
  EXPECT_EQ(detokenize(m, Ids{128000, 9906, 128009}, PACA_DETOKENIZE_SPECIAL), "<|begin_of_text|>Hello<|eot_id|>");
  char buf[4];
  size_t need = 0;
  int32_t hello[] = {9906};
  EXPECT_EQ(paca_detokenize(m, hello, 1, 0, buf, sizeof buf, &need), PACA_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(need, 6u);
  int32_t bad[] = {128256};
  EXPECT_EQ(paca_detokenize(m, bad, 1, 0, nullptr, 0, &need), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("128256"), std::string::npos);

  char piece[32];
  ASSERT_EQ(paca_token_to_piece(m, 1917, 0, piece, sizeof piece, &need), PACA_OK);
  EXPECT_STREQ(piece, " world");
  EXPECT_EQ(need, 7u);
  ASSERT_EQ(paca_token_to_piece(m, 128009, 0, piece, sizeof piece, &need), PACA_OK);
  EXPECT_STREQ(piece, "");
  ASSERT_EQ(paca_token_to_piece(m, 128009, PACA_DETOKENIZE_SPECIAL, piece, sizeof piece, &need), PACA_OK);
  EXPECT_STREQ(piece, "<|eot_id|>");

  uint32_t attrs = 0;
  ASSERT_EQ(paca_token_attributes(m, 128000, &attrs), PACA_OK);
  EXPECT_EQ(attrs, uint32_t{PACA_TOKEN_ATTR_CONTROL | PACA_TOKEN_ATTR_BOS});
  ASSERT_EQ(paca_token_attributes(m, 128008, &attrs), PACA_OK);
  EXPECT_EQ(attrs, uint32_t{PACA_TOKEN_ATTR_CONTROL | PACA_TOKEN_ATTR_EOG});  // <|eom_id|>
  ASSERT_EQ(paca_token_attributes(m, 9906, &attrs), PACA_OK);
  EXPECT_EQ(attrs, uint32_t{PACA_TOKEN_ATTR_NORMAL});
  EXPECT_EQ(paca_token_attributes(m, -1, &attrs), PACA_ERR_INVALID_ARGUMENT);

  paca_model_info info{};
  info.struct_size = sizeof info;
  ASSERT_EQ(paca_model_get_info(m, &info), PACA_OK);
  Ids eos(info.eos_ids, info.eos_ids + info.n_eos_ids);
  for (int32_t id : {128001, 128008, 128009}) EXPECT_NE(std::find(eos.begin(), eos.end(), id), eos.end()) << id;
  paca_model_free(m);
}

TEST(Tokenizer, Llama2ByteFallbackStreams) {
  SKIP_WITHOUT_SHARED();
  paca_model* m = test::load_or_die(test::shared_dir() + "/models/tiny-llama2", 1);
  const std::string text = "Llama \xF0\x9F\xA6\x99 says \xE4\xBD\xA0\xE5\xA5\xBD";
  Ids ids = tokenize(m, text, PACA_TOKENIZE_ADD_BOS);
  EXPECT_EQ(ids.front(), 1);
  paca_detokenizer* d = nullptr;
  ASSERT_EQ(paca_detokenizer_create(m, 0, &d), PACA_OK);
  std::string out;
  for (int32_t id : ids) {
    const char* p = nullptr;
    size_t len = 0;
    ASSERT_EQ(paca_detokenizer_push(d, id, &p, &len), PACA_OK);
    std::string piece(p, len);
    // a piece never ends inside a character: the U+1F999 bytes come out together
    EXPECT_TRUE(piece.find('\xF0') == std::string::npos || piece.find("\xF0\x9F\xA6\x99") != std::string::npos);
    out += piece;
  }
  const char* p = nullptr;
  ASSERT_EQ(paca_detokenizer_flush(d, &p, nullptr), PACA_OK);
  out += p;
  EXPECT_EQ(out, text);
  EXPECT_EQ(paca_detokenizer_push(d, 32000, &p, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_detokenizer_push(nullptr, 1, &p, nullptr), PACA_ERR_INVALID_ARGUMENT);
  paca_detokenizer_free(d);
  paca_detokenizer_free(nullptr);
  paca_model_free(m);
}

TEST(Tokenizer, ModelWithoutTokenizerSaysSo) {
  paca_model* m = test::load_or_die(test::make_small_model(), 1);
  size_t n = 0;
  EXPECT_EQ(paca_tokenize(m, "hi", 2, 0, nullptr, 0, &n), PACA_ERR_STATE);
  EXPECT_NE(std::string(paca_last_error()).find("no tokenizer"), std::string::npos) << paca_last_error();
  int32_t id = 1;
  EXPECT_EQ(paca_detokenize(m, &id, 1, 0, nullptr, 0, &n), PACA_ERR_STATE);
  uint32_t attrs;
  EXPECT_EQ(paca_token_attributes(m, 1, &attrs), PACA_ERR_STATE);
  char buf[8];
  EXPECT_EQ(paca_token_to_piece(m, 1, 0, buf, sizeof buf, &n), PACA_ERR_STATE);
  paca_detokenizer* d = nullptr;
  EXPECT_EQ(paca_detokenizer_create(m, 0, &d), PACA_ERR_STATE);
  EXPECT_EQ(d, nullptr);
  paca_model_free(m);
}

TEST(Tokenizer, Llama2cTokenizerBesideOrByPath) {
  SKIP_WITHOUT_SHARED();
  const std::string stories = test::shared_dir() + "/models/stories260K/";
  // a copy of the checkpoint alone: loads, without a tokenizer
  std::string dir = test::temp_dir();
  test::write_file(dir + "/stories260K.bin", test::read_file(stories + "stories260K.bin"));
  paca_model* m = test::load_or_die(dir + "/stories260K.bin", 1);
  size_t n = 0;
  EXPECT_EQ(paca_tokenize(m, "hi", 2, 0, nullptr, 0, &n), PACA_ERR_STATE);
  EXPECT_NE(std::string(paca_last_error()).find("tok512.bin"), std::string::npos) << paca_last_error();
  paca_model_free(m);
  // tokenizer_path names it
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.n_threads = 1;
  std::string tok = stories + "tok512.bin";
  p.tokenizer_path = tok.c_str();
  ASSERT_EQ(paca_model_load((dir + "/stories260K.bin").c_str(), &p, &m), PACA_OK) << paca_last_error();
  EXPECT_EQ(tokenize(m, "Once upon a time", PACA_TOKENIZE_ADD_BOS), (Ids{1, 403, 407, 261, 378}));
  paca_model_free(m);
  // the tokenizer.model of stories260K works too
  std::string spm = stories + "tok512.model";
  p.tokenizer_path = spm.c_str();
  ASSERT_EQ(paca_model_load((dir + "/stories260K.bin").c_str(), &p, &m), PACA_OK) << paca_last_error();
  EXPECT_EQ(tokenize(m, "Once upon a time", PACA_TOKENIZE_ADD_BOS), (Ids{1, 403, 407, 261, 378}));
  paca_model_free(m);
  // a tokenizer.bin beside it is found
  test::write_file(dir + "/tokenizer.bin", test::read_file(stories + "tok512.bin"));
  m = test::load_or_die(dir + "/stories260K.bin", 1);
  EXPECT_EQ(tokenize(m, "Once upon a time", PACA_TOKENIZE_ADD_BOS), (Ids{1, 403, 407, 261, 378}));
  paca_model_free(m);
  // a tokenizer bigger than the model's vocabulary, a missing file
  std::string big = test::shared_dir() + "/tokenizers/llama2/tokenizer.model";
  p.tokenizer_path = big.c_str();
  EXPECT_EQ(paca_model_load((dir + "/stories260K.bin").c_str(), &p, &m), PACA_ERR_FORMAT);
  EXPECT_NE(std::string(paca_last_error()).find("32000 tokens"), std::string::npos) << paca_last_error();
  std::string missing = dir + "/nope.bin";
  p.tokenizer_path = missing.c_str();
  EXPECT_EQ(paca_model_load((dir + "/stories260K.bin").c_str(), &p, &m), PACA_ERR_IO);
  EXPECT_EQ(m, nullptr);
}

TEST(Tokenizer, CorruptTokenizerFileFailsTheLoad) {
  SKIP_WITHOUT_SHARED();
  std::string dir = test::temp_dir();
  const std::string src = test::shared_dir() + "/models/tiny-llama2/";
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"})
    test::write_file(dir + "/" + f, test::read_file(src + f));
  auto spm = test::read_file(src + "tokenizer.model");
  spm.resize(spm.size() / 2);
  test::write_file(dir + "/tokenizer.model", spm);
  paca_model* m = nullptr;
  EXPECT_EQ(paca_model_load(dir.c_str(), nullptr, &m), PACA_ERR_FORMAT);
  EXPECT_NE(std::string(paca_last_error()).find("tokenizer.model"), std::string::npos) << paca_last_error();
  test::write_text(dir + "/tokenizer.json", R"({"model": {"type": "BPE", "vocab": [1]}, "normalizer": {"type": "Replace"}})");
  EXPECT_EQ(paca_model_load(dir.c_str(), nullptr, &m), PACA_ERR_FORMAT);
  EXPECT_NE(std::string(paca_last_error()).find("tokenizer.json"), std::string::npos) << paca_last_error();
  // a well-formed tokenizer paca cannot run: the model loads without one
  test::write_text(dir + "/tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
  ASSERT_EQ(paca_model_load(dir.c_str(), nullptr, &m), PACA_OK) << paca_last_error();
  size_t n = 0;
  EXPECT_EQ(paca_tokenize(m, "a", 1, 0, nullptr, 0, &n), PACA_ERR_STATE);
  EXPECT_NE(std::string(paca_last_error()).find("WordPiece"), std::string::npos) << paca_last_error();
  paca_model_free(m);
}

}  // namespace
