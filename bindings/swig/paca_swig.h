// paca_swig.h - the language-neutral layer SWIG wraps for Java and C#: each
// function is one or two paca.h calls with its buffers as std::vector (which
// SWIG maps in both languages without hand-written typemaps) and its status
// kept per thread (last_status / last_error) instead of out-parameters.
// Text crosses as UTF-8 bytes, so no language's own string conversion is
// trusted with it. The idiomatic classes (Java ai.paca, C# Paca) sit on top.
// Uses paca.h only.
#pragma once

#include <paca/paca.h>

#include <cstring>
#include <string>
#include <vector>

namespace pacaw {

typedef std::vector<int32_t> Ids;
typedef std::vector<uint8_t> Bytes;

inline thread_local int t_status = PACA_OK;

// The status of the last call of this layer on this thread, and its message.
inline int last_status() { return t_status; }
inline std::string last_error() { return t_status == PACA_OK ? std::string() : std::string(paca_last_error()); }
inline const char* status_name(int status) { return paca_status_name(static_cast<paca_status>(status)); }
inline std::string version() { return paca_version(); }

inline bool ok(paca_status s) {
  t_status = s;
  return s == PACA_OK;
}

// A generator and the text of its last step.
struct Generator {
  paca_generator* handle = nullptr;
  std::string text;
};

inline paca_model* model_load(const Bytes& path, int threads) {
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.n_threads = threads;
  const std::string s(path.begin(), path.end());
  paca_model* m = nullptr;
  ok(paca_model_load(s.c_str(), &p, &m));
  return m;
}
inline void model_free(paca_model* m) { paca_model_free(m); }
inline int model_n_vocab(paca_model* m) {
  paca_model_info i;
  std::memset(&i, 0, sizeof i);
  i.struct_size = sizeof i;
  return ok(paca_model_get_info(m, &i)) ? i.n_vocab : -1;
}

inline Ids tokenize(paca_model* m, const Bytes& text, int flags) {
  const char* t = reinterpret_cast<const char*>(text.data());
  size_t n = 0;
  paca_status s = paca_tokenize(m, t, text.size(), static_cast<uint32_t>(flags), nullptr, 0, &n);
  if (s != PACA_OK && s != PACA_ERR_BUFFER_TOO_SMALL) return ok(s), Ids();
  Ids ids(n);
  if (!ok(paca_tokenize(m, t, text.size(), static_cast<uint32_t>(flags), ids.data(), ids.size(), &n))) ids.clear();
  return ids;
}

inline Bytes detokenize(paca_model* m, const Ids& ids, int flags) {
  size_t need = 0;
  paca_status s = paca_detokenize(m, ids.data(), ids.size(), static_cast<uint32_t>(flags), nullptr, 0, &need);
  if (s != PACA_OK && s != PACA_ERR_BUFFER_TOO_SMALL) return ok(s), Bytes();
  std::string buf(need, '\0');
  if (!ok(paca_detokenize(m, ids.data(), ids.size(), static_cast<uint32_t>(flags), buf.data(), buf.size(), &need)))
    return Bytes();
  return Bytes(buf.begin(), buf.begin() + static_cast<long>(need - 1));
}

inline paca_session* session_create(paca_model* m, int n_ctx) {
  paca_session_params p;
  paca_session_params_init(&p, sizeof p);
  p.n_ctx = n_ctx;
  paca_session* s = nullptr;
  ok(paca_session_create(m, &p, &s));
  return s;
}
inline void session_free(paca_session* s) { paca_session_free(s); }
inline int session_prefill(paca_session* s, const Ids& ids) {
  ok(paca_session_prefill(s, ids.data(), ids.size()));
  return t_status;
}
inline int session_decode(paca_session* s, int token) {
  ok(paca_session_decode(s, token));
  return t_status;
}
inline int session_rewind(paca_session* s, long long n) {
  if (n < 0) return t_status = PACA_ERR_INVALID_ARGUMENT;  // no paca call: keep paca_last_error() as is
  ok(paca_session_rewind(s, static_cast<size_t>(n)));
  return t_status;
}
inline long long session_length(paca_session* s) { return static_cast<long long>(paca_session_length(s)); }
inline std::vector<float> session_logits(paca_session* s) {
  const float* p = nullptr;
  size_t n = 0;
  if (!ok(paca_session_logits(s, &p, &n))) return {};
  return std::vector<float>(p, p + n);
}

// Sampling and stop settings of generator_create (the fields of
// paca_sampler_params and paca_generator_params a binding exposes).
struct GenerateParams {
  float temperature = 0.0f;
  long long seed = 0;
  int top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repeat_penalty = 1.0f;
  int max_new_tokens = 0;
  bool ignore_eos = false;
  Ids stop_ids;
  std::vector<Bytes> stop_strings;  // filled by add_stop
  void add_stop(const Bytes& s) { stop_strings.push_back(s); }
};

// paca_sampler_params of gp (its stop ids stay in gp).
inline paca_sampler_params sampler_params(const GenerateParams& gp) {
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
  sp.temperature = gp.temperature;
  sp.seed = static_cast<uint64_t>(gp.seed);
  sp.top_k = gp.top_k;
  sp.top_p = gp.top_p;
  sp.min_p = gp.min_p;
  sp.repeat_penalty = gp.repeat_penalty;
  sp.max_new_tokens = gp.max_new_tokens;
  sp.ignore_eos = gp.ignore_eos ? 1 : 0;
  sp.stop_ids = gp.stop_ids.data();
  sp.n_stop_ids = static_cast<int32_t>(gp.stop_ids.size());
  return sp;
}

// gp's stop strings as the (pointers, lengths) of paca_generator_params and
// paca_request_params (pointing into gp).
struct StopStrings {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  explicit StopStrings(const GenerateParams& gp) {
    for (const Bytes& b : gp.stop_strings) {
      ptrs.push_back(reinterpret_cast<const char*>(b.data()));
      lens.push_back(b.size());
    }
  }
};

inline Generator* generator_create(paca_session* s, const Ids& prompt, const GenerateParams& gp) {
  const paca_sampler_params sp = sampler_params(gp);
  const StopStrings stops(gp);
  paca_generator_params p;
  paca_generator_params_init(&p, sizeof p);
  p.stop_strings = stops.ptrs.data();
  p.stop_lengths = stops.lens.data();
  p.n_stop_strings = static_cast<int32_t>(stops.ptrs.size());
  paca_generator* g = nullptr;
  if (!ok(paca_generator_create(s, prompt.data(), prompt.size(), &sp, &p, &g))) return nullptr;
  auto* out = new Generator;
  out->handle = g;
  return out;
}
inline void generator_free(Generator* g) {
  if (g == nullptr) return;
  paca_generator_free(g->handle);
  delete g;
}
// The next token (its text: generator_text), or -1 when the generation has
// ended or failed (see last_status).
inline int generator_next(Generator* g) {
  int32_t tok = -1;
  const char* text = nullptr;
  size_t len = 0;
  g->text.clear();
  if (ok(paca_generator_next(g->handle, &tok, &text, &len))) g->text.assign(text, len);
  return tok;
}
inline Bytes generator_text(Generator* g) { return Bytes(g->text.begin(), g->text.end()); }
// paca_generator_next_batch: one step of every generator in gens, the
// unfinished ones in one forward pass. The tokens (-1 for a generation that
// had ended), each one's text in its Generator (generator_text); a token is
// the one generator_next would have given. Empty on failure (see
// last_status): a null entry, a generator twice, generators of shared
// sessions or of different models are PACA_ERR_INVALID_ARGUMENT and change
// nothing. No generators: no tokens, PACA_OK.
inline Ids generator_next_batch(const std::vector<Generator*>& gens) {
  const size_t n = gens.size();
  if (n == 0) return ok(PACA_OK), Ids();
  std::vector<paca_generator*> handles(n);
  for (size_t i = 0; i < n; ++i) handles[i] = gens[i] != nullptr ? gens[i]->handle : nullptr;
  Ids tokens(n, -1);
  std::vector<const char*> texts(n, nullptr);
  std::vector<size_t> lens(n, 0);
  if (!ok(paca_generator_next_batch(handles.data(), n, tokens.data(), texts.data(), lens.data()))) return Ids();
  for (size_t i = 0; i < n; ++i) {
    gens[i]->text.clear();
    if (texts[i] != nullptr) gens[i]->text.assign(texts[i], lens[i]);
  }
  return tokens;
}
inline int generator_stop_reason(Generator* g) { return static_cast<int>(paca_generator_stop_reason(g->handle)); }

// ---- engine (paca_engine_*), poll-based: no callbacks cross SWIG ----------

// The knobs of paca_engine_params.
struct EngineParams {
  int max_running = 64;
  int max_step_tokens = 512;
  int max_queued = 1024;
  int n_ctx = 0;
  bool prefix_cache = true;
  bool manual_step = false;
};

inline paca_engine* engine_create(paca_model* m, const EngineParams& ep) {
  paca_engine_params p;
  paca_engine_params_init(&p, sizeof p);
  p.max_running = ep.max_running;
  p.max_step_tokens = ep.max_step_tokens;
  p.max_queued = ep.max_queued;
  p.n_ctx = ep.n_ctx;
  p.prefix_cache = ep.prefix_cache ? 1 : 0;
  p.manual_step = ep.manual_step ? 1 : 0;
  paca_engine* e = nullptr;
  ok(paca_engine_create(m, &p, &e));
  return e;
}
inline void engine_free(paca_engine* e) { paca_engine_free(e); }

// What paca_request_params adds to the sampling and stop settings.
struct RequestParams {
  int priority = 0;
  bool logprobs = false;
  bool special = false;  // control tokens rendered as text
};

// Queues a request; its id (>= 1), or 0 on failure (see last_status).
inline long long engine_submit(paca_engine* e, const Ids& prompt, const GenerateParams& gp, const RequestParams& rq) {
  const paca_sampler_params sp = sampler_params(gp);
  const StopStrings stops(gp);
  paca_request_params p;
  paca_request_params_init(&p, sizeof p);
  p.stop_strings = stops.ptrs.data();
  p.stop_lengths = stops.lens.data();
  p.n_stop_strings = static_cast<int32_t>(stops.ptrs.size());
  p.logprobs = rq.logprobs ? 1 : 0;
  p.detokenize_flags = rq.special ? uint32_t{PACA_DETOKENIZE_SPECIAL} : 0u;
  p.priority = rq.priority;
  paca_request_id id = 0;
  if (!ok(paca_engine_submit(e, prompt.data(), prompt.size(), &sp, &p, &id))) return 0;
  return static_cast<long long>(id);
}

inline int engine_cancel(paca_engine* e, long long id) {
  ok(paca_engine_cancel(e, static_cast<paca_request_id>(id)));
  return t_status;
}

// One paca_request_event, copied (the text as UTF-8 bytes).
struct EngineEvent {
  int token = -1;           // -1: an end event without a token
  Bytes text;
  float logprob = 0.0f;
  int stop_reason = 0;      // paca_stop_reason; 0 while the request goes on
  int status = PACA_OK;     // not OK: the request failed or was cancelled (and ended)
  std::string error;
  bool last = false;        // the request ended with this event; the counts below are filled
  int n_prompt = 0, n_cached = 0, n_generated = 0, n_preempted = 0;
  double queue_ms = 0, first_token_ms = 0, total_ms = 0;
};

// paca_engine_poll into *out: returns the status (PACA_OK: *out holds the
// event; PACA_ERR_TIMEOUT: none within timeout_ms; else an error, and *out
// is unchanged), which last_status also gives.
inline int engine_poll(paca_engine* e, long long id, int timeout_ms, EngineEvent& out) {
  paca_request_event ev;
  std::memset(&ev, 0, sizeof ev);
  ev.struct_size = sizeof ev;
  if (!ok(paca_engine_poll(e, static_cast<paca_request_id>(id), timeout_ms, &ev))) return t_status;
  out.token = ev.token;
  out.text.assign(ev.text, ev.text + ev.text_len);
  out.logprob = ev.logprob;
  out.stop_reason = static_cast<int>(ev.stop_reason);
  out.status = static_cast<int>(ev.status);
  out.error = ev.error != nullptr ? ev.error : "";
  out.last = ev.stop_reason != PACA_STOP_NONE || ev.status != PACA_OK;
  out.n_prompt = static_cast<int>(ev.n_prompt);
  out.n_cached = static_cast<int>(ev.n_cached);
  out.n_generated = static_cast<int>(ev.n_generated);
  out.n_preempted = static_cast<int>(ev.n_preempted);
  out.queue_ms = ev.queue_ms;
  out.first_token_ms = ev.first_token_ms;
  out.total_ms = ev.total_ms;
  return t_status;
}

// paca_engine_step: the requests running or waiting after it, or -1 on
// failure (see last_status).
inline long long engine_step(paca_engine* e) {
  size_t active = 0;
  if (!ok(paca_engine_step(e, &active))) return -1;
  return static_cast<long long>(active);
}

// paca_engine_stats with signed fields.
struct EngineCounters {
  long long n_queued = 0, n_running = 0, n_submitted = 0, n_finished = 0, n_steps = 0;
  long long n_prefill_tokens = 0, n_generated_tokens = 0, n_cached_tokens = 0, n_preemptions = 0;
  long long kv_blocks_used = 0, kv_blocks_cached = 0, kv_blocks_total = 0, kv_block_tokens = 0;
};

inline int engine_stats(paca_engine* e, EngineCounters& out) {
  paca_engine_stats st;
  std::memset(&st, 0, sizeof st);
  st.struct_size = sizeof st;
  if (!ok(paca_engine_get_stats(e, &st))) return t_status;
  out.n_queued = st.n_queued;
  out.n_running = st.n_running;
  out.n_submitted = static_cast<long long>(st.n_submitted);
  out.n_finished = static_cast<long long>(st.n_finished);
  out.n_steps = static_cast<long long>(st.n_steps);
  out.n_prefill_tokens = static_cast<long long>(st.n_prefill_tokens);
  out.n_generated_tokens = static_cast<long long>(st.n_generated_tokens);
  out.n_cached_tokens = static_cast<long long>(st.n_cached_tokens);
  out.n_preemptions = static_cast<long long>(st.n_preemptions);
  out.kv_blocks_used = static_cast<long long>(st.kv_blocks_used);
  out.kv_blocks_cached = static_cast<long long>(st.kv_blocks_cached);
  out.kv_blocks_total = static_cast<long long>(st.kv_blocks_total);
  out.kv_block_tokens = st.kv_block_tokens;
  return t_status;
}

}  // namespace pacaw
