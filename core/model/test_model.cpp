// test_model.cpp - writes a seeded-random Llama checkpoint in Hugging Face
// layout, so paca runs end to end without downloading weights.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/load.h"
#include "util/error.h"
#include "util/half.h"

namespace paca {

namespace {

struct Rng {  // splitmix64
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f; }
};

void write_file(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  check(f.good(), Status::io, "cannot create '{}'", path);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  f.close();
  check(f.good(), Status::io, "cannot write '{}'", path);
}

}  // namespace

void write_test_model(const std::string& dir, const TestModelSpec& s) {
  ModelConfig c;
  c.dim = s.dim;
  c.n_layers = s.n_layers;
  c.n_heads = s.n_heads;
  c.n_kv_heads = s.n_kv_heads;
  c.head_dim = s.n_heads > 0 ? s.dim / s.n_heads : 0;
  c.ffn_dim = s.ffn_dim;
  c.n_vocab = s.n_vocab;
  c.max_context = s.max_context;
  c.rope_theta = s.rope_theta;
  c.bos_id = s.n_vocab > 2 ? 1 : -1;
  c.eos_ids = {s.n_vocab > 2 ? 2 : 0};
  check(s.n_heads > 0 && s.dim % s.n_heads == 0, Status::invalid_argument, "dim {} must be a multiple of n_heads {}",
        s.dim, s.n_heads);
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(Status::invalid_argument, e.what());
  }
  check(static_cast<uint64_t>(s.n_vocab) * s.dim + static_cast<uint64_t>(s.n_layers) * s.dim * (4ull * s.dim + 3ull * s.ffn_dim) <=
            (1ull << 31),
        Status::invalid_argument, "test model would exceed 2^31 parameters");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(Status::io, "cannot create directory '{}': {}", dir, ec.message());

  using nlohmann::json;
  json cfg = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", s.dim},
              {"intermediate_size", s.ffn_dim},
              {"num_hidden_layers", s.n_layers},
              {"num_attention_heads", s.n_heads},
              {"num_key_value_heads", s.n_kv_heads},
              {"head_dim", c.head_dim},
              {"vocab_size", s.n_vocab},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", s.rope_theta},
              {"rope_scaling", nullptr},
              {"max_position_embeddings", s.max_context},
              {"tie_word_embeddings", s.tied_embeddings},
              {"bos_token_id", c.bos_id},
              {"eos_token_id", c.eos_ids[0]},
              {"hidden_act", "silu"},
              {"torch_dtype", "bfloat16"},
              {"paca_test_model_seed", s.seed}};
  write_file(dir + "/config.json", cfg.dump(2) + "\n");
  json gen = {{"bos_token_id", c.bos_id}, {"eos_token_id", c.eos_ids[0]}, {"do_sample", false}};
  write_file(dir + "/generation_config.json", gen.dump(2) + "\n");

  struct T {
    std::string name;
    int64_t rows, cols;
    bool norm;
  };
  std::vector<T> ts = {{"model.embed_tokens.weight", s.n_vocab, s.dim, false}};
  for (int l = 0; l < s.n_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    ts.push_back({p + "input_layernorm.weight", 1, s.dim, true});
    ts.push_back({p + "self_attn.q_proj.weight", c.q_dim(), s.dim, false});
    ts.push_back({p + "self_attn.k_proj.weight", c.kv_dim(), s.dim, false});
    ts.push_back({p + "self_attn.v_proj.weight", c.kv_dim(), s.dim, false});
    ts.push_back({p + "self_attn.o_proj.weight", s.dim, c.q_dim(), false});
    ts.push_back({p + "post_attention_layernorm.weight", 1, s.dim, true});
    ts.push_back({p + "mlp.gate_proj.weight", s.ffn_dim, s.dim, false});
    ts.push_back({p + "mlp.up_proj.weight", s.ffn_dim, s.dim, false});
    ts.push_back({p + "mlp.down_proj.weight", s.dim, s.ffn_dim, false});
  }
  ts.push_back({"model.norm.weight", 1, s.dim, true});
  if (!s.tied_embeddings) ts.push_back({"lm_head.weight", s.n_vocab, s.dim, false});

  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (const auto& t : ts) {
    uint64_t bytes = static_cast<uint64_t>(t.rows * t.cols) * 2;
    json shape = t.rows == 1 && t.norm ? json::array({t.cols}) : json::array({t.rows, t.cols});
    header[t.name] = {{"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');
  std::string path = dir + "/model.safetensors";
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  check(f.good(), Status::io, "cannot create '{}'", path);
  uint64_t n = h.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  f.write(len, 8);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  Rng rng{s.seed};
  std::vector<uint16_t> buf;
  for (const auto& t : ts) {
    buf.resize(static_cast<size_t>(t.rows * t.cols));
    float scale = t.norm ? 0.1f : 1.0f / std::sqrt(static_cast<float>(t.cols));
    if (t.name == "model.embed_tokens.weight") scale = 1.0f;
    for (auto& v : buf) v = f32_to_bf16(t.norm ? 1.0f + scale * rng.uniform() : scale * rng.uniform());
    f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size() * 2));
  }
  f.close();
  check(f.good(), Status::io, "cannot write '{}'", path);
}

}  // namespace paca
