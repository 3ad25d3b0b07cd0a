// generator_test.cpp - paca_generator through paca.h: greedy equals the golden
// tokens of stories260K, and every request (sampled, stop ids, stop strings,
// max tokens, logprobs, full context) gives the tokens, text, stop reason and
// log-probabilities of the loop `paca run` writes by hand with the sampler,
// detokenizer and stop-matcher calls; plus bad input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

struct Result {
  std::vector<int32_t> tokens;
  std::string text;
  int stop = PACA_STOP_NONE;
  std::vector<float> logprobs;
};

std::vector<int32_t> tokenize(paca_model* m, const std::string& text) {
  size_t n = 0;
  paca_tokenize(m, text.data(), text.size(), PACA_TOKENIZE_ADD_BOS, nullptr, 0, &n);
  std::vector<int32_t> ids(n);
  EXPECT_EQ(paca_tokenize(m, text.data(), text.size(), PACA_TOKENIZE_ADD_BOS, ids.data(), n, &n), PACA_OK);
  return ids;
}

paca_session* new_session(paca_model* m, int32_t n_ctx) {
  paca_session_params p = paca_session_params_default();
  p.n_ctx = n_ctx;
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_create(m, &p, &s), PACA_OK) << paca_last_error();
  return s;
}

std::vector<const char*> c_strings(const std::vector<std::string>& v) {
  std::vector<const char*> out;
  for (const auto& x : v) out.push_back(x.c_str());
  return out;
}

// The reference: the loop of examples/cli/paca.cpp (cmd_run), written with the
// sampler, detokenizer and stop-matcher calls. n_predict plays -n.
Result reference(paca_model* m, const std::vector<int32_t>& prompt, paca_sampler_params sp, long n_predict,
                 const std::vector<std::string>& stops, int32_t n_ctx = 0) {
  Result r;
  paca_session* s = new_session(m, n_ctx);
  paca_sampler* smp = nullptr;
  EXPECT_EQ(paca_sampler_create(m, &sp, &smp), PACA_OK) << paca_last_error();
  paca_detokenizer* dt = nullptr;
  EXPECT_EQ(paca_detokenizer_create(m, PACA_DETOKENIZE_KEEP_LEADING_SPACE, &dt), PACA_OK);
  paca_stop_matcher* sm = nullptr;
  const std::vector<const char*> ptrs = c_strings(stops);
  EXPECT_EQ(paca_stop_matcher_create(ptrs.data(), nullptr, ptrs.size(), &sm), PACA_OK);
  EXPECT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK);
  int32_t stop_index = -1;
  auto emit = [&](const char* t, size_t len) {
    const char* shown = nullptr;
    EXPECT_EQ(paca_stop_matcher_feed(sm, t, len, &shown, &len, &stop_index), PACA_OK);
    r.text.append(shown, len);
  };
  r.stop = PACA_STOP_MAX_TOKENS;
  for (long i = 0; i < n_predict; ++i) {
    int32_t tok = -1;
    paca_token_logprobs lp;
    std::memset(&lp, 0, sizeof lp);
    lp.struct_size = sizeof lp;
    EXPECT_EQ(paca_sampler_sample(smp, s, &tok, &lp), PACA_OK) << paca_last_error();
    r.tokens.push_back(tok);
    r.logprobs.push_back(lp.logprob);
    const char* t = nullptr;
    size_t len = 0;
    EXPECT_EQ(paca_detokenizer_push(dt, tok, &t, &len), PACA_OK);
    emit(t, len);
    if (stop_index >= 0) {
      r.stop = PACA_STOP_STRING;
      break;
    }
    const paca_stop_reason why = paca_sampler_stop_reason(smp, tok, r.tokens.size());
    if (why == PACA_STOP_EOS || why == PACA_STOP_TOKEN) {
      r.stop = why;
      break;
    }
    if (i + 1 == n_predict) break;
    if (paca_session_length(s) >= paca_session_context_size(s)) {
      r.stop = PACA_STOP_CONTEXT_FULL;
      break;
    }
    EXPECT_EQ(paca_session_decode(s, tok), PACA_OK);
  }
  const char* t = nullptr;
  size_t len = 0;
  EXPECT_EQ(paca_detokenizer_flush(dt, &t, &len), PACA_OK);
  emit(t, len);
  EXPECT_EQ(paca_stop_matcher_flush(sm, &t, &len), PACA_OK);
  r.text.append(t, len);
  paca_stop_matcher_free(sm);
  paca_detokenizer_free(dt);
  paca_sampler_free(smp);
  paca_session_free(s);
  return r;
}

// The same request through paca_generator; max tokens as sampler.max_new_tokens.
Result generate(paca_model* m, const std::vector<int32_t>& prompt, paca_sampler_params sp, long n_predict,
                const std::vector<std::string>& stops, int32_t n_ctx = 0) {
  Result r;
  paca_session* s = new_session(m, n_ctx);
  sp.max_new_tokens = static_cast<int32_t>(n_predict);
  const std::vector<const char*> ptrs = c_strings(stops);
  paca_generator_params gp = paca_generator_params_default();
  gp.stop_strings = ptrs.data();
  gp.n_stop_strings = static_cast<int32_t>(ptrs.size());
  gp.logprobs = 1;
  paca_generator* g = nullptr;
  EXPECT_EQ(paca_generator_create(s, prompt.data(), prompt.size(), &sp, &gp, &g), PACA_OK) << paca_last_error();
  if (g == nullptr) return r;
  while (paca_generator_stop_reason(g) == PACA_STOP_NONE) {
    int32_t tok = -1;
    const char* text = nullptr;
    size_t len = 0;
    EXPECT_EQ(paca_generator_next(g, &tok, &text, &len), PACA_OK) << paca_last_error();
    EXPECT_GE(tok, 0);
    if (tok < 0) break;
    r.tokens.push_back(tok);
    r.text.append(text, len);
    paca_token_logprobs lp;
    std::memset(&lp, 0, sizeof lp);
    lp.struct_size = sizeof lp;
    EXPECT_EQ(paca_generator_logprobs(g, &lp), PACA_OK);
    EXPECT_EQ(lp.token, tok);
    r.logprobs.push_back(lp.logprob);
  }
  r.stop = paca_generator_stop_reason(g);
  EXPECT_EQ(paca_generator_n_generated(g), r.tokens.size());
  // after the end: no token, no text, same reason
  int32_t tok = 7;
  const char* text = nullptr;
  size_t len = 99;
  EXPECT_EQ(paca_generator_next(g, &tok, &text, &len), PACA_OK);
  EXPECT_EQ(tok, -1);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(paca_generator_stop_reason(g), r.stop);
  paca_generator_free(g);
  paca_session_free(s);
  return r;
}

void expect_same(const Result& a, const Result& b) {
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.stop, b.stop);
  EXPECT_EQ(a.logprobs, b.logprobs);
}

std::string stories() { return test::shared_dir() + "/models/stories260K/stories260K.bin"; }

TEST(Generator, GreedyEqualsGoldenTokens) {
  SKIP_WITHOUT_SHARED();
  std::ifstream f(test::shared_dir() + "/models/stories260K/golden.json");
  const nlohmann::json golden = nlohmann::json::parse(f)["cases"][0];
  const auto want = golden["greedy"].get<std::vector<int32_t>>();
  paca_model* m = test::load_or_die(stories());
  const auto prompt = golden["prompt_tokens"].get<std::vector<int32_t>>();
  EXPECT_EQ(tokenize(m, golden["text"].get<std::string>()), prompt);
  paca_sampler_params sp = paca_sampler_params_default();
  sp.ignore_eos = 1;  // the golden continuation does not stop at EOS
  const Result r = generate(m, prompt, sp, static_cast<long>(want.size()), {});
  EXPECT_EQ(r.tokens, want);
  EXPECT_EQ(r.stop, PACA_STOP_MAX_TOKENS);
  // the streamed text is the text of the golden ids
  size_t need = 0;
  paca_detokenize(m, want.data(), want.size(), PACA_DETOKENIZE_KEEP_LEADING_SPACE, nullptr, 0, &need);
  std::string text(need, '\0');
  ASSERT_EQ(paca_detokenize(m, want.data(), want.size(), PACA_DETOKENIZE_KEEP_LEADING_SPACE, text.data(), need, &need),
            PACA_OK);
  text.resize(need - 1);
  EXPECT_EQ(r.text, text);
  paca_model_free(m);
}

TEST(Generator, SameAsTheCliLoop) {
  SKIP_WITHOUT_SHARED();
  paca_model* m = test::load_or_die(stories());
  const auto prompt = tokenize(m, "Once upon a time");
  paca_sampler_params greedy = paca_sampler_params_default();
  paca_sampler_params sampled = paca_sampler_params_default();
  sampled.temperature = 0.9f;
  sampled.top_p = 0.95f;
  sampled.seed = 42;
  sampled.n_top_logprobs = 3;
  struct Case {
    paca_sampler_params sp;
    long n;
    std::vector<std::string> stops;
  };
  const std::vector<Case> cases = {
      {greedy, 40, {}},
      {greedy, 200, {}},                       // runs into EOS
      {sampled, 60, {}},
      {sampled, 60, {"Lily", "park"}},         // stop strings
      {greedy, 60, {"little girl named"}},     // one that spans tokens
      {greedy, 60, {"zzzz"}},                  // one that never comes: held text flushed
  };
  int n_string_stops = 0;
  for (const Case& c : cases) {
    const Result want = reference(m, prompt, c.sp, c.n, c.stops);
    const Result got = generate(m, prompt, c.sp, c.n, c.stops);
    expect_same(got, want);
    EXPECT_FALSE(got.tokens.empty());
    n_string_stops += got.stop == PACA_STOP_STRING;
  }
  EXPECT_GE(n_string_stops, 2);  // the cases above do exercise stop strings
  // stop ids
  int32_t stop_id = reference(m, prompt, greedy, 10, {}).tokens[5];
  paca_sampler_params with_id = greedy;
  with_id.stop_ids = &stop_id;
  with_id.n_stop_ids = 1;
  const Result r = generate(m, prompt, with_id, 40, {});
  expect_same(r, reference(m, prompt, with_id, 40, {}));
  EXPECT_EQ(r.stop, PACA_STOP_TOKEN);
  // a small context fills up
  const Result full = generate(m, prompt, greedy, 100, {}, 12);
  expect_same(full, reference(m, prompt, greedy, 100, {}, 12));
  EXPECT_EQ(full.stop, PACA_STOP_CONTEXT_FULL);
  paca_model_free(m);
}

TEST(Generator, ContinuesFromTheSessionAndKeepsItUsable) {
  paca_model* m = test::load_or_die(test::make_small_model());
  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  const int32_t prompt[] = {1, 5, 9};
  paca_sampler_params sp = paca_sampler_params_default();
  sp.max_new_tokens = 4;
  sp.ignore_eos = 1;
  paca_generator* g = nullptr;
  ASSERT_EQ(paca_generator_create(s, prompt, 3, &sp, nullptr, &g), PACA_OK) << paca_last_error();
  std::vector<int32_t> got;
  int32_t tok = -1;
  while (paca_generator_stop_reason(g) == PACA_STOP_NONE && paca_generator_next(g, &tok, nullptr, nullptr) == PACA_OK)
    got.push_back(tok);
  ASSERT_EQ(got.size(), 4u);
  // all but the last token were appended to the session
  EXPECT_EQ(paca_session_length(s), 3u + 3u);
  paca_generator_free(g);
  // continue with no prompt: the session's logits give the last token again
  ASSERT_EQ(paca_generator_create(s, nullptr, 0, &sp, nullptr, &g), PACA_OK) << paca_last_error();
  ASSERT_EQ(paca_generator_next(g, &tok, nullptr, nullptr), PACA_OK);
  EXPECT_EQ(tok, got[3]);
  paca_generator_free(g);
  // logprobs were not asked for
  paca_token_logprobs lp;
  std::memset(&lp, 0, sizeof lp);
  lp.struct_size = sizeof lp;
  ASSERT_EQ(paca_generator_create(s, nullptr, 0, &sp, nullptr, &g), PACA_OK);
  EXPECT_EQ(paca_generator_logprobs(g, &lp), PACA_ERR_STATE);  // nothing generated yet
  ASSERT_EQ(paca_generator_next(g, &tok, nullptr, nullptr), PACA_OK);
  EXPECT_EQ(paca_generator_logprobs(g, &lp), PACA_ERR_STATE);
  EXPECT_NE(std::string(paca_last_error()).find("without logprobs"), std::string::npos);
  paca_generator_free(g);
  paca_session_free(s);
  paca_model_free(m);
}

TEST(Generator, BadInput) {
  paca_model* m = test::load_or_die(test::make_small_model());
  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  const int32_t prompt[] = {1, 5, 9};
  paca_generator* g = reinterpret_cast<paca_generator*>(&s);
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_generator_create(nullptr, prompt, 3, nullptr, nullptr, &g), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(g, nullptr);
  EXPECT_EQ(paca_generator_create(s, nullptr, 3, nullptr, nullptr, &g), PACA_ERR_INVALID_ARGUMENT);
  // no prompt and no logits
  EXPECT_EQ(paca_generator_create(s, nullptr, 0, nullptr, nullptr, &g), PACA_ERR_STATE);
  // bad sampler params name the field and the function
  paca_sampler_params sp = paca_sampler_params_default();
  sp.top_p = 2.0f;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, &sp, nullptr, &g), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("top_p"), std::string::npos) << paca_last_error();
  sp = paca_sampler_params_default();
  sp.n_stop_ids = 2;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, &sp, nullptr, &g), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("paca_generator_create"), std::string::npos);
  // bad generator params
  paca_generator_params gp = paca_generator_params_default();
  gp.struct_size = 0;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  gp = paca_generator_params_default();
  gp.n_stop_strings = 1;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  const char* nulls[] = {nullptr};
  gp.stop_strings = nulls;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  gp = paca_generator_params_default();
  gp.logprobs = 2;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  gp = paca_generator_params_default();
  gp.detokenize_flags = 0x80;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  // stop strings on a model without a tokenizer (the random test model has none)
  gp = paca_generator_params_default();
  const char* stop[] = {"x"};
  gp.stop_strings = stop;
  gp.n_stop_strings = 1;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_STATE);
  // an empty stop string
  const char* empty[] = {""};
  gp.stop_strings = empty;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  // an id outside the vocabulary: the session is unchanged
  const int32_t bad[] = {1, 100000};
  EXPECT_EQ(paca_generator_create(s, bad, 2, nullptr, nullptr, &g), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(g, nullptr);
  EXPECT_EQ(paca_session_length(s), 0u);
  // every failure above left the session untouched
  EXPECT_EQ(paca_session_length(s), 0u);
  // NULL handles
  int32_t tok = 0;
  EXPECT_EQ(paca_generator_next(nullptr, &tok, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(tok, -1);
  EXPECT_EQ(paca_generator_stop_reason(nullptr), PACA_STOP_NONE);
  EXPECT_EQ(paca_generator_n_generated(nullptr), 0u);
  paca_token_logprobs lp;
  std::memset(&lp, 0, sizeof lp);
  EXPECT_EQ(paca_generator_logprobs(nullptr, &lp), PACA_ERR_INVALID_ARGUMENT);
  paca_generator_free(nullptr);
  ASSERT_EQ(paca_generator_create(s, prompt, 3, nullptr, nullptr, &g), PACA_OK);
  EXPECT_EQ(paca_generator_next(g, nullptr, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_generator_logprobs(g, &lp), PACA_ERR_INVALID_ARGUMENT);  // struct_size not set
  paca_generator_free(g);
  paca_session_free(s);
  paca_model_free(m);
}

}  // namespace
