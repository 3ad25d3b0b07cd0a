// gen_seeds.cpp - writes the seed corpora of the fuzz targets: small valid
// files of each format, built here byte by byte, then parses every seed to
// check that it is valid (a seed that fails would only start the fuzzer in
// the error paths).
//
//   paca_fuzz_seeds OUT_DIR
//     OUT_DIR/safetensors/*.safetensors   for fuzz_safetensors
//     OUT_DIR/gguf/*.gguf                 for fuzz_gguf
//     OUT_DIR/hf_config/*.json            for fuzz_hf_config (config.json [NUL generation_config.json])
//     OUT_DIR/llama2c/*.bin               for fuzz_llama2c
//     OUT_DIR/blocks/row_*.bin            for fuzz_blocks (type, pattern, a row of blocks)
//     OUT_DIR/{tokenizer_json,spm_model,tiktoken,gguf_vocab,llama2c_tokenizer,tokenize}/
//                                         for the tokenizer targets (gen_tokenizer_seeds.cpp)
// Exits 0 when every seed was written and parses, 1 otherwise.
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "format/block_quant.h"
#include "format/config.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "model/checkpoint.h"
#include "snapshot_fuzz_common.h"
#include "util/error.h"

namespace {

using Bytes = std::vector<uint8_t>;

int g_failures = 0;

// Appends little-endian values to a byte buffer.
struct Writer {
  Bytes b;
  uint64_t n_keys = 0;  // GGUF key/values written by key()
  template <typename T>
  void put(T v) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    b.insert(b.end(), raw, raw + sizeof(T));
  }
  void raw(const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
  void pad_to(size_t align) {
    while (b.size() % align != 0) b.push_back(0);
  }
};

bool write_file(const std::string& path, const Bytes& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  return f.good();
}

// Writes dir/name and runs check on its bytes; counts and reports failures.
void emit(const std::string& dir, const std::string& name, const Bytes& data,
          const std::function<void(std::span<const uint8_t>)>& check) {
  const std::string path = dir + "/" + name;
  if (!write_file(path, data)) {
    std::fprintf(stderr, "paca_fuzz_seeds: cannot write %s\n", path.c_str());
    ++g_failures;
    return;
  }
  try {
    check(data);
    std::printf("  %s: %zu bytes, parses\n", path.c_str(), data.size());
  } catch (const paca::Error& e) {
    std::fprintf(stderr, "paca_fuzz_seeds: seed %s does not parse: %s\n", path.c_str(), e.what());
    ++g_failures;
  }
}

// ---- safetensors ----------------------------------------------------------

struct StTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
};

// A safetensors file with the tensors laid out back to back (zero bytes),
// header padded with spaces to a multiple of 8 as the reference writer does.
Bytes safetensors_file(const std::vector<StTensor>& tensors, const std::string& metadata) {
  std::string header = "{";
  if (!metadata.empty()) header += "\"__metadata__\":" + metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t n = paca::safetensors_dtype_size(t.dtype);
    std::string shape;
    for (int64_t d : t.shape) {
      n *= static_cast<uint64_t>(d);
      shape += (shape.empty() ? "" : ",") + std::to_string(d);
    }
    if (header.size() > 1) header += ",";
    header += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
              std::to_string(offset) + "," + std::to_string(offset + n) + "]}";
    offset += n;
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  Writer w;
  w.put<uint64_t>(header.size());
  w.raw(header);
  w.b.resize(w.b.size() + offset, 0);
  return w.b;
}

void safetensors_seeds(const std::string& dir) {
  auto check = [](std::span<const uint8_t> f) { (void)paca::parse_safetensors(f, "seed"); };
  emit(dir, "mixed.safetensors",
       safetensors_file({{"a", "F32", {2, 3}}, {"b", "BF16", {4}}, {"c", "I8", {0}}, {"d", "F8_E4M3", {2, 2}},
                         {"e", "U64", {}}},
                        R"({"format":"pt"})"),
       check);
  // A tiny Llama in Hugging Face names (dim 8, 1 layer, 2 heads, kv 1, ffn 16, vocab 32, tied).
  const std::string L = "model.layers.0.";
  emit(dir, "llama.safetensors",
       safetensors_file({{"model.embed_tokens.weight", "BF16", {32, 8}},
                         {"model.norm.weight", "BF16", {8}},
                         {L + "input_layernorm.weight", "BF16", {8}},
                         {L + "post_attention_layernorm.weight", "BF16", {8}},
                         {L + "self_attn.q_proj.weight", "BF16", {8, 8}},
                         {L + "self_attn.k_proj.weight", "BF16", {4, 8}},
                         {L + "self_attn.v_proj.weight", "BF16", {4, 8}},
                         {L + "self_attn.o_proj.weight", "BF16", {8, 8}},
                         {L + "mlp.gate_proj.weight", "F16", {16, 8}},
                         {L + "mlp.down_proj.weight", "F16", {8, 16}},
                         {L + "mlp.up_proj.weight", "F32", {16, 8}}},
                        ""),
       check);
}

// ---- GGUF -----------------------------------------------------------------

enum : uint32_t { kU8 = 0, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9, kU64 = 10, kI64 = 11,
                  kF64 = 12 };
enum : uint32_t { kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ8_0 = 8, kGgmlBF16 = 30 };

struct GgufTensor {
  std::string name;
  std::vector<uint64_t> ne;  // ne[0] contiguous
  uint32_t type;
};

uint64_t ggml_bytes(const GgufTensor& t) {
  uint64_t n = 1;
  for (uint64_t d : t.ne) n *= d;
  switch (t.type) {
    case kGgmlF32: return n * 4;
    case kGgmlQ8_0: return n / 32 * 34;
    default: return n * 2;  // F16, BF16
  }
}

// Builds a GGUF v3 file: key/values written by `kv`, tensor infos, then the data section with every tensor aligned.
// Tensor data: F32 ones (rope_freqs needs positive values), zeros otherwise.
Bytes gguf_file(const std::function<void(Writer&)>& kv, const std::vector<GgufTensor>& tensors,
                uint64_t alignment) {
  Writer body;
  kv(body);
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const auto& t : tensors) {
    body.put<uint64_t>(t.name.size());
    body.raw(t.name);
    body.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) body.put<uint64_t>(d);
    body.put<uint32_t>(t.type);
    body.put<uint64_t>(offset);
    offsets.push_back(offset);
    offset += (ggml_bytes(t) + alignment - 1) / alignment * alignment;
  }
  Writer w;
  w.put<uint32_t>(0x46554747u);  // "GGUF"
  w.put<uint32_t>(3);
  w.put<uint64_t>(tensors.size());
  w.put<uint64_t>(body.n_keys);
  w.b.insert(w.b.end(), body.b.begin(), body.b.end());
  w.pad_to(alignment);
  const size_t data_start = w.b.size();
  w.b.resize(data_start + offset, 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].type != kGgmlF32) continue;
    for (uint64_t k = 0; k < ggml_bytes(tensors[i]) / 4; ++k) {
      const float one = 1.0f;
      std::memcpy(w.b.data() + data_start + offsets[i] + k * 4, &one, 4);
    }
  }
  return w.b;
}

void key(Writer& w, const std::string& k, uint32_t type) {
  ++w.n_keys;
  w.put<uint64_t>(k.size());
  w.raw(k);
  w.put<uint32_t>(type);
}
void kv_u32(Writer& w, const std::string& k, uint32_t v) { key(w, k, kU32); w.put(v); }
void kv_f32(Writer& w, const std::string& k, float v) { key(w, k, kF32); w.put(v); }
void kv_str(Writer& w, const std::string& k, const std::string& v) {
  key(w, k, kString);
  w.put<uint64_t>(v.size());
  w.raw(v);
}

// The Llama tensors in GGUF names and layout for the given sizes; the
// embedding of type `embd`, the other matrices of type `mat`, norms of type `norm`.
std::vector<GgufTensor> gguf_llama_tensors(uint64_t dim, uint64_t q_dim, uint64_t kv_dim, uint64_t ffn,
                                           uint64_t vocab, uint32_t embd, uint32_t mat, uint32_t norm, bool output) {
  std::vector<GgufTensor> t = {{"token_embd.weight", {dim, vocab}, embd}, {"output_norm.weight", {dim}, norm}};
  if (output) t.push_back({"output.weight", {dim, vocab}, mat});
  const std::string b = "blk.0.";
  t.push_back({b + "attn_norm.weight", {dim}, norm});
  t.push_back({b + "ffn_norm.weight", {dim}, kGgmlF32});
  t.push_back({b + "attn_q.weight", {dim, q_dim}, mat});
  t.push_back({b + "attn_k.weight", {dim, kv_dim}, mat});
  t.push_back({b + "attn_v.weight", {dim, kv_dim}, mat});
  t.push_back({b + "attn_output.weight", {q_dim, dim}, mat});
  t.push_back({b + "ffn_gate.weight", {dim, ffn}, mat});
  t.push_back({b + "ffn_down.weight", {ffn, dim}, mat});
  t.push_back({b + "ffn_up.weight", {dim, ffn}, mat});
  return t;
}

void gguf_seeds(const std::string& dir) {
  auto check = [](std::span<const uint8_t> f) {
    paca::Checkpoint ck;
    paca::read_gguf_checkpoint(f, "seed", ck);
    paca::check_llama_tensors(ck);
  };
  // F32, tied: dim 8, 1 layer, 2 heads, kv 1, head dim 4, ffn 16, vocab 32.
  emit(dir, "llama_f32.gguf",
       gguf_file(
           [](Writer& w) {
             kv_str(w, "general.architecture", "llama");
             kv_str(w, "general.name", "seed");
             kv_u32(w, "llama.embedding_length", 8);
             kv_u32(w, "llama.block_count", 1);
             kv_u32(w, "llama.feed_forward_length", 16);
             kv_u32(w, "llama.attention.head_count", 2);
             kv_u32(w, "llama.attention.head_count_kv", 1);
             kv_u32(w, "llama.rope.dimension_count", 4);
             kv_u32(w, "llama.context_length", 64);
             kv_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
             kv_f32(w, "llama.rope.freq_base", 10000.0f);
             kv_str(w, "tokenizer.ggml.model", "llama");
             key(w, "tokenizer.ggml.tokens", kArray);
             w.put<uint32_t>(kString);
             w.put<uint64_t>(32);
             for (int i = 0; i < 32; ++i) {
               std::string tok = "t" + std::to_string(i);
               w.put<uint64_t>(tok.size());
               w.raw(tok);
             }
             kv_u32(w, "tokenizer.ggml.bos_token_id", 1);
             kv_u32(w, "tokenizer.ggml.eos_token_id", 2);
           },
           gguf_llama_tensors(8, 8, 4, 16, 32, kGgmlF32, kGgmlF32, kGgmlF16, false), 32),
       check);
  // Q8_0 matrices, F16 embedding, BF16 norm, separate output, rope_freqs,
  // alignment 64 and one key of every other value type: dim 32, 4 heads,
  // kv 2, head dim 8, ffn 64, vocab 32.
  std::vector<GgufTensor> t = gguf_llama_tensors(32, 32, 16, 64, 32, kGgmlF16, kGgmlQ8_0, kGgmlBF16, true);
  t.push_back({"rope_freqs.weight", {4}, kGgmlF32});
  emit(dir, "llama_q8_0.gguf",
       gguf_file(
           [](Writer& w) {
             kv_str(w, "general.architecture", "llama");
             kv_u32(w, "general.alignment", 64);
             key(w, "llama.embedding_length", kU64);
             w.put<uint64_t>(32);
             key(w, "llama.block_count", kI32);
             w.put<int32_t>(1);
             key(w, "llama.feed_forward_length", kI64);
             w.put<int64_t>(64);
             key(w, "llama.attention.head_count", kU8);
             w.put<uint8_t>(4);
             kv_u32(w, "llama.attention.head_count_kv", 2);
             kv_u32(w, "llama.attention.key_length", 8);
             kv_u32(w, "llama.vocab_size", 32);
             key(w, "llama.rope.freq_base", kF64);
             w.put<double>(500000.0);
             kv_str(w, "llama.rope.scaling.type", "none");
             key(w, "general.quantized", kBool);
             w.put<uint8_t>(1);
             key(w, "tokenizer.ggml.scores", kArray);
             w.put<uint32_t>(kF32);
             w.put<uint64_t>(32);
             for (int i = 0; i < 32; ++i) w.put<float>(-static_cast<float>(i));
             key(w, "paca.fuzz.nested", kArray);  // array of arrays
             w.put<uint32_t>(kArray);
             w.put<uint64_t>(2);
             for (int i = 0; i < 2; ++i) {
               w.put<uint32_t>(kU8);
               w.put<uint64_t>(3);
               for (uint8_t v : {1, 2, 3}) w.put<uint8_t>(v);
             }
             kv_u32(w, "tokenizer.ggml.eos_token_id", 2);
             kv_u32(w, "tokenizer.ggml.eot_token_id", 3);
           },
           t, 64),
       check);
}

// ---- config.json ----------------------------------------------------------

Bytes text(const std::string& config, const std::string& generation = "") {
  Bytes b(config.begin(), config.end());
  if (!generation.empty()) {
    b.push_back(0);
    b.insert(b.end(), generation.begin(), generation.end());
  }
  return b;
}

void hf_config_seeds(const std::string& dir) {
  auto check = [](std::span<const uint8_t> f) {
    const char* p = reinterpret_cast<const char*>(f.data());
    const void* nul = std::memchr(p, 0, f.size());
    const size_t n = nul ? static_cast<size_t>(static_cast<const char*>(nul) - p) : f.size();
    (void)paca::parse_hf_config(std::string(p, n), nul ? std::string(p + n + 1, f.size() - n - 1) : std::string());
  };
  emit(dir, "llama2.json", text(R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
  "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "attention_bias": false, "mlp_bias": false, "bos_token_id": 1, "eos_token_id": 2,
  "rope_scaling": null, "torch_dtype": "bfloat16"
})"), check);
  emit(dir, "llama3_generation.json", text(R"({
  "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128256, "rope_theta": 500000.0,
  "bos_token_id": 128000, "eos_token_id": 128001
})", R"({"bos_token_id": 128000, "eos_token_id": [128001, 128009], "do_sample": true})"), check);
  emit(dir, "llama31_rope_scaling.json", text(R"({
  "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
  "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 8,
  "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
  "rope_theta": 500000.0, "eos_token_id": [128001, 128008, 128009],
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
})"), check);
  emit(dir, "llama32_tied.json", text(R"({
  "model_type": "llama", "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
  "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 128256, "tie_word_embeddings": true,
  "quantization_config": null, "head_dim": null,
  "rope_scaling": {"type": "llama3", "factor": 32}
})", R"({"eos_token_id": 128001})"), check);
}

// ---- llama2.c -------------------------------------------------------------

// A llama2.c checkpoint of zeros: version 0 (legacy, 28-byte header, RoPE
// tables) or 1 ("ak42", 256-byte header). shared: classifier tied to the
// embedding (version 0 writes an unshared one as a negative vocab size).
Bytes llama2c_file(int version, int32_t dim, int32_t hidden, int32_t layers, int32_t heads, int32_t kv_heads,
                   int32_t vocab, int32_t seq, bool shared) {
  Writer w;
  if (version == 1) {
    w.put<uint32_t>(0x616b3432u);
    w.put<int32_t>(1);
  }
  for (int32_t v : {dim, hidden, layers, heads, kv_heads, version == 0 && !shared ? -vocab : vocab, seq}) w.put(v);
  if (version == 1) {
    w.put<uint8_t>(shared ? 1 : 0);
    w.b.resize(256, 0);
  }
  const uint64_t kvd = static_cast<uint64_t>(dim) * kv_heads / heads;
  uint64_t floats = static_cast<uint64_t>(vocab) * dim + layers * (2ull * dim + 2ull * dim * dim + 2ull * kvd * dim +
                                                                   3ull * hidden * dim) + dim;
  if (!shared) floats += static_cast<uint64_t>(vocab) * dim;
  if (version == 0) floats += static_cast<uint64_t>(seq) * (dim / heads);
  w.b.resize(w.b.size() + floats * 4, 0);
  return w.b;
}

void llama2c_seeds(const std::string& dir) {
  auto check = [](std::span<const uint8_t> f) {
    paca::Checkpoint ck;
    paca::read_llama2c_checkpoint(f, "seed", ck);
    paca::check_llama_tensors(ck);
  };
  emit(dir, "v0_shared.bin", llama2c_file(0, 8, 16, 1, 2, 2, 32, 16, true), check);
  emit(dir, "v0_unshared_gqa.bin", llama2c_file(0, 8, 16, 2, 2, 1, 16, 8, false), check);
  emit(dir, "v1_unshared.bin", llama2c_file(1, 8, 24, 1, 2, 1, 32, 32, false), check);
}

void snapshot_seeds(const std::string& dir) {
  const paca::SnapshotShape shape = paca::fuzz::snapshot_fuzz_shape();
  auto check = [&](std::span<const uint8_t> f) {
    paca::SnapshotReader r(f, shape, "seed");
    r.tokens();
    r.logits();
    r.sampler();
    r.read_kv([](int, int, const uint8_t*) {});
  };
  const struct {
    const char* name;
    size_t n;
    bool logits, sampler, split;
  } seeds[] = {{"empty.snap", 0, false, false, true},
               {"tokens_logits.snap", 5, true, false, true},
               {"with_sampler.snap", 9, true, true, true},
               {"no_split.snap", 3, true, true, false}};
  for (const auto& sd : seeds) {
    const std::string path = dir + "/" + sd.name;
    paca::fuzz::write_fuzz_snapshot(path, sd.n, sd.logits, sd.sampler, sd.split);
    std::ifstream f(path, std::ios::binary);
    emit(dir, sd.name, Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()), check);
  }
}

// fuzz_blocks seeds: type index, activation pattern, then two blocks that
// quantize a wave (the order of types is fuzz_blocks.cpp's kTypes).
void blocks_seeds(const std::string& dir) {
  const paca::DType types[] = {paca::DType::q4_0, paca::DType::q4_1, paca::DType::q5_0, paca::DType::q5_1,
                               paca::DType::q8_0, paca::DType::q4_k, paca::DType::q5_k, paca::DType::q6_k};
  for (size_t k = 0; k < sizeof types / sizeof types[0]; ++k) {
    const paca::DType t = types[k];
    const size_t n = 2 * paca::block_shape(t).elems;
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = std::sin(0.21f * static_cast<float>(i)) * (1.0f + static_cast<float>(i % 7));
    Bytes data = {static_cast<uint8_t>(k), static_cast<uint8_t>(8 * 16)};
    data.resize(2 + paca::row_bytes(t, n));
    paca::quantize_blocks(t, x.data(), data.data() + 2, n);
    const auto check = [t, n](std::span<const uint8_t> d) {
      std::vector<float> back(n);
      paca::dequantize_blocks(t, d.data() + 2, back.data(), n);
      for (float v : back) {
        if (!std::isfinite(v)) throw paca::Error(paca::Status::format, "seed decodes to a non-finite value");
      }
    };
    emit(dir, std::string("row_") + paca::dtype_name(t) + ".bin", data, check);
  }
}

bool make_dir(const std::string& path) { return ::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST; }

}  // namespace

namespace paca::fuzz {
int tokenizer_seeds(const std::string& out);  // gen_tokenizer_seeds.cpp
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1];
  const struct {
    const char* name;
    void (*write)(const std::string&);
  } kinds[] = {{"safetensors", safetensors_seeds},
               {"gguf", gguf_seeds},
               {"hf_config", hf_config_seeds},
               {"llama2c", llama2c_seeds},
               {"snapshot", snapshot_seeds},
               {"blocks", blocks_seeds}};
  if (!make_dir(out)) {
    std::fprintf(stderr, "paca_fuzz_seeds: cannot create %s\n", out.c_str());
    return 1;
  }
  for (const auto& k : kinds) {
    const std::string dir = out + "/" + k.name;
    if (!make_dir(dir)) {
      std::fprintf(stderr, "paca_fuzz_seeds: cannot create %s\n", dir.c_str());
      return 1;
    }
    k.write(dir);
  }
  g_failures += paca::fuzz::tokenizer_seeds(out);
  if (g_failures != 0) {
    std::fprintf(stderr, "paca_fuzz_seeds: %d seed(s) failed\n", g_failures);
    return 1;
  }
  return 0;
}
