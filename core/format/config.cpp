// config.cpp - ModelConfig validation, rotary frequencies and the Hugging Face
// config.json reader.
#include "format/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace paca {

const char* format_name(ModelFormat f) {
  switch (f) {
    case ModelFormat::hf_safetensors: return "hf-safetensors";
    case ModelFormat::gguf: return "gguf";
    case ModelFormat::llama2c: return "llama2c";
  }
  return "?";
}

const char* quant_method_name(QuantMethod m) {
  switch (m) {
    case QuantMethod::none: return "none";
    case QuantMethod::fbgemm_fp8: return "fbgemm_fp8";
    case QuantMethod::compressed_tensors: return "compressed-tensors";
    case QuantMethod::fp8: return "fp8";
  }
  return "?";
}

void ModelConfig::validate() const {
  auto in_range = [](const char* field, long long v, long long hi) {
    check(v > 0, Status::format, "model config: {} must be positive, got {}", field, v);
    check(v <= hi, Status::format, "model config: {} = {} exceeds the limit {}", field, v, hi);
  };
  in_range("hidden size (dim)", dim, ConfigLimits::max_dim);
  in_range("layer count", n_layers, ConfigLimits::max_layers);
  in_range("attention head count", n_heads, ConfigLimits::max_heads);
  in_range("key/value head count", n_kv_heads, ConfigLimits::max_heads);
  in_range("head dim", head_dim, ConfigLimits::max_head_dim);
  in_range("feed-forward size", ffn_dim, ConfigLimits::max_ffn);
  in_range("vocabulary size", n_vocab, ConfigLimits::max_vocab);
  in_range("context length", max_context, ConfigLimits::max_context);
  check(n_heads % n_kv_heads == 0, Status::format,
        "model config: head count {} is not a multiple of the key/value head count {}", n_heads, n_kv_heads);
  check(head_dim % 2 == 0, Status::format, "model config: head dim {} must be even for rotary embeddings",
        head_dim);
  check(static_cast<long long>(n_heads) * head_dim <= ConfigLimits::max_dim * 4LL, Status::format,
        "model config: heads x head dim = {} is absurd", static_cast<long long>(n_heads) * head_dim);
  check(std::isfinite(norm_eps) && norm_eps > 0 && norm_eps < 1, Status::format,
        "model config: rms norm epsilon {} is not in (0, 1)", norm_eps);
  check(std::isfinite(rope_theta) && rope_theta > 1, Status::format, "model config: rope theta {} must be > 1",
        rope_theta);
  if (rope_scaling == RopeScaling::llama3) {
    check(std::isfinite(rope_factor) && rope_factor >= 1, Status::format,
          "model config: llama3 rope factor {} must be >= 1", rope_factor);
    check(rope_high_freq_factor > rope_low_freq_factor && rope_low_freq_factor > 0, Status::format,
          "model config: llama3 rope needs 0 < low_freq_factor < high_freq_factor (got {}, {})",
          rope_low_freq_factor, rope_high_freq_factor);
    check(rope_original_context > 0, Status::format, "model config: original_max_position_embeddings must be positive");
  }
  check(bos_id < n_vocab, Status::format, "model config: bos id {} outside the vocabulary ({})", bos_id, n_vocab);
  for (int e : eos_ids)
    check(e >= 0 && e < n_vocab, Status::format, "model config: eos id {} outside the vocabulary ({})", e, n_vocab);
}

std::vector<float> rope_frequencies(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<float> f(half);
  for (int i = 0; i < half; ++i) {
    float base = std::pow(c.rope_theta, -2.0f * static_cast<float>(i) / static_cast<float>(c.head_dim));
    if (c.rope_scaling == RopeScaling::llama3) {
      const double pi = 3.14159265358979323846;
      double wavelen = 2 * pi / base;
      double lo_wavelen = c.rope_original_context / c.rope_low_freq_factor;
      double hi_wavelen = c.rope_original_context / c.rope_high_freq_factor;
      if (wavelen < hi_wavelen) {
        // high frequency: unchanged
      } else if (wavelen > lo_wavelen) {
        base = static_cast<float>(base / c.rope_factor);
      } else {
        double s = (c.rope_original_context / wavelen - c.rope_low_freq_factor) /
                   (c.rope_high_freq_factor - c.rope_low_freq_factor);
        base = static_cast<float>((1 - s) * base / c.rope_factor + s * base);
      }
    }
    f[i] = base;
  }
  return f;
}

namespace {

using nlohmann::json;

int get_int(const json& j, const char* key, bool required, int dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    check(!required, Status::format, "config.json: required field '{}' is missing", key);
    return dflt;
  }
  check(it->is_number_integer(), Status::format, "config.json: field '{}' must be an integer", key);
  long long v = it->get<long long>();
  check(v >= -2147483647LL && v <= 2147483647LL, Status::format, "config.json: field '{}' = {} is out of range", key,
        v);
  return static_cast<int>(v);
}

std::string get_string(const json& j, const char* key, const std::string& dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  check(it->is_string(), Status::format, "config.json: field '{}' must be a string", key);
  return it->get<std::string>();
}

float get_float(const json& j, const char* key, float dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  check(it->is_number(), Status::format, "config.json: field '{}' must be a number", key);
  return it->get<float>();
}

std::vector<int> get_ids(const json& j, const char* key) {
  std::vector<int> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  auto one = [&](const json& v) {
    check(v.is_number_integer(), Status::format, "{}: '{}' must hold integer token ids", "config", key);
    long long id = v.get<long long>();
    check(id >= 0 && id < ConfigLimits::max_vocab, Status::format, "config: '{}' id {} is out of range", key, id);
    out.push_back(static_cast<int>(id));
  };
  if (it->is_array()) {
    check(it->size() <= 64, Status::format, "config: '{}' lists too many ids", key);
    for (const auto& v : *it) one(v);
  } else {
    one(*it);
  }
  return out;
}

json parse_json(const std::string& text, const char* what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  check(!j.is_discarded(), Status::format, "{} is not valid JSON", what);
  check(j.is_object(), Status::format, "{} must be a JSON object", what);
  return j;
}

std::vector<std::string> get_strings(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  check(it->is_array(), Status::format, "quantization_config: '{}' must be a list of module names", key);
  for (const auto& v : *it) {
    check(v.is_string(), Status::format, "quantization_config: '{}' must hold strings", key);
    out.push_back(v.get<std::string>());
  }
  return out;
}

// compressed-tensors: one config group of float8 weights (per tensor or per
// channel) with dynamic per-token, static per-tensor or no activation quant.
void parse_compressed_tensors(const json& q, QuantConfig& qc) {
  std::string format = get_string(q, "format", "float-quantized");
  if (format != "float-quantized" && format != "naive-quantized")
    fail(Status::unsupported, "quantization_config: compressed-tensors format '{}' is not supported (float-quantized)",
         format);
  auto groups = q.find("config_groups");
  check(groups != q.end() && groups->is_object() && groups->size() == 1, Status::unsupported,
        "quantization_config: compressed-tensors needs exactly one config group");
  const json& g = groups->begin().value();
  check(g.is_object(), Status::format, "quantization_config: config group must be an object");
  auto w = g.find("weights");
  check(w != g.end() && w->is_object(), Status::format, "quantization_config: config group has no 'weights'");
  int bits = get_int(*w, "num_bits", false, 8);
  std::string type = get_string(*w, "type", "float");
  std::string strategy = get_string(*w, "strategy", "tensor");
  if (bits != 8 || type != "float")
    fail(Status::unsupported, "quantization_config: {}-bit {} weights are not supported (8-bit float only)", bits, type);
  if (strategy != "tensor" && strategy != "channel")
    fail(Status::unsupported, "quantization_config: weight strategy '{}' is not supported (tensor, channel)", strategy);
  auto a = g.find("input_activations");
  if (a == g.end() || a->is_null()) {
    qc.act = ActQuant::none;
  } else {
    check(a->is_object(), Status::format, "quantization_config: input_activations must be an object or null");
    bool dynamic = false;
    if (auto d = a->find("dynamic"); d != a->end() && !d->is_null()) {
      check(d->is_boolean(), Status::format, "quantization_config: input_activations.dynamic must be a boolean");
      dynamic = d->get<bool>();
    }
    std::string astrat = get_string(*a, "strategy", dynamic ? "token" : "tensor");
    int abits = get_int(*a, "num_bits", false, 8);
    check(abits == 8, Status::unsupported, "quantization_config: {}-bit activations are not supported", abits);
    if (dynamic) {
      check(astrat == "token" || astrat == "tensor", Status::unsupported,
            "quantization_config: dynamic activation strategy '{}' is not supported", astrat);
      qc.act = ActQuant::dynamic_row;
    } else {
      check(astrat == "tensor", Status::unsupported, "quantization_config: static activation strategy '{}' is not supported",
            astrat);
      qc.act = ActQuant::static_tensor;
    }
  }
  qc.skip = get_strings(q, "ignore");
}

QuantConfig parse_quant_config(const json& q) {
  check(q.is_object(), Status::format, "config.json: quantization_config must be an object");
  QuantConfig qc;
  std::string method = get_string(q, "quant_method", "");
  if (method == "fbgemm_fp8") {
    qc.method = QuantMethod::fbgemm_fp8;
    qc.act = ActQuant::dynamic_row;
    qc.act_ub = get_float(q, "activation_scale_ub", 1200.0f);
    check(std::isfinite(qc.act_ub) && qc.act_ub > 0, Status::format,
          "quantization_config: activation_scale_ub {} must be positive", qc.act_ub);
    qc.skip = get_strings(q, "modules_to_not_convert");
  } else if (method == "compressed-tensors") {
    qc.method = QuantMethod::compressed_tensors;
    parse_compressed_tensors(q, qc);
  } else if (method == "fp8") {  // AutoFP8
    qc.method = QuantMethod::fp8;
    std::string scheme = get_string(q, "activation_scheme", "dynamic");
    if (scheme == "dynamic") qc.act = ActQuant::dynamic_row;
    else if (scheme == "static") qc.act = ActQuant::static_tensor;
    else fail(Status::unsupported, "quantization_config: activation_scheme '{}' is not supported", scheme);
    qc.skip = get_strings(q, "ignored_layers");
  } else {
    fail(Status::unsupported, "config.json: quantization method '{}' is not supported (fbgemm_fp8, compressed-tensors, fp8)",
         method);
  }
  return qc;
}

}  // namespace

ModelConfig parse_hf_config(const std::string& config_json, const std::string& generation_json) {
  json j = parse_json(config_json, "config.json");
  ModelConfig c;
  c.format = ModelFormat::hf_safetensors;
  c.rope_layout = RopeLayout::half;

  std::string model_type = get_string(j, "model_type", "");
  bool llama_arch = model_type == "llama";
  if (auto it = j.find("architectures"); it != j.end() && it->is_array()) {
    for (const auto& a : *it)
      if (a.is_string() && a.get<std::string>() == "LlamaForCausalLM") llama_arch = true;
  }
  if (!llama_arch)
    fail(Status::unsupported, "config.json: unsupported architecture (model_type '{}'); only Llama is supported",
         model_type);
  if (auto it = j.find("hidden_act"); it != j.end() && !(it->is_string() && it->get<std::string>() == "silu"))
    fail(Status::unsupported, "config.json: hidden_act must be 'silu'");
  for (const char* bias : {"attention_bias", "mlp_bias"})
    if (auto it = j.find(bias); it != j.end() && it->is_boolean() && it->get<bool>())
      fail(Status::unsupported, "config.json: {} = true is not supported (Llama has no biases)", bias);
  if (auto it = j.find("quantization_config"); it != j.end() && !it->is_null()) c.quant = parse_quant_config(*it);

  c.dim = get_int(j, "hidden_size", true, 0);
  c.ffn_dim = get_int(j, "intermediate_size", true, 0);
  c.n_layers = get_int(j, "num_hidden_layers", true, 0);
  c.n_heads = get_int(j, "num_attention_heads", true, 0);
  c.n_kv_heads = get_int(j, "num_key_value_heads", false, c.n_heads);
  c.n_vocab = get_int(j, "vocab_size", true, 0);
  check(c.n_heads > 0, Status::format, "config.json: num_attention_heads must be positive, got {}", c.n_heads);
  c.head_dim = get_int(j, "head_dim", false, c.dim / c.n_heads);
  c.max_context = get_int(j, "max_position_embeddings", false, 2048);
  c.norm_eps = get_float(j, "rms_norm_eps", 1e-6f);
  c.rope_theta = get_float(j, "rope_theta", 10000.0f);
  if (auto it = j.find("tie_word_embeddings"); it != j.end() && !it->is_null()) {
    check(it->is_boolean(), Status::format, "config.json: tie_word_embeddings must be a boolean");
    c.tied_embeddings = it->get<bool>();
  }
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    check(it->is_object(), Status::format, "config.json: rope_scaling must be null or an object");
    std::string type = get_string(*it, "rope_type", "");
    if (type.empty()) type = get_string(*it, "type", "");
    if (type == "llama3") {
      c.rope_scaling = RopeScaling::llama3;
      c.rope_factor = get_float(*it, "factor", 8.0f);
      c.rope_low_freq_factor = get_float(*it, "low_freq_factor", 1.0f);
      c.rope_high_freq_factor = get_float(*it, "high_freq_factor", 4.0f);
      c.rope_original_context = get_int(*it, "original_max_position_embeddings", false, 8192);
    } else if (type != "default") {
      fail(Status::unsupported, "config.json: rope_scaling type '{}' is not supported (only 'llama3')", type);
    }
  }
  std::vector<int> bos = get_ids(j, "bos_token_id");
  c.bos_id = bos.empty() ? -1 : bos[0];
  c.eos_ids = get_ids(j, "eos_token_id");
  if (!generation_json.empty()) {
    json g = parse_json(generation_json, "generation_config.json");
    std::vector<int> eos = get_ids(g, "eos_token_id");
    if (!eos.empty()) c.eos_ids = eos;
    std::vector<int> gbos = get_ids(g, "bos_token_id");
    if (!gbos.empty()) c.bos_id = gbos[0];
  }
  c.validate();
  return c;
}

}  // namespace paca
