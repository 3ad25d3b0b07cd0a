#include "format/llama2c.h"

#include <cstring>

#include "format/config.h"
#include "util/error.h"

namespace paca {

Llama2cHeader parse_llama2c_header(std::span<const uint8_t> file, const std::string& what) {
  auto i32 = [&](size_t off) {
    int32_t v;
    std::memcpy(&v, file.data() + off, 4);
    return v;
  };
  check(file.size() >= 28, Status::format, "{}: not a model file (unknown format, {} bytes)", what, file.size());
  uint32_t magic;
  std::memcpy(&magic, file.data(), 4);
  Llama2cHeader h;
  size_t p0 = 0;
  if (magic == 0x616b3432u) {
    check(file.size() >= 256, Status::format, "{}: llama2.c header is truncated", what);
    h.version = i32(4);
    check(h.version == 1, Status::unsupported, "{}: llama2.c checkpoint version {} is not supported (0 or 1)", what,
          h.version);
    h.header_bytes = 256;
    p0 = 8;
  }
  h.dim = i32(p0);
  h.hidden_dim = i32(p0 + 4);
  h.n_layers = i32(p0 + 8);
  h.n_heads = i32(p0 + 12);
  h.n_kv_heads = i32(p0 + 16);
  h.vocab = i32(p0 + 20);
  h.seq_len = i32(p0 + 24);
  // v0 says "no classifier" by a positive vocabulary size; v1 has a flag
  h.shared_classifier = h.version == 1 ? file[p0 + 28] != 0 : h.vocab > 0;
  if (h.vocab < 0) h.vocab = -h.vocab;
  auto bad = [&](const char* field, int64_t v) {
    fail(Status::format, "{}: not a model file (unknown format; as a llama2.c checkpoint its {} would be {})", what,
         field, v);
  };
  if (h.dim <= 0 || h.dim > ConfigLimits::max_dim) bad("dim", h.dim);
  if (h.hidden_dim <= 0 || h.hidden_dim > ConfigLimits::max_ffn) bad("hidden_dim", h.hidden_dim);
  if (h.n_layers <= 0 || h.n_layers > ConfigLimits::max_layers) bad("n_layers", h.n_layers);
  if (h.n_heads <= 0 || h.n_heads > ConfigLimits::max_heads || h.dim % h.n_heads != 0) bad("n_heads", h.n_heads);
  if (h.n_kv_heads <= 0 || h.n_kv_heads > h.n_heads || h.n_heads % h.n_kv_heads != 0) bad("n_kv_heads", h.n_kv_heads);
  if (h.vocab <= 0 || h.vocab > ConfigLimits::max_vocab) bad("vocab_size", h.vocab);
  if (h.seq_len <= 0 || h.seq_len > ConfigLimits::max_context) bad("seq_len", h.seq_len);

  const int64_t dim = h.dim, layers = h.n_layers, kvd = h.kv_dim(), hidden = h.hidden_dim, vocab = h.vocab;
  uint64_t floats = vocab * dim + layers * dim * 2 + layers * dim * dim * 2 + layers * kvd * dim * 2 +
                    layers * hidden * dim * 3 + dim + (h.shared_classifier ? 0 : vocab * dim);
  if (h.version == 0) floats += static_cast<uint64_t>(h.seq_len * h.head_dim());  // legacy RoPE tables (cos, sin halves)
  const uint64_t expect = h.header_bytes + floats * 4;
  check(file.size() == expect, Status::format,
        "{}: not a model file of a known format, or truncated: as a llama2.c checkpoint with this header it "
        "would need {} bytes, but it has {}",
        what, expect, file.size());
  return h;
}

}  // namespace paca
