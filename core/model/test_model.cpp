// test_model.cpp - writes a seeded-random Llama checkpoint in Hugging Face
// layout, so paca runs end to end without downloading weights.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "format/config.h"
#include "model/checkpoint.h"
#include "model/test_model.h"
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


// The configuration both forms share, as a Hugging Face config.json.
nlohmann::json test_config_json(const TestModelSpec& s) {
  check(s.n_heads > 0 && s.dim > 0 && s.dim % s.n_heads == 0, Status::invalid_argument,
        "dim {} must be a positive multiple of n_heads {}", s.dim, s.n_heads);
  const int bos = s.n_vocab > 2 ? 1 : -1, eos = s.n_vocab > 2 ? 2 : 0;
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", s.dim},
          {"intermediate_size", s.ffn_dim},
          {"num_hidden_layers", s.n_layers},
          {"num_attention_heads", s.n_heads},
          {"num_key_value_heads", s.n_kv_heads},
          {"head_dim", s.dim / s.n_heads},
          {"vocab_size", s.n_vocab},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", s.rope_theta},
          {"rope_scaling", nullptr},
          {"max_position_embeddings", s.max_context},
          {"tie_word_embeddings", s.tied_embeddings},
          {"bos_token_id", bos},
          {"eos_token_id", eos},
          {"hidden_act", "silu"},
          {"torch_dtype", "bfloat16"},
          {"paca_test_model_seed", s.seed}};
}

nlohmann::json test_generation_json(const TestModelSpec& s) {
  return {{"bos_token_id", s.n_vocab > 2 ? 1 : -1}, {"eos_token_id", s.n_vocab > 2 ? 2 : 0}, {"do_sample", false}};
}

ModelConfig test_config(const TestModelSpec& s) {
  try {
    return parse_hf_config(test_config_json(s).dump(), test_generation_json(s).dump());
  } catch (const Error& e) {
    throw Error(Status::invalid_argument, e.what());
  }
}

struct TestTensor {
  std::string hf_name, canonical;
  int64_t rows, cols;
  bool norm;
};

// Every tensor in file order (the order the random stream fills them).
std::vector<TestTensor> test_tensors(const TestModelSpec& s, const ModelConfig& c) {
  std::vector<TestTensor> ts = {{"model.embed_tokens.weight", "embed", s.n_vocab, s.dim, false}};
  for (int l = 0; l < s.n_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    auto L = [l](const char* w) { return layer_tensor(l, w); };
    ts.push_back({p + "input_layernorm.weight", L("attn_norm"), 1, s.dim, true});
    ts.push_back({p + "self_attn.q_proj.weight", L("wq"), c.q_dim(), s.dim, false});
    ts.push_back({p + "self_attn.k_proj.weight", L("wk"), c.kv_dim(), s.dim, false});
    ts.push_back({p + "self_attn.v_proj.weight", L("wv"), c.kv_dim(), s.dim, false});
    ts.push_back({p + "self_attn.o_proj.weight", L("wo"), s.dim, c.q_dim(), false});
    ts.push_back({p + "post_attention_layernorm.weight", L("ffn_norm"), 1, s.dim, true});
    ts.push_back({p + "mlp.gate_proj.weight", L("w1"), s.ffn_dim, s.dim, false});
    ts.push_back({p + "mlp.up_proj.weight", L("w3"), s.ffn_dim, s.dim, false});
    ts.push_back({p + "mlp.down_proj.weight", L("w2"), s.dim, s.ffn_dim, false});
  }
  ts.push_back({"model.norm.weight", "norm", 1, s.dim, true});
  if (!s.tied_embeddings) ts.push_back({"lm_head.weight", "output", s.n_vocab, s.dim, false});
  return ts;
}

// The next tensor's values from the model's random stream, as BF16.
void fill_bf16(Rng& rng, const TestTensor& t, uint16_t* out) {
  float scale = t.norm ? 0.1f : 1.0f / std::sqrt(static_cast<float>(t.cols));
  if (t.canonical == "embed") scale = 1.0f;
  const size_t n = static_cast<size_t>(t.rows * t.cols);
  for (size_t i = 0; i < n; ++i) out[i] = f32_to_bf16(t.norm ? 1.0f + scale * rng.uniform() : scale * rng.uniform());
}

}  // namespace

void write_test_model(const std::string& dir, const TestModelSpec& s) {
  const ModelConfig c = test_config(s);
  check(static_cast<uint64_t>(s.n_vocab) * s.dim + static_cast<uint64_t>(s.n_layers) * s.dim * (4ull * s.dim + 3ull * s.ffn_dim) <=
            (1ull << 31),
        Status::invalid_argument, "test model would exceed 2^31 parameters");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(Status::io, "cannot create directory '{}': {}", dir, ec.message());
  write_file(dir + "/config.json", test_config_json(s).dump(2) + "\n");
  write_file(dir + "/generation_config.json", test_generation_json(s).dump(2) + "\n");

  using nlohmann::json;
  const std::vector<TestTensor> ts = test_tensors(s, c);
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (const auto& t : ts) {
    uint64_t bytes = static_cast<uint64_t>(t.rows * t.cols) * 2;
    json shape = t.rows == 1 && t.norm ? json::array({t.cols}) : json::array({t.rows, t.cols});
    header[t.hf_name] = {{"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {off, off + bytes}}};
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
    fill_bf16(rng, t, buf.data());
    f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size() * 2));
  }
  f.close();
  check(f.good(), Status::io, "cannot write '{}'", path);
}

std::unique_ptr<Checkpoint> synthetic_checkpoint(const TestModelSpec& s, uint64_t max_bytes) {
  auto ck = std::make_unique<Checkpoint>();
  ck->config = test_config(s);
  ck->config.name = "synthetic";
  ck->path = "synthetic";
  const std::vector<TestTensor> ts = test_tensors(s, ck->config);
  uint64_t total = 0;
  for (const auto& t : ts) total += static_cast<uint64_t>(t.rows) * static_cast<uint64_t>(t.cols) * 2;
  check(total <= max_bytes, Status::out_of_memory,
        "a synthetic model of this shape needs {:.2f} GB of weights; {:.2f} GB of memory is available", total / 1e9,
        max_bytes / 1e9);
  Rng rng{s.seed};
  for (const auto& t : ts) {
    std::vector<uint8_t>& mem = ck->owned_u8.emplace_back(static_cast<size_t>(t.rows * t.cols) * 2);
    fill_bf16(rng, t, reinterpret_cast<uint16_t*>(mem.data()));
    TensorView v;
    v.name = t.canonical;
    v.dtype = DType::bf16;
    v.rows = t.norm ? 1 : t.rows;
    v.cols = t.cols;
    v.data = mem.data();
    ck->tensors.emplace(t.canonical, v);
  }
  check_llama_tensors(*ck);
  ck->tokenizer_note = "a synthetic model has no tokenizer";
  return ck;
}

}  // namespace paca
