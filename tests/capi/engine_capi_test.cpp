// engine_capi_test.cpp - the engine through the C ABI (paca.h only): polled
// and callback requests give a paca_generator's tokens and text, stop
// strings and logprobs come through, statistics, and every entry point
// refuses bad arguments with a clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

struct Out {
  std::vector<int32_t> tokens;
  std::string text;
  std::vector<float> logprobs;
  paca_stop_reason reason = PACA_STOP_NONE;
  paca_status status = PACA_OK;
  uint32_t n_cached = 0;
};

paca_sampler_params sampling(uint64_t seed, int32_t max_new) {
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
  sp.temperature = 0.8f;
  sp.top_k = 50;
  sp.seed = seed;
  sp.max_new_tokens = max_new;
  sp.ignore_eos = 1;
  return sp;
}

std::vector<int32_t> prompt_of(size_t n, uint32_t seed, int32_t vocab) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    t.push_back(static_cast<int32_t>((seed >> 9) % static_cast<uint32_t>(vocab)));
  }
  return t;
}

// A paca_generator's run, with the same stop strings and logprobs.
Out alone(paca_model* m, const std::vector<int32_t>& prompt, const paca_sampler_params& sp,
          const std::vector<const char*>& stops, bool logprobs) {
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  paca_generator_params gp;
  paca_generator_params_init(&gp, sizeof gp);
  gp.stop_strings = stops.data();
  gp.n_stop_strings = static_cast<int32_t>(stops.size());
  gp.logprobs = logprobs ? 1 : 0;
  paca_generator* g = nullptr;
  EXPECT_EQ(paca_generator_create(s, prompt.data(), prompt.size(), &sp, &gp, &g), PACA_OK) << paca_last_error();
  Out o;
  while (g != nullptr && paca_generator_stop_reason(g) == PACA_STOP_NONE) {
    int32_t tok;
    const char* t;
    size_t len;
    EXPECT_EQ(paca_generator_next(g, &tok, &t, &len), PACA_OK) << paca_last_error();
    o.tokens.push_back(tok);
    o.text.append(t, len);
    if (logprobs) {
      paca_token_logprobs lp{};
      lp.struct_size = sizeof lp;
      EXPECT_EQ(paca_generator_logprobs(g, &lp), PACA_OK);
      o.logprobs.push_back(lp.logprob);
    }
  }
  if (g != nullptr) o.reason = paca_generator_stop_reason(g);
  paca_generator_free(g);
  paca_session_free(s);
  return o;
}

void add(Out& o, const paca_request_event& ev, bool logprobs) {
  if (ev.token >= 0) {
    o.tokens.push_back(ev.token);
    if (logprobs) o.logprobs.push_back(ev.logprob);
  }
  o.text.append(ev.text, ev.text_len);
  if (ev.stop_reason != PACA_STOP_NONE) o.reason = ev.stop_reason;
  o.status = ev.status;
  o.n_cached = ev.n_cached;
}

Out drain(paca_engine* e, paca_request_id id, bool logprobs) {
  Out o;
  for (;;) {
    paca_request_event ev{};
    ev.struct_size = sizeof ev;
    const paca_status st = paca_engine_poll(e, id, 60000, &ev);
    EXPECT_EQ(st, PACA_OK) << paca_last_error();
    if (st != PACA_OK) return o;
    EXPECT_EQ(ev.id, id);
    add(o, ev, logprobs);
    if (ev.stop_reason != PACA_STOP_NONE || ev.status != PACA_OK) {
      EXPECT_GT(ev.total_ms, 0.0);
      EXPECT_EQ(ev.n_generated, o.tokens.size());
      return o;
    }
  }
}

TEST(EngineCapi, PolledRequestsGiveAGeneratorsTokensTextAndLogprobs) {
  SKIP_WITHOUT_SHARED();
  // a real tokenizer: text and stop strings
  for (const char* name : {"tiny-llama3", "stories260K/stories260K.gguf"}) {
    paca_model* m = test::load_or_die(test::shared_dir() + "/models/" + name, 1);
    paca_model_info info{};
    info.struct_size = sizeof info;
    ASSERT_EQ(paca_model_get_info(m, &info), PACA_OK);
    paca_engine_params ep;
    paca_engine_params_init(&ep, sizeof ep);
    ep.max_step_tokens = 24;
    paca_engine* e = nullptr;
    ASSERT_EQ(paca_engine_create(m, &ep, &e), PACA_OK) << paca_last_error();
    const std::vector<const char*> stops = {"e t", "\n\n"};
    std::vector<std::vector<int32_t>> prompts;
    std::vector<paca_request_id> ids;
    for (uint32_t i = 0; i < 5; ++i) {
      prompts.push_back(prompt_of(3 + 11 * i, i + 1, static_cast<int32_t>(info.n_vocab)));
      paca_sampler_params sp = sampling(i, 30);
      paca_request_params rp;
      paca_request_params_init(&rp, sizeof rp);
      rp.stop_strings = stops.data();
      rp.n_stop_strings = 2;
      rp.logprobs = 1;
      paca_request_id id = 0;
      ASSERT_EQ(paca_engine_submit(e, prompts[i].data(), prompts[i].size(), &sp, &rp, &id), PACA_OK)
          << paca_last_error();
      ids.push_back(id);
    }
    for (uint32_t i = 0; i < 5; ++i) {
      const Out got = drain(e, ids[i], true);
      const Out want = alone(m, prompts[i], sampling(i, 30), stops, true);
      EXPECT_EQ(got.status, PACA_OK);
      EXPECT_EQ(got.tokens, want.tokens) << name << " request " << i;
      EXPECT_EQ(got.text, want.text) << name << " request " << i;
      EXPECT_EQ(got.reason, want.reason);
      EXPECT_EQ(got.logprobs, want.logprobs);
    }
    paca_engine_stats st{};
    st.struct_size = sizeof st;
    ASSERT_EQ(paca_engine_get_stats(e, &st), PACA_OK);
    EXPECT_EQ(st.n_submitted, 5u);
    EXPECT_EQ(st.n_finished, 5u);
    EXPECT_EQ(st.kv_block_tokens, 16u);
    EXPECT_GT(st.n_generated_tokens, 0u);
    paca_engine_free(e);
    paca_model_free(m);
  }
}

// Constrained requests (grammar, JSON schema) run in the batch like any
// other: the sampler's mask comes along, and the text follows the grammar.
TEST(EngineCapi, GrammarsAndSchemasConstrainBatchedRequests) {
  SKIP_WITHOUT_SHARED();
  paca_model* m = test::load_or_die(test::shared_dir() + "/models/tiny-llama3", 1);
  paca_engine* e = nullptr;
  ASSERT_EQ(paca_engine_create(m, nullptr, &e), PACA_OK) << paca_last_error();
  const std::vector<int32_t> prompt = {128000, 16533, 25};  // <|begin_of_text|> "Answer:"
  std::vector<paca_sampler_params> sps;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    paca_sampler_params sp;
    paca_sampler_params_init(&sp, sizeof sp);
    sp.temperature = 1.0f;
    sp.seed = seed;
    sp.max_new_tokens = 60;
    if (seed == 3)
      sp.json_schema = R"({"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"],"additionalProperties":false})";
    else
      sp.grammar = "root ::= (\"yes\" | \"no\") (\", \" (\"yes\" | \"no\")){0,3} \".\"";
    sps.push_back(sp);
  }
  std::vector<paca_request_id> ids;
  for (const paca_sampler_params& sp : sps) {
    paca_request_id id = 0;
    ASSERT_EQ(paca_engine_submit(e, prompt.data(), prompt.size(), &sp, nullptr, &id), PACA_OK) << paca_last_error();
    ids.push_back(id);
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const Out got = drain(e, ids[i], false);
    const Out want = alone(m, prompt, sps[i], {}, false);
    EXPECT_EQ(got.status, PACA_OK);
    EXPECT_EQ(got.reason, PACA_STOP_EOS) << got.text;  // the grammar ended the text
    EXPECT_EQ(got.text, want.text);
    EXPECT_EQ(got.tokens, want.tokens);
    if (i == 2) {
      const nlohmann::json j = nlohmann::json::parse(got.text, nullptr, false);
      EXPECT_TRUE(j.is_object() && j.size() == 1 && j.contains("ok") && j["ok"].is_boolean()) << got.text;
    } else {
      EXPECT_TRUE(got.text.rfind("yes", 0) == 0 || got.text.rfind("no", 0) == 0) << got.text;
      EXPECT_EQ(got.text.back(), '.') << got.text;
    }
  }
  paca_engine_free(e);
  paca_model_free(m);
}

struct Collected {
  std::mutex mu;
  std::condition_variable cv;
  std::map<paca_request_id, Out> out;
  size_t ended = 0;
};

void on_event(const paca_request_event* ev, void* user) {
  auto* c = static_cast<Collected*>(user);
  std::lock_guard<std::mutex> lock(c->mu);
  add(c->out[ev->id], *ev, false);
  if (ev->stop_reason != PACA_STOP_NONE || ev->status != PACA_OK) {
    ++c->ended;
    c->cv.notify_all();
  }
}

TEST(EngineCapi, CallbacksAndASharedPrefix) {
  paca_model* m = test::load_or_die(test::make_small_model(), 1);
  paca_engine* e = nullptr;
  ASSERT_EQ(paca_engine_create(m, nullptr, &e), PACA_OK) << paca_last_error();
  Collected c;
  const std::vector<int32_t> system = prompt_of(32, 9, 300);
  std::vector<std::vector<int32_t>> prompts;
  std::map<paca_request_id, size_t> which;
  for (uint32_t i = 0; i < 4; ++i) {
    std::vector<int32_t> p = system;
    for (int32_t t : prompt_of(5 + i, 50 + i, 300)) p.push_back(t);
    prompts.push_back(p);
  }
  // the first alone, so that the others find its blocks
  for (uint32_t i = 0; i < 4; ++i) {
    paca_sampler_params sp = sampling(i, 16);
    paca_request_params rp;
    paca_request_params_init(&rp, sizeof rp);
    rp.callback = on_event;
    rp.user_data = &c;
    paca_request_id id = 0;
    ASSERT_EQ(paca_engine_submit(e, prompts[i].data(), prompts[i].size(), &sp, &rp, &id), PACA_OK);
    which[id] = i;
    if (i == 0) {
      std::unique_lock<std::mutex> lock(c.mu);
      ASSERT_TRUE(c.cv.wait_for(lock, std::chrono::seconds(60), [&] { return c.ended == 1; }));
    }
  }
  {
    std::unique_lock<std::mutex> lock(c.mu);
    ASSERT_TRUE(c.cv.wait_for(lock, std::chrono::seconds(60), [&] { return c.ended == 4; }));
  }
  for (const auto& [id, i] : which) {
    const Out want = alone(m, prompts[i], sampling(i, 16), {}, false);
    EXPECT_EQ(c.out[id].status, PACA_OK);
    EXPECT_EQ(c.out[id].tokens, want.tokens) << "request " << i;
    EXPECT_EQ(c.out[id].reason, PACA_STOP_MAX_TOKENS);
    if (i > 0) {
      EXPECT_EQ(c.out[id].n_cached, 32u) << "request " << i;
    }
  }
  // polling a callback request is refused
  paca_request_event ev{};
  ev.struct_size = sizeof ev;
  EXPECT_EQ(paca_engine_poll(e, which.begin()->first, 0, &ev), PACA_ERR_INVALID_ARGUMENT);
  paca_engine_free(e);
  paca_model_free(m);
}

// A request's logit bias (paca_request_params.logit_bias_*) reaches its
// sampler: greedy decoding with the prompt's best next token banned (-inf)
// starts with the best of the others, read from the session's logits here;
// a large bias on one token makes it the first token; other requests in the
// same batch are not affected; bad entries are refused naming the entry.
TEST(EngineCapi, LogitBiasReachesTheRequestsSampler) {
  paca_model* m = test::load_or_die(test::make_small_model(), 1);
  paca_model_info info{};
  info.struct_size = sizeof info;
  ASSERT_EQ(paca_model_get_info(m, &info), PACA_OK);
  const std::vector<int32_t> prompt = prompt_of(9, 5, static_cast<int32_t>(info.n_vocab));
  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  ASSERT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK);
  const float* logits = nullptr;
  size_t n = 0;
  ASSERT_EQ(paca_session_logits(s, &logits, &n), PACA_OK);
  std::vector<int32_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  ASSERT_GT(logits[order[1]], logits[order[2]]) << "the test needs a unique second best";
  const int32_t best = order[0], second = order[1], worst = order[n - 1];
  paca_session_free(s);

  paca_engine* e = nullptr;
  ASSERT_EQ(paca_engine_create(m, nullptr, &e), PACA_OK) << paca_last_error();
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
  sp.temperature = 0;
  sp.max_new_tokens = 4;
  sp.ignore_eos = 1;
  const auto run = [&](std::vector<int32_t> ids, std::vector<float> biases) {
    paca_request_params rp;
    paca_request_params_init(&rp, sizeof rp);
    rp.logit_bias_tokens = ids.data();
    rp.logit_bias_values = biases.data();
    rp.n_logit_bias = static_cast<int32_t>(ids.size());
    paca_request_id id = 0;
    EXPECT_EQ(paca_engine_submit(e, prompt.data(), prompt.size(), &sp, &rp, &id), PACA_OK) << paca_last_error();
    return id;
  };
  const paca_request_id plain = run({}, {}), banned = run({best}, {-INFINITY}),
                        forced = run({worst, best}, {1e4f, -1.0f});
  const Out a = drain(e, plain, false), b = drain(e, banned, false), c = drain(e, forced, false);
  ASSERT_FALSE(a.tokens.empty());
  EXPECT_EQ(a.tokens[0], best);
  ASSERT_FALSE(b.tokens.empty());
  EXPECT_EQ(b.tokens[0], second);
  for (int32_t t : b.tokens) EXPECT_NE(t, best) << "a banned token was generated";
  ASSERT_FALSE(c.tokens.empty());
  EXPECT_EQ(c.tokens[0], worst);

  paca_request_params rp;
  paca_request_params_init(&rp, sizeof rp);
  const int32_t bad_id[2] = {1, static_cast<int32_t>(info.n_vocab)};
  const float ok_bias[2] = {1.0f, 2.0f}, nan_bias[1] = {NAN};
  paca_request_id id = 0;
  rp.logit_bias_tokens = bad_id;
  rp.logit_bias_values = ok_bias;
  rp.n_logit_bias = 2;
  EXPECT_EQ(paca_engine_submit(e, prompt.data(), prompt.size(), &sp, &rp, &id), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(paca_last_error(), "outside the vocabulary"), nullptr) << paca_last_error();
  rp.n_logit_bias = 1;
  rp.logit_bias_values = nan_bias;
  EXPECT_EQ(paca_engine_submit(e, prompt.data(), prompt.size(), &sp, &rp, &id), PACA_ERR_INVALID_ARGUMENT);
  rp.logit_bias_values = nullptr;
  EXPECT_EQ(paca_engine_submit(e, prompt.data(), prompt.size(), &sp, &rp, &id), PACA_ERR_INVALID_ARGUMENT);
  rp.n_logit_bias = -1;
  EXPECT_EQ(paca_engine_submit(e, prompt.data(), prompt.size(), &sp, &rp, &id), PACA_ERR_INVALID_ARGUMENT);
  paca_engine_free(e);
  paca_model_free(m);
}

TEST(EngineCapi, BadArgumentsAreRefusedClearly) {
  paca_model* m = test::load_or_die(test::make_small_model(), 1);
  paca_engine* e = nullptr;
  EXPECT_EQ(paca_engine_create(nullptr, nullptr, &e), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_engine_create(m, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  paca_engine_params ep;
  paca_engine_params_init(&ep, sizeof ep);
  ep.struct_size = 0;
  EXPECT_EQ(paca_engine_create(m, &ep, &e), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(paca_last_error(), "struct_size"), nullptr);
  for (int field = 0; field < 5; ++field) {
    paca_engine_params_init(&ep, sizeof ep);
    if (field == 0) ep.max_running = 0;
    if (field == 1) ep.max_step_tokens = -3;
    if (field == 2) ep.max_queued = -1;
    if (field == 3) ep.n_ctx = 1 << 30;
    if (field == 4) ep.prefix_cache = 2;
    EXPECT_NE(paca_engine_create(m, &ep, &e), PACA_OK) << "field " << field;
    EXPECT_EQ(e, nullptr);
  }
  paca_engine_params_init(&ep, sizeof ep);
  ep.manual_step = 1;
  ep.max_queued = 1;
  ASSERT_EQ(paca_engine_create(m, &ep, &e), PACA_OK) << paca_last_error();
  const int32_t prompt[3] = {1, 2, 3};
  paca_request_id id = 0;
  EXPECT_EQ(paca_engine_submit(e, nullptr, 3, nullptr, nullptr, &id), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_engine_submit(e, prompt, 0, nullptr, nullptr, &id), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_engine_submit(e, prompt, 3, nullptr, nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_engine_submit(nullptr, prompt, 3, nullptr, nullptr, &id), PACA_ERR_INVALID_ARGUMENT);
  const int32_t bad[2] = {1, 300};
  EXPECT_EQ(paca_engine_submit(e, bad, 2, nullptr, nullptr, &id), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(paca_last_error(), "outside the vocabulary"), nullptr) << paca_last_error();
  paca_request_params rp;
  paca_request_params_init(&rp, sizeof rp);
  rp.n_stop_strings = 1;  // and no strings
  EXPECT_EQ(paca_engine_submit(e, prompt, 3, nullptr, &rp, &id), PACA_ERR_INVALID_ARGUMENT);
  paca_request_params_init(&rp, sizeof rp);
  rp.logprobs = 7;
  EXPECT_EQ(paca_engine_submit(e, prompt, 3, nullptr, &rp, &id), PACA_ERR_INVALID_ARGUMENT);
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
  sp.top_p = 5.0f;
  EXPECT_EQ(paca_engine_submit(e, prompt, 3, &sp, nullptr, &id), PACA_ERR_INVALID_ARGUMENT);
  sp = sampling(1, 4);
  ASSERT_EQ(paca_engine_submit(e, prompt, 3, &sp, nullptr, &id), PACA_OK) << paca_last_error();
  paca_request_id id2 = 0;
  EXPECT_EQ(paca_engine_submit(e, prompt, 3, &sp, nullptr, &id2), PACA_ERR_BUSY);  // max_queued 1
  paca_request_event ev{};
  ev.struct_size = sizeof ev;
  EXPECT_EQ(paca_engine_poll(e, id, 0, &ev), PACA_ERR_TIMEOUT);  // manual: nothing ran yet
  EXPECT_EQ(paca_engine_poll(e, id + 100, 0, &ev), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_engine_poll(e, id, 0, nullptr), PACA_ERR_INVALID_ARGUMENT);
  size_t active = 0;
  int steps = 0;
  do {
    ASSERT_EQ(paca_engine_step(e, &active), PACA_OK);
  } while (active > 0 && ++steps < 100);
  EXPECT_EQ(active, 0u);
  Out o = drain(e, id, false);
  EXPECT_EQ(o.tokens.size(), 4u);
  EXPECT_EQ(paca_engine_poll(e, id, 0, &ev), PACA_ERR_INVALID_ARGUMENT);  // ended and forgotten
  EXPECT_EQ(paca_engine_cancel(e, id), PACA_OK);                        // finished: not an error
  EXPECT_EQ(paca_engine_cancel(nullptr, id), PACA_ERR_INVALID_ARGUMENT);
  paca_engine_stats st{};
  EXPECT_EQ(paca_engine_get_stats(e, &st), PACA_ERR_INVALID_ARGUMENT);  // struct_size unset
  paca_engine_free(e);

  ASSERT_EQ(paca_engine_create(m, nullptr, &e), PACA_OK);
  EXPECT_EQ(paca_engine_step(e, &active), PACA_ERR_STATE);  // it has its own thread
  EXPECT_EQ(paca_engine_step(nullptr, &active), PACA_ERR_INVALID_ARGUMENT);
  paca_engine_free(e);
  paca_engine_free(nullptr);
  paca_model_free(m);
}

// Sharded models take part: tensor- and pipeline-parallel ranks in this
// process step the whole batch together (ShardedModel::step_batch), and each
// request gets the tokens a lone generator gets on the same sharded model.
TEST(EngineCapi, ShardedModelsBatchToo) {
  const std::string dir = test::make_small_model();
  for (const auto& [tp, pp] : {std::pair{2, 1}, std::pair{1, 2}, std::pair{2, 2}}) {
    paca_model_params mp;
    paca_model_params_init(&mp, sizeof mp);
    mp.n_threads = 4;
    mp.tensor_parallel = tp;
    mp.pipeline_parallel = pp;
    paca_model* m = nullptr;
    ASSERT_EQ(paca_model_load(dir.c_str(), &mp, &m), PACA_OK) << paca_last_error();
    paca_engine_params ep;
    paca_engine_params_init(&ep, sizeof ep);
    ep.max_step_tokens = 20;
    paca_engine* e = nullptr;
    ASSERT_EQ(paca_engine_create(m, &ep, &e), PACA_OK) << paca_last_error();
    std::vector<std::vector<int32_t>> prompts;
    std::vector<paca_request_id> ids;
    for (uint32_t i = 0; i < 4; ++i) {
      prompts.push_back(prompt_of(4 + 9 * i, 40 + i, 300));
      paca_sampler_params sp = sampling(i, 10);
      paca_request_id id = 0;
      ASSERT_EQ(paca_engine_submit(e, prompts[i].data(), prompts[i].size(), &sp, nullptr, &id), PACA_OK);
      ids.push_back(id);
    }
    for (uint32_t i = 0; i < 4; ++i) {
      const Out got = drain(e, ids[i], false);
      EXPECT_EQ(got.status, PACA_OK);
      EXPECT_EQ(got.tokens, alone(m, prompts[i], sampling(i, 10), {}, false).tokens)
          << "tp " << tp << " pp " << pp << " request " << i;
    }
    paca_engine_stats st{};
    st.struct_size = sizeof st;
    ASSERT_EQ(paca_engine_get_stats(e, &st), PACA_OK);
    EXPECT_LT(st.n_steps, 40u) << "the requests did not share steps";
    paca_engine_free(e);
    paca_model_free(m);
  }
}

TEST(EngineCapi, FreeingTheEngineEndsItsRequests) {
  paca_model* m = test::load_or_die(test::make_small_model(), 1);
  paca_engine* e = nullptr;
  ASSERT_EQ(paca_engine_create(m, nullptr, &e), PACA_OK);
  Collected c;
  const std::vector<int32_t> p = prompt_of(20, 3, 300);
  for (int i = 0; i < 3; ++i) {
    paca_sampler_params sp = sampling(static_cast<uint64_t>(i), 0);  // no limit but the context
    paca_request_params rp;
    paca_request_params_init(&rp, sizeof rp);
    rp.callback = on_event;
    rp.user_data = &c;
    paca_request_id id = 0;
    ASSERT_EQ(paca_engine_submit(e, p.data(), p.size(), &sp, &rp, &id), PACA_OK);
  }
  paca_engine_free(e);  // returns only once every request has had its end event
  EXPECT_EQ(c.ended, 3u);
  for (auto& [id, o] : c.out)
    EXPECT_TRUE(o.status == PACA_ERR_CANCELLED || o.reason == PACA_STOP_CONTEXT_FULL) << paca_status_name(o.status);
  paca_model_free(m);
}

}  // namespace
