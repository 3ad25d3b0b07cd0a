// llama2.c checkpoints (Karpathy's llama2.c: the legacy v0 layout and version
// 1, FP32): the header, checked against the file. The legacy layout has no
// magic, so a file is one only when its header values are sane and its size
// matches them exactly. The tensors follow the header in a fixed order
// (model/checkpoint_llama2c.cpp maps them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace paca {

struct Llama2cHeader {
  int version = 0;          // 0: legacy (28-byte header, RoPE tables after the weights); 1
  size_t header_bytes = 28;
  int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab = 0, seq_len = 0;
  bool shared_classifier = true;  // the output layer is the embedding (no wcls)
  int64_t head_dim() const { return dim / n_heads; }
  int64_t kv_dim() const { return dim * n_kv_heads / n_heads; }
};

// Error(format) "not a model file" naming the field when the header is not a
// llama2.c one or the size does not match; Error(unsupported) for a versioned
// header other than 1.
Llama2cHeader parse_llama2c_header(std::span<const uint8_t> file, const std::string& what);

}  // namespace paca
