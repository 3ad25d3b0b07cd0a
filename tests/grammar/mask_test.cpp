// mask_test.cpp - the token mask against the brute-force reference (every
// token's bytes walked through the recogniser from the current state), on
// the real Llama 3 (byte-level BPE, 128,256) and Llama 2 (SentencePiece,
// 32,000) vocabularies of ../shared/tokenizers, along random paths through
// several grammars. Also the grammar stage of the sampler.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>

#include "../tokenizer/tok_test_util.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "sample/sampler.h"
#include "util/error.h"

namespace {

using paca::Grammar;
using paca::GrammarMatcher;
using paca::GrammarVocab;

const char* kTokenizers[] = {"tokenizers/llama3/tokenizer.json", "tokenizers/llama2/tokenizer.model"};

std::shared_ptr<const GrammarVocab> vocab_of(const paca::Tokenizer& tok) {
  return GrammarVocab::from_tokenizer(tok, tok.n_tokens(), tok.eog_ids());
}

bool bit(const std::vector<uint64_t>& m, int32_t id) { return ((m[static_cast<size_t>(id) >> 6] >> (id & 63)) & 1) != 0; }

// Walks `steps` tokens chosen at random among the allowed ones, checking the
// mask against allows() for every token of the vocabulary at each step.
void check_path(const std::shared_ptr<const Grammar>& g, const std::shared_ptr<const GrammarVocab>& v, int steps,
                uint32_t seed) {
  GrammarMatcher m(g, v);
  std::mt19937 rng(seed);
  std::vector<uint64_t> mask;
  std::string text;
  for (int step = 0; step < steps; ++step) {
    const size_t n = m.fill_mask(mask);
    std::vector<int32_t> allowed;
    size_t mismatches = 0;
    for (int32_t id = 0; id < v->n_vocab(); ++id) {
      const bool ref = m.allows(id);
      if (ref != bit(mask, id) && ++mismatches <= 5)
        ADD_FAILURE() << "step " << step << " after \"" << text << "\": token " << id << " \"" << v->piece(id)
                      << "\" mask " << bit(mask, id) << " reference " << ref;
      if (ref) allowed.push_back(id);
    }
    ASSERT_EQ(mismatches, 0u);
    ASSERT_EQ(n, allowed.size());
    ASSERT_FALSE(allowed.empty()) << "after \"" << text << "\"";
    // prefer text tokens, so that the path goes somewhere
    std::vector<int32_t> text_tokens;
    for (int32_t id : allowed)
      if (!v->piece(id).empty()) text_tokens.push_back(id);
    if (text_tokens.empty()) break;  // only the end is left
    const int32_t t = text_tokens[rng() % text_tokens.size()];
    text += v->piece(t);
    m.accept(t);
  }
}

const char* kSchema = R"({"type":"object","properties":{
    "name":{"type":"string","maxLength":12},
    "when":{"type":"string","format":"date"},
    "kind":{"enum":["a","bb","ccc"]},
    "score":{"type":"number"},
    "tags":{"type":"array","items":{"type":"string","maxLength":6},"maxItems":3},
    "ok":{"type":"boolean"}},
  "required":["name","kind"]})";

const char* kGbnf = R"gbnf(
root   ::= expr (";" ws expr)*
expr   ::= term (ws [-+*/] ws term)*
term   ::= number | ident | "(" ws expr ws ")" | "\"" [^"\\]{0,8} "\""
number ::= [0-9]+ ("." [0-9]+)?
ident  ::= [a-zA-Zé_] [a-zA-Z0-9_é]*
ws     ::= [ \t\n]*
)gbnf";

TEST(GrammarMask, EqualsBruteForceOnRealVocabularies) {
  TOK_SKIP_WITHOUT_SHARED();
  const auto schema = std::make_shared<const Grammar>(paca::compile_json_schema(kSchema));
  const auto gbnf = std::make_shared<const Grammar>(paca::parse_gbnf(kGbnf));
  for (const char* path : kTokenizers) {
    SCOPED_TRACE(path);
    const auto v = vocab_of(toktest::shared_tokenizer(path));
    for (uint32_t seed = 1; seed <= 3; ++seed) {
      check_path(schema, v, 10, seed);
      check_path(gbnf, v, 10, seed);
    }
  }
}

TEST(GrammarMask, EndTokensOnlyWhenComplete) {
  TOK_SKIP_WITHOUT_SHARED();
  for (const char* path : kTokenizers) {
    SCOPED_TRACE(path);
    const paca::Tokenizer& tok = toktest::shared_tokenizer(path);
    const auto v = vocab_of(tok);
    GrammarMatcher m(std::make_shared<const Grammar>(paca::parse_gbnf("root ::= \"yes\" | \"no\"")), v);
    std::vector<uint64_t> mask;
    ASSERT_GT(m.fill_mask(mask), 0u);
    for (int32_t e : tok.eog_ids()) EXPECT_FALSE(bit(mask, e));
    ASSERT_TRUE(m.accept_bytes("yes"));
    EXPECT_EQ(m.fill_mask(mask), v->end_ids().size());
    for (int32_t e : tok.eog_ids()) EXPECT_TRUE(bit(mask, e));
    // control tokens other than the end ones never
    const int32_t bos = tok.bos_id();
    if (bos >= 0) {
      EXPECT_FALSE(bit(mask, bos));
    }
  }
}

TEST(GrammarSampler, MasksBeforeEveryStageAndAdvances) {
  // vocabulary: 0 "a", 1 "b", 2 "ab", 3 "" (end)
  const auto v = std::make_shared<const GrammarVocab>(std::vector<std::string>{"a", "b", "ab", ""},
                                                      std::vector<int32_t>{3});
  paca::Sampler s(paca::SamplerParams{}, 4);  // greedy
  s.set_grammar(std::make_unique<GrammarMatcher>(std::make_shared<const Grammar>(paca::parse_gbnf("root ::= \"a\" \"b\"+")), v));
  const std::vector<float> logits = {0.0f, 1.0f, 0.5f, 3.0f};  // the model prefers the end, then "b"
  EXPECT_EQ(s.sample(logits, {}), 2);  // "b" and the end are not allowed first: "ab" beats "a"
  EXPECT_EQ(s.sample(logits, std::vector<int32_t>{2}), 3);  // complete: the end wins
  EXPECT_THROW(s.sample(logits, std::vector<int32_t>{2, 3}), paca::Error);  // nothing after the end
}

TEST(GrammarSampler, NoTokenCanContinueIsAClearError) {
  const auto v = std::make_shared<const GrammarVocab>(std::vector<std::string>{"a", "b", ""}, std::vector<int32_t>{2});
  paca::Sampler s(paca::SamplerParams{}, 3);
  s.set_grammar(std::make_unique<GrammarMatcher>(std::make_shared<const Grammar>(paca::parse_gbnf("root ::= \"a\" \"c\"")), v));
  const std::vector<float> logits = {0.0f, 0.0f, 0.0f};
  EXPECT_EQ(s.sample(logits, {}), 0);
  try {
    s.sample(logits, std::vector<int32_t>{0});
    ADD_FAILURE() << "no error";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::state);
    EXPECT_NE(std::string(e.what()).find("grammar: no token of the vocabulary can continue the text after its 1 bytes"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(s.set_grammar(std::make_unique<GrammarMatcher>(
                   std::make_shared<const Grammar>(paca::parse_gbnf("root ::= \"a\"")),
                   std::make_shared<const GrammarVocab>(std::vector<std::string>{"a"}, std::vector<int32_t>{}))),
               paca::Error);
}

}  // namespace
