// hf_llama2_test.cpp - the Llama 2 tokenizer in Hugging Face tokenizer.json
// form (BPE over characters with byte fallback, merges by rank). No such
// file is in ../shared, so the test writes one from tokenizer.model the way
// transformers' converter does (SentencePieceExtractor: every split of a
// piece into two pieces is a merge, ordered by the piece's score), in both
// of HF's layouts (Prepend/Replace normalizer; Metaspace pre-tokenizer), and
// checks it against the llama-spm vectors and against tokenizer.model.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <tuple>

#include "tok_test_util.h"
#include "tokenizer/tokenizer_files.h"

namespace {

using nlohmann::json;

std::string llama2_tokenizer_json(const paca::Tokenizer& spm, bool metaspace) {
  const paca::Vocab& v = spm.vocab();
  json vocab = json::object();
  std::map<std::string, int32_t> ids;
  for (size_t id = 0; id < v.size(); ++id) {
    vocab[v.tokens[id].text] = id;
    ids[v.tokens[id].text] = static_cast<int32_t>(id);
  }
  std::vector<std::tuple<float, int32_t, int32_t, std::string, std::string>> merges;
  for (size_t id = 0; id < v.size(); ++id) {
    const paca::Token& t = v.tokens[id];
    if (t.type != paca::TokenType::normal) continue;
    for (size_t k = 1; k < t.text.size(); ++k) {
      auto l = ids.find(t.text.substr(0, k)), r = ids.find(t.text.substr(k));
      if (l != ids.end() && r != ids.end()) merges.emplace_back(-t.score, l->second, r->second, l->first, r->first);
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<1>(a), std::get<2>(a)) < std::tie(std::get<0>(b), std::get<1>(b), std::get<2>(b));
  });
  json m = json::array();
  for (const auto& x : merges) m.push_back(json::array({std::get<3>(x), std::get<4>(x)}));
  json j;
  j["version"] = "1.0";
  j["added_tokens"] = json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                   {{"id", 1}, {"content", "<s>"}, {"special", true}},
                                   {{"id", 2}, {"content", "</s>"}, {"special", true}}});
  if (metaspace) {
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", false}};
  } else {
    j["normalizer"] = {{"type", "Sequence"},
                       {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                    {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}})}};
    j["pre_tokenizer"] = nullptr;
  }
  j["decoder"] = {{"type", "Sequence"}, {"decoders", json::array()}};
  j["model"] = {{"type", "BPE"},       {"dropout", nullptr}, {"unk_token", "<unk>"}, {"fuse_unk", true},
                {"byte_fallback", true}, {"ignore_merges", false}, {"vocab", vocab}, {"merges", m}};
  return j.dump();
}

class HfLlama2 : public ::testing::TestWithParam<bool> {};

TEST_P(HfLlama2, MatchesVectorsAndSentencePiece) {
  TOK_SKIP_WITHOUT_SHARED();
  const bool metaspace = GetParam();
  const paca::Tokenizer& spm = toktest::shared_tokenizer("tokenizers/llama2/tokenizer.model");
  auto hf = paca::load_hf_tokenizer(llama2_tokenizer_json(spm, metaspace), "generated tokenizer.json");
  EXPECT_EQ(hf->options().kind, paca::TokenizerKind::bpe);
  EXPECT_FALSE(hf->options().byte_level);
  const std::string vec = toktest::shared_dir() + "/tokenizers/vectors/";
  size_t ok = 0, n = 0;
  for (auto [inp, out] : {std::pair{"ggml-vocab-llama-spm.gguf.inp", "ggml-vocab-llama-spm.gguf.out"},
                          std::pair{"extra.inp", "extra.llama-spm.out"}}) {
    for (const auto& v : toktest::read_vectors(vec + inp, vec + out)) {
      ++n;
      auto got = hf->encode(v.text, {});
      if (got == v.ids) ++ok;
      else ADD_FAILURE() << "\"" << v.text << "\": " << toktest::ids_str(got) << " want " << toktest::ids_str(v.ids);
    }
  }
  EXPECT_EQ(ok, n);
  std::printf("[ conformance ] generated Llama 2 tokenizer.json (%s): %zu/%zu\n", metaspace ? "Metaspace" : "Prepend",
              ok, n);
  // after a special token: "▁Hi" again with the Prepend normalizer, plain "Hi" with prepend_scheme "first"
  auto ids = hf->encode("<s>Hi", {.add_special = true, .parse_special = true});
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 2), (std::vector<int32_t>{1, 1}));
  if (metaspace) {
    EXPECT_NE(ids[2], 6324);
  } else {
    EXPECT_EQ(ids, (std::vector<int32_t>{1, 1, 6324}));
  }
  EXPECT_EQ(hf->decode(std::vector<int32_t>{1, 15043, 3186}, {}), "Hello world");
}

INSTANTIATE_TEST_SUITE_P(Layouts, HfLlama2, ::testing::Values(false, true));

}  // namespace
