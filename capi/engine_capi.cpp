// engine_capi.cpp - the engine part of the C ABI: paca_engine over
// paca::Engine (core/runtime/engine.h). Validation and translation only.
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "capi_internal.h"
#include "runtime/engine.h"

using namespace paca::capi;

struct paca_engine {
  std::shared_ptr<ModelState> state;     // the model outlives the engine
  std::unique_ptr<paca::Engine> engine;  // destroyed first (declared last)
  bool manual = false;
  // poll mode: the last event each running request handed out (its text
  // stays valid until the request's next poll)
  std::mutex polled_mutex;
  std::unordered_map<paca_request_id, paca::RequestEvent> polled;
};

namespace {

void to_c(const paca::RequestEvent& e, paca_request_event& out) {
  std::memset(&out, 0, sizeof out);
  out.struct_size = sizeof out;
  out.id = e.id;
  out.token = e.token;
  out.text = e.text.c_str();
  out.text_len = e.text.size();
  out.logprob = e.logprob;
  out.stop_reason = static_cast<paca_stop_reason>(static_cast<int>(e.reason));
  out.status = static_cast<paca_status>(static_cast<int>(e.status));
  out.error = e.error.c_str();
  out.n_prompt = e.stats.n_prompt;
  out.n_cached = e.stats.n_cached;
  out.n_generated = e.stats.n_generated;
  out.n_preempted = e.stats.n_preempted;
  out.queue_ms = e.stats.queue_ms;
  out.first_token_ms = e.stats.first_token_ms;
  out.total_ms = e.stats.total_ms;
}

// Copies what fits of the library's event into the caller's, whose
// struct_size may be that of an older header.
void copy_event(const paca_request_event& e, paca_request_event* out) {
  const uint32_t size = out->struct_size;
  std::memcpy(out, &e, std::min<size_t>(size, sizeof e));
  out->struct_size = size;
}

}  // namespace

namespace paca::capi {

paca_engine_params default_engine_params() {
  auto p = zeroed_params<paca_engine_params>();
  p.max_running = 64;
  p.max_step_tokens = 512;
  p.max_queued = 1024;
  p.n_ctx = 0;
  p.prefix_cache = 1;
  p.manual_step = 0;
  return p;
}

paca_request_params default_request_params() {
  return zeroed_params<paca_request_params>();
}

}  // namespace paca::capi

extern "C" {

PACA_API paca_status paca_engine_params_init(paca_engine_params* p, size_t size) {
  return paca::capi::init_params(p, size, paca::capi::default_engine_params(), "paca_engine_params_init");
}

PACA_API paca_status paca_request_params_init(paca_request_params* p, size_t size) {
  return paca::capi::init_params(p, size, paca::capi::default_request_params(), "paca_request_params_init");
}

PACA_API paca_status paca_engine_create(paca_model* model, const paca_engine_params* params,
                                        paca_engine** out_engine) {
  PACA_REQUIRE(out_engine != nullptr, "paca_engine_create: out_engine is NULL");
  *out_engine = nullptr;
  PACA_REQUIRE(model != nullptr, "paca_engine_create: model is NULL");
  paca_engine_params p;
  p = paca::capi::default_engine_params();
  if (!read_params(params, p, "paca_engine_create")) return PACA_ERR_INVALID_ARGUMENT;
  PACA_REQUIRE(p.max_running >= 1 && p.max_running <= 65536, "paca_engine_create: max_running must be in 1..65536");
  PACA_REQUIRE(p.max_step_tokens >= 1 && p.max_step_tokens <= (1 << 20),
               "paca_engine_create: max_step_tokens must be in 1..1048576");
  PACA_REQUIRE(p.max_queued >= 0 && p.max_queued <= (1 << 24), "paca_engine_create: max_queued must be in 0..16777216");
  PACA_REQUIRE(p.n_ctx >= 0, "paca_engine_create: n_ctx must be >= 0 (0 = the model's)");
  PACA_REQUIRE(p.prefix_cache == 0 || p.prefix_cache == 1, "paca_engine_create: prefix_cache must be 0 or 1");
  PACA_REQUIRE(p.manual_step == 0 || p.manual_step == 1, "paca_engine_create: manual_step must be 0 or 1");
  return guarded([&] {
    paca::EngineOptions o;
    o.max_running = static_cast<size_t>(p.max_running);
    o.max_step_tokens = static_cast<size_t>(p.max_step_tokens);
    o.max_queued = static_cast<size_t>(p.max_queued);
    o.n_ctx = p.n_ctx;
    o.prefix_cache = p.prefix_cache != 0;
    o.own_thread = p.manual_step == 0;
    auto e = std::make_unique<paca_engine>();
    e->state = model->state;
    e->manual = p.manual_step != 0;
    paca::ModelRunner& m = *model->state->model;
    e->engine = std::make_unique<paca::Engine>(m, *model->state->pool, m.checkpoint().tokenizer.get(), o);
    *out_engine = e.release();
  });
}

PACA_API void paca_engine_free(paca_engine* engine) { delete engine; }

PACA_API paca_status paca_engine_submit(paca_engine* engine, const int32_t* prompt, size_t n_prompt,
                                        const paca_sampler_params* sampling, const paca_request_params* params,
                                        paca_request_id* out_id) {
  PACA_REQUIRE(out_id != nullptr, "paca_engine_submit: out_id is NULL");
  *out_id = 0;
  PACA_REQUIRE(engine != nullptr, "paca_engine_submit: engine is NULL");
  PACA_REQUIRE(prompt != nullptr && n_prompt > 0, "paca_engine_submit: the prompt is NULL or empty");
  PACA_REQUIRE(n_prompt <= (size_t{1} << 24), "paca_engine_submit: n_prompt is larger than any context");
  paca_request_params p;
  p = paca::capi::default_request_params();
  if (!read_params(params, p, "paca_engine_submit")) return PACA_ERR_INVALID_ARGUMENT;
  PACA_REQUIRE(p.n_stop_strings >= 0, "paca_engine_submit: n_stop_strings must be >= 0");
  PACA_REQUIRE(p.stop_strings != nullptr || p.n_stop_strings == 0,
               "paca_engine_submit: stop_strings is NULL but n_stop_strings is not 0");
  for (int32_t i = 0; i < p.n_stop_strings; ++i)
    PACA_REQUIRE(p.stop_strings[i] != nullptr, "paca_engine_submit: stop_strings[" + std::to_string(i) + "] is NULL");
  PACA_REQUIRE(p.logprobs == 0 || p.logprobs == 1, "paca_engine_submit: logprobs must be 0 or 1");
  PACA_REQUIRE((p.detokenize_flags & ~uint32_t{PACA_DETOKENIZE_SPECIAL | PACA_DETOKENIZE_KEEP_LEADING_SPACE}) == 0,
               "paca_engine_submit: detokenize_flags has unknown bits");
  PACA_REQUIRE(p.n_logit_bias >= 0, "paca_engine_submit: n_logit_bias must be >= 0");
  PACA_REQUIRE(p.n_logit_bias == 0 || (p.logit_bias_tokens != nullptr && p.logit_bias_values != nullptr),
               "paca_engine_submit: logit_bias_tokens or logit_bias_values is NULL but n_logit_bias is not 0");
  std::unique_ptr<paca_sampler> s;
  const paca_status st = new_sampler(*engine->state, sampling, "paca_engine_submit", s);
  if (st != PACA_OK) return st;
  return guarded([&] {
    paca::EngineRequest r;
    r.prompt.assign(prompt, prompt + n_prompt);
    r.sampler = std::make_unique<paca::Sampler>(std::move(s->sampler));
    if (p.n_logit_bias > 0) {
      const size_t nb = static_cast<size_t>(p.n_logit_bias);
      r.sampler->set_logit_bias(std::span<const int32_t>(p.logit_bias_tokens, nb),
                                std::span<const float>(p.logit_bias_values, nb));
    }
    r.stop = s->stop;
    for (int32_t i = 0; i < p.n_stop_strings; ++i)
      r.options.stop_strings.emplace_back(p.stop_strings[i], p.stop_lengths != nullptr ? p.stop_lengths[i]
                                                                                      : std::strlen(p.stop_strings[i]));
    r.options.logprobs = p.logprobs != 0;
    r.options.n_top_logprobs = static_cast<size_t>(s->n_top_logprobs);
    r.options.render_special = (p.detokenize_flags & PACA_DETOKENIZE_SPECIAL) != 0;
    r.priority = p.priority;
    if (p.callback != nullptr) {
      const paca_request_callback cb = p.callback;
      void* user = p.user_data;
      r.on_event = [cb, user](const paca::RequestEvent& ev) {
        paca_request_event c;
        to_c(ev, c);
        cb(&c, user);
      };
    }
    *out_id = engine->engine->submit(std::move(r));
  });
}

PACA_API paca_status paca_engine_cancel(paca_engine* engine, paca_request_id id) {
  PACA_REQUIRE(engine != nullptr, "paca_engine_cancel: engine is NULL");
  return guarded([&] { engine->engine->cancel(id); });
}

PACA_API paca_status paca_engine_poll(paca_engine* engine, paca_request_id id, int32_t timeout_ms,
                                      paca_request_event* out_event) {
  PACA_REQUIRE(engine != nullptr, "paca_engine_poll: engine is NULL");
  PACA_REQUIRE(out_event != nullptr && out_event->struct_size >= sizeof(uint32_t),
               "paca_engine_poll: out_event is NULL or its struct_size is not set");
  return guarded([&] {
    paca::RequestEvent ev;
    switch (engine->engine->poll(id, timeout_ms, ev)) {
      case paca::Engine::Poll::unknown:
        paca::fail(paca::Status::invalid_argument,
                   "paca_engine_poll: request {} is unknown, has a callback, or has ended", id);
      case paca::Engine::Poll::timeout:
        paca::fail(paca::Status::timeout, "paca_engine_poll: no event of request {} within {} ms", id, timeout_ms);
      case paca::Engine::Poll::event:
        break;
    }
    paca_request_event c;
    if (ev.last) {
      // the request is gone: its last text lives until this thread's next poll
      static thread_local paca::RequestEvent t_end;
      t_end = std::move(ev);
      to_c(t_end, c);
      std::lock_guard<std::mutex> lock(engine->polled_mutex);
      engine->polled.erase(id);
    } else {
      std::lock_guard<std::mutex> lock(engine->polled_mutex);
      paca::RequestEvent& kept = engine->polled[id];
      kept = std::move(ev);
      to_c(kept, c);
    }
    copy_event(c, out_event);
  });
}

PACA_API paca_status paca_engine_step(paca_engine* engine, size_t* out_active) {
  if (out_active != nullptr) *out_active = 0;
  PACA_REQUIRE(engine != nullptr, "paca_engine_step: engine is NULL");
  if (!engine->manual)
    return set_error(PACA_ERR_STATE, "paca_engine_step: the engine runs its own scheduler (manual_step is 0)");
  return guarded([&] {
    const size_t n = engine->engine->step();
    if (out_active != nullptr) *out_active = n;
  });
}

PACA_API paca_status paca_engine_get_stats(const paca_engine* engine, paca_engine_stats* out_stats) {
  PACA_REQUIRE(engine != nullptr, "paca_engine_get_stats: engine is NULL");
  PACA_REQUIRE(out_stats != nullptr && out_stats->struct_size >= sizeof(uint32_t),
               "paca_engine_get_stats: out_stats is NULL or its struct_size is not set");
  return guarded([&] {
    const paca::EngineStats s = engine->engine->stats();
    paca_engine_stats c;
    std::memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.n_queued = static_cast<uint32_t>(s.n_queued);
    c.n_running = static_cast<uint32_t>(s.n_running);
    c.n_submitted = s.n_submitted;
    c.n_finished = s.n_finished;
    c.n_steps = s.n_steps;
    c.n_prefill_tokens = s.n_prefill_tokens;
    c.n_generated_tokens = s.n_generated_tokens;
    c.n_cached_tokens = s.n_cached_tokens;
    c.n_preemptions = s.n_preemptions;
    c.kv_blocks_used = s.kv_blocks_used;
    c.kv_blocks_cached = s.kv_blocks_cached;
    c.kv_blocks_total = s.kv_blocks_total;
    c.kv_block_tokens = s.kv_block_tokens;
    const uint32_t size = out_stats->struct_size;
    std::memcpy(out_stats, &c, std::min<size_t>(size, sizeof c));
    out_stats->struct_size = size;
  });
}

}  // extern "C"
