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
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pacaw {

typedef std::vector<int32_t> Ids;
typedef std::vector<uint8_t> Bytes;

inline thread_local int t_status = PACA_OK;
inline thread_local std::string t_message;  // set when this layer refused a call without asking paca.h

// The status of the last call of this layer on this thread, and its message.
inline int last_status() { return t_status; }
inline std::string last_error() {
  if (t_status == PACA_OK) return std::string();
  return t_message.empty() ? std::string(paca_last_error()) : t_message;
}
inline const char* status_name(int status) { return paca_status_name(static_cast<paca_status>(status)); }
inline std::string version() { return paca_version(); }
inline long long abi_version() { return static_cast<long long>(paca_abi_version()); }

inline bool ok(paca_status s) {
  t_status = s;
  t_message.clear();
  return s == PACA_OK;
}
// Refuses a call in this layer (no paca.h call made): status and message.
inline bool fail(paca_status s, const char* message) {
  t_status = s;
  t_message = message;
  return false;
}

// b as a NUL-terminated string in *out; false (PACA_ERR_INVALID_ARGUMENT)
// when b holds a NUL byte, which a C string cannot carry.
inline bool c_string(const Bytes& b, std::string* out, const char* what) {
  out->assign(b.begin(), b.end());
  if (out->find('\0') == std::string::npos) return true;
  return fail(PACA_ERR_INVALID_ARGUMENT, what);
}

// Runs a paca.h call that writes NUL-terminated text by the size-query rule
// (call(buf, cap, &needed)): asks the size, then fills; the text without its
// NUL, or empty on failure (see last_status).
template <class Call>
Bytes query_text(Call call) {
  size_t need = 0;
  paca_status s = call(nullptr, 0, &need);
  if (s != PACA_OK && s != PACA_ERR_BUFFER_TOO_SMALL) return ok(s), Bytes();
  if (s == PACA_OK) return ok(s), Bytes();  // nothing to write
  std::string buf(need, '\0');
  if (!ok(call(buf.data(), buf.size(), &need)) || need == 0) return Bytes();
  return Bytes(buf.begin(), buf.begin() + static_cast<long>(need - 1));
}

// The same for calls that write token ids (call(buf, cap, &count)).
template <class Call>
Ids query_ids(Call call) {
  size_t n = 0;
  paca_status s = call(nullptr, 0, &n);
  if (s != PACA_OK && s != PACA_ERR_BUFFER_TOO_SMALL) return ok(s), Ids();
  Ids ids(n);
  if (!ok(call(ids.data(), ids.size(), &n))) ids.clear();
  return ids;
}

// ---- logging: the process-wide sink as a queue the language drains --------
// (pull-based like the rest: no callback crosses SWIG)

struct LogQueue {
  std::mutex mu;
  std::deque<std::pair<int, std::string>> lines;
};
inline LogQueue& log_queue() {
  static LogQueue q;
  return q;
}
inline void log_to_queue(void*, int32_t level, const char* message) {
  LogQueue& q = log_queue();
  std::lock_guard<std::mutex> lock(q.mu);
  if (q.lines.size() >= 10000) q.lines.pop_front();  // a sink nobody drains stays bounded
  q.lines.emplace_back(level, message != nullptr ? message : "");
}
// paca_set_log_callback: capture true queues every line up to max_level
// (paca_log_level) for log_take; false restores the default sink (stderr,
// max_level still applies). Queued lines are kept.
inline void set_log_capture(bool capture, int max_level) {
  paca_set_log_callback(capture ? &log_to_queue : nullptr, nullptr, max_level);
  ok(PACA_OK);
}
// The queued log lines, oldest first, each "<level> <message>" (level a
// digit, paca_log_level), removed from the queue.
inline std::vector<Bytes> log_take() {
  LogQueue& q = log_queue();
  std::lock_guard<std::mutex> lock(q.mu);
  std::vector<Bytes> out;
  for (const auto& [level, text] : q.lines) {
    Bytes b(1, static_cast<uint8_t>('0' + (level >= 0 && level <= 9 ? level : 9)));
    b.push_back(' ');
    b.insert(b.end(), text.begin(), text.end());
    out.push_back(std::move(b));
  }
  q.lines.clear();
  return out;
}

// A generator and the text of its last step.
struct Generator {
  paca_generator* handle = nullptr;
  std::string text;
};

// The fields of paca_model_params a binding exposes (no callbacks: load
// progress and a per-model log sink would need them; the multi-process and
// CUDA kernel fields are left at their defaults). Texts: empty is NULL.
struct ModelParams {
  int n_threads, kv_dtype, kv_block_tokens, weight_dtype, fp8_targets, fp8_mode, load_mode;
  int tensor_parallel, pipeline_parallel;
  float kv_memory_fraction;
  Bytes device, devices, tokenizer_path, cpu_isa;
  ModelParams() {  // the library's defaults
    paca_model_params p;
    paca_model_params_init(&p, sizeof p);
    n_threads = p.n_threads;
    kv_dtype = p.kv_dtype;
    kv_block_tokens = p.kv_block_tokens;
    weight_dtype = p.weight_dtype;
    fp8_targets = p.fp8_targets;
    fp8_mode = p.fp8_mode;
    load_mode = p.load_mode;
    tensor_parallel = p.tensor_parallel;
    pipeline_parallel = p.pipeline_parallel;
    kv_memory_fraction = p.kv_memory_fraction;
  }
};

// paca_model_load with mp.
inline paca_model* model_load_with(const Bytes& path, const ModelParams& mp) {
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.n_threads = mp.n_threads;
  p.kv_dtype = mp.kv_dtype;
  p.kv_block_tokens = mp.kv_block_tokens;
  p.weight_dtype = mp.weight_dtype;
  p.fp8_targets = mp.fp8_targets;
  p.fp8_mode = mp.fp8_mode;
  p.load_mode = mp.load_mode;
  p.tensor_parallel = mp.tensor_parallel;
  p.pipeline_parallel = mp.pipeline_parallel;
  p.kv_memory_fraction = mp.kv_memory_fraction;
  std::string s, text[4];
  const Bytes* in[4] = {&mp.device, &mp.devices, &mp.tokenizer_path, &mp.cpu_isa};
  const char** out[4] = {&p.device, &p.devices, &p.tokenizer_path, &p.cpu_isa};
  for (int i = 0; i < 4; ++i) {
    if (!c_string(*in[i], &text[i], "model params: a text holds a NUL byte")) return nullptr;
    *out[i] = in[i]->empty() ? nullptr : text[i].c_str();
  }
  paca_model* m = nullptr;
  if (c_string(path, &s, "model_load: path holds a NUL byte")) ok(paca_model_load(s.c_str(), &p, &m));
  return m;
}
inline paca_model* model_load(const Bytes& path, int threads) {
  ModelParams mp;
  mp.n_threads = threads;
  return model_load_with(path, mp);
}
inline void model_free(paca_model* m) { paca_model_free(m); }

// paca_model_info, with signed 64-bit counts and the used eos ids only.
struct ModelInfo {
  int format = 0, n_vocab = 0, dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn_dim = 0;
  int max_context = 0, rope_scaling = 0, tied_embeddings = 0, bos_id = -1, load_mode = 0;
  float rope_theta = 0, rope_factor = 1, norm_eps = 0;
  Ids eos_ids;
  long long n_params = 0, weight_bytes = 0, kv_bytes_per_token = 0;
};
// paca_model_get_info into out: the status (out unchanged unless OK).
inline int model_info(paca_model* m, ModelInfo& out) {
  paca_model_info i;
  std::memset(&i, 0, sizeof i);
  i.struct_size = sizeof i;
  if (!ok(paca_model_get_info(m, &i))) return t_status;
  out.format = i.format;
  out.n_vocab = i.n_vocab;
  out.dim = i.dim;
  out.n_layers = i.n_layers;
  out.n_heads = i.n_heads;
  out.n_kv_heads = i.n_kv_heads;
  out.head_dim = i.head_dim;
  out.ffn_dim = i.ffn_dim;
  out.max_context = i.max_context;
  out.rope_scaling = i.rope_scaling;
  out.tied_embeddings = i.tied_embeddings;
  out.bos_id = i.bos_id;
  out.load_mode = i.load_mode;
  out.rope_theta = i.rope_theta;
  out.rope_factor = i.rope_factor;
  out.norm_eps = i.norm_eps;
  const int n = i.n_eos_ids < 0 ? 0 : i.n_eos_ids > PACA_MAX_EOS_IDS ? PACA_MAX_EOS_IDS : i.n_eos_ids;
  out.eos_ids.assign(i.eos_ids, i.eos_ids + n);
  out.n_params = static_cast<long long>(i.n_params);
  out.weight_bytes = static_cast<long long>(i.weight_bytes);
  out.kv_bytes_per_token = static_cast<long long>(i.kv_bytes_per_token);
  return t_status;
}
inline int model_n_vocab(paca_model* m) {
  paca_model_info i;
  std::memset(&i, 0, sizeof i);
  i.struct_size = sizeof i;
  return ok(paca_model_get_info(m, &i)) ? i.n_vocab : -1;
}

// paca_model_describe_json.
inline Bytes model_describe_json(paca_model* m) {
  return query_text([&](char* b, size_t c, size_t* n) { return paca_model_describe_json(m, b, c, n); });
}

// paca_quantize_gguf without a progress callback: the JSON summary, or empty
// on failure (see last_status).
inline Bytes quantize_gguf(const Bytes& in_path, const Bytes& out_path, const Bytes& mix, int threads) {
  std::string in, out, mx;
  if (!c_string(in_path, &in, "quantize_gguf: in_path holds a NUL byte") ||
      !c_string(out_path, &out, "quantize_gguf: out_path holds a NUL byte") ||
      !c_string(mix, &mx, "quantize_gguf: mix holds a NUL byte"))
    return Bytes();
  return query_text([&](char* b, size_t c, size_t* n) {
    return paca_quantize_gguf(in.c_str(), out.c_str(), mx.c_str(), threads, nullptr, nullptr, b, c, n);
  });
}

// ---- tokenizer ------------------------------------------------------------

inline Ids tokenize(paca_model* m, const Bytes& text, int flags) {
  const char* t = reinterpret_cast<const char*>(text.data());
  return query_ids([&](int32_t* b, size_t c, size_t* n) {
    return paca_tokenize(m, t, text.size(), static_cast<uint32_t>(flags), b, c, n);
  });
}

inline Bytes detokenize(paca_model* m, const Ids& ids, int flags) {
  return query_text([&](char* b, size_t c, size_t* n) {
    return paca_detokenize(m, ids.data(), ids.size(), static_cast<uint32_t>(flags), b, c, n);
  });
}

// paca_token_to_piece: the token's raw bytes (possibly part of a character).
inline Bytes token_to_piece(paca_model* m, int id, int flags) {
  return query_text([&](char* b, size_t c, size_t* n) {
    return paca_token_to_piece(m, id, static_cast<uint32_t>(flags), b, c, n);
  });
}

// paca_token_attributes: the paca_token_attr bits, or -1 on failure.
inline long long token_attributes(paca_model* m, int id) {
  uint32_t a = 0;
  return ok(paca_token_attributes(m, id, &a)) ? static_cast<long long>(a) : -1;
}

inline paca_detokenizer* detokenizer_create(paca_model* m, int flags) {
  paca_detokenizer* d = nullptr;
  ok(paca_detokenizer_create(m, static_cast<uint32_t>(flags), &d));
  return d;
}
inline void detokenizer_free(paca_detokenizer* d) { paca_detokenizer_free(d); }
// The text id completes (often empty); empty on failure too (see last_status).
inline Bytes detokenizer_push(paca_detokenizer* d, int id) {
  const char* t = nullptr;
  size_t n = 0;
  if (!ok(paca_detokenizer_push(d, id, &t, &n))) return Bytes();
  return Bytes(t, t + n);
}
inline Bytes detokenizer_flush(paca_detokenizer* d) {
  const char* t = nullptr;
  size_t n = 0;
  if (!ok(paca_detokenizer_flush(d, &t, &n))) return Bytes();
  return Bytes(t, t + n);
}

// ---- chat formats and tool calls -------------------------------------------

// The fields of paca_chat_params; an empty text is NULL (unset).
struct ChatParams {
  bool add_generation_prompt = true;
  Bytes tools_json, builtin_tools_json, date, extra_json, chat_template, special_tokens_json;
  long long now = 0;
};

// cp as paca_chat_params, pointing into its own copies of the texts.
struct NativeChat {
  paca_chat_params p;
  std::string text[6];
  bool valid = true;
  explicit NativeChat(const ChatParams& cp) {
    paca_chat_params_init(&p, sizeof p);
    p.add_generation_prompt = cp.add_generation_prompt ? 1 : 0;
    p.now = cp.now;
    const Bytes* in[6] = {&cp.tools_json, &cp.builtin_tools_json, &cp.date,
                          &cp.extra_json, &cp.chat_template, &cp.special_tokens_json};
    const char** out[6] = {&p.tools_json, &p.builtin_tools_json, &p.date,
                           &p.extra_json, &p.chat_template, &p.special_tokens_json};
    for (int i = 0; i < 6 && valid; ++i) {
      valid = c_string(*in[i], &text[i], "chat params: a text holds a NUL byte");
      *out[i] = in[i]->empty() ? nullptr : text[i].c_str();
    }
  }
};

// paca_chat_format (m may be null when cp.chat_template is set).
inline Bytes chat_format(paca_model* m, const Bytes& messages_json, const ChatParams& cp) {
  const NativeChat nc(cp);
  std::string msgs;
  if (!nc.valid || !c_string(messages_json, &msgs, "chat_format: messages hold a NUL byte")) return Bytes();
  return query_text([&](char* b, size_t c, size_t* n) { return paca_chat_format(m, msgs.c_str(), &nc.p, b, c, n); });
}
inline Bytes chat_format_json(paca_model* m, const Bytes& messages_json, const ChatParams& cp) {
  const NativeChat nc(cp);
  std::string msgs;
  if (!nc.valid || !c_string(messages_json, &msgs, "chat_format_json: messages hold a NUL byte")) return Bytes();
  return query_text(
      [&](char* b, size_t c, size_t* n) { return paca_chat_format_json(m, msgs.c_str(), &nc.p, b, c, n); });
}
inline Ids chat_tokenize(paca_model* m, const Bytes& messages_json, const ChatParams& cp) {
  const NativeChat nc(cp);
  std::string msgs;
  if (!nc.valid || !c_string(messages_json, &msgs, "chat_tokenize: messages hold a NUL byte")) return Ids();
  return query_ids([&](int32_t* b, size_t c, size_t* n) { return paca_chat_tokenize(m, msgs.c_str(), &nc.p, b, c, n); });
}
inline Bytes chat_template_json(paca_model* m) {
  return query_text([&](char* b, size_t c, size_t* n) { return paca_chat_template_json(m, b, c, n); });
}
// paca_chat_parse_tool_calls (stop: paca_reply_end).
inline Bytes chat_parse_tool_calls(const Bytes& text, int stop) {
  const char* t = reinterpret_cast<const char*>(text.data());
  return query_text([&](char* b, size_t c, size_t* n) {
    return paca_chat_parse_tool_calls(t, text.size(), stop, b, c, n);
  });
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
inline long long session_context_size(paca_session* s) {
  return static_cast<long long>(paca_session_context_size(s));
}
inline Ids session_tokens(paca_session* s) {
  return query_ids([&](int32_t* b, size_t c, size_t* n) { return paca_session_tokens(s, b, c, n); });
}
inline void session_cancel(paca_session* s) { paca_session_cancel(s); }
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
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  int repeat_last_n = 64;
  int n_top_logprobs = 0;
  Bytes grammar;      // GBNF; empty: none
  Bytes json_schema;  // empty: none
  bool logprobs = false;  // generator_create: compute each token's log-probabilities
  bool special = false;   // generator_create: control tokens appear as their text
  Ids stop_ids;
  std::vector<Bytes> stop_strings;  // filled by add_stop
  void add_stop(const Bytes& s) { stop_strings.push_back(s); }
};

// paca_sampler_params of gp, pointing into gp (stop ids) and into its own
// copies of the grammar texts; valid is false when one holds a NUL byte.
struct NativeSampling {
  paca_sampler_params sp;
  std::string grammar, schema;
  bool valid;
  explicit NativeSampling(const GenerateParams& gp) {
    paca_sampler_params_init(&sp, sizeof sp);
    sp.temperature = gp.temperature;
    sp.seed = static_cast<uint64_t>(gp.seed);
    sp.top_k = gp.top_k;
    sp.top_p = gp.top_p;
    sp.min_p = gp.min_p;
    sp.repeat_penalty = gp.repeat_penalty;
    sp.frequency_penalty = gp.frequency_penalty;
    sp.presence_penalty = gp.presence_penalty;
    sp.repeat_last_n = gp.repeat_last_n;
    sp.n_top_logprobs = gp.n_top_logprobs;
    sp.max_new_tokens = gp.max_new_tokens;
    sp.ignore_eos = gp.ignore_eos ? 1 : 0;
    sp.stop_ids = gp.stop_ids.data();
    sp.n_stop_ids = static_cast<int32_t>(gp.stop_ids.size());
    valid = c_string(gp.grammar, &grammar, "grammar holds a NUL byte") &&
            c_string(gp.json_schema, &schema, "json_schema holds a NUL byte");
    sp.grammar = grammar.empty() ? nullptr : grammar.c_str();
    sp.json_schema = schema.empty() ? nullptr : schema.c_str();
  }
};

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
  const NativeSampling ns(gp);
  if (!ns.valid) return nullptr;
  const StopStrings stops(gp);
  paca_generator_params p;
  paca_generator_params_init(&p, sizeof p);
  p.stop_strings = stops.ptrs.data();
  p.stop_lengths = stops.lens.data();
  p.n_stop_strings = static_cast<int32_t>(stops.ptrs.size());
  p.logprobs = gp.logprobs ? 1 : 0;
  p.detokenize_flags = gp.special ? uint32_t{PACA_DETOKENIZE_SPECIAL} : 0u;
  paca_generator* g = nullptr;
  if (!ok(paca_generator_create(s, prompt.data(), prompt.size(), &ns.sp, &p, &g))) return nullptr;
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
inline long long generator_n_generated(Generator* g) {
  return g == nullptr ? 0 : static_cast<long long>(paca_generator_n_generated(g->handle));
}

// One paca_token_logprobs, copied.
struct TokenLogprobs {
  int token = -1;
  float logprob = 0.0f;
  Ids top_tokens;                  // most probable first
  std::vector<float> top_logprobs;
};
inline void copy_logprobs(const paca_token_logprobs& lp, TokenLogprobs& out) {
  const int n = lp.n_top < 0 ? 0 : lp.n_top > PACA_MAX_TOP_LOGPROBS ? PACA_MAX_TOP_LOGPROBS : lp.n_top;
  out.token = lp.token;
  out.logprob = lp.logprob;
  out.top_tokens.assign(lp.top_tokens, lp.top_tokens + n);
  out.top_logprobs.assign(lp.top_logprobs, lp.top_logprobs + n);
}
inline paca_token_logprobs empty_logprobs() {
  paca_token_logprobs lp;
  std::memset(&lp, 0, sizeof lp);
  lp.struct_size = sizeof lp;
  return lp;
}

// paca_generator_logprobs into out: the status (out unchanged unless OK).
inline int generator_logprobs(Generator* g, TokenLogprobs& out) {
  paca_token_logprobs lp = empty_logprobs();
  if (ok(paca_generator_logprobs(g == nullptr ? nullptr : g->handle, &lp))) copy_logprobs(lp, out);
  return t_status;
}

// ---- sampler and stop strings ---------------------------------------------

// paca_sampler_create with gp's sampling fields (its stop strings are not
// the sampler's: see stop_matcher_create).
inline paca_sampler* sampler_create(paca_model* m, const GenerateParams& gp) {
  const NativeSampling ns(gp);
  paca_sampler* out = nullptr;
  if (ns.valid) ok(paca_sampler_create(m, &ns.sp, &out));
  return out;
}
inline void sampler_free(paca_sampler* s) { paca_sampler_free(s); }
inline int sampler_set_logit_bias(paca_sampler* s, const Ids& tokens, const std::vector<float>& biases) {
  if (tokens.size() == biases.size())
    ok(paca_sampler_set_logit_bias(s, tokens.data(), biases.data(), tokens.size()));
  else
    fail(PACA_ERR_INVALID_ARGUMENT, "logit bias: tokens and biases differ in length");
  return t_status;
}
// paca_sampler_sample: the token, or -1 on failure (see last_status);
// logprobs (may be null) receives its log-probabilities.
inline int sampler_sample(paca_sampler* s, paca_session* session, TokenLogprobs* logprobs) {
  int32_t tok = -1;
  paca_token_logprobs lp = empty_logprobs();
  if (!ok(paca_sampler_sample(s, session, &tok, logprobs != nullptr ? &lp : nullptr))) return -1;
  if (logprobs != nullptr) copy_logprobs(lp, *logprobs);
  return tok;
}
inline int sampler_sample_logits(paca_sampler* s, const std::vector<float>& logits, const Ids& history,
                                 TokenLogprobs* logprobs) {
  int32_t tok = -1;
  paca_token_logprobs lp = empty_logprobs();
  if (!ok(paca_sampler_sample_logits(s, logits.data(), logits.size(), history.data(), history.size(), &tok,
                                     logprobs != nullptr ? &lp : nullptr)))
    return -1;
  if (logprobs != nullptr) copy_logprobs(lp, *logprobs);
  return tok;
}
inline int sampler_stop_reason(paca_sampler* s, int token, long long n_generated) {
  ok(PACA_OK);
  if (n_generated < 0) return PACA_STOP_NONE;
  return static_cast<int>(paca_sampler_stop_reason(s, token, static_cast<size_t>(n_generated)));
}

inline paca_stop_matcher* stop_matcher_create(const std::vector<Bytes>& stops) {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const Bytes& b : stops) {
    ptrs.push_back(reinterpret_cast<const char*>(b.data()));
    lens.push_back(b.size());
  }
  paca_stop_matcher* m = nullptr;
  ok(paca_stop_matcher_create(ptrs.data(), lens.data(), ptrs.size(), &m));
  return m;
}
inline void stop_matcher_free(paca_stop_matcher* m) { paca_stop_matcher_free(m); }
// What paca_stop_matcher_feed gives back.
struct StopFeed {
  Bytes text;           // safe to show now
  int stop_index = -1;  // the stop string that matched, or -1
};
inline StopFeed stop_matcher_feed(paca_stop_matcher* m, const Bytes& text) {
  StopFeed out;
  const char* t = nullptr;
  size_t n = 0;
  int32_t idx = -1;
  if (ok(paca_stop_matcher_feed(m, reinterpret_cast<const char*>(text.data()), text.size(), &t, &n, &idx))) {
    out.text.assign(t, t + n);
    out.stop_index = idx;
  }
  return out;
}
inline Bytes stop_matcher_flush(paca_stop_matcher* m) {
  const char* t = nullptr;
  size_t n = 0;
  if (!ok(paca_stop_matcher_flush(m, &t, &n))) return Bytes();
  return Bytes(t, t + n);
}
inline void stop_matcher_reset(paca_stop_matcher* m) { paca_stop_matcher_reset(m); }

// ---- session fork, snapshots and prompt cache ------------------------------

inline paca_session* session_fork(paca_session* s) {
  paca_session* out = nullptr;
  ok(paca_session_fork(s, &out));
  return out;
}
// paca_session_save_with_sampler (sampler null: paca_session_save).
inline int session_save(paca_session* s, paca_sampler* sampler, const Bytes& path) {
  std::string p;
  if (c_string(path, &p, "session_save: path holds a NUL byte"))
    ok(sampler != nullptr ? paca_session_save_with_sampler(s, sampler, p.c_str()) : paca_session_save(s, p.c_str()));
  return t_status;
}
inline paca_session* session_load(paca_model* m, const Bytes& path) {
  std::string p;
  paca_session* out = nullptr;
  if (c_string(path, &p, "session_load: path holds a NUL byte")) ok(paca_session_load(m, p.c_str(), &out));
  return out;
}
// What paca_session_load_with_sampler gives: both null on failure, sampler
// null when the snapshot stores none.
struct LoadedSession {
  paca_session* session = nullptr;
  paca_sampler* sampler = nullptr;
};
inline LoadedSession session_load_with_sampler(paca_model* m, const Bytes& path) {
  std::string p;
  LoadedSession out;
  if (c_string(path, &p, "session_load_with_sampler: path holds a NUL byte"))
    ok(paca_session_load_with_sampler(m, p.c_str(), &out.session, &out.sampler));
  return out;
}
// paca_session_prefill_cached: tokens taken from the cache, or -1 on failure.
inline long long session_prefill_cached(paca_session* s, const Bytes& cache_path, const Ids& tokens) {
  std::string p;
  size_t reused = 0;
  if (!c_string(cache_path, &p, "session_prefill_cached: path holds a NUL byte")) return -1;
  if (!ok(paca_session_prefill_cached(s, p.c_str(), tokens.data(), tokens.size(), &reused))) return -1;
  return static_cast<long long>(reused);
}

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
  Ids logit_bias_tokens;  // the request's logit bias, as sampler_set_logit_bias
  std::vector<float> logit_bias_values;
};

// Queues a request; its id (>= 1), or 0 on failure (see last_status).
inline long long engine_submit(paca_engine* e, const Ids& prompt, const GenerateParams& gp, const RequestParams& rq) {
  const NativeSampling ns(gp);
  if (!ns.valid) return 0;
  if (rq.logit_bias_tokens.size() != rq.logit_bias_values.size())
    return fail(PACA_ERR_INVALID_ARGUMENT, "logit bias: tokens and values differ in length"), 0;
  const StopStrings stops(gp);
  paca_request_params p;
  paca_request_params_init(&p, sizeof p);
  p.stop_strings = stops.ptrs.data();
  p.stop_lengths = stops.lens.data();
  p.n_stop_strings = static_cast<int32_t>(stops.ptrs.size());
  p.logprobs = rq.logprobs ? 1 : 0;
  p.detokenize_flags = rq.special ? uint32_t{PACA_DETOKENIZE_SPECIAL} : 0u;
  p.priority = rq.priority;
  p.logit_bias_tokens = rq.logit_bias_tokens.data();
  p.logit_bias_values = rq.logit_bias_values.data();
  p.n_logit_bias = static_cast<int32_t>(rq.logit_bias_tokens.size());
  paca_request_id id = 0;
  if (!ok(paca_engine_submit(e, prompt.data(), prompt.size(), &ns.sp, &p, &id))) return 0;
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
