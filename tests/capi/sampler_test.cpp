// sampler_test.cpp - sampling through paca.h: parameter validation, greedy
// equals argmax, same seed same tokens for any thread count and beside other
// sessions, rewind and resample, logprobs, logit bias, stop reasons, and the
// stop-string matcher across pieces.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

paca_sampler* make_sampler(paca_model* m, const paca_sampler_params& p) {
  paca_sampler* s = nullptr;
  EXPECT_EQ(paca_sampler_create(m, &p, &s), PACA_OK) << paca_last_error();
  return s;
}

paca_sampler_params sampling(uint64_t seed) {
  paca_sampler_params p;
  paca_sampler_params_init(&p, sizeof p);
  p.temperature = 0.9f;
  p.top_k = 40;
  p.top_p = 0.95f;
  p.min_p = 0.01f;
  p.repeat_penalty = 1.1f;
  p.frequency_penalty = 0.1f;
  p.presence_penalty = 0.1f;
  p.seed = seed;
  return p;
}

// Generates n tokens after `prompt` with sampler s on session ss.
std::vector<int32_t> generate(paca_session* ss, paca_sampler* s, const std::vector<int32_t>& prompt, int n) {
  std::vector<int32_t> out;
  EXPECT_EQ(paca_session_prefill(ss, prompt.data(), prompt.size()), PACA_OK) << paca_last_error();
  for (int i = 0; i < n; ++i) {
    int32_t tok = -1;
    EXPECT_EQ(paca_sampler_sample(s, ss, &tok, nullptr), PACA_OK) << paca_last_error();
    out.push_back(tok);
    EXPECT_EQ(paca_session_decode(ss, tok), PACA_OK) << paca_last_error();
  }
  return out;
}

std::vector<int32_t> generate_fresh(paca_model* m, uint64_t seed, const std::vector<int32_t>& prompt, int n) {
  paca_session* ss = nullptr;
  EXPECT_EQ(paca_session_create(m, nullptr, &ss), PACA_OK) << paca_last_error();
  paca_sampler* s = make_sampler(m, sampling(seed));
  std::vector<int32_t> out = generate(ss, s, prompt, n);
  paca_sampler_free(s);
  paca_session_free(ss);
  return out;
}

}  // namespace

TEST(SamplerAbi, DefaultsAndLayout) {
  paca_sampler_params p;
  paca_sampler_params_init(&p, sizeof p);
  EXPECT_EQ(p.struct_size, sizeof(paca_sampler_params));
  EXPECT_EQ(p.temperature, 0.0f);
  EXPECT_EQ(p.top_k, 0);
  EXPECT_EQ(p.top_p, 1.0f);
  EXPECT_EQ(p.min_p, 0.0f);
  EXPECT_EQ(p.repeat_penalty, 1.0f);
  EXPECT_EQ(p.repeat_last_n, 64);
  EXPECT_EQ(p.n_top_logprobs, 0);
  EXPECT_EQ(p.max_new_tokens, 0);
  EXPECT_EQ(p.stop_ids, nullptr);
  EXPECT_EQ(PACA_STOP_NONE, 0);
  EXPECT_EQ(PACA_STOP_CONTEXT_FULL, 5);
}

TEST(SamplerAbi, RejectsInvalidValuesNamingTheField) {
  paca_model* m = test::load_or_die(test::make_small_model());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    const char* field;
    void (*set)(paca_sampler_params&, float);
    float value;
  };
  const Case cases[] = {
      {"temperature", [](paca_sampler_params& p, float v) { p.temperature = v; }, -0.5f},
      {"temperature", [](paca_sampler_params& p, float v) { p.temperature = v; }, nan},
      {"top_p", [](paca_sampler_params& p, float v) { p.top_p = v; }, 0.0f},
      {"top_p", [](paca_sampler_params& p, float v) { p.top_p = v; }, 1.01f},
      {"top_p", [](paca_sampler_params& p, float v) { p.top_p = v; }, nan},
      {"min_p", [](paca_sampler_params& p, float v) { p.min_p = v; }, -0.1f},
      {"min_p", [](paca_sampler_params& p, float v) { p.min_p = v; }, 1.5f},
      {"min_p", [](paca_sampler_params& p, float v) { p.min_p = v; }, nan},
      {"repeat_penalty", [](paca_sampler_params& p, float v) { p.repeat_penalty = v; }, 0.0f},
      {"frequency_penalty", [](paca_sampler_params& p, float v) { p.frequency_penalty = v; }, nan},
      {"presence_penalty", [](paca_sampler_params& p, float v) { p.presence_penalty = v; }, nan},
      {"top_k", [](paca_sampler_params& p, float v) { p.top_k = static_cast<int32_t>(v); }, -1.0f},
      {"repeat_last_n", [](paca_sampler_params& p, float v) { p.repeat_last_n = static_cast<int32_t>(v); }, -2.0f},
      {"n_top_logprobs", [](paca_sampler_params& p, float v) { p.n_top_logprobs = static_cast<int32_t>(v); }, 21.0f},
      {"max_new_tokens", [](paca_sampler_params& p, float v) { p.max_new_tokens = static_cast<int32_t>(v); }, -1.0f},
  };
  for (const Case& c : cases) {
    paca_sampler_params p;
    paca_sampler_params_init(&p, sizeof p);
    c.set(p, c.value);
    paca_sampler* s = reinterpret_cast<paca_sampler*>(&p);  // must be overwritten with NULL
    EXPECT_EQ(paca_sampler_create(m, &p, &s), PACA_ERR_INVALID_ARGUMENT) << c.field << " = " << c.value;
    EXPECT_EQ(s, nullptr);
    EXPECT_NE(std::string(paca_last_error()).find(c.field), std::string::npos) << paca_last_error();
  }
  paca_sampler_params p;
  paca_sampler_params_init(&p, sizeof p);
  const int32_t bad_stop = 300;  // the vocabulary is 300
  p.stop_ids = &bad_stop;
  p.n_stop_ids = 1;
  paca_sampler* s = nullptr;
  EXPECT_EQ(paca_sampler_create(m, &p, &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("stop_ids"), std::string::npos) << paca_last_error();
  paca_sampler_params_init(&p, sizeof p);
  p.struct_size = 0;
  EXPECT_EQ(paca_sampler_create(m, &p, &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_sampler_create(nullptr, nullptr, &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_sampler_create(m, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  // an older caller's smaller struct: fields past struct_size take their defaults
  paca_sampler_params_init(&p, sizeof p);
  p.struct_size = offsetof(paca_sampler_params, top_k);
  p.temperature = 0.5f;
  p.top_p = -3.0f;  // past struct_size: ignored
  ASSERT_EQ(paca_sampler_create(m, &p, &s), PACA_OK) << paca_last_error();
  paca_sampler_free(s);
  paca_sampler_free(nullptr);
  paca_model_free(m);
}

TEST(SamplerAbi, GreedyIsTheArgmaxAndNeedsLogits) {
  paca_model* m = test::load_or_die(test::make_small_model());
  paca_session* ss = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &ss), PACA_OK);
  paca_sampler* s = nullptr;
  ASSERT_EQ(paca_sampler_create(m, nullptr, &s), PACA_OK) << paca_last_error();
  int32_t tok = 5;
  EXPECT_EQ(paca_sampler_sample(s, ss, &tok, nullptr), PACA_ERR_STATE);  // nothing run yet
  EXPECT_EQ(tok, -1);
  const int32_t prompt[] = {1, 5, 9};
  ASSERT_EQ(paca_session_prefill(ss, prompt, 3), PACA_OK);
  const float* lg = nullptr;
  size_t nv = 0;
  ASSERT_EQ(paca_session_logits(ss, &lg, &nv), PACA_OK);
  size_t best = 0;
  for (size_t i = 1; i < nv; ++i)
    if (lg[i] > lg[best]) best = i;
  ASSERT_EQ(paca_sampler_sample(s, ss, &tok, nullptr), PACA_OK) << paca_last_error();
  EXPECT_EQ(tok, static_cast<int32_t>(best));
  // the same through sample_logits; a wrong vocabulary size is refused
  ASSERT_EQ(paca_sampler_sample_logits(s, lg, nv, prompt, 3, &tok, nullptr), PACA_OK);
  EXPECT_EQ(tok, static_cast<int32_t>(best));
  EXPECT_EQ(paca_sampler_sample_logits(s, lg, nv - 1, prompt, 3, &tok, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_sampler_sample_logits(s, nullptr, nv, prompt, 3, &tok, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_sampler_sample_logits(s, lg, nv, nullptr, 3, &tok, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_sampler_sample(nullptr, ss, &tok, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_sampler_sample(s, nullptr, &tok, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_sampler_sample(s, ss, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  // a bias that bans the argmax: the runner-up wins
  const int32_t ban_id = static_cast<int32_t>(best);
  const float ban = -INFINITY;
  ASSERT_EQ(paca_sampler_set_logit_bias(s, &ban_id, &ban, 1), PACA_OK);
  size_t second = best == 0 ? 1 : 0;
  for (size_t i = 0; i < nv; ++i)
    if (i != best && lg[i] > lg[second]) second = i;
  ASSERT_EQ(paca_sampler_sample(s, ss, &tok, nullptr), PACA_OK);
  EXPECT_EQ(tok, static_cast<int32_t>(second));
  const float nan = NAN;
  const int32_t out_of_vocab = 300;
  const float one = 1.0f;
  EXPECT_EQ(paca_sampler_set_logit_bias(s, &ban_id, &nan, 1), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_sampler_set_logit_bias(s, &out_of_vocab, &one, 1), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_sampler_set_logit_bias(s, nullptr, &one, 1), PACA_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(paca_sampler_sample(s, ss, &tok, nullptr), PACA_OK);
  EXPECT_EQ(tok, static_cast<int32_t>(second)) << "a refused table must leave the old one";
  ASSERT_EQ(paca_sampler_set_logit_bias(s, nullptr, nullptr, 0), PACA_OK);  // clear
  ASSERT_EQ(paca_sampler_sample(s, ss, &tok, nullptr), PACA_OK);
  EXPECT_EQ(tok, static_cast<int32_t>(best));
  paca_sampler_free(s);
  paca_session_free(ss);
  paca_model_free(m);
}

TEST(SamplerAbi, SameSeedSameTokensForAnyThreadCount) {
  const std::string dir = test::make_small_model();
  const std::vector<int32_t> prompt{1, 17, 42, 99};
  std::vector<int32_t> ref;
  for (int threads : {1, 3}) {
    paca_model* m = test::load_or_die(dir, threads);
    std::vector<int32_t> out = generate_fresh(m, 1234, prompt, 24);
    if (ref.empty()) {
      ref = out;
    } else {
      EXPECT_EQ(out, ref) << threads << " threads";
    }
    // another seed gives another sequence
    EXPECT_NE(generate_fresh(m, 99, prompt, 24), ref);
    paca_model_free(m);
  }
}

TEST(SamplerAbi, SameSeedSameTokensBesideAnotherSession) {
  const std::string dir = test::make_small_model();
  paca_model* m = test::load_or_die(dir, 2);
  const std::vector<int32_t> prompt{1, 17, 42, 99};
  const std::vector<int32_t> alone = generate_fresh(m, 555, prompt, 20);
  // the same request interleaved step by step with a different one on the same model
  paca_session *a = nullptr, *b = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &a), PACA_OK);
  ASSERT_EQ(paca_session_create(m, nullptr, &b), PACA_OK);
  paca_sampler* sa = make_sampler(m, sampling(555));
  paca_sampler* sb = make_sampler(m, sampling(7));
  ASSERT_EQ(paca_session_prefill(a, prompt.data(), prompt.size()), PACA_OK);
  const int32_t other[] = {3, 4, 5, 6, 7, 8};
  ASSERT_EQ(paca_session_prefill(b, other, 6), PACA_OK);
  std::vector<int32_t> beside;
  for (int i = 0; i < 20; ++i) {
    int32_t ta = -1, tb = -1;
    ASSERT_EQ(paca_sampler_sample(sb, b, &tb, nullptr), PACA_OK);
    ASSERT_EQ(paca_session_decode(b, tb), PACA_OK);
    ASSERT_EQ(paca_sampler_sample(sa, a, &ta, nullptr), PACA_OK);
    ASSERT_EQ(paca_session_decode(a, ta), PACA_OK);
    beside.push_back(ta);
  }
  EXPECT_EQ(beside, alone);
  // rewinding to a position and sampling again gives the same token there
  ASSERT_EQ(paca_session_rewind(a, prompt.size() + 8), PACA_OK);
  ASSERT_EQ(paca_session_decode(a, alone[8]), PACA_OK);  // the logits of position prompt + 9 again
  int32_t again = -1;
  ASSERT_EQ(paca_sampler_sample(sa, a, &again, nullptr), PACA_OK);
  EXPECT_EQ(again, alone[9]);
  paca_sampler_free(sa);
  paca_sampler_free(sb);
  paca_session_free(a);
  paca_session_free(b);
  paca_model_free(m);
}

TEST(SamplerAbi, LogprobsThroughTheAbi) {
  paca_model* m = test::load_or_die(test::make_small_model());
  paca_session* ss = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &ss), PACA_OK);
  const int32_t prompt[] = {1, 5, 9};
  ASSERT_EQ(paca_session_prefill(ss, prompt, 3), PACA_OK);
  const float* lg = nullptr;
  size_t nv = 0;
  ASSERT_EQ(paca_session_logits(ss, &lg, &nv), PACA_OK);
  double mx = lg[0];
  for (size_t i = 0; i < nv; ++i) mx = std::max(mx, static_cast<double>(lg[i]));
  double z = 0;
  for (size_t i = 0; i < nv; ++i) z += std::exp(lg[i] - mx);
  const double lse = mx + std::log(z);

  paca_sampler_params p = sampling(3);
  p.repeat_last_n = 0;  // no penalties: the log-probabilities are those of the raw logits
  p.n_top_logprobs = 5;
  paca_sampler* s = make_sampler(m, p);
  paca_token_logprobs lp;
  std::memset(&lp, 0, sizeof lp);
  lp.struct_size = sizeof lp;
  int32_t tok = -1;
  ASSERT_EQ(paca_sampler_sample(s, ss, &tok, &lp), PACA_OK) << paca_last_error();
  EXPECT_EQ(lp.struct_size, sizeof lp);
  EXPECT_EQ(lp.token, tok);
  EXPECT_NEAR(lp.logprob, lg[tok] - lse, 1e-5);
  ASSERT_EQ(lp.n_top, 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(lp.top_logprobs[i], lg[lp.top_tokens[i]] - lse, 1e-5);
    if (i > 0) {
      EXPECT_GE(lp.top_logprobs[i - 1], lp.top_logprobs[i]);
    }
  }
  size_t best = 0;
  for (size_t i = 1; i < nv; ++i)
    if (lg[i] > lg[best]) best = i;
  EXPECT_EQ(lp.top_tokens[0], static_cast<int32_t>(best));
  // an older, smaller struct: fields past its size are left alone
  paca_token_logprobs small;
  std::memset(&small, 0x5a, sizeof small);
  small.struct_size = offsetof(paca_token_logprobs, n_top);
  ASSERT_EQ(paca_sampler_sample(s, ss, &tok, &small), PACA_OK);
  EXPECT_EQ(small.token, tok);
  int32_t untouched;
  std::memset(&untouched, 0x5a, sizeof untouched);
  EXPECT_EQ(small.n_top, untouched);
  small.struct_size = 0;
  EXPECT_EQ(paca_sampler_sample(s, ss, &tok, &small), PACA_ERR_INVALID_ARGUMENT);
  paca_sampler_free(s);
  paca_session_free(ss);
  paca_model_free(m);
}

TEST(SamplerAbi, StopReasons) {
  paca_model* m = test::load_or_die(test::make_small_model());
  paca_model_info info{};
  info.struct_size = sizeof info;
  ASSERT_EQ(paca_model_get_info(m, &info), PACA_OK);
  ASSERT_GE(info.n_eos_ids, 1);
  const int32_t eos = info.eos_ids[0];
  paca_sampler_params p;
  paca_sampler_params_init(&p, sizeof p);
  const int32_t stops[] = {11, 12};
  p.stop_ids = stops;
  p.n_stop_ids = 2;
  p.max_new_tokens = 8;
  paca_sampler* s = make_sampler(m, p);
  EXPECT_EQ(paca_sampler_stop_reason(s, eos, 1), PACA_STOP_EOS);
  EXPECT_EQ(paca_sampler_stop_reason(s, 12, 1), PACA_STOP_TOKEN);
  EXPECT_EQ(paca_sampler_stop_reason(s, 13, 7), PACA_STOP_NONE);
  EXPECT_EQ(paca_sampler_stop_reason(s, 13, 8), PACA_STOP_MAX_TOKENS);
  EXPECT_EQ(paca_sampler_stop_reason(nullptr, eos, 1), PACA_STOP_NONE);
  paca_sampler_free(s);
  p.ignore_eos = 1;
  p.max_new_tokens = 0;
  s = make_sampler(m, p);
  EXPECT_EQ(paca_sampler_stop_reason(s, eos, 1), PACA_STOP_NONE);
  EXPECT_EQ(paca_sampler_stop_reason(s, 13, 1000000), PACA_STOP_NONE);
  paca_sampler_free(s);
  paca_model_free(m);
}

TEST(StopMatcherAbi, StopStringAcrossThreePieces) {
  const char* stops[] = {"\nUser:", "<|eot|>"};
  paca_stop_matcher* mt = nullptr;
  ASSERT_EQ(paca_stop_matcher_create(stops, nullptr, 2, &mt), PACA_OK) << paca_last_error();
  std::string shown;
  int32_t idx = -7;
  const char* text = nullptr;
  size_t len = 0;
  for (const char* piece : {"Sure, here", " it is.\nU", "se", "r: more", " and more"}) {
    ASSERT_EQ(paca_stop_matcher_feed(mt, piece, std::strlen(piece), &text, &len, &idx), PACA_OK);
    shown.append(text, len);
  }
  EXPECT_EQ(shown, "Sure, here it is.");
  EXPECT_EQ(idx, 0);
  ASSERT_EQ(paca_stop_matcher_flush(mt, &text, &len), PACA_OK);
  EXPECT_EQ(len, 0u);
  // reset, then a generation that ends for another reason releases held text
  paca_stop_matcher_reset(mt);
  shown.clear();
  ASSERT_EQ(paca_stop_matcher_feed(mt, "done <|eo", 9, &text, &len, &idx), PACA_OK);
  shown.append(text, len);
  EXPECT_EQ(idx, -1);
  EXPECT_EQ(shown, "done ");
  ASSERT_EQ(paca_stop_matcher_flush(mt, &text, &len), PACA_OK);
  shown.append(text, len);
  EXPECT_EQ(shown, "done <|eo");
  paca_stop_matcher_free(mt);

  // explicit lengths (a stop string with a NUL byte inside), bad input
  const char* bin[] = {"a\0b"};
  const size_t lens[] = {3};
  ASSERT_EQ(paca_stop_matcher_create(bin, lens, 1, &mt), PACA_OK);
  ASSERT_EQ(paca_stop_matcher_feed(mt, "xa\0by", 5, &text, &len, nullptr), PACA_OK);
  EXPECT_EQ(std::string(text, len), "x");
  EXPECT_EQ(paca_stop_matcher_feed(mt, nullptr, 1, &text, &len, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_stop_matcher_feed(mt, "x", 1, nullptr, &len, nullptr), PACA_ERR_INVALID_ARGUMENT);
  paca_stop_matcher_free(mt);
  const char* empty[] = {"ok", ""};
  EXPECT_EQ(paca_stop_matcher_create(empty, nullptr, 2, &mt), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(mt, nullptr);
  EXPECT_EQ(paca_stop_matcher_create(nullptr, nullptr, 1, &mt), PACA_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(paca_stop_matcher_create(nullptr, nullptr, 0, &mt), PACA_OK);  // passes text through
  ASSERT_EQ(paca_stop_matcher_feed(mt, "abc", 3, &text, &len, &idx), PACA_OK);
  EXPECT_EQ(std::string(text, len), "abc");
  paca_stop_matcher_free(mt);
  paca_stop_matcher_free(nullptr);
  paca_stop_matcher_reset(nullptr);
}
