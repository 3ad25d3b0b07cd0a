// config_test.cpp - config.json parsing and the llama3 RoPE frequencies
// (check vectors from the Llama reference: theta 500000, d = 128 and 64).
#include <gtest/gtest.h>

#include <cmath>

#include "format/config.h"
#include "util/error.h"

using namespace paca;

namespace {

const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
  "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
  "num_key_value_heads": 8, "vocab_size": 128256, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "max_position_embeddings": 131072, "tie_word_embeddings": false, "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009]})";

}  // namespace

TEST(Config, ParsesLlama31) {
  ModelConfig c = parse_hf_config(kLlama31, "");
  EXPECT_EQ(c.dim, 4096);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_scaling, RopeScaling::llama3);
  EXPECT_FLOAT_EQ(c.rope_factor, 8.0f);
  EXPECT_EQ(c.eos_ids, (std::vector<int>{128001, 128008, 128009}));
  EXPECT_EQ(c.rope_layout, RopeLayout::half);
}

TEST(Config, GenerationConfigOverridesEos) {
  ModelConfig c = parse_hf_config(kLlama31, R"({"eos_token_id": 128009})");
  EXPECT_EQ(c.eos_ids, (std::vector<int>{128009}));
}

TEST(Config, DefaultsForLlama2) {
  ModelConfig c = parse_hf_config(R"({"model_type":"llama","hidden_size":4096,"intermediate_size":11008,
      "num_hidden_layers":32,"num_attention_heads":32,"vocab_size":32000})", "");
  EXPECT_EQ(c.n_kv_heads, 32);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.rope_scaling, RopeScaling::none);
}

TEST(Config, RejectsOtherRopeScaling) {
  std::string j = kLlama31;
  j.replace(j.find("\"llama3\""), 8, "\"yarn\"");
  try {
    parse_hf_config(j, "");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::unsupported);
    EXPECT_NE(std::string(e.what()).find("yarn"), std::string::npos);
  }
}

TEST(Config, Llama3RopeFrequenciesMatchReference) {
  ModelConfig c = parse_hf_config(kLlama31, "");
  std::vector<float> f = rope_frequencies(c);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_NEAR(f[20], 0.0165604f, 1e-7);
  // pairs 0-28 unchanged, 29-34 interpolated, 35-63 divided by the factor
  for (int i = 0; i < 64; ++i) {
    float base = std::pow(500000.0f, -2.0f * i / 128.0f);
    if (i <= 28) EXPECT_FLOAT_EQ(f[i], base) << i;
    else if (i >= 35) EXPECT_FLOAT_EQ(f[i], base / 8.0f) << i;
    else EXPECT_TRUE(f[i] < base && f[i] > base / 8.0f) << i;
  }
  c.head_dim = 64;
  c.rope_factor = 32;
  f = rope_frequencies(c);
  for (int i = 0; i < 32; ++i) {
    float base = std::pow(500000.0f, -2.0f * i / 64.0f);
    if (i <= 14) EXPECT_FLOAT_EQ(f[i], base) << i;
    else if (i >= 18) EXPECT_FLOAT_EQ(f[i], base / 32.0f) << i;
    else EXPECT_TRUE(f[i] < base && f[i] > base / 32.0f) << i;
  }
}
