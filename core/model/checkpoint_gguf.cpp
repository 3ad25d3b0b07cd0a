// checkpoint_gguf.cpp - GGUF (architecture llama) -> Checkpoint.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "format/block_quant.h"
#include "format/gguf.h"
#include "model/checkpoint.h"
#include "util/error.h"

namespace paca {

namespace {

int to_int(std::optional<int64_t> v, const char* key, bool required, int dflt) {
  if (!v) {
    check(!required, Status::format, "GGUF: required key '{}' is missing", key);
    return dflt;
  }
  check(*v >= INT32_MIN && *v <= INT32_MAX, Status::format, "GGUF: key '{}' = {} is out of range", key, *v);
  return static_cast<int>(*v);
}

std::string gguf_canonical(const std::string& n) {
  if (n == "token_embd.weight") return "embed";
  if (n == "output.weight") return "output";
  if (n == "output_norm.weight") return "norm";
  if (n.rfind("blk.", 0) != 0) return "";
  size_t dot = n.find('.', 4);
  if (dot == std::string::npos || dot == 4 || dot - 4 > 5) return "";
  for (size_t k = 4; k < dot; ++k)
    if (n[k] < '0' || n[k] > '9') return "";
  static const std::map<std::string, std::string> m = {
      {"attn_norm.weight", "attn_norm"}, {"attn_q.weight", "wq"},    {"attn_k.weight", "wk"},
      {"attn_v.weight", "wv"},           {"attn_output.weight", "wo"}, {"ffn_norm.weight", "ffn_norm"},
      {"ffn_gate.weight", "w1"},         {"ffn_down.weight", "w2"},  {"ffn_up.weight", "w3"}};
  auto it = m.find(n.substr(dot + 1));
  if (it == m.end()) return "";
  return "L" + std::to_string(std::stoi(n.substr(4, dot - 4))) + "." + it->second;
}

}  // namespace

void read_gguf_checkpoint(std::span<const uint8_t> file, const std::string& what, Checkpoint& ck) {
  ck.gguf = std::make_unique<GgufFile>(parse_gguf(file, what));
  const GgufFile& g = *ck.gguf;
  std::string arch = g.get_string("general.architecture").value_or("");
  if (arch != "llama")
    fail(Status::unsupported, "{}: GGUF architecture '{}' is not supported (only 'llama')", what, arch);

  ModelConfig& c = ck.config;
  c.format = ModelFormat::gguf;
  c.rope_layout = RopeLayout::interleaved;
  c.name = g.get_string("general.name").value_or("");
  c.dim = to_int(g.get_int("llama.embedding_length"), "llama.embedding_length", true, 0);
  c.n_layers = to_int(g.get_int("llama.block_count"), "llama.block_count", true, 0);
  c.ffn_dim = to_int(g.get_int("llama.feed_forward_length"), "llama.feed_forward_length", true, 0);
  c.n_heads = to_int(g.get_int("llama.attention.head_count"), "llama.attention.head_count", true, 0);
  check(c.n_heads > 0, Status::format, "{}: llama.attention.head_count must be positive", what);
  c.n_kv_heads = to_int(g.get_int("llama.attention.head_count_kv"), "llama.attention.head_count_kv", false, c.n_heads);
  int rope_dim = to_int(g.get_int("llama.rope.dimension_count"), "llama.rope.dimension_count", false, 0);
  c.head_dim = to_int(g.get_int("llama.attention.key_length"), "llama.attention.key_length", false,
                      rope_dim > 0 ? rope_dim : c.dim / c.n_heads);
  if (rope_dim > 0)
    check(rope_dim == c.head_dim, Status::unsupported, "{}: partial rotary (rope dim {} != head dim {}) is not supported",
          what, rope_dim, c.head_dim);
  c.max_context = to_int(g.get_int("llama.context_length"), "llama.context_length", false, 2048);
  c.norm_eps = static_cast<float>(g.get_float("llama.attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_theta = static_cast<float>(g.get_float("llama.rope.freq_base").value_or(10000.0));
  std::string scaling = g.get_string("llama.rope.scaling.type").value_or("none");
  check(scaling == "none", Status::unsupported, "{}: rope scaling type '{}' is not supported", what, scaling);

  int vocab = to_int(g.get_int("llama.vocab_size"), "llama.vocab_size", false, 0);
  if (vocab == 0)
    if (const GgufValue* t = g.find("tokenizer.ggml.tokens"); t && t->type == GgufType::array)
      vocab = t->count > static_cast<uint64_t>(INT32_MAX) ? -1 : static_cast<int>(t->count);
  c.bos_id = to_int(g.get_int("tokenizer.ggml.bos_token_id"), "tokenizer.ggml.bos_token_id", false, -1);
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    int id = to_int(g.get_int(key), key, false, -1);
    if (id >= 0 && std::find(c.eos_ids.begin(), c.eos_ids.end(), id) == c.eos_ids.end()) c.eos_ids.push_back(id);
  }

  for (const auto& t : g.tensors) {
    if (t.name == "rope_freqs.weight") {
      check(t.type == 0 && t.n_dims == 1, Status::format, "{}: rope_freqs.weight must be a 1-D F32 tensor", what);
      check(t.ne[0] >= 1 && t.ne[0] <= 4096, Status::format, "{}: rope_freqs.weight has {} entries (need 1..4096)",
            what, t.ne[0]);
      ck.rope_divisors.resize(t.ne[0]);
      std::memcpy(ck.rope_divisors.data(), file.data() + g.data_start + t.offset, t.ne[0] * 4);
      for (float d : ck.rope_divisors)
        check(std::isfinite(d) && d > 0, Status::format, "{}: rope_freqs.weight holds a non-positive divisor", what);
      continue;
    }
    std::string canon = gguf_canonical(t.name);
    if (canon.empty()) continue;
    TensorView v;
    v.name = t.name;
    if (!dtype_of_ggml(t.type, v.dtype))
      fail(Status::unsupported,
           "{}: tensor '{}' has GGUF type {}, which is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
           "Q4_K, Q5_K, Q6_K)",
           what, t.name, ggml_type_name(t.type));
    check(t.ne[2] == 1 && t.ne[3] == 1, Status::format, "{}: tensor '{}' has more than 2 dims", what, t.name);
    v.cols = static_cast<int64_t>(t.ne[0]);
    v.rows = static_cast<int64_t>(t.ne[1]);
    v.data = file.data() + g.data_start + t.offset;
    ck.tensors.emplace(canon, v);
  }
  if (vocab == 0)
    if (const TensorView* e = ck.find("embed")) vocab = static_cast<int>(std::min<int64_t>(e->rows, INT32_MAX));
  c.n_vocab = vocab;
  c.tied_embeddings = ck.find("output") == nullptr;
  if (!ck.rope_divisors.empty()) {
    c.rope_scaling = RopeScaling::llama3;
    float mx = 1;
    for (float d : ck.rope_divisors) mx = std::max(mx, d);
    c.rope_factor = mx;
  }
}

}  // namespace paca
