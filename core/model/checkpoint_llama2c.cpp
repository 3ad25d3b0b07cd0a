// checkpoint_llama2c.cpp - llama2.c checkpoints (legacy v0 and version 1,
// FP32) -> Checkpoint. The legacy format has no magic, so it is recognised by
// its header values and by the file size matching them exactly.
#include <cstring>

#include "model/checkpoint.h"
#include "util/error.h"

namespace paca {

void read_llama2c_checkpoint(std::span<const uint8_t> file, const std::string& what, Checkpoint& ck) {
  auto i32 = [&](size_t off) {
    int32_t v;
    std::memcpy(&v, file.data() + off, 4);
    return v;
  };
  check(file.size() >= 28, Status::format, "{}: not a model file (unknown format, {} bytes)", what, file.size());
  uint32_t magic;
  std::memcpy(&magic, file.data(), 4);
  size_t header = 28, p0 = 0;
  int version = 0;
  if (magic == 0x616b3432u) {
    check(file.size() >= 256, Status::format, "{}: llama2.c header is truncated", what);
    version = i32(4);
    check(version == 1, Status::unsupported, "{}: llama2.c checkpoint version {} is not supported (0 or 1)", what, version);
    header = 256;
    p0 = 8;
  }
  int64_t dim = i32(p0), hidden = i32(p0 + 4), layers = i32(p0 + 8), heads = i32(p0 + 12), kv_heads = i32(p0 + 16),
          vocab = i32(p0 + 20), seq = i32(p0 + 24);
  bool shared = vocab > 0;
  if (version == 1) shared = file[p0 + 28] != 0;
  if (vocab < 0) vocab = -vocab;
  auto bad = [&](const char* field, int64_t v) {
    fail(Status::format, "{}: not a model file (unknown format; as a llama2.c checkpoint its {} would be {})", what,
         field, v);
  };
  if (dim <= 0 || dim > ConfigLimits::max_dim) bad("dim", dim);
  if (hidden <= 0 || hidden > ConfigLimits::max_ffn) bad("hidden_dim", hidden);
  if (layers <= 0 || layers > ConfigLimits::max_layers) bad("n_layers", layers);
  if (heads <= 0 || heads > ConfigLimits::max_heads || dim % heads != 0) bad("n_heads", heads);
  if (kv_heads <= 0 || kv_heads > heads || heads % kv_heads != 0) bad("n_kv_heads", kv_heads);
  if (vocab <= 0 || vocab > ConfigLimits::max_vocab) bad("vocab_size", vocab);
  if (seq <= 0 || seq > ConfigLimits::max_context) bad("seq_len", seq);
  int64_t hd = dim / heads, kvd = dim * kv_heads / heads;
  uint64_t floats = vocab * dim + layers * dim * 2 + layers * dim * dim * 2 + layers * kvd * dim * 2 +
                    layers * hidden * dim * 3 + dim + (shared ? 0 : vocab * dim);
  if (version == 0) floats += static_cast<uint64_t>(seq) * hd;  // legacy RoPE tables (cos and sin halves)
  uint64_t expect = header + floats * 4;
  check(file.size() == expect, Status::format,
        "{}: not a model file of a known format, or truncated: as a llama2.c checkpoint with this header it "
        "would need {} bytes, but it has {}",
        what, expect, file.size());

  ModelConfig& c = ck.config;
  c.format = ModelFormat::llama2c;
  c.rope_layout = RopeLayout::interleaved;
  c.dim = static_cast<int>(dim);
  c.ffn_dim = static_cast<int>(hidden);
  c.n_layers = static_cast<int>(layers);
  c.n_heads = static_cast<int>(heads);
  c.n_kv_heads = static_cast<int>(kv_heads);
  c.head_dim = static_cast<int>(hd);
  c.n_vocab = static_cast<int>(vocab);
  c.max_context = static_cast<int>(seq);
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.tied_embeddings = shared;
  c.bos_id = 1;
  c.eos_ids = {2};
  if (c.n_vocab <= 2) c.eos_ids.clear();

  const uint8_t* p = file.data() + header;
  auto take = [&](const std::string& canon, const char* name, int64_t rows, int64_t cols) {
    TensorView v;
    v.name = name;
    v.dtype = DType::f32;
    v.rows = rows;
    v.cols = cols;
    v.data = p;
    p += static_cast<size_t>(rows * cols) * 4;
    ck.tensors.emplace(canon, v);
  };
  auto per_layer = [&](const char* what_name, const char* name, int64_t rows, int64_t cols) {
    for (int l = 0; l < c.n_layers; ++l) take(layer_tensor(l, what_name), name, rows, cols);
  };
  if (version == 0) {
    take("embed", "token_embedding_table", vocab, dim);
    per_layer("attn_norm", "rms_att_weight", 1, dim);
    per_layer("wq", "wq", dim, dim);
    per_layer("wk", "wk", kvd, dim);
    per_layer("wv", "wv", kvd, dim);
    per_layer("wo", "wo", dim, dim);
    per_layer("ffn_norm", "rms_ffn_weight", 1, dim);
    per_layer("w1", "w1", hidden, dim);
    per_layer("w2", "w2", dim, hidden);
    per_layer("w3", "w3", hidden, dim);
    take("norm", "rms_final_weight", 1, dim);
    p += static_cast<size_t>(seq * hd) * 4;  // freq_cis_real + freq_cis_imag
  } else {
    per_layer("attn_norm", "rms_att_weight", 1, dim);
    per_layer("ffn_norm", "rms_ffn_weight", 1, dim);
    take("norm", "rms_final_weight", 1, dim);
    take("embed", "token_embedding_table", vocab, dim);
    per_layer("wq", "wq", dim, dim);
    per_layer("wk", "wk", kvd, dim);
    per_layer("wv", "wv", kvd, dim);
    per_layer("wo", "wo", dim, dim);
    per_layer("w1", "w1", hidden, dim);
    per_layer("w2", "w2", dim, hidden);
    per_layer("w3", "w3", hidden, dim);
  }
  if (!shared) take("output", "wcls", vocab, dim);
}

}  // namespace paca
