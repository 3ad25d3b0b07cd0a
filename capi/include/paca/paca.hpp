// paca.hpp - a header-only C++17 convenience layer over paca.h: RAII handles,
// std::string_view in, std::string / std::vector out, and paca::Error
// exceptions for non-OK statuses. It adds no behaviour of its own: every call
// is one or two paca.h calls, so the C header's documentation applies.
//
//   paca::Model model("stories260K.bin");
//   paca::Session session(model);
//   paca::Generator gen(session, model.tokenize("Once upon a time"), sampling);
//   while (auto piece = gen.next()) std::cout << piece->text << std::flush;
//
// Since v0.1.
#ifndef PACA_PACA_HPP
#define PACA_PACA_HPP

#include <paca/paca.h>

#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paca {

/// A non-OK paca_status with paca_last_error()'s message.
class Error : public std::runtime_error {
 public:
  Error(paca_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  paca_status status() const noexcept { return status_; }
  const char* status_name() const noexcept { return paca_status_name(status_); }

 private:
  paca_status status_;
};

/// Throws paca::Error for anything but PACA_OK.
inline void check(paca_status s) {
  if (s != PACA_OK) throw Error(s, paca_last_error());
}

namespace detail {
template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const noexcept { Free(p); }
};
template <typename T, void (*Free)(T*)>
using Handle = std::unique_ptr<T, Deleter<T, Free>>;

// Calls fn(buf, cap, &needed) twice: once for the size, once to fill.
template <typename Fn>
std::string read_string(Fn&& fn) {
  size_t need = 0;
  paca_status s = fn(nullptr, 0, &need);
  if (s != PACA_OK && s != PACA_ERR_BUFFER_TOO_SMALL) check(s);
  std::string out(need, '\0');
  check(fn(out.data(), out.size(), &need));
  out.resize(need > 0 ? need - 1 : 0);
  return out;
}
}  // namespace detail

/// A loaded model; may be shared by any number of threads. Movable, not copyable.
class Model {
 public:
  explicit Model(const std::string& path, const paca_model_params* params = nullptr) {
    paca_model* m = nullptr;
    check(paca_model_load(path.c_str(), params, &m));
    h_.reset(m);
  }
  paca_model* get() const noexcept { return h_.get(); }

  paca_model_info info() const {
    paca_model_info i;
    std::memset(&i, 0, sizeof i);
    i.struct_size = sizeof i;
    check(paca_model_get_info(get(), &i));
    return i;
  }

  std::vector<int32_t> tokenize(std::string_view text, bool bos = true, bool special = false) const {
    const uint32_t flags = (bos ? uint32_t{PACA_TOKENIZE_ADD_BOS} : 0u) | (special ? uint32_t{PACA_TOKENIZE_SPECIAL} : 0u);
    size_t n = 0;
    paca_status s = paca_tokenize(get(), text.data(), text.size(), flags, nullptr, 0, &n);
    if (s != PACA_OK && s != PACA_ERR_BUFFER_TOO_SMALL) check(s);
    std::vector<int32_t> ids(n);
    check(paca_tokenize(get(), text.data(), text.size(), flags, ids.data(), ids.size(), &n));
    return ids;
  }

  std::string detokenize(const std::vector<int32_t>& ids, uint32_t flags = 0) const {
    return detail::read_string([&](char* b, size_t c, size_t* n) {
      return paca_detokenize(get(), ids.data(), ids.size(), flags, b, c, n);
    });
  }

  /// Renders a conversation (JSON, see paca_chat_format) with the model's chat format.
  std::string chat_format(const std::string& messages_json, const paca_chat_params* params = nullptr) const {
    return detail::read_string([&](char* b, size_t c, size_t* n) {
      return paca_chat_format(get(), messages_json.c_str(), params, b, c, n);
    });
  }

 private:
  detail::Handle<paca_model, paca_model_free> h_;
};

/// One sequence on a model; used by one thread at a time.
class Session {
 public:
  explicit Session(const Model& model, int32_t n_ctx = 0) {
    paca_session_params p;
    paca_session_params_init(&p, sizeof p);
    p.n_ctx = n_ctx;
    paca_session* s = nullptr;
    check(paca_session_create(model.get(), &p, &s));
    h_.reset(s);
  }
  paca_session* get() const noexcept { return h_.get(); }

  void prefill(const std::vector<int32_t>& tokens) { check(paca_session_prefill(get(), tokens.data(), tokens.size())); }
  void decode(int32_t token) { check(paca_session_decode(get(), token)); }
  void rewind(size_t n_tokens) { check(paca_session_rewind(get(), n_tokens)); }
  void cancel() noexcept { paca_session_cancel(get()); }
  size_t length() const noexcept { return paca_session_length(get()); }
  size_t context_size() const noexcept { return paca_session_context_size(get()); }

  /// The last position's logits, owned by the session (valid until it changes).
  std::pair<const float*, size_t> logits() const {
    const float* p = nullptr;
    size_t n = 0;
    check(paca_session_logits(get(), &p, &n));
    return {p, n};
  }

 private:
  detail::Handle<paca_session, paca_session_free> h_;
};

/// Stop strings and the rest of paca_generator_params, as C++ values.
struct GenerateOptions {
  std::vector<std::string> stop;
  bool logprobs = false;
  uint32_t detokenize_flags = 0;
};

/// One generation (see paca_generator); borrows the session.
class Generator {
 public:
  struct Piece {
    int32_t token;
    std::string_view text;  // valid until the next call
  };

  Generator(Session& session, const std::vector<int32_t>& prompt, const paca_sampler_params* sampling = nullptr,
            const GenerateOptions& options = {}) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const std::string& s : options.stop) {
      ptrs.push_back(s.data());
      lens.push_back(s.size());
    }
    paca_generator_params p;
    paca_generator_params_init(&p, sizeof p);
    p.stop_strings = ptrs.data();
    p.stop_lengths = lens.data();
    p.n_stop_strings = static_cast<int32_t>(ptrs.size());
    p.logprobs = options.logprobs ? 1 : 0;
    p.detokenize_flags = options.detokenize_flags;
    paca_generator* g = nullptr;
    check(paca_generator_create(session.get(), prompt.data(), prompt.size(), sampling, &p, &g));
    h_.reset(g);
  }
  paca_generator* get() const noexcept { return h_.get(); }

  /// The next token and its text, or nothing once the generation has ended.
  std::optional<Piece> next() {
    if (done()) return std::nullopt;
    int32_t tok = -1;
    const char* text = nullptr;
    size_t len = 0;
    check(paca_generator_next(get(), &tok, &text, &len));
    if (tok < 0) return std::nullopt;
    return Piece{tok, std::string_view(text, len)};
  }
  bool done() const noexcept { return paca_generator_stop_reason(get()) != PACA_STOP_NONE; }
  paca_stop_reason stop_reason() const noexcept { return paca_generator_stop_reason(get()); }
  size_t n_generated() const noexcept { return paca_generator_n_generated(get()); }
  paca_token_logprobs logprobs() const {
    paca_token_logprobs lp;
    std::memset(&lp, 0, sizeof lp);
    lp.struct_size = sizeof lp;
    check(paca_generator_logprobs(get(), &lp));
    return lp;
  }

 private:
  detail::Handle<paca_generator, paca_generator_free> h_;
};

}  // namespace paca

#endif  // PACA_PACA_HPP
