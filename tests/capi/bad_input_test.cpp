// bad_input_test.cpp - hostile input through paca.h: every case must give the
// expected paca_status with a message naming the problem, and no crash (this
// suite also runs under ASan/UBSan in CI).
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

using Bytes = std::vector<uint8_t>;

void expect_load_error(const std::string& path, paca_status want, const std::string& needle) {
  paca_model* m = reinterpret_cast<paca_model*>(&want);  // must be reset to NULL
  paca_status s = paca_model_load(path.c_str(), nullptr, &m);
  EXPECT_EQ(s, want) << paca_status_name(s) << ": " << paca_last_error();
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(paca_last_error()).find(needle), std::string::npos)
      << "message '" << paca_last_error() << "' should mention '" << needle << "'";
  if (s == PACA_OK) paca_model_free(m);
}

// ---- Hugging Face directories -------------------------------------------

struct HfDir {
  std::string dir;
  Bytes st;
  nlohmann::json cfg;
  uint64_t header_len() const {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | st[i];
    return n;
  }
  nlohmann::json header() const {
    return nlohmann::json::parse(st.begin() + 8, st.begin() + 8 + static_cast<long>(header_len()));
  }
  // Replaces the JSON header (padding to a multiple of 8), keeping the data.
  void set_header(const nlohmann::json& h) {
    Bytes data(st.begin() + 8 + static_cast<long>(header_len()), st.end());
    std::string s = h.dump();
    while (s.size() % 8) s.push_back(' ');
    st.clear();
    for (int i = 0; i < 8; ++i) st.push_back(static_cast<uint8_t>((s.size() >> (8 * i)) & 0xff));
    st.insert(st.end(), s.begin(), s.end());
    st.insert(st.end(), data.begin(), data.end());
  }
  std::string write() const {
    std::string d = test::temp_dir();
    test::write_text(d + "/config.json", cfg.dump());
    test::write_file(d + "/model.safetensors", st);
    return d;
  }
};

HfDir hf_from(const std::string& dir) {
  HfDir h;
  h.dir = dir;
  h.st = test::read_file(h.dir + "/model.safetensors");
  auto c = test::read_file(h.dir + "/config.json");
  h.cfg = nlohmann::json::parse(c.begin(), c.end());
  return h;
}

HfDir small_hf() {
  HfDir h;
  h.dir = test::make_small_model(11);
  h.st = test::read_file(h.dir + "/model.safetensors");
  auto c = test::read_file(h.dir + "/config.json");
  h.cfg = nlohmann::json::parse(c.begin(), c.end());
  return h;
}

TEST(BadInput, MissingPath) { expect_load_error("/nonexistent/paca/model", PACA_ERR_IO, "does not exist"); }

TEST(BadInput, DirectoryWithoutConfig) { expect_load_error(test::temp_dir(), PACA_ERR_IO, "config.json"); }

TEST(BadInput, DirectoryWithoutWeights) {
  HfDir h = small_hf();
  std::string d = test::temp_dir();
  test::write_text(d + "/config.json", h.cfg.dump());
  expect_load_error(d, PACA_ERR_IO, "model.safetensors");
}

TEST(BadInput, TruncatedSafetensors) {
  HfDir h = small_hf();
  h.st.resize(h.st.size() - 100);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "outside");
}

TEST(BadInput, SafetensorsShorterThanHeaderLength) {
  HfDir h = small_hf();
  h.st.resize(5);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "too short");
}

TEST(BadInput, HeaderLengthPastEndOfFile) {
  HfDir h = small_hf();
  uint64_t n = h.st.size();  // 8 + n > size
  for (int i = 0; i < 8; ++i) h.st[i] = static_cast<uint8_t>((n >> (8 * i)) & 0xff);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "past the end");
}

TEST(BadInput, HugeHeaderLength) {
  HfDir h = small_hf();
  for (int i = 0; i < 8; ++i) h.st[i] = 0xff;
  expect_load_error(h.write(), PACA_ERR_FORMAT, "100 MB");
}

TEST(BadInput, HeaderNotJson) {
  HfDir h = small_hf();
  h.st[8] = '[';
  h.st[9] = '[';
  expect_load_error(h.write(), PACA_ERR_FORMAT, "JSON");
}

TEST(BadInput, OverlappingTensorOffsets) {
  HfDir h = small_hf();
  auto j = h.header();
  // give the second tensor the first tensor's range (same size so the size check passes)
  auto& a = j["model.layers.0.input_layernorm.weight"];
  auto& b = j["model.layers.0.post_attention_layernorm.weight"];
  b["data_offsets"] = a["data_offsets"];
  h.set_header(j);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "overlap");
}

TEST(BadInput, OutOfRangeTensorOffsets) {
  HfDir h = small_hf();
  auto j = h.header();
  auto& t = j["model.norm.weight"];
  uint64_t len = t["data_offsets"][1].get<uint64_t>() - t["data_offsets"][0].get<uint64_t>();
  t["data_offsets"] = {uint64_t{1} << 40, (uint64_t{1} << 40) + len};
  h.set_header(j);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "outside");
}

TEST(BadInput, TensorSizeDisagreesWithShape) {
  HfDir h = small_hf();
  auto j = h.header();
  j["model.norm.weight"]["shape"] = {65};
  h.set_header(j);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "model.norm.weight");
}

TEST(BadInput, UnknownDtypeString) {
  HfDir h = small_hf();
  auto j = h.header();
  j["model.norm.weight"]["dtype"] = "BF17";
  h.set_header(j);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "BF17");
}

TEST(BadInput, UnsupportedDtype) {
  HfDir h = small_hf();
  auto j = h.header();
  auto& t = j["model.norm.weight"];
  t["dtype"] = "I16";
  h.set_header(j);
  expect_load_error(h.write(), PACA_ERR_UNSUPPORTED, "I16");
}

TEST(BadInput, MissingTensor) {
  HfDir h = small_hf();
  auto j = h.header();
  j.erase("model.layers.1.mlp.up_proj.weight");
  h.set_header(j);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "L1.w3");
}

TEST(BadInput, WrongTensorShape) {
  HfDir h = small_hf();
  h.cfg["intermediate_size"] = 161;
  expect_load_error(h.write(), PACA_ERR_FORMAT, "shape");
}

TEST(BadInput, ConfigMissingField) {
  HfDir h = small_hf();
  h.cfg.erase("num_hidden_layers");
  expect_load_error(h.write(), PACA_ERR_FORMAT, "num_hidden_layers");
}

TEST(BadInput, ConfigZeroField) {
  HfDir h = small_hf();
  h.cfg["hidden_size"] = 0;
  expect_load_error(h.write(), PACA_ERR_FORMAT, "hidden size");
}

TEST(BadInput, ConfigNegativeField) {
  HfDir h = small_hf();
  h.cfg["num_attention_heads"] = -4;
  expect_load_error(h.write(), PACA_ERR_FORMAT, "num_attention_heads");
}

TEST(BadInput, ConfigAbsurdField) {
  HfDir h = small_hf();
  h.cfg["vocab_size"] = 2000000000;
  expect_load_error(h.write(), PACA_ERR_FORMAT, "vocabulary");
}

TEST(BadInput, ConfigWrongType) {
  HfDir h = small_hf();
  h.cfg["hidden_size"] = "64";
  expect_load_error(h.write(), PACA_ERR_FORMAT, "hidden_size");
}

TEST(BadInput, ConfigNotJson) {
  HfDir h = small_hf();
  std::string d = h.write();
  test::write_text(d + "/config.json", "{\"hidden_size\": 64,");
  expect_load_error(d, PACA_ERR_FORMAT, "JSON");
}

TEST(BadInput, ConfigOtherArchitecture) {
  HfDir h = small_hf();
  h.cfg["model_type"] = "mistral";
  h.cfg["architectures"] = {"MistralForCausalLM"};
  expect_load_error(h.write(), PACA_ERR_UNSUPPORTED, "mistral");
}

TEST(BadInput, ConfigInconsistentHeads) {
  HfDir h = small_hf();
  h.cfg["num_key_value_heads"] = 3;
  expect_load_error(h.write(), PACA_ERR_FORMAT, "multiple");
}

// A model split into two shards with model.safetensors.index.json loads and
// gives the same logits as the single-file original.
TEST(Sharded, TwoShardsEqualSingleFile) {
  HfDir h = small_hf();
  auto j = h.header();
  const size_t data0 = 8 + h.header_len();
  nlohmann::json heads[2] = {nlohmann::json::object(), nlohmann::json::object()};
  std::vector<uint8_t> datas[2];
  nlohmann::json index = {{"metadata", {{"total_size", h.st.size() - data0}}}, {"weight_map", nlohmann::json::object()}};
  int k = 0;
  for (auto it = j.begin(); it != j.end(); ++it, ++k) {
    if (it.key() == "__metadata__") continue;
    int f = k % 2;
    uint64_t b = it.value()["data_offsets"][0].get<uint64_t>(), e = it.value()["data_offsets"][1].get<uint64_t>();
    uint64_t at = datas[f].size();
    datas[f].insert(datas[f].end(), h.st.begin() + static_cast<long>(data0 + b), h.st.begin() + static_cast<long>(data0 + e));
    nlohmann::json t = it.value();
    t["data_offsets"] = {at, at + (e - b)};
    heads[f][it.key()] = t;
    index["weight_map"][it.key()] = f == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  std::string d = test::temp_dir();
  test::write_text(d + "/config.json", h.cfg.dump());
  test::write_text(d + "/model.safetensors.index.json", index.dump());
  for (int f = 0; f < 2; ++f) {
    HfDir part;
    part.st.assign(8, 0);
    std::string hs = "{}";
    while (hs.size() % 8) hs.push_back(' ');
    uint64_t n = hs.size();
    for (int i = 0; i < 8; ++i) part.st[i] = static_cast<uint8_t>(n >> (8 * i));
    part.st.insert(part.st.end(), hs.begin(), hs.end());
    part.st.insert(part.st.end(), datas[f].begin(), datas[f].end());
    part.set_header(heads[f]);
    test::write_file(d + (f == 0 ? "/model-00001-of-00002.safetensors" : "/model-00002-of-00002.safetensors"), part.st);
  }
  paca_model* single = test::load_or_die(h.dir);
  paca_model* sharded = test::load_or_die(d);
  ASSERT_NE(single, nullptr);
  ASSERT_NE(sharded, nullptr);
  int32_t toks[4] = {1, 17, 42, 99};
  const float* la = nullptr;
  const float* lb = nullptr;
  size_t na = 0, nb = 0;
  paca_session *sa = nullptr, *sb = nullptr;
  ASSERT_EQ(paca_session_create(single, nullptr, &sa), PACA_OK);
  ASSERT_EQ(paca_session_create(sharded, nullptr, &sb), PACA_OK);
  ASSERT_EQ(paca_session_prefill(sa, toks, 4), PACA_OK);
  ASSERT_EQ(paca_session_prefill(sb, toks, 4), PACA_OK) << paca_last_error();
  ASSERT_EQ(paca_session_logits(sa, &la, &na), PACA_OK);
  ASSERT_EQ(paca_session_logits(sb, &lb, &nb), PACA_OK);
  ASSERT_EQ(na, nb);
  EXPECT_EQ(0, std::memcmp(la, lb, na * sizeof(float)));
  paca_session_free(sa);
  paca_session_free(sb);
  paca_model_free(single);
  paca_model_free(sharded);
}

TEST(BadInput, ShardIndexNamesEscapingFile) {
  HfDir h = small_hf();
  std::string d = h.write();
  std::remove((d + "/model.safetensors").c_str());
  test::write_text(d + "/model.safetensors.index.json",
                   R"({"metadata":{},"weight_map":{"model.norm.weight":"../../etc/passwd"}})");
  expect_load_error(d, PACA_ERR_FORMAT, "invalid file");
}

// ---- FP8 (fbgemm layout, from ../shared/models/tiny-llama31-fp8) -------------

HfDir fp8_model() { return hf_from(test::shared_dir() + "/models/tiny-llama31-fp8"); }
const char* kScale = "model.layers.1.mlp.up_proj.weight_scale";

TEST(BadInput, Fp8MissingScale) {
  SKIP_WITHOUT_SHARED();
  HfDir h = fp8_model();
  auto j = h.header();
  j.erase(kScale);
  h.set_header(j);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "up_proj.weight has no weight_scale");
}

TEST(BadInput, Fp8WrongScaleShape) {
  SKIP_WITHOUT_SHARED();
  HfDir h = fp8_model();
  auto j = h.header();
  auto& t = j[kScale];
  uint64_t b = t["data_offsets"][0].get<uint64_t>(), e = t["data_offsets"][1].get<uint64_t>();
  uint64_t n = (e - b) / 4;
  t["shape"] = {1, n};  // [1, out] instead of [out, 1]
  h.set_header(j);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "per row");
}

TEST(BadInput, Fp8WrongScaleDtype) {
  SKIP_WITHOUT_SHARED();
  HfDir h = fp8_model();
  auto j = h.header();
  j[kScale]["dtype"] = "I32";
  h.set_header(j);
  expect_load_error(h.write(), PACA_ERR_UNSUPPORTED, "I32");
}

TEST(BadInput, Fp8NonFiniteScale) {
  SKIP_WITHOUT_SHARED();
  HfDir h = fp8_model();
  auto j = h.header();
  uint64_t b = j[kScale]["data_offsets"][0].get<uint64_t>();
  size_t at = 8 + h.header_len() + b + 4 * 3;  // the fourth row's scale
  const uint8_t nan_bits[4] = {0x00, 0x00, 0xc0, 0x7f};
  std::memcpy(h.st.data() + at, nan_bits, 4);
  expect_load_error(h.write(), PACA_ERR_FORMAT, "non-finite");
}

TEST(BadInput, Fp8WithoutQuantizationConfig) {
  SKIP_WITHOUT_SHARED();
  HfDir h = fp8_model();
  h.cfg.erase("quantization_config");
  expect_load_error(h.write(), PACA_ERR_FORMAT, "no quantization_config");
}

TEST(BadInput, UnsupportedQuantizationMethod) {
  SKIP_WITHOUT_SHARED();
  HfDir h = fp8_model();
  h.cfg["quantization_config"]["quant_method"] = "gptq";
  expect_load_error(h.write(), PACA_ERR_UNSUPPORTED, "gptq");
}

// ---- GGUF -----------------------------------------------------------------

struct Gguf {
  Bytes b;
  void u32(uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); }
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); }
  void str(const std::string& s) { u64(s.size()); b.insert(b.end(), s.begin(), s.end()); }
  void kv_u32(const std::string& k, uint32_t v) { str(k); u32(4); u32(v); }
  void kv_str(const std::string& k, const std::string& v) { str(k); u32(8); str(v); }
};

// A header with the llama keys, n_kv = 6, followed by `tensors` infos.
Gguf gguf_llama(uint32_t version, uint64_t n_tensors) {
  Gguf g;
  g.u32(0x46554747u);
  g.u32(version);
  g.u64(n_tensors);
  g.u64(6);
  g.kv_str("general.architecture", "llama");
  g.kv_u32("llama.embedding_length", 64);
  g.kv_u32("llama.block_count", 1);
  g.kv_u32("llama.feed_forward_length", 128);
  g.kv_u32("llama.attention.head_count", 4);
  g.kv_u32("llama.vocab_size", 32);
  return g;
}

std::string write_tmp(const Bytes& b, const char* name) {
  std::string p = test::temp_dir() + "/" + name;
  test::write_file(p, b);
  return p;
}

TEST(BadInput, GgufWrongMagicIsNotAModel) {
  Gguf g = gguf_llama(3, 0);
  g.b[0] = 'X';
  expect_load_error(write_tmp(g.b, "m.gguf"), PACA_ERR_FORMAT, "not a model file");
}

TEST(BadInput, GgufWrongVersion) {
  expect_load_error(write_tmp(gguf_llama(7, 0).b, "m.gguf"), PACA_ERR_UNSUPPORTED, "version 7");
}

TEST(BadInput, GgufHugeTensorCount) {
  expect_load_error(write_tmp(gguf_llama(3, uint64_t{1} << 60).b, "m.gguf"), PACA_ERR_FORMAT, "tensor count");
}

TEST(BadInput, GgufHugeKvCount) {
  Gguf g;
  g.u32(0x46554747u);
  g.u32(3);
  g.u64(0);
  g.u64(~uint64_t{0});
  expect_load_error(write_tmp(g.b, "m.gguf"), PACA_ERR_FORMAT, "key/value count");
}

TEST(BadInput, GgufHugeStringLength) {
  Gguf g;
  g.u32(0x46554747u);
  g.u32(3);
  g.u64(0);
  g.u64(1);
  g.u64(~uint64_t{0} - 3);  // key length
  g.b.resize(g.b.size() + 64, 0);
  expect_load_error(write_tmp(g.b, "m.gguf"), PACA_ERR_FORMAT, "truncated");
}

TEST(BadInput, GgufUnknownTensorTypeIsNamed) {
  Gguf g = gguf_llama(3, 1);
  g.str("blk.0.attn_q.weight");
  g.u32(2);
  g.u64(256);
  g.u64(64);
  g.u32(10);  // Q2_K: a block type paca does not hold
  g.u64(0);
  while (g.b.size() % 32) g.b.push_back(0);
  g.b.resize(g.b.size() + 64 * 84, 0);
  expect_load_error(write_tmp(g.b, "m.gguf"), PACA_ERR_UNSUPPORTED, "Q2_K");
}

TEST(BadInput, GgufOtherArchitecture) {
  Gguf g;
  g.u32(0x46554747u);
  g.u32(3);
  g.u64(0);
  g.u64(1);
  g.kv_str("general.architecture", "falcon");
  while (g.b.size() % 32) g.b.push_back(0);
  expect_load_error(write_tmp(g.b, "m.gguf"), PACA_ERR_UNSUPPORTED, "falcon");
}

TEST(BadInput, GgufTruncatedTensorData) {
  Gguf g = gguf_llama(3, 1);
  g.str("token_embd.weight");
  g.u32(2);
  g.u64(64);
  g.u64(32);
  g.u32(0);  // F32
  g.u64(0);
  while (g.b.size() % 32) g.b.push_back(0);
  expect_load_error(write_tmp(g.b, "m.gguf"), PACA_ERR_FORMAT, "outside");
}

TEST(BadInput, GgufMissingTensors) {
  Gguf g = gguf_llama(3, 0);
  while (g.b.size() % 32) g.b.push_back(0);
  expect_load_error(write_tmp(g.b, "m.gguf"), PACA_ERR_FORMAT, "missing tensor");
}

TEST(BadInput, ArbitraryBytesAreNotAModel) {
  Bytes junk(1000);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(i * 37 + 11);
  expect_load_error(write_tmp(junk, "junk.bin"), PACA_ERR_FORMAT, "not a model file");
  expect_load_error(write_tmp(Bytes{}, "empty.bin"), PACA_ERR_FORMAT, "not a model file");
}

TEST(BadInput, TruncatedLlama2cCheckpoint) {
  SKIP_WITHOUT_SHARED();
  Bytes b = test::read_file(test::shared_dir() + "/models/stories260K/stories260K.bin");
  b.resize(b.size() - 4);
  expect_load_error(write_tmp(b, "s.bin"), PACA_ERR_FORMAT, "truncated");
}

// ---- sessions ---------------------------------------------------------------

TEST(BadInput, TokenIdsOutsideVocabulary) {
  paca_model* m = test::load_or_die(test::make_small_model());
  ASSERT_NE(m, nullptr);
  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  for (int32_t bad : {-1, 300, 1 << 30, INT32_MIN}) {
    int32_t toks[3] = {1, bad, 2};
    EXPECT_EQ(paca_session_prefill(s, toks, 3), PACA_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(paca_last_error()).find("vocabulary"), std::string::npos) << paca_last_error();
    EXPECT_EQ(paca_session_decode(s, bad), PACA_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(paca_session_length(s), 0u);
  }
  paca_session_free(s);
  paca_model_free(m);
}

TEST(BadInput, PromptLongerThanContext) {
  paca_model* m = test::load_or_die(test::make_small_model());  // max_context 64
  ASSERT_NE(m, nullptr);
  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  std::vector<int32_t> toks(65, 3);
  EXPECT_EQ(paca_session_prefill(s, toks.data(), toks.size()), PACA_ERR_CONTEXT_FULL);
  EXPECT_NE(std::string(paca_last_error()).find("64"), std::string::npos) << paca_last_error();
  paca_session_free(s);
  paca_model_free(m);
}

TEST(BadInput, NullArguments) {
  paca_model* m = nullptr;
  EXPECT_EQ(paca_model_load(nullptr, nullptr, &m), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_model_load("x", nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  paca_model_info info{};
  info.struct_size = sizeof info;
  EXPECT_EQ(paca_model_get_info(nullptr, &info), PACA_ERR_INVALID_ARGUMENT);
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_create(nullptr, nullptr, &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_prefill(nullptr, nullptr, 1), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_decode(nullptr, 1), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_rewind(nullptr, 0), PACA_ERR_INVALID_ARGUMENT);
  const float* lg = nullptr;
  EXPECT_EQ(paca_session_logits(nullptr, &lg, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_make_test_model(nullptr, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_length(nullptr), 0u);
  paca_session_cancel(nullptr);
  paca_session_free(nullptr);
  paca_model_free(nullptr);

  m = test::load_or_die(test::make_small_model());
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  EXPECT_EQ(paca_session_prefill(s, nullptr, 3), PACA_ERR_INVALID_ARGUMENT);
  int32_t t = 1;
  EXPECT_EQ(paca_session_prefill(s, &t, 0), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_model_describe_json(m, nullptr, 10, nullptr), PACA_ERR_INVALID_ARGUMENT);
  paca_session_free(s);
  paca_model_free(m);
}

TEST(BadInput, ParamsWithoutStructSize) {
  paca_model_params p;
  std::memset(&p, 0, sizeof p);
  paca_model* m = nullptr;
  EXPECT_EQ(paca_model_load("x", &p, &m), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("struct_size"), std::string::npos);
  paca_model_params_init(&p, sizeof p);
  p.n_threads = -3;
  EXPECT_EQ(paca_model_load("x", &p, &m), PACA_ERR_INVALID_ARGUMENT);
  paca_model_params_init(&p, sizeof p);
  p.device = "tpu:0";
  EXPECT_EQ(paca_model_load(test::make_small_model().c_str(), &p, &m), PACA_ERR_INVALID_ARGUMENT);
  p.device = "cuda:99";
  EXPECT_EQ(paca_model_load(test::make_small_model().c_str(), &p, &m), PACA_ERR_DEVICE);
  EXPECT_NE(std::string(paca_last_error()).find("cuda:99"), std::string::npos);
}

TEST(BadInput, TestModelWithBadShape) {
  paca_test_model_params p;
  paca_test_model_params_init(&p, sizeof p);
  p.dim = 30;
  p.n_heads = 4;  // 30 % 4 != 0
  EXPECT_EQ(paca_make_test_model(test::temp_dir().c_str(), &p), PACA_ERR_INVALID_ARGUMENT);
  paca_test_model_params_init(&p, sizeof p);
  p.n_vocab = -5;
  EXPECT_EQ(paca_make_test_model(test::temp_dir().c_str(), &p), PACA_ERR_INVALID_ARGUMENT);
}

}  // namespace
