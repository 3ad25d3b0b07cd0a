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
  paca_model_params p = paca_model_params_default();
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
  paca_session_params p = paca_session_params_default();
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

inline Generator* generator_create(paca_session* s, const Ids& prompt, const GenerateParams& gp) {
  paca_sampler_params sp = paca_sampler_params_default();
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
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const Bytes& b : gp.stop_strings) {
    ptrs.push_back(reinterpret_cast<const char*>(b.data()));
    lens.push_back(b.size());
  }
  paca_generator_params p = paca_generator_params_default();
  p.stop_strings = ptrs.data();
  p.stop_lengths = lens.data();
  p.n_stop_strings = static_cast<int32_t>(ptrs.size());
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

}  // namespace pacaw
