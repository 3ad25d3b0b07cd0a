// config.h - ModelConfig: one normalized description of a Llama model,
// whatever file it came from (HF config.json, GGUF metadata, llama2.c header).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "format/tensor.h"

namespace paca {

enum class ModelFormat : int { hf_safetensors = 0, gguf = 1, llama2c = 2 };
enum class RopeScaling : int { none = 0, llama3 = 1 };
// How the two elements of a rotary pair are laid out within a head:
//   interleaved: (2i, 2i+1)     - Meta, GGUF, llama2.c
//   half:        (i, i + d/2)   - Hugging Face ("rotate_half")
enum class RopeLayout : int { interleaved = 0, half = 1 };

const char* format_name(ModelFormat f);

enum class QuantMethod : int { none = 0, fbgemm_fp8 = 1, compressed_tensors = 2, fp8 = 3 };

// A checkpoint's quantization_config, for the FP8 layouts paca reads.
struct QuantConfig {
  QuantMethod method = QuantMethod::none;
  ActQuant act = ActQuant::none;  // activations of the quantized linears
  float act_ub = INFINITY;        // dynamic_row: bound of the row max (fbgemm: activation_scale_ub)
  std::vector<std::string> skip;  // modules_to_not_convert / ignore (informative: the file's dtypes rule)
};

const char* quant_method_name(QuantMethod m);

struct ModelConfig {
  ModelFormat format = ModelFormat::hf_safetensors;
  std::string name;          // free text (GGUF general.name, directory name)
  int dim = 0;               // hidden size
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int ffn_dim = 0;
  int n_vocab = 0;
  int max_context = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling = RopeScaling::none;
  float rope_factor = 1.0f;
  float rope_low_freq_factor = 1.0f;
  float rope_high_freq_factor = 4.0f;
  int rope_original_context = 8192;
  RopeLayout rope_layout = RopeLayout::half;
  bool tied_embeddings = false;
  QuantConfig quant;
  int bos_id = -1;
  std::vector<int> eos_ids;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }

  // Throws Error(format) naming the first field that is missing, non-positive,
  // inconsistent or absurdly large. Called before any large allocation.
  void validate() const;
};

// Limits that reject absurd files before they cause huge allocations.
struct ConfigLimits {
  static constexpr int max_dim = 1 << 16;
  static constexpr int max_layers = 1024;
  static constexpr int max_heads = 1024;
  static constexpr int max_head_dim = 1024;
  static constexpr int max_ffn = 1 << 20;
  static constexpr int max_vocab = 1 << 21;
  static constexpr int max_context = 1 << 24;
};

// Per-pair rotary frequencies f'_i (i in [0, head_dim/2)), llama3 scaling applied.
std::vector<float> rope_frequencies(const ModelConfig& c);

// Parses a Hugging Face config.json (+ optional generation_config.json text,
// may be empty) into a ModelConfig. Throws Error(format/unsupported).
ModelConfig parse_hf_config(const std::string& config_json, const std::string& generation_json);

}  // namespace paca
