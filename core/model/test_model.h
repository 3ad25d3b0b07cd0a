// test_model.h - seeded-random Llama checkpoints for tests, examples and
// benchmarks, so paca runs end to end without downloading weights.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "model/checkpoint.h"

namespace paca {

// Writes a seeded-random Llama checkpoint in HF layout (BF16 safetensors).
struct TestModelSpec {
  uint64_t seed = 1;
  int dim = 128;
  int n_layers = 4;
  int n_heads = 4;
  int n_kv_heads = 2;
  int ffn_dim = 384;
  int n_vocab = 4096;
  int max_context = 2048;
  float rope_theta = 500000.0f;
  bool tied_embeddings = false;
};
void write_test_model(const std::string& dir, const TestModelSpec& spec);
// The same model built in memory, never touching the disk (benchmarks of
// shapes too big to write): the weights equal the file's bit for bit. Throws
// Error(out_of_memory) when its weights would exceed max_bytes.
std::unique_ptr<Checkpoint> synthetic_checkpoint(const TestModelSpec& spec, uint64_t max_bytes);

}  // namespace paca
