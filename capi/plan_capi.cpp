// plan_capi.cpp - the C ABI of the shard planner and the named shapes
// (paca.h, "planning"): JSON in, JSON out; the arithmetic is core/model/plan.
#include <cstring>
#include <string>

#include "capi_internal.h"
#include "model/plan.h"

using namespace paca::capi;

extern "C" {

PACA_API paca_status paca_plan_json(const char* request_json, char* buf, size_t cap, size_t* out_needed) {
  if (out_needed != nullptr) *out_needed = 0;
  PACA_REQUIRE(request_json != nullptr, "paca_plan_json: request_json is NULL");
  std::string out;
  const paca_status st = guarded([&] { out = paca::plan_json(paca::make_plan(paca::plan_request_from_json(request_json))); });
  if (st != PACA_OK) return st;
  return write_string(out, buf, cap, out_needed, "paca_plan_json");
}

PACA_API paca_status paca_test_model_params_for_shape(const char* name, paca_test_model_params* out) {
  PACA_REQUIRE(name != nullptr && out != nullptr, "paca_test_model_params_for_shape: name or out is NULL");
  const paca::ModelShape* s = paca::find_shape(name);
  if (s == nullptr) {
    std::string names;
    for (const std::string& n : paca::shape_names()) names += (names.empty() ? "" : ", ") + n;
    return set_error(PACA_ERR_INVALID_ARGUMENT,
                     std::string("paca_test_model_params_for_shape: unknown shape '") + name + "' (known: " + names + ")");
  }
  paca_test_model_params p = paca_test_model_params_default();
  p.dim = s->dim;
  p.n_layers = s->n_layers;
  p.n_heads = s->n_heads;
  p.n_kv_heads = s->n_kv_heads;
  p.ffn_dim = s->ffn_dim;
  p.n_vocab = s->n_vocab;
  p.max_context = s->max_context;
  p.rope_theta = s->rope_theta;
  p.tied_embeddings = s->tied_embeddings ? 1 : 0;
  *out = p;
  return PACA_OK;
}

}  // extern "C"
