// capi_internal.h - what the C-API translation units share: the handle
// structs and the exception -> paca_status wrapper. Private to capi/.
#pragma once

#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "paca/paca.h"
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

namespace paca::capi {

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

// Copies the caller's params struct over the defaults, up to the size it declares.
template <typename P>
bool read_params(const P* in, P& out, const char* what) {
  if (in == nullptr) return true;
  if (in->struct_size < sizeof(uint32_t) || in->struct_size > 4096) {
    set_error(PACA_ERR_INVALID_ARGUMENT, std::string(what) + ": struct_size is not set (use the _default() function)");
    return false;
  }
  std::memcpy(&out, in, std::min<size_t>(in->struct_size, sizeof(P)));
  out.struct_size = sizeof(P);
  return true;
}

// Copies s and a NUL into buf under paca.h's buffer rules: *out_needed gets
// s.size() + 1; a buffer too small (or NULL with cap 0, a size query) gives
// PACA_ERR_BUFFER_TOO_SMALL and writes nothing.
inline paca_status write_string(const std::string& s, char* buf, size_t cap, size_t* out_needed, const char* fn) {
  if (out_needed != nullptr) *out_needed = s.size() + 1;
  if (buf == nullptr || cap < s.size() + 1) {
    if (buf == nullptr && cap == 0 && out_needed != nullptr)
      return set_error(PACA_ERR_BUFFER_TOO_SMALL, std::string(fn) + ": size query (" + std::to_string(s.size() + 1) + " bytes needed)");
    return set_error(PACA_ERR_BUFFER_TOO_SMALL, std::string(fn) + ": buffer holds " + std::to_string(cap) + " bytes, " +
                                                    std::to_string(s.size() + 1) + " needed");
  }
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = 0;
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
