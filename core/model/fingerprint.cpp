// fingerprint.cpp - see fingerprint.h.
#include "model/fingerprint.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace paca {

namespace {

// Everything hashed is first written into one byte string with explicit
// sizes, so no two different inputs serialize alike.
struct Writer {
  std::string out;
  void u64(uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void f32(float v) {
    uint32_t b;
    std::memcpy(&b, &v, sizeof b);
    u64(b);
  }
  void str(std::string_view s) {
    u64(s.size());
    out.append(s);
  }
};

}  // namespace

uint64_t model_fingerprint(const Checkpoint& ckpt) {
  Writer w;
  w.str("paca-model-fingerprint-1");
  const ModelConfig& c = ckpt.config;
  for (int v : {c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim, c.n_vocab, c.max_context,
                static_cast<int>(c.rope_scaling), c.rope_original_context, static_cast<int>(c.rope_layout),
                c.tied_embeddings ? 1 : 0, c.bos_id})
    w.i64(v);
  for (float v : {c.norm_eps, c.rope_theta, c.rope_factor, c.rope_low_freq_factor, c.rope_high_freq_factor}) w.f32(v);
  w.u64(c.eos_ids.size());
  for (int id : c.eos_ids) w.i64(id);
  w.u64(ckpt.rope_divisors.size());
  for (float v : ckpt.rope_divisors) w.f32(v);

  if (ckpt.tokenizer) {
    const Vocab& v = ckpt.tokenizer->vocab();
    w.str("tokenizer");
    w.u64(v.size());
    for (const Token& t : v.tokens) {
      w.str(t.text);
      w.str(t.piece);
      w.f32(t.score);
      w.i64(static_cast<int>(t.type));
    }
    for (int32_t id : {v.bos, v.eos, v.unk, v.pad, v.eot, v.eom}) w.i64(id);
  } else {
    w.str("no tokenizer");
  }

  w.u64(ckpt.tensors.size());
  for (const auto& [name, t] : ckpt.tensors) {  // std::map: sorted by name
    w.str(name);
    w.i64(static_cast<int>(t.dtype));
    w.i64(t.rows);
    w.i64(t.cols);
    w.i64(static_cast<int>(t.act));
    w.f32(t.act_ub);
    w.f32(t.act_scale);
    const size_t n = t.bytes();
    if (t.data != nullptr && n > 0) {
      const size_t k = std::min<size_t>(64, n);
      for (size_t at : {size_t{0}, (n - k) / 2, n - k}) w.out.append(reinterpret_cast<const char*>(t.data + at), k);
    }
    if (t.scales != nullptr && t.rows > 0) w.f32(t.scales[0]);
  }
  return hash_bytes(w.out);
}

}  // namespace paca
