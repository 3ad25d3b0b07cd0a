// grammar_capi_test.cpp - grammars through the C ABI (paca.h only): the
// grammar / json_schema fields of paca_sampler_params reach
// paca_generator_create and the batched paca_generator_next_batch; errors
// name the place; the refused combinations. Outputs are checked against the
// grammar's language by small matchers written here (std::regex trips
// GCC 12's -Wmaybe-uninitialized in the sanitizer build).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

struct Gen {
  paca_session* s = nullptr;
  paca_generator* g = nullptr;
  std::string text;
  ~Gen() {
    paca_generator_free(g);
    paca_session_free(s);
  }
};

// A generator on a new session of m with the prompt "Answer:" and sampling sp.
paca_status make_gen(paca_model* m, const paca_sampler_params& sp, Gen& out) {
  const char* prompt = "Answer:";
  int32_t ids[16];
  size_t n = 0;
  EXPECT_EQ(paca_tokenize(m, prompt, std::strlen(prompt), PACA_TOKENIZE_ADD_BOS, ids, 16, &n), PACA_OK);
  EXPECT_EQ(paca_session_create(m, nullptr, &out.s), PACA_OK);
  return paca_generator_create(out.s, ids, n, &sp, nullptr, &out.g);
}

// (yes|no)(, (yes|no)){0,4}\.
bool is_yes_no(const std::string& s) {
  size_t i = 0;
  for (int words = 0; words < 5; ++words) {
    if (words > 0) {
      if (s.compare(i, 2, ", ") != 0) return false;
      i += 2;
    }
    if (s.compare(i, 3, "yes") == 0) i += 3;
    else if (s.compare(i, 2, "no") == 0) i += 2;
    else return false;
    if (i + 1 == s.size() && s[i] == '.') return true;
  }
  return false;
}

// \[[1-9][0-9]{0,3}(,[1-9][0-9]{0,3}){0,5}\]
bool is_numbers(const std::string& s) {
  if (s.empty() || s[0] != '[') return false;
  size_t i = 1;
  for (int n = 0; n < 6; ++n) {
    if (n > 0) {
      if (i >= s.size() || s[i] != ',') return false;
      ++i;
    }
    if (i >= s.size() || s[i] < '1' || s[i] > '9') return false;
    size_t digits = 1;
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && digits < 4) ++i, ++digits;
    if (i + 1 == s.size() && s[i] == ']') return true;
  }
  return false;
}

TEST(GrammarCapi, TheMatchersAcceptTheLanguageOnly) {
  EXPECT_TRUE(is_yes_no("yes."));
  EXPECT_TRUE(is_yes_no("no, yes, no, no, yes."));
  EXPECT_FALSE(is_yes_no("no, yes, no, no, yes, no."));
  EXPECT_FALSE(is_yes_no("yes"));
  EXPECT_FALSE(is_yes_no("yes,no."));
  EXPECT_FALSE(is_yes_no("maybe."));
  EXPECT_TRUE(is_numbers("[1]"));
  EXPECT_TRUE(is_numbers("[9999,1,20,300,4000,5]"));
  EXPECT_FALSE(is_numbers("[1,2,3,4,5,6,7]"));
  EXPECT_FALSE(is_numbers("[01]"));
  EXPECT_FALSE(is_numbers("[12345]"));
  EXPECT_FALSE(is_numbers("[]"));
  EXPECT_FALSE(is_numbers("[1,]"));
  EXPECT_FALSE(is_numbers("[1"));
}

const char* kYesNo = "root ::= (\"yes\" | \"no\") (\", \" (\"yes\" | \"no\")){0,4} \".\"";
const char* kNumbers = "root ::= \"[\" [1-9] [0-9]{0,3} (\",\" [1-9] [0-9]{0,3}){0,5} \"]\"";

TEST(GrammarCapi, GeneratorsAloneAndBatchedFollowTheirGrammars) {
  SKIP_WITHOUT_SHARED();
  paca_model* m = test::load_or_die(test::shared_dir() + "/models/tiny-llama3", 1);
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    paca_sampler_params a, b;
    paca_sampler_params_init(&a, sizeof a);
    paca_sampler_params_init(&b, sizeof b);
    a.temperature = b.temperature = 1.0f;
    a.seed = b.seed = seed;
    a.max_new_tokens = b.max_new_tokens = 200;
    a.grammar = kYesNo;
    b.json_schema = nullptr;
    b.grammar = kNumbers;
    // alone
    std::string alone[2];
    for (int k = 0; k < 2; ++k) {
      Gen g;
      ASSERT_EQ(make_gen(m, k == 0 ? a : b, g), PACA_OK) << paca_last_error();
      int32_t tok;
      const char* t;
      size_t len;
      while (paca_generator_stop_reason(g.g) == PACA_STOP_NONE) {
        ASSERT_EQ(paca_generator_next(g.g, &tok, &t, &len), PACA_OK) << paca_last_error();
        alone[k].append(t, len);
      }
      EXPECT_EQ(paca_generator_stop_reason(g.g), PACA_STOP_EOS) << alone[k];
    }
    EXPECT_TRUE(is_yes_no(alone[0])) << alone[0];
    EXPECT_TRUE(is_numbers(alone[1])) << alone[1];
    // batched: the same texts
    Gen ga, gb;
    ASSERT_EQ(make_gen(m, a, ga), PACA_OK) << paca_last_error();
    ASSERT_EQ(make_gen(m, b, gb), PACA_OK) << paca_last_error();
    paca_generator* gens[2] = {ga.g, gb.g};
    std::string batched[2];
    for (int step = 0; step < 400; ++step) {
      int32_t toks[2];
      const char* texts[2];
      size_t lens[2];
      ASSERT_EQ(paca_generator_next_batch(gens, 2, toks, texts, lens), PACA_OK) << paca_last_error();
      if (toks[0] < 0 && toks[1] < 0) break;
      for (int k = 0; k < 2; ++k) batched[k].append(texts[k], lens[k]);
    }
    EXPECT_EQ(batched[0], alone[0]);
    EXPECT_EQ(batched[1], alone[1]);
  }
  paca_model_free(m);
}

TEST(GrammarCapi, ErrorsNameThePlace) {
  SKIP_WITHOUT_SHARED();
  paca_model* m = test::load_or_die(test::shared_dir() + "/models/tiny-llama3", 1);
  paca_sampler* s = nullptr;
  paca_sampler_params p;
  paca_sampler_params_init(&p, sizeof p);
  p.grammar = "root ::= \"a\"\nitem ::= [b-\n";
  EXPECT_EQ(paca_sampler_create(m, &p, &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(s, nullptr);
  EXPECT_STREQ(paca_last_error(), "grammar: line 2, column 10 (byte 22): unterminated character class");
  p.grammar = nullptr;
  p.json_schema = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"multipleOf\":2}}}";
  EXPECT_EQ(paca_sampler_create(m, &p, &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(paca_last_error(), "json_schema: at /properties/n: keyword 'multipleOf' is not supported");
  p.json_schema = "{\"type\": [}";
  EXPECT_EQ(paca_sampler_create(m, &p, &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("line 1, column 11"), std::string::npos) << paca_last_error();
  p.grammar = "root ::= \"a\"";
  p.json_schema = "{}";
  EXPECT_EQ(paca_sampler_create(m, &p, &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(paca_last_error(), "paca_sampler_create: set grammar or json_schema, not both");
  p.json_schema = nullptr;
  p.ignore_eos = 1;
  EXPECT_EQ(paca_sampler_create(m, &p, &s), PACA_ERR_INVALID_ARGUMENT);
  p.ignore_eos = 0;
  // a sampler with a grammar samples and refuses to be saved in a snapshot
  ASSERT_EQ(paca_sampler_create(m, &p, &s), PACA_OK) << paca_last_error();
  paca_session* ss = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &ss), PACA_OK);
  const int32_t bos = 128000;
  ASSERT_EQ(paca_session_prefill(ss, &bos, 1), PACA_OK);
  int32_t tok = -1;
  ASSERT_EQ(paca_sampler_sample(s, ss, &tok, nullptr), PACA_OK) << paca_last_error();
  EXPECT_EQ(tok, 64);  // "a", the only token the grammar allows first
  ASSERT_EQ(paca_session_decode(ss, tok), PACA_OK);
  ASSERT_EQ(paca_sampler_sample(s, ss, &tok, nullptr), PACA_OK) << paca_last_error();
  EXPECT_EQ(paca_sampler_stop_reason(s, tok, 2), PACA_STOP_EOS) << tok;  // then only an end token
  const std::string snap = test::temp_dir() + "/s.paca";
  EXPECT_EQ(paca_session_save_with_sampler(ss, s, snap.c_str()), PACA_ERR_UNSUPPORTED);
  // an old caller's struct (v0.2 size) has no grammar
  paca_sampler_params old;
  paca_sampler_params_init(&old, sizeof old);
  old.struct_size = 72;
  old.grammar = "this is not read";
  paca_sampler* s2 = nullptr;
  EXPECT_EQ(paca_sampler_create(m, &old, &s2), PACA_OK) << paca_last_error();
  paca_sampler_free(s2);
  paca_session_free(ss);
  paca_sampler_free(s);
  paca_model_free(m);
}

TEST(GrammarCapi, ModelWithoutTokenizerIsAStateError) {
  const std::string dir = test::make_small_model();
  paca_model* m = test::load_or_die(dir, 1);
  uint32_t attrs = 0;
  if (paca_token_attributes(m, 0, &attrs) == PACA_OK) {
    paca_model_free(m);
    GTEST_SKIP() << "the small test model has a tokenizer";
  }
  paca_sampler_params p;
  paca_sampler_params_init(&p, sizeof p);
  p.grammar = "root ::= \"a\"";
  paca_sampler* s = nullptr;
  EXPECT_EQ(paca_sampler_create(m, &p, &s), PACA_ERR_STATE);
  EXPECT_NE(std::string(paca_last_error()).find("a grammar needs a model with a tokenizer"), std::string::npos);
  paca_model_free(m);
}

}  // namespace
