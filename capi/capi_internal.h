// capi_internal.h - what the C-API translation units share: the handle
// structs and the exception -> paca_status wrapper. Private to capi/.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "paca/paca.h"
#include "paca/paca_experimental.h"
#include "runtime/kv_cache.h"
#include "runtime/session.h"
#include "sample/sampler.h"
#include "sample/stop.h"
#include "runtime/snapshot_format.h"
#include "util/error.h"

// A model's state is shared by its handle and its sessions, so freeing the
// model handle before its sessions is safe.
namespace paca::capi {
struct ModelState {
  std::unique_ptr<paca::ModelRunner> model;  // whole, or sharded (parallel/sharded_model.h)
  std::unique_ptr<paca::BlockPool> pool;  // destroyed before model
  // Grammars (sampler_capi.cpp): the vocabulary's byte trie, built on first
  // use, and the last kMaxGrammars compiled grammars by their text, so that a
  // grammar used again keeps its token splits.
  static constexpr size_t kMaxGrammars = 16;
  std::mutex grammar_mutex;  // guards the three below
  std::shared_ptr<const paca::GrammarVocab> grammar_vocab;
  std::map<std::string, std::shared_ptr<paca::CompiledGrammar>> grammars;
  std::deque<std::string> grammar_order;  // oldest first
};
}  // namespace paca::capi

struct paca_model {
  std::shared_ptr<paca::capi::ModelState> state;
  paca::ModelRunner* model = nullptr;
};

struct paca_session {
  std::shared_ptr<paca::capi::ModelState> state;
  std::unique_ptr<paca::Session> session;  // destroyed before state
};

// The sampler chain plus the token-level stop conditions (sampler_capi.cpp;
// a paca_generator owns one too).
struct paca_sampler {
  paca::Sampler sampler;
  paca::StopConditions stop;
  int32_t n_top_logprobs = 0;
  paca::Logprobs logprobs;  // scratch for the output
};

// "MAJOR.MINOR.PATCH" from paca.h's macros (the one place the version is written).
#define PACA_STRINGIFY_(x) #x
#define PACA_STRINGIFY(x) PACA_STRINGIFY_(x)
#define PACA_VERSION_TEXT \
  PACA_STRINGIFY(PACA_VERSION_MAJOR) "." PACA_STRINGIFY(PACA_VERSION_MINOR) "." PACA_STRINGIFY(PACA_VERSION_PATCH)

namespace paca::capi {

// No params struct is larger; a struct_size above it is not a struct_size.
inline constexpr size_t kMaxParamsSize = 4096;

inline thread_local std::string t_last_error;

inline paca_status set_error(paca_status s, const std::string& msg) {
  t_last_error = msg;
  return s;
}

// Runs fn, mapping every exception to a status. The one wrapper of the ABI.
template <typename Fn>
paca_status guarded(Fn&& fn) {
  try {
    t_last_error.clear();
    fn();
    return PACA_OK;
  } catch (const paca::Error& e) {
    return set_error(static_cast<paca_status>(static_cast<int>(e.status())), e.what());
  } catch (const std::bad_alloc&) {
    return set_error(PACA_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return set_error(PACA_ERR_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return set_error(PACA_ERR_INTERNAL, "internal error: unknown exception");
  }
}

// The settings of a sampler as a snapshot stores them, and a new sampler
// made from them for model (sampler_capi.cpp). sampler_from_record throws
// paca::Error(format) when the record does not fit the model.
SamplerRecord sampler_record(const paca_sampler& sampler);
paca_sampler* sampler_from_record(const paca_model& model, const SamplerRecord& record);

#define PACA_REQUIRE(cond, msg) \
  if (!(cond)) return set_error(PACA_ERR_INVALID_ARGUMENT, msg)

// The defaults of each params struct (paca_X_params_init fills a caller's
// struct from them; the v0.1 paca_X_params_default functions of
// compat_capi.cpp copy their v0.1 part).
paca_model_params default_model_params();
paca_session_params default_session_params();
paca_test_model_params default_test_model_params();
paca_chat_params default_chat_params();
paca_sampler_params default_sampler_params();
paca_generator_params default_generator_params();
paca_engine_params default_engine_params();
paca_request_params default_request_params();

// paca_X_params_init: the first size bytes of *p get the defaults (zeros
// past the library's struct) and struct_size = size.
template <typename P>
paca_status init_params(P* p, size_t size, const P& defaults, const char* fn) {
  if (p == nullptr) return set_error(PACA_ERR_INVALID_ARGUMENT, std::string(fn) + ": params is NULL");
  if (size < sizeof(uint32_t) || size > kMaxParamsSize)
    return set_error(PACA_ERR_INVALID_ARGUMENT, std::string(fn) + ": size " + std::to_string(size) +
                                                    " is not a params struct's size (pass sizeof p)");
  std::memset(static_cast<void*>(p), 0, size);
  std::memcpy(static_cast<void*>(p), &defaults, std::min(size, sizeof(P)));
  p->struct_size = static_cast<uint32_t>(size);
  return PACA_OK;
}

// v0.1's paca_model_params ended with fp8_mode; v0.2's load_mode took its
// tail padding, so a struct_size of exactly v0.1's sizeof means a v0.1
// caller, whose padding bytes mean nothing (compat_capi.cpp has the layout).
size_t model_params_v01_size();

// How many bytes of a caller's struct of struct_size bytes are fields.
template <typename P>
size_t meaningful_bytes(uint32_t struct_size) {
  if constexpr (std::is_same_v<P, paca_model_params>) {
    if (struct_size == model_params_v01_size()) return offsetof(paca_model_params, load_mode);
  }
  return std::min<size_t>(struct_size, sizeof(P));
}

// Copies the caller's params struct over the defaults, up to the size it
// declares. A struct larger than this library's (a newer header) is accepted
// when the bytes this library does not know are zero.
template <typename P>
bool read_params(const P* in, P& out, const char* what) {
  if (in == nullptr) return true;
  if (in->struct_size < sizeof(uint32_t) || in->struct_size > kMaxParamsSize) {
    set_error(PACA_ERR_INVALID_ARGUMENT, std::string(what) + ": struct_size is not set (use the _init() function)");
    return false;
  }
  if (in->struct_size > sizeof(P)) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(in);
    for (size_t i = sizeof(P); i < in->struct_size; ++i) {
      if (bytes[i] != 0) {
        set_error(PACA_ERR_INVALID_ARGUMENT, std::string(what) + ": struct_size " + std::to_string(in->struct_size) +
                                                 " sets fields this library (v" + PACA_VERSION_TEXT +
                                                 ", whose struct has " + std::to_string(sizeof(P)) +
                                                 " bytes) does not know (byte " + std::to_string(i) + ")");
        return false;
      }
    }
  }
  std::memcpy(static_cast<void*>(&out), in, meaningful_bytes<P>(in->struct_size));
  out.struct_size = sizeof(P);
  return true;
}

// A params struct with every byte zero and struct_size set: where each
// default_*_params() starts.
template <class P>
P zeroed_params() {
  P p;
  std::memset(static_cast<void*>(&p), 0, sizeof p);
  p.struct_size = sizeof p;
  return p;
}

// The buffer rules of paca.h, in one place: *out_needed (optional) gets the
// size needed (for text, its bytes plus the NUL); a buffer too small, or NULL
// (cap 0 is the size query), gives PACA_ERR_BUFFER_TOO_SMALL and writes
// nothing. `unit` names what cap counts in the message.
inline paca_status check_room(size_t need, const void* buf, size_t cap, size_t* out_needed, const char* fn,
                              const char* unit) {
  if (out_needed != nullptr) *out_needed = need;
  if (buf != nullptr && cap >= need) return PACA_OK;
  if (buf == nullptr && cap == 0)
    return set_error(PACA_ERR_BUFFER_TOO_SMALL,
                     std::string(fn) + ": size query (" + std::to_string(need) + " " + unit + " needed)");
  return set_error(PACA_ERR_BUFFER_TOO_SMALL, std::string(fn) + ": buffer holds " + std::to_string(cap) + " " + unit +
                                                  ", " + std::to_string(need) + " needed");
}

// Copies s and a NUL into buf under those rules.
inline paca_status write_string(std::string_view s, char* buf, size_t cap, size_t* out_needed, const char* fn) {
  if (const paca_status st = check_room(s.size() + 1, buf, cap, out_needed, fn, "bytes"); st != PACA_OK) return st;
  if (!s.empty()) std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
  return PACA_OK;
}

// Copies token ids into buf (cap entries) under those rules; an empty list
// fits any buffer, NULL included.
inline paca_status write_ids(std::span<const int32_t> ids, int32_t* buf, size_t cap, size_t* out_needed,
                             const char* fn) {
  if (ids.empty()) {
    if (out_needed != nullptr) *out_needed = 0;
    return PACA_OK;
  }
  if (const paca_status st = check_room(ids.size(), buf, cap, out_needed, fn, "ids"); st != PACA_OK) return st;
  std::memcpy(buf, ids.data(), ids.size() * sizeof(int32_t));
  return PACA_OK;
}

// Validates sampler params (NULL: defaults) against a model (its
// configuration; its tokenizer for a grammar) and builds the sampler; fn names the calling function in messages.
// (sampler_capi.cpp)
paca_status new_sampler(ModelState& model, const paca_sampler_params* params, const std::string& fn,
                        std::unique_ptr<paca_sampler>& out);
// Copies a Logprobs into the caller's struct, up to its struct_size. (sampler_capi.cpp)
void write_logprobs(const paca::Logprobs& lp, int32_t token, paca_token_logprobs* out);

}  // namespace paca::capi
