// checkpoint_llama2c.cpp - a llama2.c checkpoint (format/llama2c.h) ->
// Checkpoint: its configuration and views of its FP32 tensors in place.
#include "format/llama2c.h"
#include "model/checkpoint.h"

namespace paca {

namespace {

ModelConfig llama2c_config(const Llama2cHeader& h) {
  ModelConfig c;
  c.format = ModelFormat::llama2c;
  c.rope_layout = RopeLayout::interleaved;
  c.dim = static_cast<int>(h.dim);
  c.ffn_dim = static_cast<int>(h.hidden_dim);
  c.n_layers = static_cast<int>(h.n_layers);
  c.n_heads = static_cast<int>(h.n_heads);
  c.n_kv_heads = static_cast<int>(h.n_kv_heads);
  c.head_dim = static_cast<int>(h.head_dim());
  c.n_vocab = static_cast<int>(h.vocab);
  c.max_context = static_cast<int>(h.seq_len);
  c.norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.tied_embeddings = h.shared_classifier;
  c.bos_id = 1;
  c.eos_ids = {2};
  if (c.n_vocab <= 2) c.eos_ids.clear();
  return c;
}

// Views of the tensors in the order the file holds them.
void map_llama2c_tensors(const uint8_t* p, const Llama2cHeader& h, Checkpoint& ck) {
  const int64_t dim = h.dim, kvd = h.kv_dim(), hidden = h.hidden_dim, vocab = h.vocab;
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
  auto per_layer = [&](const char* canon, const char* name, int64_t rows, int64_t cols) {
    for (int l = 0; l < h.n_layers; ++l) take(layer_tensor(l, canon), name, rows, cols);
  };
  if (h.version == 0) {
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
    p += static_cast<size_t>(h.seq_len * h.head_dim()) * 4;  // freq_cis_real + freq_cis_imag
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
  if (!h.shared_classifier) take("output", "wcls", vocab, dim);
}

}  // namespace

void read_llama2c_checkpoint(std::span<const uint8_t> file, const std::string& what, Checkpoint& ck) {
  const Llama2cHeader h = parse_llama2c_header(file, what);
  ck.config = llama2c_config(h);
  map_llama2c_tensors(file.data() + h.header_bytes, h, ck);
}

}  // namespace paca
