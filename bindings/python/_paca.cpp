// _paca.cpp - the pybind11 layer of the Python binding: one class per paca.h
// handle, each method one paca.h call, errors raised as paca.Error
// subclasses (paca/_errors.py), and the GIL released around every call that
// computes (load, prefill, decode, generation). The idiomatic API is the
// pure-Python package around it (paca/__init__.py). Uses paca.h only.
#include <paca/paca.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

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

}  // namespace

PYBIND11_MODULE(_paca, m) {
  m.doc() = "Low-level bindings of paca.h (use the paca package instead).";
  m.def("version", [] { return std::string(paca_version()); });
  m.def("status_name", [](int s) { return std::string(paca_status_name(static_cast<paca_status>(s))); });

  py::class_<Model>(m, "Model")
      .def(py::init([](const std::string& path, const std::string& device, int threads) {
             paca_model_params p = paca_model_params_default();
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
        paca_chat_params p = paca_chat_params_default();
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
             paca_session_params p = paca_session_params_default();
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
             paca_sampler_params p = paca_sampler_params_default();
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
             std::vector<int32_t> stop_ids;
             if (sp.contains("stop_ids")) stop_ids = ids_of(sp["stop_ids"].cast<std::vector<int64_t>>());
             p.stop_ids = stop_ids.data();
             p.n_stop_ids = static_cast<int32_t>(stop_ids.size());
             std::vector<const char*> ptrs;
             std::vector<size_t> lens;
             for (const std::string& s : stops) {
               ptrs.push_back(s.data());
               lens.push_back(s.size());
             }
             paca_generator_params gp = paca_generator_params_default();
             gp.stop_strings = ptrs.data();
             gp.stop_lengths = lens.data();
             gp.n_stop_strings = static_cast<int32_t>(ptrs.size());
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
}
