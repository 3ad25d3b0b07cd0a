// checkpoint.h - opens a checkpoint in any supported format and presents its
// weights under one set of canonical names, zero-copy from the mapped files:
//   embed [V, D], output [V, D] (absent when tied), norm [D], and per layer i
//   L<i>.attn_norm [D], L<i>.wq [H*d, D], L<i>.wk [Hkv*d, D], L<i>.wv [Hkv*d, D],
//   L<i>.wo [D, H*d], L<i>.ffn_norm [D], L<i>.w1 (gate) [F, D],
//   L<i>.w2 (down) [D, F], L<i>.w3 (up) [F, D].
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/gguf.h"
#include "model/tensor.h"
#include "util/mmap.h"

namespace paca {

struct Checkpoint {
  std::string path;                  // what was opened: a directory or a file
  ModelConfig config;
  std::unique_ptr<GgufFile> gguf;    // GGUF metadata (offsets into files[0]); null for other formats
  std::vector<std::unique_ptr<MappedFile>> files;
  std::map<std::string, TensorView> tensors;  // canonical name -> view
  std::vector<float> rope_divisors;           // GGUF rope_freqs.weight (empty when absent)

  const TensorView* find(const std::string& name) const;
};

std::string layer_tensor(int layer, const char* what);  // "L<layer>.<what>"

// Detects the format of path (see paca_model_load), parses and validates the
// configuration and the tensor table, and checks every tensor the model needs
// for presence, dtype and shape. Throws Error naming the first problem.
std::unique_ptr<Checkpoint> open_checkpoint(const std::string& path);

// Parsers of each format, on bytes in memory (exposed for tests and fuzzers).
// Each fills config and tensors (views into `file`) of `out`.
void read_gguf_checkpoint(std::span<const uint8_t> file, const std::string& what, Checkpoint& out);
void read_llama2c_checkpoint(std::span<const uint8_t> file, const std::string& what, Checkpoint& out);

// Checks presence, dtype and [rows, cols] of every tensor the Llama forward
// pass needs against out.config (which it validates first).
void check_llama_tensors(const Checkpoint& ckpt);

}  // namespace paca
