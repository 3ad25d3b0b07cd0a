// quantize.h - FP8 at load time: turn a checkpoint's BF16/F16/F32 linear
// weights into E4M3 with one f32 scale per output row (Meta's recipe for
// Llama 3.1 405B), and choose how FP8 matmuls treat their activations.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "model/checkpoint.h"

namespace paca {

struct Fp8Options {
  bool mlp = true;              // w1/w2/w3
  bool attention = false;       // wq/wk/wv/wo
  bool keep_first_last = true;  // leave layer 0 and the last layer as stored
  ActQuant act = ActQuant::dynamic_row;
  float act_ub = 1200.0f;       // Meta's fp8_activation_scale_ub
};

// Quantizes the selected linear weights: scale[r] = max|W[r, :]| / 448,
// code = e4m3(W / scale[r]) (round to nearest even, saturating). Tensors that
// are already FP8 are left alone. The new bytes are owned by the checkpoint.
void quantize_fp8(Checkpoint& ckpt, const Fp8Options& opt);

// Sets how every FP8 tensor treats its activations (e.g. ActQuant::none for
// weight-only w8a16). dynamic_row keeps each tensor's bound.
void set_fp8_activations(Checkpoint& ckpt, ActQuant act);

// Number of FP8 tensors.
int count_fp8(const Checkpoint& ckpt);

// ---- GGUF block quantization (paca quantize; quantize_gguf.cpp) ----------

// The mixes of block types people download. *_m give the value projection
// and the MLP down projection of the layers that matter most (the first and
// last eighth, every third between) Q6_K; every mix but q8_0 gives the LM
// head (or the tied embedding) Q6_K. A row that does not hold whole blocks
// falls back: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and to F16 when not
// a multiple of 32. Norms keep their type.
enum class QuantMix { q4_0, q4_1, q5_0, q5_1, q8_0, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k };

// "q4_k_m" (any case) -> the mix; false when unknown. quant_mix_names lists them.
bool parse_quant_mix(const std::string& name, QuantMix& out);
const char* quant_mix_name(QuantMix m);
std::string quant_mix_names();  // "q4_0, q4_1, ..."
uint32_t quant_mix_file_type(QuantMix m);  // GGUF general.file_type

// The dtype the canonical tensor `name` ([rows, cols]) gets under mix m in a
// model of n_layers layers (tied: the embedding is also the LM head).
DType quant_mix_type(QuantMix m, const std::string& name, int64_t rows, int64_t cols, int n_layers, bool tied);

// Quantizes every weight matrix of ckpt in memory as mix m (new bytes owned by
// the checkpoint), on n_threads threads (<= 0: all cores). Throws naming the
// first tensor and row with a non-finite weight.
void quantize_checkpoint(Checkpoint& ckpt, QuantMix m, int n_threads);

// Widens every tensor of ckpt to F32 in memory: the reference a quantized
// model is compared against (the same values, f32 arithmetic).
void dequantize_checkpoint(Checkpoint& ckpt);

struct QuantizeReport {
  int tensors = 0;          // tensors written
  int converted = 0;        // of which re-encoded (the rest copied as they were)
  uint64_t bytes_in = 0;    // tensor data read
  uint64_t bytes_out = 0;   // tensor data written
  std::map<std::string, int> types;  // output type name -> tensors
};

// Writes out_path: a GGUF v3 with every key/value of the GGUF at in_path (its
// tokenizer included) but general.file_type / general.quantization_version,
// and its tensors re-encoded as mix m (others copied byte for byte). The file
// is written to out_path + ".tmp" and renamed, so a failure never leaves a
// half file. progress(fraction) may return false to cancel (Error(cancelled)).
QuantizeReport write_quantized_gguf(const std::string& in_path, const std::string& out_path, QuantMix m,
                                    int n_threads, const std::function<bool(float)>& progress = {});

}  // namespace paca
