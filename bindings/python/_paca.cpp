// _paca.cpp - the pybind11 layer of the Python binding: one class per paca.h
// handle, each method one paca.h call, errors raised as paca.Error
// subclasses (paca/_errors.py), and the GIL released around every call that
// computes or waits (load, prefill, decode, generation, engine polls and
// steps); engine callbacks take it back on the engine's thread. The idiomatic
// API is the pure-Python package around it (paca/__init__.py). Uses paca.h
// only.
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

using ModelPtr = std::shared_ptr<paca_model>;
using SessionPtr = std::shared_ptr<paca_session>;

struct Model {
  ModelPtr h;
  paca_model* get() const {
    if (!h) {
      PyErr_SetString(PyExc_ValueError, "the model is closed");
      throw py::error_already_set();
    }
    return h.get();
  }
};

struct Session {
  SessionPtr h;  // shared with logits views, so close() never frees memory a view still shows
  paca_session* get() const {
    if (!h) {
      PyErr_SetString(PyExc_ValueError, "the session is closed");
      throw py::error_already_set();
    }
    return h.get();
  }
};

struct Generator {
  SessionPtr session;  // keeps the borrowed session alive
  std::unique_ptr<paca_generator, void (*)(paca_generator*)> h{nullptr, paca_generator_free};
  paca_generator* get() const {
    if (!h) {
      PyErr_SetString(PyExc_ValueError, "the generator is closed");
      throw py::error_already_set();
    }
    return h.get();
  }
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

// paca_sampler_params from the keyword dict the Python layer builds
// (paca/__init__.py _sampling); keys left out keep paca's defaults. The stop
// ids live in *stop_ids, which must outlive the use of the result.
paca_sampler_params sampler_params(const py::dict& sp, std::vector<int32_t>& stop_ids) {
  paca_sampler_params p;
  paca_sampler_params_init(&p, sizeof p);
  if (sp.contains("temperature")) p.temperature = sp["temperature"].cast<float>();
  if (sp.contains("seed")) p.seed = sp["seed"].cast<uint64_t>();
  if (sp.contains("top_k")) p.top_k = sp["top_k"].cast<int32_t>();
  if (sp.contains("top_p")) p.top_p = sp["top_p"].cast<float>();
  if (sp.contains("min_p")) p.min_p = sp["min_p"].cast<float>();
  if (sp.contains("repeat_penalty")) p.repeat_penalty = sp["repeat_penalty"].cast<float>();
  if (sp.contains("frequency_penalty")) p.frequency_penalty = sp["frequency_penalty"].cast<float>();
  if (sp.contains("presence_penalty")) p.presence_penalty = sp["presence_penalty"].cast<float>();
  if (sp.contains("repeat_last_n")) p.repeat_last_n = sp["repeat_last_n"].cast<int32_t>();
  if (sp.contains("n_top_logprobs")) p.n_top_logprobs = sp["n_top_logprobs"].cast<int32_t>();
  if (sp.contains("max_new_tokens")) p.max_new_tokens = sp["max_new_tokens"].cast<int32_t>();
  if (sp.contains("ignore_eos")) p.ignore_eos = sp["ignore_eos"].cast<bool>() ? 1 : 0;
  stop_ids.clear();
  if (sp.contains("stop_ids")) stop_ids = ids_of(sp["stop_ids"].cast<std::vector<int64_t>>());
  p.stop_ids = stop_ids.data();
  p.n_stop_ids = static_cast<int32_t>(stop_ids.size());
  return p;
}

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
    if (PyGILState_Check() != 0) {
      py::gil_scoped_release release;
      paca_engine_free(h);
    } else {
      paca_engine_free(h);
    }
  }
};

struct Engine {
  std::shared_ptr<EngineCore> core;
  std::shared_ptr<EngineCore> get() const {
    if (!core) {
      PyErr_SetString(PyExc_ValueError, "the engine is closed");
      throw py::error_already_set();
    }
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

}  // namespace

PYBIND11_MODULE(_paca, m) {
  m.doc() = "Low-level bindings of paca.h (use the paca package instead).";
  m.def("version", [] { return std::string(paca_version()); });
  m.def("status_name", [](int s) { return std::string(paca_status_name(static_cast<paca_status>(s))); });

  py::class_<Model>(m, "Model")
      .def(py::init([](const std::string& path, const std::string& device, int threads) {
             paca_model_params p;
             paca_model_params_init(&p, sizeof p);
             p.device = device.c_str();
             p.n_threads = threads;
             paca_model* raw = nullptr;
             nogil([&] { return paca_model_load(path.c_str(), &p, &raw); });
             return Model{ModelPtr(raw, paca_model_free)};
           }),
           py::arg("path"), py::arg("device"), py::arg("threads"))
      .def("close", [](Model& self) { self.h.reset(); })
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
        std::vector<int32_t> ids;
        paca_status s;
        {
          py::gil_scoped_release release;
          size_t n = 0;
          s = paca_tokenize(mm, text.data(), text.size(), flags, nullptr, 0, &n);
          if (s == PACA_OK || s == PACA_ERR_BUFFER_TOO_SMALL) {
            ids.resize(n);
            s = paca_tokenize(mm, text.data(), text.size(), flags, ids.data(), ids.size(), &n);
          }
        }
        check(s);
        return ids;
      })
      .def("detokenize", [](const Model& self, const std::vector<int64_t>& ids, uint32_t flags) {
        const std::vector<int32_t> v = ids_of(ids);
        return utf8(read_string([&](char* b, size_t c, size_t* n) { return paca_detokenize(self.get(), v.data(), v.size(), flags, b, c, n); }));
      })
      .def("chat_format", [](const Model& self, const std::string& messages, std::optional<std::string> tools,
                             bool add_generation_prompt, std::optional<std::string> date) {
        paca_chat_params p;
        paca_chat_params_init(&p, sizeof p);
        p.add_generation_prompt = add_generation_prompt ? 1 : 0;
        p.tools_json = tools ? tools->c_str() : nullptr;
        p.date = date ? date->c_str() : nullptr;
        return utf8(read_string([&](char* b, size_t c, size_t* n) { return paca_chat_format(self.get(), messages.c_str(), &p, b, c, n); }));
      });

  m.def("parse_tool_calls", [](const std::string& text, int stop) {
    return utf8(read_string([&](char* b, size_t c, size_t* n) { return paca_chat_parse_tool_calls(text.data(), text.size(), stop, b, c, n); }));
  });

  py::class_<Session>(m, "Session")
      .def(py::init([](const Model& model, int n_ctx) {
             paca_session_params p;
             paca_session_params_init(&p, sizeof p);
             p.n_ctx = n_ctx;
             paca_session* raw = nullptr;
             check(paca_session_create(model.get(), &p, &raw));
             return Session{SessionPtr(raw, paca_session_free)};
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
             std::vector<int32_t> stop_ids;
             const paca_sampler_params p = sampler_params(sp, stop_ids);
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
             nogil([&] { return paca_generator_create(s, ids.data(), ids.size(), &p, &gp, &raw); });
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
        py::list top;
        for (int32_t i = 0; i < lp.n_top; ++i) top.append(py::make_tuple(lp.top_tokens[i], lp.top_logprobs[i]));
        return py::make_tuple(lp.token, lp.logprob, top);
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
                        py::object callback) {
             std::shared_ptr<EngineCore> core = self.get();
             std::vector<int32_t> stop_ids;
             const paca_sampler_params p = sampler_params(sp, stop_ids);
             const StopStrings ss(stops);
             paca_request_params rp;
             paca_request_params_init(&rp, sizeof rp);
             rp.stop_strings = ss.ptrs.data();
             rp.stop_lengths = ss.lens.data();
             rp.n_stop_strings = static_cast<int32_t>(ss.ptrs.size());
             rp.logprobs = logprobs ? 1 : 0;
             rp.detokenize_flags = special ? uint32_t{PACA_DETOKENIZE_SPECIAL} : 0u;
             rp.priority = priority;
             std::unique_ptr<RequestCallback> cb;
             if (!callback.is_none()) {
               cb = std::make_unique<RequestCallback>(RequestCallback{callback});
               rp.callback = on_request_event;
               rp.user_data = cb.get();
             }
             const std::vector<int32_t> ids = ids_of(prompt);
             paca_request_id id = 0;
             nogil([&] { return paca_engine_submit(core->h, ids.data(), ids.size(), &p, &rp, &id); });
             (void)cb.release();  // accepted: the request's last event deletes it (maybe already did)
             return id;
           },
           py::arg("prompt"), py::arg("sampling"), py::arg("stop"), py::arg("priority"), py::arg("logprobs"),
           py::arg("special"), py::arg("callback"))
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
