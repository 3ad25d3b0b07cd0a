// plan_capi.cpp - the C ABI of the shard planner, the named shapes (paca.h,
// "planning": JSON in, JSON out; the arithmetic is core/parallel/plan) and the
// GGUF quantizer (core/model/quantize_gguf).
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "capi_internal.h"
#include "model/quantize.h"
#include "parallel/plan.h"

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

PACA_API paca_status paca_quantize_gguf(const char* in_path, const char* out_path, const char* mix, int32_t n_threads,
                                        paca_progress_fn progress, void* progress_user, char* buf, size_t cap,
                                        size_t* out_needed) {
  if (out_needed != nullptr) *out_needed = 0;
  PACA_REQUIRE(in_path != nullptr && out_path != nullptr && mix != nullptr,
               "paca_quantize_gguf: in_path, out_path or mix is NULL");
  paca::QuantMix m;
  if (!paca::parse_quant_mix(mix, m))
    return set_error(PACA_ERR_INVALID_ARGUMENT, std::string("paca_quantize_gguf: unknown mix '") + mix +
                                                    "' (known: " + paca::quant_mix_names() + ")");
  std::string out;
  const paca_status st = guarded([&] {
    std::function<bool(float)> cb;
    if (progress != nullptr) cb = [&](float f) { return progress(progress_user, f) == 0; };
    const paca::QuantizeReport r = paca::write_quantized_gguf(in_path, out_path, m, n_threads, cb);
    nlohmann::ordered_json j{{"mix", paca::quant_mix_name(m)}, {"tensors", r.tensors}, {"converted", r.converted},
                             {"bytes_in", r.bytes_in}, {"bytes_out", r.bytes_out}, {"types", r.types}};
    out = j.dump();
  });
  if (st != PACA_OK) return st;
  return write_string(out, buf, cap, out_needed, "paca_quantize_gguf");
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
  paca_test_model_params p;
  paca_test_model_params_init(&p, sizeof p);
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
