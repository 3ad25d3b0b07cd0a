// snapshot_capi.cpp - the C ABI of session forks, snapshot files and the
// prompt cache over core/runtime/snapshot.h. Validation and translation only.
#include <string>

#include "capi_internal.h"
#include "runtime/snapshot.h"
#include "util/log.h"

using namespace paca::capi;

namespace {

paca_session* wrap(const std::shared_ptr<ModelState>& state, std::unique_ptr<paca::Session> s) {
  auto h = std::make_unique<paca_session>();
  h->state = state;
  h->session = std::move(s);
  return h.release();
}

}  // namespace

extern "C" {

PACA_API paca_status paca_session_fork(const paca_session* session, paca_session** out_child) {
  PACA_REQUIRE(out_child != nullptr, "paca_session_fork: out_child is NULL");
  *out_child = nullptr;
  PACA_REQUIRE(session != nullptr, "paca_session_fork: session is NULL");
  return guarded([&] {
    *out_child = wrap(session->state, session->session->fork(session->session->length()));
  });
}

PACA_API paca_status paca_session_save_with_sampler(const paca_session* session, const paca_sampler* sampler,
                                                    const char* path) {
  PACA_REQUIRE(session != nullptr, "paca_session_save: session is NULL");
  PACA_REQUIRE(path != nullptr && path[0] != '\0', "paca_session_save: path is NULL or empty");
  return guarded([&] {
    paca::SamplerRecord record;
    if (sampler != nullptr) record = sampler_record(*sampler);
    paca::save_snapshot(*session->session, sampler != nullptr ? &record : nullptr, path);
  });
}

PACA_API paca_status paca_session_save(const paca_session* session, const char* path) {
  return paca_session_save_with_sampler(session, nullptr, path);
}

PACA_API paca_status paca_session_load_with_sampler(paca_model* model, const char* path,
                                                    paca_session** out_session, paca_sampler** out_sampler) {
  PACA_REQUIRE(out_session != nullptr, "paca_session_load: out_session is NULL");
  *out_session = nullptr;
  if (out_sampler != nullptr) *out_sampler = nullptr;
  PACA_REQUIRE(model != nullptr, "paca_session_load: model is NULL");
  PACA_REQUIRE(path != nullptr && path[0] != '\0', "paca_session_load: path is NULL or empty");
  return guarded([&] {
    paca::LoadedSnapshot l = paca::load_snapshot(*model->model, *model->state->pool, path);
    paca_sampler* smp = nullptr;
    if (out_sampler != nullptr && l.sampler) smp = sampler_from_record(*model, *l.sampler);
    *out_session = wrap(model->state, std::move(l.session));
    if (out_sampler != nullptr) *out_sampler = smp;
  });
}

PACA_API paca_status paca_session_load(paca_model* model, const char* path, paca_session** out_session) {
  return paca_session_load_with_sampler(model, path, out_session, nullptr);
}

PACA_API paca_status paca_session_prefill_cached(paca_session* session, const char* cache_path, const int32_t* tokens,
                                                 size_t n, size_t* out_n_reused) {
  if (out_n_reused != nullptr) *out_n_reused = 0;
  PACA_REQUIRE(session != nullptr, "paca_session_prefill_cached: session is NULL");
  PACA_REQUIRE(cache_path != nullptr && cache_path[0] != '\0', "paca_session_prefill_cached: cache_path is NULL or empty");
  PACA_REQUIRE(tokens != nullptr && n > 0, "paca_session_prefill_cached: no tokens given");
  paca::Session& s = *session->session;
  if (s.length() != 0)
    return set_error(PACA_ERR_STATE, "paca_session_prefill_cached: the session must be empty (it holds " +
                                         std::to_string(s.length()) + " tokens)");
  return guarded([&] {
    const std::span<const int32_t> want(tokens, n);
    size_t reused = 0;
    try {
      reused = paca::restore_prefix(s, cache_path, want);
    } catch (const paca::Error& e) {  // an unusable cache is a miss
      const bool missing = e.status() == paca::Status::io;
      paca::logf(s.model().log(), missing ? paca::LogLevel::info : paca::LogLevel::warn,
                 "prompt cache not used: {}", e.what());
    }
    try {
      if (reused < n) s.prefill(want.subspan(reused));
    } catch (...) {
      s.rewind(0);
      throw;
    }
    if (out_n_reused != nullptr) *out_n_reused = reused;
  });
}

}  // extern "C"
