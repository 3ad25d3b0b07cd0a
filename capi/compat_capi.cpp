// compat_capi.cpp - the by-value paca_X_params_default() functions of the
// v0.1 ABI, kept exported for binaries built against v0.1 (and v0.2-v0.3)
// headers and no longer declared in paca.h.
//
// A by-value return writes sizeof(the returned struct) bytes into storage the
// caller reserved at ITS sizeof, so each function here returns the struct as
// v0.1 laid it out, never today's: today's paca_model_params (128 bytes on
// LP64) returned into a v0.1 caller's 88 would overwrite its stack. A caller
// gets struct_size = v0.1's size, and the library then reads v0.1's fields
// only (capi_internal.h's meaningful_bytes). tests/abi/ runs a v0.1 caller.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "capi_internal.h"

namespace {

// paca_model_params as v0.1 had it: up to fp8_mode (load_mode came in v0.2).
struct ModelParamsV01 {
  uint32_t struct_size;
  int32_t n_threads;
  const char* device;
  paca_progress_fn progress;
  void* progress_user;
  paca_log_fn log;
  void* log_user;
  int32_t log_level;
  int32_t kv_dtype;
  int32_t kv_block_tokens;
  const char* tokenizer_path;
  int32_t weight_dtype;
  int32_t fp8_targets;
  int32_t fp8_mode;
};

// paca_sampler_params as v0.1 had it: up to n_stop_ids (grammar and
// json_schema came in v0.2).
struct SamplerParamsV01 {
  uint32_t struct_size;
  float temperature;
  uint64_t seed;
  int32_t top_k;
  float top_p;
  float min_p;
  float repeat_penalty;
  float frequency_penalty;
  float presence_penalty;
  int32_t repeat_last_n;
  int32_t n_top_logprobs;
  int32_t max_new_tokens;
  int32_t ignore_eos;
  const int32_t* stop_ids;
  int32_t n_stop_ids;
};

// Today's fields start with v0.1's, at the same offsets.
static_assert(offsetof(paca_model_params, fp8_mode) == offsetof(ModelParamsV01, fp8_mode));
static_assert(offsetof(paca_model_params, tokenizer_path) == offsetof(ModelParamsV01, tokenizer_path));
static_assert(offsetof(paca_sampler_params, n_stop_ids) == offsetof(SamplerParamsV01, n_stop_ids));
static_assert(offsetof(paca_sampler_params, grammar) >= sizeof(SamplerParamsV01), "v0.2 reused v0.1's padding");
// These structs are as v0.1 (generator: v0.2) left them, at these LP64
// sizes. A field appended to one of them needs a frozen layout here, like
// ModelParamsV01, for its paca_X_params_default below.
#if UINTPTR_MAX == UINT64_MAX
static_assert(sizeof(ModelParamsV01) == 88 && sizeof(SamplerParamsV01) == 72);
static_assert(sizeof(paca_session_params) == 8 && sizeof(paca_test_model_params) == 56);
static_assert(sizeof(paca_chat_params) == 64 && sizeof(paca_generator_params) == 40);
#endif

// The first sizeof(V) bytes of today's defaults, as V, with struct_size = sizeof(V).
template <typename V, typename P>
V frozen(const P& today) {
  static_assert(sizeof(V) <= sizeof(P));
  V v;
  std::memcpy(static_cast<void*>(&v), &today, sizeof v);
  v.struct_size = sizeof v;
  return v;
}

}  // namespace

size_t paca::capi::model_params_v01_size() { return sizeof(ModelParamsV01); }

// C linkage and default visibility, as the v0.1 header declared them.
extern "C" {

PACA_API ModelParamsV01 paca_model_params_default(void) {
  return frozen<ModelParamsV01>(paca::capi::default_model_params());
}

PACA_API SamplerParamsV01 paca_sampler_params_default(void) {
  return frozen<SamplerParamsV01>(paca::capi::default_sampler_params());
}

PACA_API paca_session_params paca_session_params_default(void) { return paca::capi::default_session_params(); }

PACA_API paca_test_model_params paca_test_model_params_default(void) {
  return paca::capi::default_test_model_params();
}

PACA_API paca_chat_params paca_chat_params_default(void) { return paca::capi::default_chat_params(); }

PACA_API paca_generator_params paca_generator_params_default(void) {
  return paca::capi::default_generator_params();
}

}  // extern "C"
