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
  paca_session_params p;
  paca_session_params_init(&p, sizeof p);
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
  paca_generator_params gp;
  paca_generator_params_init(&gp, sizeof gp);
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
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
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
  paca_sampler_params greedy;
  paca_sampler_params_init(&greedy, sizeof greedy);
  paca_sampler_params sampled;
  paca_sampler_params_init(&sampled, sizeof sampled);
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
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
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
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
  sp.top_p = 2.0f;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, &sp, nullptr, &g), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("top_p"), std::string::npos) << paca_last_error();
  paca_sampler_params_init(&sp, sizeof sp);
  sp.n_stop_ids = 2;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, &sp, nullptr, &g), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("paca_generator_create"), std::string::npos);
  // bad generator params
  paca_generator_params gp;
  paca_generator_params_init(&gp, sizeof gp);
  gp.struct_size = 0;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  paca_generator_params_init(&gp, sizeof gp);
  gp.n_stop_strings = 1;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  const char* nulls[] = {nullptr};
  gp.stop_strings = nulls;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  paca_generator_params_init(&gp, sizeof gp);
  gp.logprobs = 2;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  paca_generator_params_init(&gp, sizeof gp);
  gp.detokenize_flags = 0x80;
  EXPECT_EQ(paca_generator_create(s, prompt, 3, nullptr, &gp, &g), PACA_ERR_INVALID_ARGUMENT);
  // stop strings on a model without a tokenizer (the random test model has none)
  paca_generator_params_init(&gp, sizeof gp);
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

// ---- batching (paca_generator_next_batch) ----------------------------------

namespace {

struct Request {
  std::string prompt;
  paca_sampler_params sp;
  std::vector<std::string> stops;
  size_t join_at;  // the batch step at which the request joins
};

// One request alone: paca_generator_next until the end.
Result run_alone(paca_model* m, const Request& q) {
  Result r;
  paca_session* s = new_session(m, 0);
  const auto prompt = tokenize(m, q.prompt);
  paca_generator_params gp;
  paca_generator_params_init(&gp, sizeof gp);
  const auto ptrs = c_strings(q.stops);
  gp.stop_strings = ptrs.data();
  gp.n_stop_strings = static_cast<int32_t>(ptrs.size());
  gp.logprobs = 1;
  paca_generator* g = nullptr;
  EXPECT_EQ(paca_generator_create(s, prompt.data(), prompt.size(), &q.sp, &gp, &g), PACA_OK) << paca_last_error();
  for (;;) {
    int32_t tok = -1;
    const char* text = nullptr;
    size_t len = 0;
    EXPECT_EQ(paca_generator_next(g, &tok, &text, &len), PACA_OK) << paca_last_error();
    if (tok < 0) break;
    r.tokens.push_back(tok);
    r.text.append(text, len);
    paca_token_logprobs lp{};
    lp.struct_size = sizeof lp;
    EXPECT_EQ(paca_generator_logprobs(g, &lp), PACA_OK);
    r.logprobs.push_back(lp.logprob);
    for (int k = 0; k < lp.n_top; ++k) r.logprobs.push_back(lp.top_logprobs[k]);
  }
  r.stop = paca_generator_stop_reason(g);
  paca_generator_free(g);
  paca_session_free(s);
  return r;
}

// All requests stepped together; each joins at its step and leaves when done.
std::vector<Result> run_batched(paca_model* m, const std::vector<Request>& qs, size_t* max_batch) {
  const size_t n = qs.size();
  std::vector<Result> out(n);
  std::vector<paca_session*> sessions(n, nullptr);
  std::vector<paca_generator*> gens(n, nullptr);
  std::vector<std::vector<const char*>> ptrs(n);
  std::vector<bool> finished(n, false);
  *max_batch = 0;
  for (size_t step = 0;; ++step) {
    for (size_t i = 0; i < n; ++i)
      if (qs[i].join_at == step) {
        sessions[i] = new_session(m, 0);
        const auto prompt = tokenize(m, qs[i].prompt);
        paca_generator_params gp;
        paca_generator_params_init(&gp, sizeof gp);
        ptrs[i] = c_strings(qs[i].stops);
        gp.stop_strings = ptrs[i].data();
        gp.n_stop_strings = static_cast<int32_t>(ptrs[i].size());
        gp.logprobs = 1;
        EXPECT_EQ(paca_generator_create(sessions[i], prompt.data(), prompt.size(), &qs[i].sp, &gp, &gens[i]), PACA_OK);
      }
    std::vector<paca_generator*> active;
    std::vector<size_t> which;
    for (size_t i = 0; i < n; ++i)
      if (gens[i] != nullptr && !finished[i]) {
        active.push_back(gens[i]);
        which.push_back(i);
      }
    bool waiting = false;
    for (size_t i = 0; i < n; ++i) waiting = waiting || qs[i].join_at > step;
    if (active.empty() && !waiting) break;
    *max_batch = std::max(*max_batch, active.size());
    std::vector<int32_t> toks(active.size());
    std::vector<const char*> texts(active.size());
    std::vector<size_t> lens(active.size());
    EXPECT_EQ(paca_generator_next_batch(active.data(), active.size(), toks.data(), texts.data(), lens.data()), PACA_OK)
        << paca_last_error();
    for (size_t a = 0; a < active.size(); ++a) {
      Result& r = out[which[a]];
      if (toks[a] < 0) {
        finished[which[a]] = true;
        r.stop = paca_generator_stop_reason(active[a]);
        continue;
      }
      r.tokens.push_back(toks[a]);
      r.text.append(texts[a], lens[a]);
      paca_token_logprobs lp{};
      lp.struct_size = sizeof lp;
      EXPECT_EQ(paca_generator_logprobs(active[a], &lp), PACA_OK);
      r.logprobs.push_back(lp.logprob);
      for (int k = 0; k < lp.n_top; ++k) r.logprobs.push_back(lp.top_logprobs[k]);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    paca_generator_free(gens[i]);
    paca_session_free(sessions[i]);
  }
  return out;
}

paca_sampler_params sampled(uint64_t seed, float temperature, int top_k, float top_p, int max_new) {
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
  sp.seed = seed;
  sp.temperature = temperature;
  sp.top_k = top_k;
  sp.top_p = top_p;
  sp.max_new_tokens = max_new;
  sp.n_top_logprobs = 3;
  return sp;
}

}  // namespace

// Issue 4's reproducibility: a request gives the same tokens, text, stop
// reason and log-probabilities (bit for bit) alone on a 1-thread model and
// inside a batch on a 2-thread model, whatever else is in the batch and
// whenever requests join and leave.
TEST(Generator, BatchedRequestsEqualRequestsAlone) {
  SKIP_WITHOUT_SHARED();
  const std::string path = test::shared_dir() + "/models/stories260K/stories260K.gguf";
  std::vector<Request> qs = {
      {"Once upon a time", sampled(0, 0.0f, 0, 1.0f, 40), {}, 0},                  // greedy
      {"The little dog", sampled(7, 0.9f, 40, 0.95f, 48), {}, 0},                  // sampled
      {"Lily liked to", sampled(123, 1.2f, 0, 0.9f, 30), {"."}, 0},                // stop string
      {"One day", sampled(7, 0.9f, 40, 0.95f, 25), {}, 5},                        // joins late, same seed as #1
      {"Tom and Sue", sampled(99, 0.7f, 10, 1.0f, 12), {}, 9},                     // joins later, leaves early
  };
  paca_model* one = test::load_or_die(path, 1);
  paca_model* two = test::load_or_die(path, 2);
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  std::vector<Result> alone;
  for (const Request& q : qs) alone.push_back(run_alone(one, q));
  size_t max_batch = 0;
  const std::vector<Result> batched = run_batched(two, qs, &max_batch);
  EXPECT_GE(max_batch, 4u) << "the requests should overlap";
  for (size_t i = 0; i < qs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i) + ": " + qs[i].prompt);
    EXPECT_FALSE(alone[i].tokens.empty());
    EXPECT_EQ(batched[i].tokens, alone[i].tokens);
    EXPECT_EQ(batched[i].text, alone[i].text);
    EXPECT_EQ(batched[i].stop, alone[i].stop);
    ASSERT_EQ(batched[i].logprobs.size(), alone[i].logprobs.size());
    EXPECT_EQ(0, std::memcmp(batched[i].logprobs.data(), alone[i].logprobs.data(), alone[i].logprobs.size() * sizeof(float)));
  }
  EXPECT_EQ(alone[2].stop, PACA_STOP_STRING) << "request 2 should end on its stop string";
  // the seeded requests really sample: request 1 differs from greedy decoding of its prompt
  Request greedy1 = qs[1];
  greedy1.sp = sampled(0, 0.0f, 0, 1.0f, 48);
  EXPECT_NE(run_alone(one, greedy1).tokens, alone[1].tokens);
  paca_model_free(one);
  paca_model_free(two);
}

TEST(Generator, BatchBadInput) {
  paca_model* m = test::load_or_die(test::make_small_model());
  paca_model* other = test::load_or_die(test::make_small_model(9));
  const int32_t prompt[] = {1, 5, 9};
  paca_session* s1 = new_session(m, 0);
  paca_session* s2 = new_session(m, 0);
  paca_session* s3 = new_session(other, 0);
  paca_generator *g1 = nullptr, *g2 = nullptr, *g1b = nullptr, *g3 = nullptr;
  ASSERT_EQ(paca_generator_create(s1, prompt, 3, nullptr, nullptr, &g1), PACA_OK);
  ASSERT_EQ(paca_generator_create(s2, prompt, 3, nullptr, nullptr, &g2), PACA_OK);
  ASSERT_EQ(paca_generator_create(s1, nullptr, 0, nullptr, nullptr, &g1b), PACA_OK);  // a second generator on s1
  ASSERT_EQ(paca_generator_create(s3, prompt, 3, nullptr, nullptr, &g3), PACA_OK);
  int32_t toks[3] = {7, 7, 7};
  EXPECT_EQ(paca_generator_next_batch(nullptr, 2, toks, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  paca_generator* pair[] = {g1, g2};
  EXPECT_EQ(paca_generator_next_batch(pair, 2, nullptr, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  paca_generator* with_null[] = {g1, nullptr};
  EXPECT_EQ(paca_generator_next_batch(with_null, 2, toks, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(toks[0], -1);
  paca_generator* twice[] = {g1, g1};
  EXPECT_EQ(paca_generator_next_batch(twice, 2, toks, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  paca_generator* shared[] = {g1, g1b};
  EXPECT_EQ(paca_generator_next_batch(shared, 2, toks, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("share a session"), std::string::npos) << paca_last_error();
  paca_generator* models[] = {g1, g3};
  EXPECT_EQ(paca_generator_next_batch(models, 2, toks, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("another model"), std::string::npos) << paca_last_error();
  // nothing above moved a session
  EXPECT_EQ(paca_session_length(s1), 3u);
  EXPECT_EQ(paca_session_length(s2), 3u);
  EXPECT_EQ(paca_generator_n_generated(g1), 0u);
  EXPECT_EQ(paca_generator_next_batch(pair, 0, nullptr, nullptr, nullptr), PACA_OK);  // an empty batch
  EXPECT_EQ(paca_generator_next_batch(pair, 2, toks, nullptr, nullptr), PACA_OK) << paca_last_error();
  EXPECT_EQ(paca_session_length(s1), 4u);
  EXPECT_EQ(paca_session_length(s2), 4u);
  EXPECT_EQ(toks[0], toks[1]) << "same prompt, greedy: same token";
  paca_generator_free(g1);
  paca_generator_free(g2);
  paca_generator_free(g1b);
  paca_generator_free(g3);
  paca_session_free(s1);
  paca_session_free(s2);
  paca_session_free(s3);
  paca_model_free(m);
  paca_model_free(other);
}
