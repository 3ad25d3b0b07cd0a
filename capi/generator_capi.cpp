// generator_capi.cpp - the generation part of the C ABI: paca_generator over
// paca::Generator (core/runtime/generator.h). Validation and translation only.
#include <memory>
#include <string>
#include <vector>

#include "capi_internal.h"
#include "runtime/generator.h"

using namespace paca::capi;

struct paca_generator {
  std::unique_ptr<paca_sampler> sampler;  // owns the chain and the stop conditions
  std::unique_ptr<paca::Generator> gen;   // borrows the session and the sampler
  int32_t last_token = -1;
};

namespace paca::capi {

paca_generator_params default_generator_params() {
  return zeroed_params<paca_generator_params>();
}

}  // namespace paca::capi

extern "C" {

PACA_API paca_status paca_generator_params_init(paca_generator_params* p, size_t size) {
  return paca::capi::init_params(p, size, paca::capi::default_generator_params(), "paca_generator_params_init");
}

PACA_API paca_status paca_generator_create(paca_session* session, const int32_t* prompt, size_t n_prompt,
                                           const paca_sampler_params* sampling, const paca_generator_params* params,
                                           paca_generator** out_generator) {
  PACA_REQUIRE(out_generator != nullptr, "paca_generator_create: out_generator is NULL");
  *out_generator = nullptr;
  PACA_REQUIRE(session != nullptr, "paca_generator_create: session is NULL");
  PACA_REQUIRE(prompt != nullptr || n_prompt == 0, "paca_generator_create: prompt is NULL but n_prompt is not 0");
  paca_generator_params p = paca::capi::default_generator_params();
  if (!read_params(params, p, "paca_generator_create")) return PACA_ERR_INVALID_ARGUMENT;
  PACA_REQUIRE(p.n_stop_strings >= 0, "paca_generator_create: n_stop_strings must be >= 0");
  PACA_REQUIRE(p.stop_strings != nullptr || p.n_stop_strings == 0,
               "paca_generator_create: stop_strings is NULL but n_stop_strings is not 0");
  for (int32_t i = 0; i < p.n_stop_strings; ++i)
    PACA_REQUIRE(p.stop_strings[i] != nullptr,
                 "paca_generator_create: stop_strings[" + std::to_string(i) + "] is NULL");
  PACA_REQUIRE(p.logprobs == 0 || p.logprobs == 1, "paca_generator_create: logprobs must be 0 or 1");
  PACA_REQUIRE((p.detokenize_flags & ~uint32_t{PACA_DETOKENIZE_SPECIAL | PACA_DETOKENIZE_KEEP_LEADING_SPACE}) == 0,
               "paca_generator_create: detokenize_flags has unknown bits");
  const paca::ModelRunner& model = *session->state->model;
  auto g = std::make_unique<paca_generator>();
  const paca_status st = new_sampler(*session->state, sampling, "paca_generator_create", g->sampler);
  if (st != PACA_OK) return st;
  paca::Session& ss = *session->session;
  if (n_prompt == 0 && !ss.has_logits())
    return set_error(PACA_ERR_STATE, "paca_generator_create: no prompt and the session has no logits");
  return guarded([&] {
    paca::GenerateOptions o;
    for (int32_t i = 0; i < p.n_stop_strings; ++i)
      o.stop_strings.emplace_back(p.stop_strings[i], p.stop_lengths != nullptr ? p.stop_lengths[i]
                                                                              : std::strlen(p.stop_strings[i]));
    o.logprobs = p.logprobs != 0;
    o.n_top_logprobs = static_cast<size_t>(g->sampler->n_top_logprobs);
    o.render_special = (p.detokenize_flags & PACA_DETOKENIZE_SPECIAL) != 0;
    const paca::Tokenizer* tok = model.checkpoint().tokenizer.get();
    // Validate everything (stop strings) before the prefill changes the session.
    (void)paca::StopStringMatcher(o.stop_strings);
    if (tok == nullptr && !o.stop_strings.empty())
      paca::fail(paca::Status::state, "paca_generator_create: stop strings need a model with a tokenizer ({})",
                 model.checkpoint().tokenizer_note);
    const size_t before = ss.length();
    if (n_prompt > 0) ss.prefill(std::span<const int32_t>(prompt, n_prompt));
    try {
      g->gen = std::make_unique<paca::Generator>(ss, g->sampler->sampler, g->sampler->stop, tok,
                                                 model.config().bos_id, std::move(o));
    } catch (...) {
      ss.rewind(before);
      throw;
    }
    *out_generator = g.release();
  });
}

PACA_API void paca_generator_free(paca_generator* generator) { delete generator; }

PACA_API paca_status paca_generator_next(paca_generator* generator, int32_t* out_token, const char** out_text,
                                         size_t* out_len) {
  PACA_REQUIRE(out_token != nullptr, "paca_generator_next: out_token is NULL");
  *out_token = -1;
  if (out_text != nullptr) *out_text = "";
  if (out_len != nullptr) *out_len = 0;
  PACA_REQUIRE(generator != nullptr, "paca_generator_next: generator is NULL");
  return guarded([&] {
    const paca::Generator::Step step = generator->gen->next();
    *out_token = step.token;
    if (step.token >= 0) generator->last_token = step.token;
    if (out_text != nullptr) *out_text = step.text.data();
    if (out_len != nullptr) *out_len = step.text.size();
  });
}

PACA_API paca_status paca_generator_next_batch(paca_generator* const* generators, size_t n, int32_t* out_tokens,
                                               const char** out_texts, size_t* out_lens) {
  PACA_REQUIRE(n == 0 || (generators != nullptr && out_tokens != nullptr),
               "paca_generator_next_batch: generators or out_tokens is NULL");
  PACA_REQUIRE(n <= 65536, "paca_generator_next_batch: more than 65536 generators");
  for (size_t i = 0; i < n; ++i) {
    out_tokens[i] = -1;
    if (out_texts != nullptr) out_texts[i] = "";
    if (out_lens != nullptr) out_lens[i] = 0;
    PACA_REQUIRE(generators[i] != nullptr, "paca_generator_next_batch: generator " + std::to_string(i) + " is NULL");
  }
  return guarded([&] {
    std::vector<paca::Generator*> gens(n);
    for (size_t i = 0; i < n; ++i) gens[i] = generators[i]->gen.get();
    std::vector<paca::Generator::Step> steps(n, paca::Generator::Step{-1, {}});
    paca::Generator::next_batch(gens, steps);
    for (size_t i = 0; i < n; ++i) {
      out_tokens[i] = steps[i].token;
      if (steps[i].token >= 0) generators[i]->last_token = steps[i].token;
      if (out_texts != nullptr) out_texts[i] = steps[i].text.data();
      if (out_lens != nullptr) out_lens[i] = steps[i].text.size();
    }
  });
}

PACA_API paca_stop_reason paca_generator_stop_reason(const paca_generator* generator) {
  if (generator == nullptr) return PACA_STOP_NONE;
  return static_cast<paca_stop_reason>(static_cast<int>(generator->gen->stop_reason()));
}

PACA_API size_t paca_generator_n_generated(const paca_generator* generator) {
  return generator != nullptr ? generator->gen->n_generated() : 0;
}

PACA_API paca_status paca_generator_logprobs(const paca_generator* generator, paca_token_logprobs* out_logprobs) {
  PACA_REQUIRE(generator != nullptr, "paca_generator_logprobs: generator is NULL");
  PACA_REQUIRE(out_logprobs != nullptr && out_logprobs->struct_size >= sizeof(uint32_t),
               "paca_generator_logprobs: out_logprobs is NULL or its struct_size is not set");
  if (generator->last_token < 0 || generator->gen->n_generated() == 0)
    return set_error(PACA_ERR_STATE, "paca_generator_logprobs: no token generated yet");
  if (!generator->gen->logprobs_enabled())
    return set_error(PACA_ERR_STATE, "paca_generator_logprobs: the generator was created without logprobs");
  write_logprobs(generator->gen->logprobs(), generator->last_token, out_logprobs);
  return PACA_OK;
}

}  // extern "C"
