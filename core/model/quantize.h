// quantize.h - FP8 at load time: turn a checkpoint's BF16/F16/F32 linear
// weights into E4M3 with one f32 scale per output row (Meta's recipe for
// Llama 3.1 405B), and choose how FP8 matmuls treat their activations.
#pragma once

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

}  // namespace paca
