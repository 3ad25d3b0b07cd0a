// _paca.cpp - the pybind11 layer of the Python binding: one class per paca.h
// handle, each method one paca.h call, errors raised as paca.Error
// subclasses (paca/_errors.py), and the GIL released around every call that
// computes or waits (load, prefill, decode, generation, engine polls and
// steps, quantization, snapshots); callbacks into Python (log sink, load and
// quantization progress, engine events) take it back on the thread that
// calls them. The idiomatic API is the pure-Python package around it
// (paca/__init__.py). Uses paca.h only.
#include <paca/paca.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

// Raises the paca.Error subclass for status with paca_last_error()'s message.
// Call with the GIL held, on the thread that made the failing call.
[[noreturn]] void raise(paca_status status) {
  const std::string msg = paca_last_error();
  py::object cls = py::module_::import("paca._errors").attr("error_class")(static_cast<int>(status));
  PyErr_SetObject(cls.ptr(), py::make_tuple(msg, static_cast<int>(status)).ptr());
  throw py::error_already_set();
}

void check(paca_status s) {
  if (s != PACA_OK) raise(s);
}

// Runs a paca.h call with the GIL released, then raises on failure.
template <typename Fn>
void nogil(Fn&& fn) {
  paca_status s;
  {
    py::gil_scoped_release release;
    s = fn();
  }
  check(s);
}

// Reads a string through the (buf, cap, &needed) convention.
template <typename Fn>
std::string read_string(Fn&& fn) {
  size_t need = 0;
  paca_status s = fn(nullptr, 0, &need);
  if (s != PACA_OK && s != PACA_ERR_BUFFER_TOO_SMALL) raise(s);
  std::string out(need, '\0');
  check(fn(out.data(), out.size(), &need));
  out.resize(need > 0 ? need - 1 : 0);
  return out;
}

py::str utf8(const std::string& s) { return py::str(s.data(), s.size()); }

// The raw pointer of handle h, or ValueError "the <what> is closed".
template <typename P>
auto* live(const P& h, const char* what) {
  if (!h) {
    PyErr_Format(PyExc_ValueError, "the %s is closed", what);
    throw py::error_already_set();
  }
  return h.get();
}

// Runs fn without the GIL when this thread holds it: frees that may wait for
// the library's threads, which take the GIL to call a Python log sink or
// request callback.
template <typename Fn>
void without_gil(Fn&& fn) {
  if (PyGILState_Check() != 0) {
    py::gil_scoped_release release;
    fn();
  } else {
    fn();
  }
}

using ModelPtr = std::shared_ptr<paca_model>;
using SessionPtr = std::shared_ptr<paca_session>;

// A model's own log sink (paca_model_params.log): the Python callable. The C
// model may log as long as anything keeps it alive, so every handle that does
// (the model's ModelPtr, its sessions, detokenizers; engines hold the
// ModelPtr) holds this too; the last one frees it, taking the GIL.
struct ModelLog {
  py::object fn;
  explicit ModelLog(py::object f) : fn(std::move(f)) {}
  ModelLog(const ModelLog&) = delete;
  ModelLog& operator=(const ModelLog&) = delete;
  ~ModelLog() {
    if (Py_IsInitialized() == 0) {
      (void)fn.release();  // the interpreter is gone: nothing to give the reference back to
      return;
    }
    py::gil_scoped_acquire gil;
    fn = py::object();
  }
};
using LogKeep = std::shared_ptr<ModelLog>;  // null: the model logs to the process-wide sink

struct Model {
  ModelPtr h;
  LogKeep log;
  paca_model* get() const { return live(h, "model"); }
};

struct Session {
  SessionPtr h;  // shared with logits views, so close() never frees memory a view still shows
  LogKeep log;
  paca_session* get() const { return live(h, "session"); }
};

struct Generator {
  SessionPtr session;  // keeps the borrowed session alive
  std::unique_ptr<paca_generator, void (*)(paca_generator*)> h{nullptr, paca_generator_free};
  paca_generator* get() const { return live(h, "generator"); }
};

std::vector<int32_t> ids_of(const std::vector<int64_t>& v) {
  std::vector<int32_t> out;
  out.reserve(v.size());
  for (int64_t x : v) {
    if (x < INT32_MIN || x > INT32_MAX) throw py::value_error("token id " + std::to_string(x) + " is out of range");
    out.push_back(static_cast<int32_t>(x));
  }
  return out;
}

// A C string argument: embedded NUL bytes would silently cut it short, so
// they are refused.
const char* c_str_arg(const std::string& s, const char* what) {
  if (s.find('\0') != std::string::npos) throw py::value_error(std::string(what) + " contains a NUL byte");
  return s.c_str();
}

// The value of key k of an options dict as T; a value of the wrong type is a
// TypeError naming the key (pybind11 would raise a bare RuntimeError).
template <typename T>
T option(const py::dict& d, const char* k) {
  py::object v = d[k];
  try {
    return v.cast<T>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(k) + ": a " + Py_TYPE(v.ptr())->tp_name + " is not of the expected type");
  }
}

// paca_sampler_params from the keyword dict the Python layer builds
// (paca/__init__.py _sampling and Sampler); keys left out keep paca's
// defaults. Holds the stop ids and grammar text the params point into, so it
// is neither copied nor moved.
struct SamplingParams {
  paca_sampler_params p{};
  std::vector<int32_t> stop_ids;
  std::string grammar, json_schema;
  explicit SamplingParams(const py::dict& sp) {
    paca_sampler_params_init(&p, sizeof p);
    if (sp.contains("temperature")) p.temperature = option<float>(sp, "temperature");
    if (sp.contains("seed")) p.seed = option<uint64_t>(sp, "seed");
    if (sp.contains("top_k")) p.top_k = option<int32_t>(sp, "top_k");
    if (sp.contains("top_p")) p.top_p = option<float>(sp, "top_p");
    if (sp.contains("min_p")) p.min_p = option<float>(sp, "min_p");
    if (sp.contains("repeat_penalty")) p.repeat_penalty = option<float>(sp, "repeat_penalty");
    if (sp.contains("frequency_penalty")) p.frequency_penalty = option<float>(sp, "frequency_penalty");
    if (sp.contains("presence_penalty")) p.presence_penalty = option<float>(sp, "presence_penalty");
    if (sp.contains("repeat_last_n")) p.repeat_last_n = option<int32_t>(sp, "repeat_last_n");
    if (sp.contains("n_top_logprobs")) p.n_top_logprobs = option<int32_t>(sp, "n_top_logprobs");
    if (sp.contains("max_new_tokens")) p.max_new_tokens = option<int32_t>(sp, "max_new_tokens");
    if (sp.contains("ignore_eos")) p.ignore_eos = option<bool>(sp, "ignore_eos") ? 1 : 0;
    if (sp.contains("stop_ids")) stop_ids = ids_of(option<std::vector<int64_t>>(sp, "stop_ids"));
    p.stop_ids = stop_ids.data();
    p.n_stop_ids = static_cast<int32_t>(stop_ids.size());
    if (sp.contains("grammar") && !sp["grammar"].is_none()) {
      grammar = option<std::string>(sp, "grammar");
      p.grammar = c_str_arg(grammar, "grammar");
    }
    if (sp.contains("json_schema") && !sp["json_schema"].is_none()) {
      json_schema = option<std::string>(sp, "json_schema");
      p.json_schema = c_str_arg(json_schema, "json_schema");
    }
  }
  SamplingParams(const SamplingParams&) = delete;
  SamplingParams& operator=(const SamplingParams&) = delete;
};

// A logit bias table as the (tokens, biases) pair of paca_sampler_set_logit_bias
// and paca_request_params.
struct LogitBias {
  std::vector<int32_t> tokens;
  std::vector<float> biases;
  LogitBias(const std::vector<int64_t>& t, const std::vector<float>& b) : tokens(ids_of(t)), biases(b) {
    if (tokens.size() != biases.size()) throw py::value_error("logit bias: as many tokens as biases are needed");
    if (tokens.size() > (size_t{1} << 24)) throw py::value_error("logit bias: too many entries");
  }
};

// Stop strings as the (pointers, lengths) pair of paca_generator_params and
// paca_request_params; the strings must outlive it.
struct StopStrings {
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  explicit StopStrings(const std::vector<std::string>& stops) {
    for (const std::string& s : stops) {
      ptrs.push_back(s.data());
      lens.push_back(s.size());
    }
  }
};

py::dict info_dict(const paca_model_info& i) {
  py::dict d;
  d["format"] = i.format;
  d["n_vocab"] = i.n_vocab;
  d["dim"] = i.dim;
  d["n_layers"] = i.n_layers;
  d["n_heads"] = i.n_heads;
  d["n_kv_heads"] = i.n_kv_heads;
  d["head_dim"] = i.head_dim;
  d["ffn_dim"] = i.ffn_dim;
  d["max_context"] = i.max_context;
  d["bos_id"] = i.bos_id;
  d["eos_ids"] = std::vector<int32_t>(i.eos_ids, i.eos_ids + i.n_eos_ids);
  d["n_params"] = i.n_params;
  d["rope_theta"] = i.rope_theta;
  d["rope_scaling"] = i.rope_scaling;
  d["rope_factor"] = i.rope_factor;
  d["norm_eps"] = i.norm_eps;
  d["tied_embeddings"] = i.tied_embeddings != 0;
  d["weight_bytes"] = i.weight_bytes;
  d["kv_bytes_per_token"] = i.kv_bytes_per_token;
  d["load_mode"] = i.load_mode;
  return d;
}

// An engine, shared by its Python object and the polls in flight (which run
// without the GIL), so close() during a poll frees nothing that poll still
// uses: the handle is freed when the last holder lets go. The free runs with
// the GIL released: it ends every request, and the callbacks of those take
// the GIL on the engine's thread.
struct EngineCore {
  ModelPtr model;  // paca.h: the model outlives its engine
  paca_engine* h = nullptr;
  std::atomic<bool> closed{false};
  EngineCore() = default;
  EngineCore(const EngineCore&) = delete;
  EngineCore& operator=(const EngineCore&) = delete;
  ~EngineCore() {
    without_gil([this] { paca_engine_free(h); });
  }
};

struct Engine {
  std::shared_ptr<EngineCore> core;
  std::shared_ptr<EngineCore> get() const {
    live(core, "engine");
    return core;
  }
};

// A request event as the tuple paca/__init__.py turns into a RequestEvent:
// (token, text, logprob, stop_reason, status, error, stats); stats is None
// but in the request's last event. Call with the GIL held.
py::tuple event_tuple(const paca_request_event& e) {
  const bool last = e.stop_reason != PACA_STOP_NONE || e.status != PACA_OK;
  py::object stats = py::none();
  if (last)
    stats = py::make_tuple(e.n_prompt, e.n_cached, e.n_generated, e.n_preempted, e.queue_ms, e.first_token_ms,
                           e.total_ms);
  return py::make_tuple(e.token, py::str(e.text != nullptr ? e.text : "", e.text_len), e.logprob,
                        static_cast<int>(e.stop_reason), static_cast<int>(e.status),
                        std::string(e.error != nullptr ? e.error : ""), stats);
}

// The Python callable of a request submitted with a callback. It lives until
// the request's last event (every request gets one, paca_engine_free
// included), which deletes it.
struct RequestCallback {
  py::object fn;
};

// paca_request_callback: runs on the engine's thread (or in
// paca_engine_step's caller), takes the GIL and calls the Python callable.
// Nothing may escape into the C library: an exception of the callable is
// reported as unraisable (sys.unraisablehook), like one in a __del__.
void on_request_event(const paca_request_event* ev, void* user) {
  auto* cb = static_cast<RequestCallback*>(user);
  const bool last = ev->stop_reason != PACA_STOP_NONE || ev->status != PACA_OK;
  py::gil_scoped_acquire gil;
  try {
    cb->fn(event_tuple(*ev));
  } catch (py::error_already_set& e) {
    e.discard_as_unraisable(cb->fn);
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    PyErr_WriteUnraisable(cb->fn.ptr());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception in a request callback");
    PyErr_WriteUnraisable(cb->fn.ptr());
  }
  if (last) delete cb;
}

// A Python progress callable as a paca_progress_fn (model load,
// quantization): called with the fraction done, holding the GIL; a true
// result cancels. An exception in it cancels too and is raised again by
// rethrow() once the C call has returned, in place of PACA_ERR_CANCELLED.
struct Progress {
  py::object fn;
  std::optional<py::error_already_set> error;
  explicit Progress(py::object f) : fn(std::move(f)) {
    if (!fn.is_none() && PyCallable_Check(fn.ptr()) == 0) throw py::type_error("progress must be callable or None");
  }
  paca_progress_fn c_fn() const { return fn.is_none() ? nullptr : &Progress::call; }
  static int32_t call(void* user, float fraction) {
    auto* self = static_cast<Progress*>(user);
    py::gil_scoped_acquire gil;
    if (self->error) return 1;
    try {
      py::object r = self->fn(fraction);
      const int truth = PyObject_IsTrue(r.ptr());
      if (truth < 0) throw py::error_already_set();
      return truth != 0 ? 1 : 0;
    } catch (py::error_already_set& e) {
      self->error.emplace(std::move(e));
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
      self->error.emplace();
    }
    return 1;
  }
  void rethrow() {
    if (!error) return;
    py::error_already_set e = std::move(*error);
    error.reset();
    throw e;
  }
};

// The process-wide log sink (paca_set_log_callback). The callable lives here,
// read and replaced only with the GIL held, and this object is never freed:
// the library may log from any thread at any time, even while the sink is
// being replaced, and always passes this same pointer.
struct LogSink {
  py::object fn;
};
LogSink* log_sink() {
  static auto* sink = new LogSink{py::none()};
  return sink;
}

// Calls a log sink's fn(level, message), holding the GIL; the message is
// decoded as UTF-8 with errors replaced. An exception of fn goes to
// sys.unraisablehook and never into the library.
void call_log(const py::object& fn, int32_t level, const char* message) {
  if (!fn || fn.is_none()) return;
  try {
    py::object text = py::reinterpret_steal<py::object>(
        PyUnicode_DecodeUTF8(message, static_cast<py::ssize_t>(std::strlen(message)), "replace"));
    if (!text) throw py::error_already_set();
    fn(level, text);
  } catch (py::error_already_set& e) {
    e.discard_as_unraisable(fn);
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    PyErr_WriteUnraisable(fn.ptr());
  }
}

void on_log(void* user, int32_t level, const char* message) {
  if (Py_IsInitialized() == 0 || message == nullptr) return;
  py::gil_scoped_acquire gil;
  const py::object fn = static_cast<LogSink*>(user)->fn;  // a reference of our own: fn may reset the sink
  call_log(fn, level, message);
}

// paca_log_fn of a model's own sink (ModelLog).
void on_model_log(void* user, int32_t level, const char* message) {
  if (Py_IsInitialized() == 0 || message == nullptr) return;
  py::gil_scoped_acquire gil;
  call_log(static_cast<ModelLog*>(user)->fn, level, message);
}

// paca_model_params from the device, thread count and the options dict of
// paca/__init__.py's Model (keys left out keep paca's defaults). Holds the
// strings the params point into, so it is neither copied nor moved.
struct ModelParams {
  paca_model_params p{};
  std::string device, tokenizer_path, devices, rendezvous, cpu_isa;
  ModelParams(const std::string& dev, int32_t threads, const py::dict& o) {
    paca_model_params_init(&p, sizeof p);
    device = dev;
    p.device = c_str_arg(device, "device");
    p.n_threads = threads;
    const auto i32 = [&](const char* k, int32_t& field) {
      if (o.contains(k)) field = option<int32_t>(o, k);
    };
    const auto str = [&](const char* k, std::string& store, const char*& field) {
      if (!o.contains(k) || o[k].is_none()) return;
      store = option<std::string>(o, k);
      field = c_str_arg(store, k);
    };
    i32("kv_dtype", p.kv_dtype);
    i32("kv_block_tokens", p.kv_block_tokens);
    str("tokenizer_path", tokenizer_path, p.tokenizer_path);
    i32("weight_dtype", p.weight_dtype);
    i32("fp8_targets", p.fp8_targets);
    i32("fp8_mode", p.fp8_mode);
    i32("load_mode", p.load_mode);
    i32("tensor_parallel", p.tensor_parallel);
    i32("pipeline_parallel", p.pipeline_parallel);
    str("devices", devices, p.devices);
    i32("rank", p.rank);
    i32("world_size", p.world_size);
    str("rendezvous", rendezvous, p.rendezvous);
    i32("comm_timeout_ms", p.comm_timeout_ms);
    if (o.contains("kv_memory_fraction")) p.kv_memory_fraction = option<float>(o, "kv_memory_fraction");
    str("cpu_isa", cpu_isa, p.cpu_isa);
    i32("cuda_graphs", p.cuda_graphs);
    i32("cuda_fp8_decode_w8a16", p.cuda_fp8_decode_w8a16);
    i32("cuda_fp8_prefill_w8a8", p.cuda_fp8_prefill_w8a8);
    i32("cuda_fp8_fused_norm", p.cuda_fp8_fused_norm);
  }
  ModelParams(const ModelParams&) = delete;
  ModelParams& operator=(const ModelParams&) = delete;
};

// paca_chat_params from the options dict of paca/__init__.py (_chat_options);
// JSON values arrive already serialised. Holds the strings, so it is neither
// copied nor moved.
struct ChatParams {
  paca_chat_params p{};
  std::string tools, builtin_tools, date, extra, chat_template, special_tokens;
  explicit ChatParams(const py::dict& o) {
    paca_chat_params_init(&p, sizeof p);
    const auto str = [&](const char* k, std::string& store, const char*& field) {
      if (!o.contains(k) || o[k].is_none()) return;
      store = option<std::string>(o, k);
      field = c_str_arg(store, k);
    };
    if (o.contains("add_generation_prompt")) p.add_generation_prompt = option<bool>(o, "add_generation_prompt") ? 1 : 0;
    str("tools_json", tools, p.tools_json);
    str("builtin_tools_json", builtin_tools, p.builtin_tools_json);
    str("date", date, p.date);
    str("extra_json", extra, p.extra_json);
    str("chat_template", chat_template, p.chat_template);
    str("special_tokens_json", special_tokens, p.special_tokens_json);
    if (o.contains("now")) p.now = option<int64_t>(o, "now");
  }
  ChatParams(const ChatParams&) = delete;
  ChatParams& operator=(const ChatParams&) = delete;
};

// Ids through the (buf, cap, &needed) convention (paca_tokenize,
// paca_chat_tokenize), computed with the GIL released.
template <typename Fn>
std::vector<int32_t> read_ids(Fn&& fn) {
  std::vector<int32_t> ids;
  paca_status s;
  {
    py::gil_scoped_release release;
    size_t n = 0;
    s = fn(nullptr, 0, &n);
    if (s == PACA_OK || s == PACA_ERR_BUFFER_TOO_SMALL) {
      ids.resize(n);
      s = fn(ids.data(), ids.size(), &n);
      ids.resize(std::min(n, ids.size()));
    }
  }
  check(s);
  return ids;
}

using SamplerPtr = std::shared_ptr<paca_sampler>;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

struct Sampler {
  SamplerPtr h;
  paca_sampler* get() const { return live(h, "sampler"); }
};

// (token, logprob, [(token, logprob), ...]) of a paca_token_logprobs.
py::tuple logprobs_tuple(const paca_token_logprobs& lp) {
  py::list top;
  for (int32_t i = 0; i < lp.n_top; ++i) top.append(py::make_tuple(lp.top_tokens[i], lp.top_logprobs[i]));
  return py::make_tuple(lp.token, lp.logprob, top);
}

// The result of a sampling call: the token, or its logprobs tuple when asked.
// Sampling keeps the GIL (it takes about a millisecond): a sampler is used by
// one thread at a time, and the GIL makes it so for Python threads.
template <typename Fn>
py::object sample_with(bool want_logprobs, Fn&& fn) {
  paca_token_logprobs lp;
  std::memset(&lp, 0, sizeof lp);
  lp.struct_size = sizeof lp;
  int32_t tok = -1;
  check(fn(&tok, want_logprobs ? &lp : nullptr));
  if (want_logprobs) return logprobs_tuple(lp);
  return py::int_(tok);
}

struct Detokenizer {
  LogKeep log;  // declared first, so freed after the handle
  std::unique_ptr<paca_detokenizer, void (*)(paca_detokenizer*)> h{nullptr, paca_detokenizer_free};
  paca_detokenizer* get() const { return live(h, "detokenizer"); }
};

struct StopMatcher {
  std::unique_ptr<paca_stop_matcher, void (*)(paca_stop_matcher*)> h{nullptr, paca_stop_matcher_free};
  paca_stop_matcher* get() const { return live(h, "stop matcher"); }
};

// A Session owning raw; its SessionPtr's deleter keeps the model's log sink.
Session session_of(paca_session* raw, const LogKeep& log) {
  return Session{SessionPtr(raw, [log](paca_session* x) { without_gil([x] { paca_session_free(x); }); }), log};
}

}  // namespace

PYBIND11_MODULE(_paca, m) {
  m.doc() = "Low-level bindings of paca.h (use the paca package instead).";
  m.def("version", [] { return std::string(paca_version()); });
  m.def("status_name", [](int s) { return std::string(paca_status_name(static_cast<paca_status>(s))); });

  py::class_<Model>(m, "Model")
      .def(py::init([](const std::string& path, const std::string& device, int32_t threads, const py::dict& options,
                       py::object progress, py::object log, int32_t log_level) {
             ModelParams mp(device, threads, options);
             Progress pr(std::move(progress));
             mp.p.progress = pr.c_fn();
             mp.p.progress_user = &pr;
             LogKeep sink;
             if (!log.is_none()) {
               if (PyCallable_Check(log.ptr()) == 0) throw py::type_error("log must be callable or None");
               sink = std::make_shared<ModelLog>(std::move(log));
               mp.p.log = on_model_log;
               mp.p.log_user = sink.get();
               mp.p.log_level = log_level;
             }
             const char* cpath = c_str_arg(path, "path");
             paca_model* raw = nullptr;
             paca_status s;
             {
               py::gil_scoped_release release;
               s = paca_model_load(cpath, &mp.p, &raw);
             }
             pr.rethrow();
             check(s);
             return Model{ModelPtr(raw, [sink](paca_model* x) { without_gil([x] { paca_model_free(x); }); }), sink};
           }),
           py::arg("path"), py::arg("device"), py::arg("threads"), py::arg("options"), py::arg("progress"),
           py::arg("log"), py::arg("log_level"))
      .def("close", [](Model& self) {
        self.h.reset();
        self.log.reset();  // what still keeps the C model alive keeps its own reference
      })
      .def_property_readonly("closed", [](const Model& self) { return !self.h; })
      .def("info", [](const Model& self) {
        paca_model_info i;
        std::memset(&i, 0, sizeof i);
        i.struct_size = sizeof i;
        check(paca_model_get_info(self.get(), &i));
        return info_dict(i);
      })
      .def("describe_json", [](const Model& self) {
        return utf8(read_string([&](char* b, size_t c, size_t* n) { return paca_model_describe_json(self.get(), b, c, n); }));
      })
      .def("tokenize", [](const Model& self, const std::string& text, uint32_t flags) {
        paca_model* mm = self.get();
        return read_ids(
            [&](int32_t* b, size_t c, size_t* n) { return paca_tokenize(mm, text.data(), text.size(), flags, b, c, n); });
      })
      .def("detokenize", [](const Model& self, const std::vector<int64_t>& ids, uint32_t flags) {
        const std::vector<int32_t> v = ids_of(ids);
        return utf8(read_string([&](char* b, size_t c, size_t* n) { return paca_detokenize(self.get(), v.data(), v.size(), flags, b, c, n); }));
      })
      .def("token_to_piece", [](const Model& self, int32_t id, uint32_t flags) {
        paca_model* mm = self.get();
        const std::string piece =
            read_string([&](char* b, size_t c, size_t* n) { return paca_token_to_piece(mm, id, flags, b, c, n); });
        return py::bytes(piece.data(), piece.size());
      })
      .def("token_attributes", [](const Model& self, int32_t id) {
        uint32_t attrs = 0;
        check(paca_token_attributes(self.get(), id, &attrs));
        return attrs;
      })
      .def("chat_tokenize", [](const Model& self, const std::string& messages, const py::dict& options) {
        const ChatParams cp(options);
        const char* msgs = c_str_arg(messages, "messages");
        paca_model* mm = self.get();
        return read_ids([&](int32_t* b, size_t c, size_t* n) { return paca_chat_tokenize(mm, msgs, &cp.p, b, c, n); });
      })
      .def("chat_template_json", [](const Model& self) {
        paca_model* mm = self.get();
        return utf8(read_string([&](char* b, size_t c, size_t* n) { return paca_chat_template_json(mm, b, c, n); }));
      });

  // paca_chat_format / paca_chat_format_json; model may be None when the
  // options name a chat_template.
  m.def("chat_format", [](const Model* model, const std::string& messages, const py::dict& options, bool as_json) {
    const ChatParams cp(options);
    const char* msgs = c_str_arg(messages, "messages");
    const paca_model* mm = model != nullptr ? model->get() : nullptr;
    return utf8(read_string([&](char* b, size_t c, size_t* n) {
      return as_json ? paca_chat_format_json(mm, msgs, &cp.p, b, c, n) : paca_chat_format(mm, msgs, &cp.p, b, c, n);
    }));
  }, py::arg("model").none(true), py::arg("messages"), py::arg("options"), py::arg("as_json"));

  m.def("abi_version", [] { return paca_abi_version(); });
  m.attr("ABI_VERSION") = PACA_ABI_VERSION;

  m.def("set_log_callback", [](py::object fn, int32_t max_level) {
    LogSink* sink = log_sink();
    if (fn.is_none()) {
      paca_set_log_callback(nullptr, nullptr, max_level);
      sink->fn = py::none();
      return;
    }
    if (PyCallable_Check(fn.ptr()) == 0) throw py::type_error("the log callback must be callable or None");
    sink->fn = std::move(fn);
    paca_set_log_callback(on_log, sink, max_level);
  }, py::arg("fn"), py::arg("max_level"));

  m.def("quantize_gguf", [](const std::string& in_path, const std::string& out_path, const std::string& mix,
                            int32_t n_threads, py::object progress) {
    Progress pr(std::move(progress));
    const char* in = c_str_arg(in_path, "in_path");
    const char* out = c_str_arg(out_path, "out_path");
    const char* mx = c_str_arg(mix, "mix");
    // the summary is a small JSON object; the file is written before it, so
    // its buffer is given at once rather than sized by a second call
    std::string summary(size_t{1} << 16, '\0');
    size_t need = 0;
    paca_status s;
    {
      py::gil_scoped_release release;
      s = paca_quantize_gguf(in, out, mx, n_threads, pr.c_fn(), &pr, summary.data(), summary.size(), &need);
    }
    pr.rethrow();
    check(s);
    summary.resize(need > 0 ? need - 1 : 0);
    return utf8(summary);
  }, py::arg("in_path"), py::arg("out_path"), py::arg("mix"), py::arg("n_threads"), py::arg("progress"));

  py::class_<Detokenizer>(m, "Detokenizer")
      .def(py::init([](const Model& model, uint32_t flags) {
             Detokenizer d;
             paca_detokenizer* raw = nullptr;
             check(paca_detokenizer_create(model.get(), flags, &raw));
             d.h.reset(raw);
             d.log = model.log;
             return d;
           }),
           py::arg("model"), py::arg("flags"))
      .def("close", [](Detokenizer& self) { self.h.reset(); })
      .def_property_readonly("closed", [](const Detokenizer& self) { return !self.h; })
      .def("push", [](const Detokenizer& self, int32_t id) {
        const char* text = nullptr;
        size_t len = 0;
        check(paca_detokenizer_push(self.get(), id, &text, &len));
        return py::str(text != nullptr ? text : "", len);
      })
      .def("flush", [](const Detokenizer& self) {
        const char* text = nullptr;
        size_t len = 0;
        check(paca_detokenizer_flush(self.get(), &text, &len));
        return py::str(text != nullptr ? text : "", len);
      });

  py::class_<StopMatcher>(m, "StopMatcher")
      .def(py::init([](const std::vector<std::string>& stops) {
             const StopStrings ss(stops);
             StopMatcher sm;
             paca_stop_matcher* raw = nullptr;
             check(paca_stop_matcher_create(ss.ptrs.data(), ss.lens.data(), ss.ptrs.size(), &raw));
             sm.h.reset(raw);
             return sm;
           }),
           py::arg("stops"))
      .def("close", [](StopMatcher& self) { self.h.reset(); })
      .def_property_readonly("closed", [](const StopMatcher& self) { return !self.h; })
      .def("feed", [](const StopMatcher& self, const py::bytes& data) {
        // (bytes to show now, index of the stop string that matched or -1)
        char* p = nullptr;
        py::ssize_t n = 0;
        if (PYBIND11_BYTES_AS_STRING_AND_SIZE(data.ptr(), &p, &n) != 0) throw py::error_already_set();
        const char* text = nullptr;
        size_t len = 0;
        int32_t index = -1;
        check(paca_stop_matcher_feed(self.get(), p, static_cast<size_t>(n), &text, &len, &index));
        return py::make_tuple(py::bytes(text != nullptr ? text : "", len), index);
      })
      .def("flush", [](const StopMatcher& self) {
        const char* text = nullptr;
        size_t len = 0;
        check(paca_stop_matcher_flush(self.get(), &text, &len));
        return py::bytes(text != nullptr ? text : "", len);
      })
      .def("reset", [](const StopMatcher& self) { paca_stop_matcher_reset(self.get()); });

  py::class_<Sampler>(m, "Sampler")
      .def(py::init([](const Model& model, const py::dict& sp) {
             const SamplingParams sampling(sp);
             paca_sampler* raw = nullptr;
             check(paca_sampler_create(model.get(), &sampling.p, &raw));
             return Sampler{SamplerPtr(raw, paca_sampler_free)};
           }),
           py::arg("model"), py::arg("sampling"))
      .def("close", [](Sampler& self) { self.h.reset(); })
      .def_property_readonly("closed", [](const Sampler& self) { return !self.h; })
      .def("set_logit_bias", [](const Sampler& self, const std::vector<int64_t>& tokens,
                                const std::vector<float>& biases) {
        const LogitBias bias(tokens, biases);
        check(paca_sampler_set_logit_bias(self.get(), bias.tokens.data(), bias.biases.data(), bias.tokens.size()));
      })
      .def("sample", [](const Sampler& self, const Session& session, bool logprobs) {
        paca_sampler* smp = self.get();
        const paca_session* ss = session.get();
        return sample_with(logprobs, [&](int32_t* tok, paca_token_logprobs* lp) {
          return paca_sampler_sample(smp, ss, tok, lp);
        });
      })
      .def("sample_logits", [](const Sampler& self, const FloatArray& logits, const std::vector<int64_t>& history,
                               bool logprobs) {
        if (logits.ndim() != 1) throw py::value_error("logits must be one-dimensional");
        const std::vector<int32_t> hist = ids_of(history);
        paca_sampler* smp = self.get();
        const float* lg = logits.data();
        const size_t n = static_cast<size_t>(logits.shape(0));
        return sample_with(logprobs, [&](int32_t* tok, paca_token_logprobs* lp) {
          return paca_sampler_sample_logits(smp, lg, n, hist.data(), hist.size(), tok, lp);
        });
      })
      .def("stop_reason", [](const Sampler& self, int32_t token, size_t n_generated) {
        return static_cast<int>(paca_sampler_stop_reason(self.get(), token, n_generated));
      });

  m.def("parse_tool_calls", [](const std::string& text, int stop) {
    return utf8(read_string([&](char* b, size_t c, size_t* n) { return paca_chat_parse_tool_calls(text.data(), text.size(), stop, b, c, n); }));
  });

  py::class_<Session>(m, "Session")
      .def(py::init([](const Model& model, int n_ctx) {
             paca_session_params p;
             paca_session_params_init(&p, sizeof p);
             p.n_ctx = n_ctx;
             paca_model* mm = model.get();
             paca_session* raw = nullptr;
             // without the GIL: a log line from another thread holding the model's locks takes it
             nogil([&] { return paca_session_create(mm, &p, &raw); });
             return session_of(raw, model.log);
           }),
           py::arg("model"), py::arg("n_ctx"))
      .def("close", [](Session& self) { self.h.reset(); })
      .def_property_readonly("closed", [](const Session& self) { return !self.h; })
      .def("prefill", [](const Session& self, const std::vector<int64_t>& tokens) {
        const std::vector<int32_t> v = ids_of(tokens);
        paca_session* s = self.get();
        nogil([&] { return paca_session_prefill(s, v.data(), v.size()); });
      })
      .def("decode", [](const Session& self, int32_t token) {
        paca_session* s = self.get();
        nogil([&] { return paca_session_decode(s, token); });
      })
      .def("rewind", [](const Session& self, size_t n) { check(paca_session_rewind(self.get(), n)); })
      .def("fork", [](const Session& self) {
        const paca_session* s = self.get();
        paca_session* raw = nullptr;
        nogil([&] { return paca_session_fork(s, &raw); });
        return session_of(raw, self.log);
      })
      .def("save", [](const Session& self, const std::string& path, const Sampler* sampler) {
        const paca_session* s = self.get();
        const paca_sampler* smp = sampler != nullptr ? sampler->get() : nullptr;
        const char* cpath = c_str_arg(path, "path");
        nogil([&] {
          return smp != nullptr ? paca_session_save_with_sampler(s, smp, cpath) : paca_session_save(s, cpath);
        });
      }, py::arg("path"), py::arg("sampler").none(true))
      .def_static("load", [](const Model& model, const std::string& path) {
        paca_model* mm = model.get();
        const char* cpath = c_str_arg(path, "path");
        paca_session* raw = nullptr;
        nogil([&] { return paca_session_load(mm, cpath, &raw); });
        return session_of(raw, model.log);
      }, py::arg("model"), py::arg("path"))
      .def_static("load_with_sampler", [](const Model& model, const std::string& path) {
        // (session, sampler or None)
        paca_model* mm = model.get();
        const char* cpath = c_str_arg(path, "path");
        paca_session* raw = nullptr;
        paca_sampler* smp = nullptr;
        nogil([&] { return paca_session_load_with_sampler(mm, cpath, &raw, &smp); });
        Session session = session_of(raw, model.log);
        py::object sampler = py::none();
        if (smp != nullptr) sampler = py::cast(Sampler{SamplerPtr(smp, paca_sampler_free)});
        return py::make_tuple(std::move(session), sampler);
      }, py::arg("model"), py::arg("path"))
      .def("prefill_cached", [](const Session& self, const std::string& cache_path,
                                const std::vector<int64_t>& tokens) {
        const std::vector<int32_t> v = ids_of(tokens);
        paca_session* s = self.get();
        const char* cpath = c_str_arg(cache_path, "cache_path");
        size_t reused = 0;
        nogil([&] { return paca_session_prefill_cached(s, cpath, v.data(), v.size(), &reused); });
        return reused;
      }, py::arg("cache_path"), py::arg("tokens"))
      .def("cancel", [](const Session& self) { paca_session_cancel(self.get()); })
      .def("length", [](const Session& self) { return paca_session_length(self.get()); })
      .def("context_size", [](const Session& self) { return paca_session_context_size(self.get()); })
      .def("tokens", [](const Session& self) {
        size_t n = 0;
        paca_session_tokens(self.get(), nullptr, 0, &n);
        std::vector<int32_t> v(n);
        check(paca_session_tokens(self.get(), v.data(), v.size(), &n));
        return v;
      })
      .def("logits", [](const Session& self) {
        // A read-only view of the session's buffer (no copy). The capsule holds
        // the session, so the memory outlives close() while a view exists.
        const float* p = nullptr;
        size_t n = 0;
        check(paca_session_logits(self.get(), &p, &n));
        auto* keep = new SessionPtr(self.h);
        py::capsule owner(keep, [](void* x) { delete static_cast<SessionPtr*>(x); });
        py::array_t<float> a({static_cast<py::ssize_t>(n)}, {static_cast<py::ssize_t>(sizeof(float))}, p, owner);
        a.attr("setflags")(py::arg("write") = false);
        return a;
      });

  py::class_<Generator>(m, "Generator")
      .def(py::init([](const Session& session, const std::vector<int64_t>& prompt, py::dict sp,
                       const std::vector<std::string>& stops, bool logprobs, bool special) {
             const SamplingParams sampling(sp);
             const StopStrings ss(stops);
             paca_generator_params gp;
             paca_generator_params_init(&gp, sizeof gp);
             gp.stop_strings = ss.ptrs.data();
             gp.stop_lengths = ss.lens.data();
             gp.n_stop_strings = static_cast<int32_t>(ss.ptrs.size());
             gp.logprobs = logprobs ? 1 : 0;
             gp.detokenize_flags = special ? uint32_t{PACA_DETOKENIZE_SPECIAL} : 0u;
             const std::vector<int32_t> ids = ids_of(prompt);
             paca_session* s = session.get();
             paca_generator* raw = nullptr;
             nogil([&] { return paca_generator_create(s, ids.data(), ids.size(), &sampling.p, &gp, &raw); });
             Generator g;
             g.session = session.h;
             g.h.reset(raw);
             return g;
           }),
           py::arg("session"), py::arg("prompt"), py::arg("sampling"), py::arg("stop"), py::arg("logprobs"),
           py::arg("special"))
      .def("close", [](Generator& self) {
        self.h.reset();
        self.session.reset();
      })
      .def("next", [](const Generator& self) -> py::object {
        // (token, text) or None once the generation has ended.
        paca_generator* g = self.get();
        int32_t tok = -1;
        const char* text = nullptr;
        size_t len = 0;
        nogil([&] { return paca_generator_next(g, &tok, &text, &len); });
        if (tok < 0) return py::none();
        return py::make_tuple(tok, py::str(text, len));
      })
      .def("stop_reason", [](const Generator& self) { return static_cast<int>(paca_generator_stop_reason(self.get())); })
      .def("n_generated", [](const Generator& self) { return paca_generator_n_generated(self.get()); })
      .def("logprobs", [](const Generator& self) {
        paca_token_logprobs lp;
        std::memset(&lp, 0, sizeof lp);
        lp.struct_size = sizeof lp;
        check(paca_generator_logprobs(self.get(), &lp));
        return logprobs_tuple(lp);
      });
  m.def("next_batch", [](const std::vector<Generator*>& gens) {
    // paca_generator_next_batch: one (token, text) or None per generator
    std::vector<paca_generator*> hs;
    for (const Generator* g : gens) {
      if (g == nullptr) throw py::value_error("a generator is None");
      hs.push_back(g->get());
    }
    std::vector<int32_t> toks(hs.size(), -1);
    std::vector<const char*> texts(hs.size(), nullptr);
    std::vector<size_t> lens(hs.size(), 0);
    nogil([&] { return paca_generator_next_batch(hs.data(), hs.size(), toks.data(), texts.data(), lens.data()); });
    py::list out;
    for (size_t i = 0; i < hs.size(); ++i) {
      if (toks[i] < 0) out.append(py::none());
      else out.append(py::make_tuple(toks[i], py::str(texts[i], lens[i])));
    }
    return out;
  });

  py::class_<Engine>(m, "Engine")
      .def(py::init([](const Model& model, int32_t max_running, int32_t max_step_tokens, int32_t max_queued,
                       int32_t n_ctx, bool prefix_cache, bool manual_step) {
             paca_engine_params p;
             paca_engine_params_init(&p, sizeof p);
             p.max_running = max_running;
             p.max_step_tokens = max_step_tokens;
             p.max_queued = max_queued;
             p.n_ctx = n_ctx;
             p.prefix_cache = prefix_cache ? 1 : 0;
             p.manual_step = manual_step ? 1 : 0;
             auto core = std::make_shared<EngineCore>();
             core->model = model.h;
             paca_model* mm = model.get();
             nogil([&] { return paca_engine_create(mm, &p, &core->h); });
             return Engine{core};
           }),
           py::arg("model"), py::arg("max_running"), py::arg("max_step_tokens"), py::arg("max_queued"),
           py::arg("n_ctx"), py::arg("prefix_cache"), py::arg("manual_step"))
      .def("close", [](Engine& self) {
        if (self.core) self.core->closed = true;
        self.core.reset();  // freed here, or by the last poll still holding it
      })
      .def_property_readonly("closed", [](const Engine& self) { return !self.core; })
      .def("submit", [](const Engine& self, const std::vector<int64_t>& prompt, py::dict sp,
                        const std::vector<std::string>& stops, int32_t priority, bool logprobs, bool special,
                        py::object callback, const std::vector<int64_t>& bias_tokens,
                        const std::vector<float>& bias_values) {
             std::shared_ptr<EngineCore> core = self.get();
             const SamplingParams sampling(sp);
             const StopStrings ss(stops);
             const LogitBias bias(bias_tokens, bias_values);
             paca_request_params rp;
             paca_request_params_init(&rp, sizeof rp);
             rp.stop_strings = ss.ptrs.data();
             rp.stop_lengths = ss.lens.data();
             rp.n_stop_strings = static_cast<int32_t>(ss.ptrs.size());
             rp.logprobs = logprobs ? 1 : 0;
             rp.detokenize_flags = special ? uint32_t{PACA_DETOKENIZE_SPECIAL} : 0u;
             rp.priority = priority;
             rp.logit_bias_tokens = bias.tokens.data();
             rp.logit_bias_values = bias.biases.data();
             rp.n_logit_bias = static_cast<int32_t>(bias.tokens.size());
             std::unique_ptr<RequestCallback> cb;
             if (!callback.is_none()) {
               cb = std::make_unique<RequestCallback>(RequestCallback{callback});
               rp.callback = on_request_event;
               rp.user_data = cb.get();
             }
             const std::vector<int32_t> ids = ids_of(prompt);
             paca_request_id id = 0;
             nogil([&] { return paca_engine_submit(core->h, ids.data(), ids.size(), &sampling.p, &rp, &id); });
             (void)cb.release();  // accepted: the request's last event deletes it (maybe already did)
             return id;
           },
           py::arg("prompt"), py::arg("sampling"), py::arg("stop"), py::arg("priority"), py::arg("logprobs"),
           py::arg("special"), py::arg("callback"), py::arg("bias_tokens"), py::arg("bias_values"))
      .def("poll", [](const Engine& self, uint64_t id, int64_t timeout_ms) -> py::object {
             // The next event's tuple, or None when none came within timeout_ms
             // (< 0: no limit). Waits in slices of 100 ms without the GIL, so
             // that a signal (Ctrl-C) and close() from another thread are
             // noticed in between.
             std::shared_ptr<EngineCore> core = self.get();
             paca_request_event ev;
             std::memset(&ev, 0, sizeof ev);
             ev.struct_size = sizeof ev;
             using Clock = std::chrono::steady_clock;
             const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 0));
             for (;;) {
               int64_t slice = 100;
               if (timeout_ms >= 0) {
                 const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
                 slice = std::clamp<int64_t>(left.count(), 0, slice);
               }
               paca_status s;
               {
                 py::gil_scoped_release release;
                 s = paca_engine_poll(core->h, id, static_cast<int32_t>(slice), &ev);
               }
               if (s == PACA_OK) return event_tuple(ev);
               if (s != PACA_ERR_TIMEOUT) raise(s);
               if (PyErr_CheckSignals() != 0) throw py::error_already_set();
               if (core->closed) throw py::value_error("the engine is closed");
               if (timeout_ms >= 0 && Clock::now() >= deadline) return py::none();
             }
           },
           py::arg("id"), py::arg("timeout_ms"))
      .def("cancel", [](const Engine& self, uint64_t id) {
        std::shared_ptr<EngineCore> core = self.get();
        nogil([&] { return paca_engine_cancel(core->h, id); });
      })
      .def("step", [](const Engine& self) {
        std::shared_ptr<EngineCore> core = self.get();
        size_t active = 0;
        nogil([&] { return paca_engine_step(core->h, &active); });
        return active;
      })
      .def("stats", [](const Engine& self) {
        std::shared_ptr<EngineCore> core = self.get();
        paca_engine_stats st;
        std::memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        check(paca_engine_get_stats(core->h, &st));
        py::dict d;
        d["n_queued"] = st.n_queued;
        d["n_running"] = st.n_running;
        d["n_submitted"] = st.n_submitted;
        d["n_finished"] = st.n_finished;
        d["n_steps"] = st.n_steps;
        d["n_prefill_tokens"] = st.n_prefill_tokens;
        d["n_generated_tokens"] = st.n_generated_tokens;
        d["n_cached_tokens"] = st.n_cached_tokens;
        d["n_preemptions"] = st.n_preemptions;
        d["kv_blocks_used"] = st.kv_blocks_used;
        d["kv_blocks_cached"] = st.kv_blocks_cached;
        d["kv_blocks_total"] = st.kv_blocks_total;
        d["kv_block_tokens"] = st.kv_block_tokens;
        return d;
      });
}
