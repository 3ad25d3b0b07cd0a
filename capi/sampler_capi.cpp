// sampler_capi.cpp - the sampling part of the C ABI: paca_sampler (the
// sampler chain + token-level stop conditions) and paca_stop_matcher (stop
// strings on streamed text) over core/sample/. Validation and translation only.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "capi_internal.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "model/checkpoint.h"

using namespace paca::capi;

struct paca_stop_matcher {
  paca::StopStringMatcher matcher;
};

namespace paca::capi {

void write_logprobs(const paca::Logprobs& lp, int32_t token, paca_token_logprobs* out) {
  paca_token_logprobs r;
  std::memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.token = token;
  r.logprob = lp.logprob;
  r.n_top = static_cast<int32_t>(std::min<size_t>(lp.top.size(), PACA_MAX_TOP_LOGPROBS));
  for (int32_t i = 0; i < r.n_top; ++i) {
    r.top_tokens[i] = lp.top[static_cast<size_t>(i)].token;
    r.top_logprobs[i] = lp.top[static_cast<size_t>(i)].logprob;
  }
  const uint32_t caller_size = out->struct_size;
  std::memcpy(out, &r, std::min<size_t>(caller_size, sizeof r));
  out->struct_size = caller_size;
}

}  // namespace paca::capi

namespace {

// draw(sampler, logprobs or null, n_top) -> the token
template <typename Draw>
paca_status sample_common(paca_sampler* s, int32_t* out_token, paca_token_logprobs* out_logprobs, Draw&& draw) {
  return guarded([&] {
    paca::Logprobs* lp = out_logprobs != nullptr ? &s->logprobs : nullptr;
    const int32_t tok = draw(s->sampler, lp, static_cast<size_t>(s->n_top_logprobs));
    *out_token = tok;
    if (lp != nullptr) write_logprobs(*lp, tok, out_logprobs);
  });
}

}  // namespace

namespace paca::capi {

namespace {

bool has_text(const char* s) { return s != nullptr && s[0] != '\0'; }

// The grammar of the params (GBNF or JSON Schema) as a matcher over the
// model's vocabulary. The vocabulary's trie is built once per model, and a
// grammar compiled once per text while it stays among the last few used.
std::unique_ptr<paca::GrammarMatcher> new_grammar(ModelState& model, const paca_sampler_params& p) {
  const paca::ModelRunner& m = *model.model;
  const paca::Tokenizer* tok = m.checkpoint().tokenizer.get();
  if (tok == nullptr)
    paca::fail(paca::Status::state, "a grammar needs a model with a tokenizer ({})", m.checkpoint().tokenizer_note);
  const bool gbnf = has_text(p.grammar);
  const std::string key = std::string(gbnf ? "gbnf:" : "json_schema:") + (gbnf ? p.grammar : p.json_schema);
  {
    std::lock_guard<std::mutex> lock(model.grammar_mutex);
    if (const auto it = model.grammars.find(key); it != model.grammars.end())
      return std::make_unique<paca::GrammarMatcher>(it->second);
  }
  // compiled outside the lock (a bad grammar throws here)
  auto g = std::make_shared<const paca::Grammar>(gbnf ? paca::parse_gbnf(p.grammar)
                                                      : paca::compile_json_schema(p.json_schema));
  std::lock_guard<std::mutex> lock(model.grammar_mutex);
  if (model.grammar_vocab == nullptr)
    model.grammar_vocab = paca::GrammarVocab::from_tokenizer(*tok, m.config().n_vocab, m.config().eos_ids);
  auto& slot = model.grammars[key];
  if (slot == nullptr) {
    slot = std::make_shared<paca::CompiledGrammar>(std::move(g), model.grammar_vocab);
    model.grammar_order.push_back(key);
    if (model.grammar_order.size() > ModelState::kMaxGrammars) {
      model.grammars.erase(model.grammar_order.front());  // its matchers keep it alive
      model.grammar_order.pop_front();
    }
  }
  return std::make_unique<paca::GrammarMatcher>(slot);
}

}  // namespace

paca_status new_sampler(ModelState& model, const paca_sampler_params* params, const std::string& fn,
                        std::unique_ptr<paca_sampler>& out) {
  const paca::ModelConfig& c = model.model->config();
  paca_sampler_params p = paca::capi::default_sampler_params();
  if (!read_params(params, p, fn.c_str())) return PACA_ERR_INVALID_ARGUMENT;
  PACA_REQUIRE(p.n_top_logprobs >= 0 && p.n_top_logprobs <= PACA_MAX_TOP_LOGPROBS,
               fn + ": n_top_logprobs must be in 0..PACA_MAX_TOP_LOGPROBS (20)");
  PACA_REQUIRE(p.max_new_tokens >= 0, fn + ": max_new_tokens must be >= 0 (0 = no limit)");
  PACA_REQUIRE(p.ignore_eos == 0 || p.ignore_eos == 1, fn + ": ignore_eos must be 0 or 1");
  PACA_REQUIRE(p.n_stop_ids >= 0, fn + ": n_stop_ids must be >= 0");
  PACA_REQUIRE(p.stop_ids != nullptr || p.n_stop_ids == 0, fn + ": stop_ids is NULL but n_stop_ids is not 0");
  for (int32_t i = 0; i < p.n_stop_ids; ++i)
    PACA_REQUIRE(p.stop_ids[i] >= 0 && p.stop_ids[i] < c.n_vocab,
                 fn + ": stop_ids[" + std::to_string(i) + "] = " + std::to_string(p.stop_ids[i]) +
                     " is outside the vocabulary [0, " + std::to_string(c.n_vocab) + ")");
  PACA_REQUIRE(!(has_text(p.grammar) && has_text(p.json_schema)), fn + ": set grammar or json_schema, not both");
  const bool constrained = has_text(p.grammar) || has_text(p.json_schema);
  PACA_REQUIRE(!constrained || p.ignore_eos == 0,
               fn + ": a grammar needs the end tokens to end the text (ignore_eos must be 0)");
  return guarded([&] {
    paca::SamplerParams sp;
    sp.temperature = p.temperature;
    sp.seed = p.seed;
    sp.top_k = p.top_k;
    sp.top_p = p.top_p;
    sp.min_p = p.min_p;
    sp.repeat_penalty = p.repeat_penalty;
    sp.frequency_penalty = p.frequency_penalty;
    sp.presence_penalty = p.presence_penalty;
    sp.repeat_last_n = p.repeat_last_n;
    auto s = std::make_unique<paca_sampler>(paca_sampler{paca::Sampler(sp, c.n_vocab), {}, p.n_top_logprobs, {}});
    s->stop.eos_ids.assign(c.eos_ids.begin(), c.eos_ids.end());
    s->stop.ignore_eos = p.ignore_eos != 0;
    if (p.n_stop_ids > 0) s->stop.stop_ids.assign(p.stop_ids, p.stop_ids + p.n_stop_ids);
    s->stop.max_new_tokens = static_cast<uint64_t>(p.max_new_tokens);
    if (constrained) s->sampler.set_grammar(new_grammar(model, p));
    out = std::move(s);
  });
}

SamplerRecord sampler_record(const paca_sampler& s) {
  if (s.sampler.grammar() != nullptr)
    paca::fail(paca::Status::unsupported, "a sampler with a grammar cannot be saved in a snapshot (not yet supported)");
  SamplerRecord r;
  r.params = s.sampler.params();
  r.n_top_logprobs = s.n_top_logprobs;
  r.max_new_tokens = s.stop.max_new_tokens;
  r.ignore_eos = s.stop.ignore_eos;
  r.stop_ids = s.stop.stop_ids;
  r.logit_bias = s.sampler.logit_bias();
  return r;
}

paca_sampler* sampler_from_record(const paca_model& model, const SamplerRecord& r) {
  const paca::ModelConfig& c = model.model->config();
  try {
    auto s = std::make_unique<paca_sampler>(paca_sampler{paca::Sampler(r.params, c.n_vocab), {}, r.n_top_logprobs, {}});
    std::vector<int32_t> ids;
    std::vector<float> biases;
    for (const auto& [id, b] : r.logit_bias) {
      ids.push_back(id);
      biases.push_back(b);
    }
    s->sampler.set_logit_bias(ids, biases);
    s->stop.eos_ids.assign(c.eos_ids.begin(), c.eos_ids.end());
    s->stop.ignore_eos = r.ignore_eos;
    s->stop.stop_ids = r.stop_ids;
    s->stop.max_new_tokens = r.max_new_tokens;
    return s.release();
  } catch (const paca::Error& e) {
    throw paca::Error(paca::Status::format, std::string("the snapshot's sampler record is invalid: ") + e.what());
  }
}

}  // namespace paca::capi

namespace paca::capi {

paca_sampler_params default_sampler_params() {
  auto p = zeroed_params<paca_sampler_params>();
  const paca::SamplerParams d;
  p.temperature = d.temperature;
  p.seed = d.seed;
  p.top_k = d.top_k;
  p.top_p = d.top_p;
  p.min_p = d.min_p;
  p.repeat_penalty = d.repeat_penalty;
  p.frequency_penalty = d.frequency_penalty;
  p.presence_penalty = d.presence_penalty;
  p.repeat_last_n = d.repeat_last_n;
  p.n_top_logprobs = 0;
  p.max_new_tokens = 0;
  p.ignore_eos = 0;
  p.stop_ids = nullptr;
  p.n_stop_ids = 0;
  p.grammar = nullptr;
  p.json_schema = nullptr;
  return p;
}

}  // namespace paca::capi

extern "C" {

PACA_API paca_status paca_sampler_params_init(paca_sampler_params* p, size_t size) {
  return paca::capi::init_params(p, size, paca::capi::default_sampler_params(), "paca_sampler_params_init");
}

PACA_API paca_status paca_sampler_create(const paca_model* model, const paca_sampler_params* params,
                                         paca_sampler** out_sampler) {
  PACA_REQUIRE(out_sampler != nullptr, "paca_sampler_create: out_sampler is NULL");
  *out_sampler = nullptr;
  PACA_REQUIRE(model != nullptr, "paca_sampler_create: model is NULL");
  std::unique_ptr<paca_sampler> s;
  const paca_status st = new_sampler(*model->state, params, "paca_sampler_create", s);
  if (st == PACA_OK) *out_sampler = s.release();
  return st;
}

PACA_API void paca_sampler_free(paca_sampler* sampler) { delete sampler; }

PACA_API paca_status paca_sampler_set_logit_bias(paca_sampler* sampler, const int32_t* tokens, const float* biases,
                                                 size_t n) {
  PACA_REQUIRE(sampler != nullptr, "paca_sampler_set_logit_bias: sampler is NULL");
  PACA_REQUIRE(n == 0 || (tokens != nullptr && biases != nullptr),
               "paca_sampler_set_logit_bias: tokens or biases is NULL but n is not 0");
  return guarded([&] {
    if (n == 0) sampler->sampler.set_logit_bias({}, {});
    else sampler->sampler.set_logit_bias(std::span<const int32_t>(tokens, n), std::span<const float>(biases, n));
  });
}

PACA_API paca_status paca_sampler_sample(paca_sampler* sampler, const paca_session* session, int32_t* out_token,
                                         paca_token_logprobs* out_logprobs) {
  PACA_REQUIRE(out_token != nullptr, "paca_sampler_sample: out_token is NULL");
  *out_token = -1;
  PACA_REQUIRE(sampler != nullptr, "paca_sampler_sample: sampler is NULL");
  PACA_REQUIRE(session != nullptr, "paca_sampler_sample: session is NULL");
  PACA_REQUIRE(out_logprobs == nullptr || out_logprobs->struct_size >= sizeof(uint32_t),
               "paca_sampler_sample: set out_logprobs->struct_size");
  const paca::Session& ss = *session->session;
  if (!ss.has_logits())
    return set_error(PACA_ERR_STATE, "paca_sampler_sample: the session has no logits (run prefill or decode first)");
  // the session's own sample: a device sends only the best few logits when they suffice
  return sample_common(sampler, out_token, out_logprobs, [&](paca::Sampler& smp, paca::Logprobs* lp, size_t n_top) {
    return ss.sample(smp, lp, n_top);
  });
}

PACA_API paca_status paca_sampler_sample_logits(paca_sampler* sampler, const float* logits, size_t n_vocab,
                                                const int32_t* history, size_t n_history, int32_t* out_token,
                                                paca_token_logprobs* out_logprobs) {
  PACA_REQUIRE(out_token != nullptr, "paca_sampler_sample_logits: out_token is NULL");
  *out_token = -1;
  PACA_REQUIRE(sampler != nullptr, "paca_sampler_sample_logits: sampler is NULL");
  PACA_REQUIRE(logits != nullptr, "paca_sampler_sample_logits: logits is NULL");
  PACA_REQUIRE(history != nullptr || n_history == 0, "paca_sampler_sample_logits: history is NULL but n_history is not 0");
  PACA_REQUIRE(out_logprobs == nullptr || out_logprobs->struct_size >= sizeof(uint32_t),
               "paca_sampler_sample_logits: set out_logprobs->struct_size");
  return sample_common(sampler, out_token, out_logprobs, [&](paca::Sampler& smp, paca::Logprobs* lp, size_t n_top) {
    return smp.sample(std::span<const float>(logits, n_vocab), std::span<const int32_t>(history, n_history), lp, n_top);
  });
}

PACA_API paca_stop_reason paca_sampler_stop_reason(const paca_sampler* sampler, int32_t token, size_t n_generated) {
  if (sampler == nullptr) return PACA_STOP_NONE;
  return static_cast<paca_stop_reason>(static_cast<int>(sampler->stop.check(token, n_generated)));
}

PACA_API paca_status paca_stop_matcher_create(const char* const* stops, const size_t* lengths, size_t n,
                                              paca_stop_matcher** out_matcher) {
  PACA_REQUIRE(out_matcher != nullptr, "paca_stop_matcher_create: out_matcher is NULL");
  *out_matcher = nullptr;
  PACA_REQUIRE(stops != nullptr || n == 0, "paca_stop_matcher_create: stops is NULL but n is not 0");
  for (size_t i = 0; i < n; ++i)
    PACA_REQUIRE(stops[i] != nullptr, "paca_stop_matcher_create: stops[" + std::to_string(i) + "] is NULL");
  return guarded([&] {
    std::vector<std::string> v;
    v.reserve(n);
    for (size_t i = 0; i < n; ++i) v.emplace_back(stops[i], lengths != nullptr ? lengths[i] : std::strlen(stops[i]));
    auto m = std::make_unique<paca_stop_matcher>(paca_stop_matcher{paca::StopStringMatcher(std::move(v))});
    *out_matcher = m.release();
  });
}

PACA_API void paca_stop_matcher_free(paca_stop_matcher* matcher) { delete matcher; }

PACA_API paca_status paca_stop_matcher_feed(paca_stop_matcher* matcher, const char* text, size_t len,
                                            const char** out_text, size_t* out_len, int32_t* out_stop_index) {
  PACA_REQUIRE(matcher != nullptr, "paca_stop_matcher_feed: matcher is NULL");
  PACA_REQUIRE(text != nullptr || len == 0, "paca_stop_matcher_feed: text is NULL but len is not 0");
  PACA_REQUIRE(out_text != nullptr && out_len != nullptr, "paca_stop_matcher_feed: out_text or out_len is NULL");
  return guarded([&] {
    const auto r = matcher->matcher.feed(std::string_view(text != nullptr ? text : "", len));
    *out_text = r.text.data();
    *out_len = r.text.size();
    if (out_stop_index != nullptr) *out_stop_index = r.stop_index;
  });
}

PACA_API paca_status paca_stop_matcher_flush(paca_stop_matcher* matcher, const char** out_text, size_t* out_len) {
  PACA_REQUIRE(matcher != nullptr, "paca_stop_matcher_flush: matcher is NULL");
  PACA_REQUIRE(out_text != nullptr && out_len != nullptr, "paca_stop_matcher_flush: out_text or out_len is NULL");
  return guarded([&] {
    const std::string_view t = matcher->matcher.flush();
    *out_text = t.data();
    *out_len = t.size();
  });
}

PACA_API void paca_stop_matcher_reset(paca_stop_matcher* matcher) {
  if (matcher != nullptr) matcher->matcher.reset();
}

}  // extern "C"
