// golden_test.cpp - every model in ../shared/models that has golden data:
// last-position logits against the independent float32 reference (relative
// L2 <= 1e-4), top-5 ids, and the greedy continuation token for token.
// Through paca.h only.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

struct GoldenCase {
  const char* name;
  const char* model;   // relative to shared/models
  const char* golden;  // golden.json relative to shared/models
  const char* logits_dir;  // where golden-N.f32 live ("" = no logits files)
  double max_rel_l2 = 1e-4;
  size_t greedy_prefix = 0;  // compare only this many greedy tokens (0 = all)
  int ranks = 5;             // the golden top-5 ids that must hold their rank (the first `ranks`)
  float top5_tol = 1e-3f;    // relative tolerance of the top-5 logits
};

const GoldenCase kCases[] = {
    {"hf_llama2", "tiny-llama2", "tiny-llama2/golden.json", "tiny-llama2"},
    {"hf_llama3", "tiny-llama3", "tiny-llama3/golden.json", "tiny-llama3"},
    {"hf_llama31", "tiny-llama31", "tiny-llama31/golden.json", "tiny-llama31"},
    {"hf_llama32", "tiny-llama32", "tiny-llama32/golden.json", "tiny-llama32"},
    {"gguf_llama2_bf16", "gguf/tiny-llama2.gguf", "tiny-llama2/golden.json", "tiny-llama2"},
    {"gguf_llama31_bf16", "gguf/tiny-llama31.gguf", "tiny-llama31/golden.json", "tiny-llama31"},
    // Q8_0 weights meet activations quantized to 8 bits per block (as in
    // llama.cpp; ../shared/models/README.md: about 1e-2 from its f32
    // reference): logits within 1e-2, the top two ranks, 12 greedy tokens of 24.
    {"gguf_llama3_q8_0", "gguf/tiny-llama3.q8_0.gguf", "gguf/tiny-llama3.q8_0.golden.json", "", 1e-4, 12, 2,
     1e-2f},
    {"stories260K_llama2c", "stories260K/stories260K.bin", "stories260K/golden.json", ""},
    {"stories260K_gguf", "stories260K/stories260K.gguf", "stories260K/golden.json", ""},
    // FP8 (fbgemm layout): the golden file was computed with the same FP8
    // arithmetic (E4M3 weights x per-row scales, activations rounded to E4M3
    // per token with scale min(max|x|, 1200) / 448, f32 accumulation).
    // ../shared/models/README.md promises agreement to 1e-3 and 8 greedy
    // tokens; this implementation holds 1e-4 and all 24.
    {"hf_llama31_fp8", "tiny-llama31-fp8", "tiny-llama31-fp8/golden.json", "tiny-llama31-fp8", 1e-4, 0},
};

void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.name; }

class Golden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(Golden, LogitsAndGreedyMatchReference) {
  SKIP_WITHOUT_SHARED();
  const GoldenCase& gc = GetParam();
  const std::string root = test::shared_dir() + "/models/";
  auto text = test::read_file(root + gc.golden);
  ASSERT_FALSE(text.empty()) << "missing " << gc.golden;
  auto golden = nlohmann::json::parse(text.begin(), text.end());
  paca_model* m = test::load_or_die(root + gc.model);
  ASSERT_NE(m, nullptr);
  int case_index = 0;
  for (const auto& c : golden["cases"]) {
    SCOPED_TRACE("case " + std::to_string(case_index) + ": " + c["text"].get<std::string>());
    std::vector<int32_t> prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
    paca_session* s = nullptr;
    ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK) << paca_last_error();
    ASSERT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK) << paca_last_error();
    const float* logits = nullptr;
    size_t nv = 0;
    ASSERT_EQ(paca_session_logits(s, &logits, &nv), PACA_OK);

    if (gc.logits_dir[0] != '\0') {
      auto raw = test::read_file(root + gc.logits_dir + "/" + c["logits_file"].get<std::string>());
      ASSERT_EQ(raw.size(), nv * sizeof(float)) << "golden logits size differs from the vocabulary";
      std::vector<float> ref(nv);
      std::memcpy(ref.data(), raw.data(), raw.size());
      double err = test::rel_l2(logits, ref.data(), nv);
      EXPECT_LE(err, gc.max_rel_l2) << "relative L2 error of the last-position logits";
      RecordProperty("rel_l2_case" + std::to_string(case_index), std::to_string(err));
    }
    // top-5: ids equal (the first gc.ranks), values within gc.top5_tol relative
    std::vector<int32_t> idx(nv);
    for (size_t i = 0; i < nv; ++i) idx[i] = static_cast<int32_t>(i);
    std::partial_sort(idx.begin(), idx.begin() + 5, idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    for (int k = 0; k < 5; ++k) {
      int32_t id = c["top5"][k][0].get<int32_t>();
      float v = c["top5"][k][1].get<float>();
      if (k < gc.ranks) {
        EXPECT_EQ(idx[k], id) << "top-5 rank " << k;
      }
      EXPECT_NEAR(logits[id], v, gc.top5_tol * std::max(1.0f, std::fabs(v))) << "logit of token " << id;
    }
    // greedy continuation, no EOS stop
    std::vector<int32_t> expect = c["greedy"].get<std::vector<int32_t>>();
    std::vector<int32_t> got;
    for (size_t i = 0; i < expect.size(); ++i) {
      ASSERT_EQ(paca_session_logits(s, &logits, &nv), PACA_OK);
      int32_t best = static_cast<int32_t>(std::max_element(logits, logits + nv) - logits);
      got.push_back(best);
      if (i + 1 < expect.size()) {
        ASSERT_EQ(paca_session_decode(s, best), PACA_OK) << paca_last_error();
      }
    }
    if (gc.greedy_prefix > 0) {
      expect.resize(gc.greedy_prefix);
      got.resize(gc.greedy_prefix);
    }
    EXPECT_EQ(got, expect) << "greedy continuation";
    paca_session_free(s);
    ++case_index;
  }
  paca_model_free(m);
}

INSTANTIATE_TEST_SUITE_P(SharedModels, Golden, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<GoldenCase>& p) { return std::string(p.param.name); });

// The same weights as safetensors and as GGUF give the same greedy tokens.
TEST(GoldenFormats, SafetensorsAndGgufAgree) {
  SKIP_WITHOUT_SHARED();
  const std::string root = test::shared_dir() + "/models/";
  const std::pair<const char*, const char*> pairs[] = {{"tiny-llama2", "gguf/tiny-llama2.gguf"},
                                                       {"tiny-llama31", "gguf/tiny-llama31.gguf"}};
  for (auto [hf, gguf] : pairs) {
    std::vector<int32_t> toks[2];
    const char* paths[2] = {hf, gguf};
    for (int f = 0; f < 2; ++f) {
      paca_model* m = test::load_or_die(root + paths[f]);
      ASSERT_NE(m, nullptr);
      paca_model_info info{};
      info.struct_size = sizeof info;
      ASSERT_EQ(paca_model_get_info(m, &info), PACA_OK);
      paca_session* s = nullptr;
      ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
      int32_t t = info.bos_id;
      for (int i = 0; i < 32; ++i) {
        ASSERT_EQ(paca_session_decode(s, t), PACA_OK) << paca_last_error();
        const float* lg = nullptr;
        size_t nv = 0;
        ASSERT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK);
        t = static_cast<int32_t>(std::max_element(lg, lg + nv) - lg);
        toks[f].push_back(t);
      }
      paca_session_free(s);
      paca_model_free(m);
    }
    EXPECT_EQ(toks[0], toks[1]) << hf << " vs " << gguf;
  }
}

}  // namespace
