// shard.cpp - tensor-parallel shards of a checkpoint (see shard.h).
#include "parallel/shard.h"

#include <cstring>

#include "util/error.h"

namespace paca {

namespace {

TensorView row_slice(const TensorView& t, int64_t r0, int64_t rows) {
  TensorView v = t;
  v.data = t.row(r0);
  v.rows = rows;
  if (t.scales != nullptr) v.scales = t.scales + r0;
  return v;
}

TensorView col_slice(Checkpoint& ck, const TensorView& t, int64_t c0, int64_t cols) {
  const size_t blk = block_shape(t.dtype).elems;
  check(c0 % static_cast<int64_t>(blk) == 0 && cols % static_cast<int64_t>(blk) == 0, Status::invalid_argument,
        "tensor {}: a column split at {} would cut a {} block of {}", t.name, c0, dtype_name(t.dtype), blk);
  const size_t full_rb = row_bytes(t.dtype, static_cast<size_t>(t.cols));
  const size_t rb = row_bytes(t.dtype, static_cast<size_t>(cols));
  const size_t off = row_bytes(t.dtype, static_cast<size_t>(c0));
  std::vector<uint8_t>& mem = ck.owned_u8.emplace_back(rb * static_cast<size_t>(t.rows));
  for (int64_t r = 0; r < t.rows; ++r) std::memcpy(mem.data() + r * rb, t.data + r * full_rb + off, rb);
  TensorView v = t;
  v.data = mem.data();
  v.cols = cols;
  return v;  // FP8 scales are per output row: unchanged
}

}  // namespace

TpLayout tp_layout(int n_heads, int n_kv_heads, int ffn_dim, int n_vocab, int n) {
  check(n >= 1 && n <= kMaxTensorParallel, Status::invalid_argument, "tensor parallel size {} is outside 1..{}", n,
        kMaxTensorParallel);
  check(n_heads > 0 && n_kv_heads > 0 && ffn_dim > 0 && n_vocab > 0, Status::invalid_argument,
        "tensor parallel: every dimension of the shape must be positive");
  check(n_heads % n == 0, Status::invalid_argument, "tensor parallel {} does not divide {} attention heads", n, n_heads);
  check(ffn_dim % n == 0, Status::invalid_argument, "tensor parallel {} does not divide the FFN width {}", n, ffn_dim);
  TpLayout L;
  L.size = n;
  L.q_heads = n_heads / n;
  if (n <= n_kv_heads) {
    check(n_kv_heads % n == 0, Status::invalid_argument, "tensor parallel {} does not divide {} kv heads", n, n_kv_heads);
    L.kv_heads = n_kv_heads / n;
  } else {
    check(n % n_kv_heads == 0, Status::invalid_argument,
          "tensor parallel {} is not a multiple of {} kv heads (each kv head is replicated on tp / kv_heads ranks)", n,
          n_kv_heads);
    L.kv_heads = 1;
  }
  L.ffn = ffn_dim / n;
  L.vocab_rows = static_cast<int>((static_cast<int64_t>(n_vocab) + n - 1) / n);
  return L;
}

std::vector<StageRange> pipeline_stages(int n_layers, int m) {
  check(m >= 1 && m <= n_layers, Status::invalid_argument, "pipeline parallel {} needs 1..{} stages (one layer or more each)",
        m, n_layers);
  std::vector<StageRange> out;
  int first = 0;
  for (int s = 0; s < m; ++s) {
    const int count = n_layers / m + (s < n_layers % m ? 1 : 0);
    out.push_back({first, count});
    first += count;
  }
  return out;
}

std::unique_ptr<Checkpoint> shard_checkpoint(const Checkpoint& full, const TpLayout& L, int r, StageRange stage,
                                             int stage_index, int n_stages) {
  const ModelConfig& c = full.config;
  check(r >= 0 && r < L.size, Status::invalid_argument, "rank {} outside tensor parallel {}", r, L.size);
  check(n_stages >= 1 && stage_index >= 0 && stage_index < n_stages && stage.first >= 0 && stage.count >= 1 &&
            stage.first + stage.count <= c.n_layers,
        Status::invalid_argument, "stage {} of {} (layers {}..{}) does not fit {} layers", stage_index, n_stages,
        stage.first, stage.first + stage.count, c.n_layers);
  auto ck = std::make_unique<Checkpoint>();
  ck->path = full.path;
  ck->config = c;
  ck->config.n_layers = stage.count;
  ck->has_embedding = stage_index == 0;
  ck->has_head = stage_index == n_stages - 1;
  ck->config.n_heads = L.q_heads;
  ck->config.n_kv_heads = L.kv_heads;
  ck->config.ffn_dim = L.ffn;
  ck->config.tied_embeddings = false;  // every rank gets its own LM-head slice, a view of the embedding when tied
  ck->rope_divisors = full.rope_divisors;
  ck->tokenizer = full.tokenizer;
  ck->tokenizer_note = full.tokenizer_note;
  ck->lm_head_rows = L.vocab_rows;

  const int64_t d = c.head_dim;
  const int64_t q0 = static_cast<int64_t>(r) * L.q_heads * d, qn = static_cast<int64_t>(L.q_heads) * d;
  const int n_rep = c.n_heads / c.n_kv_heads;
  const int64_t kv_head0 = L.size <= c.n_kv_heads ? static_cast<int64_t>(r) * L.kv_heads : (static_cast<int64_t>(r) * L.q_heads) / n_rep;
  const int64_t k0 = kv_head0 * d, kn = static_cast<int64_t>(L.kv_heads) * d;
  const int64_t f0 = static_cast<int64_t>(r) * L.ffn;
  auto get = [&](const std::string& n) -> const TensorView& {
    const TensorView* t = full.find(n);
    check(t != nullptr, Status::format, "checkpoint is missing tensor {}", n);
    return *t;
  };
  if (ck->has_embedding) ck->tensors["embed"] = get("embed");
  if (ck->has_head) {
    ck->tensors["norm"] = get("norm");
    const TensorView& head = c.tied_embeddings ? get("embed") : get("output");
    const int64_t v0 = static_cast<int64_t>(r) * L.vocab_rows;
    ck->tensors["output"] = row_slice(head, std::min<int64_t>(v0, c.n_vocab),
                                      std::max<int64_t>(0, std::min<int64_t>(L.vocab_rows, c.n_vocab - v0)));
  }
  for (int l = 0; l < stage.count; ++l) {
    auto dst = [l](const char* w) { return layer_tensor(l, w); };
    auto src = [&](const char* w) -> const TensorView& { return get(layer_tensor(stage.first + l, w)); };
    ck->tensors[dst("attn_norm")] = src("attn_norm");
    ck->tensors[dst("ffn_norm")] = src("ffn_norm");
    ck->tensors[dst("wq")] = row_slice(src("wq"), q0, qn);
    ck->tensors[dst("wk")] = row_slice(src("wk"), k0, kn);
    ck->tensors[dst("wv")] = row_slice(src("wv"), k0, kn);
    ck->tensors[dst("wo")] = col_slice(*ck, src("wo"), q0, qn);
    ck->tensors[dst("w1")] = row_slice(src("w1"), f0, L.ffn);
    ck->tensors[dst("w3")] = row_slice(src("w3"), f0, L.ffn);
    ck->tensors[dst("w2")] = col_slice(*ck, src("w2"), f0, L.ffn);
  }
  return ck;
}

}  // namespace paca
