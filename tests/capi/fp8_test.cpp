// fp8_test.cpp - FP8 through paca.h: quantize-at-load of BF16 models keeps
// top-1 agreement with BF16 on the golden prompts (mean KL divergence is
// reported), weight-only mode differs from w8a8, an FP8 checkpoint in w8a16
// mode stays close to its w8a8 golden, and bad parameters are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

std::vector<float> last_logits(paca_model* m, const std::vector<int32_t>& prompt) {
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  EXPECT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK) << paca_last_error();
  const float* lg = nullptr;
  size_t nv = 0;
  EXPECT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK);
  std::vector<float> out(lg, lg + nv);
  paca_session_free(s);
  return out;
}

// KL(p || q) of the softmax distributions of two logit vectors.
double kl(const std::vector<float>& p_logits, const std::vector<float>& q_logits) {
  auto logsoftmax = [](const std::vector<float>& v) {
    double mx = *std::max_element(v.begin(), v.end()), sum = 0;
    for (float x : v) sum += std::exp(x - mx);
    std::vector<double> o(v.size());
    for (size_t i = 0; i < v.size(); ++i) o[i] = v[i] - mx - std::log(sum);
    return o;
  };
  auto lp = logsoftmax(p_logits), lq = logsoftmax(q_logits);
  double k = 0;
  for (size_t i = 0; i < lp.size(); ++i) k += std::exp(lp[i]) * (lp[i] - lq[i]);
  return k;
}

paca_model* load_with(const std::string& path, int32_t weight_dtype, int32_t targets, int32_t mode) {
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.weight_dtype = weight_dtype;
  p.fp8_targets = targets;
  p.fp8_mode = mode;
  paca_model* m = nullptr;
  EXPECT_EQ(paca_model_load(path.c_str(), &p, &m), PACA_OK) << paca_last_error();
  return m;
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Weight-only FP8 (w8a16) must keep top-1 wherever BF16's top-1 leads its
// runner-up by more than kMargin logits. These random-weight models have
// near-ties (one golden prompt of tiny-llama3 leads by 0.018), which FP8
// rounding may legitimately flip; those are counted and printed. W8A8 also
// rounds every activation to 3 mantissa bits, which moves these models'
// logits by up to ~0.5 (it flips tiny-llama3's "Hello world" prompt, whose
// top two differ by 0.32): its agreement is printed and its KL bounded, not
// its top-1 asserted.
constexpr float kMargin = 0.1f;

float top_margin(const std::vector<float>& v) {
  std::vector<float> c = v;
  std::partial_sort(c.begin(), c.begin() + 2, c.end(), std::greater<float>());
  return c[0] - c[1];
}

TEST(Fp8, QuantizeAtLoadKeepsTopOneOnGoldenPrompts) {
  SKIP_WITHOUT_SHARED();
  const std::string root = test::shared_dir() + "/models/";
  const std::pair<int32_t, const char*> modes[] = {{PACA_FP8_W8A8, "w8a8 (ub 1200)"}, {PACA_FP8_W8A16, "w8a16"}};
  for (auto [mode, mode_name] : modes) {
    for (const char* name : {"tiny-llama2", "tiny-llama3", "tiny-llama31", "tiny-llama32"}) {
      auto text = test::read_file(root + name + "/golden.json");
      auto golden = nlohmann::json::parse(text.begin(), text.end());
      paca_model* bf16 = test::load_or_die(root + name);
      // the MLP of every layer (these models have 2-3 layers, so Meta's
      // keep-first-and-last recipe would quantize at most one layer)
      paca_model* fp8 = load_with(root + name, PACA_WEIGHTS_FP8, PACA_FP8_MLP, mode);
      ASSERT_NE(bf16, nullptr);
      ASSERT_NE(fp8, nullptr);
      double kl_sum = 0;
      int n = 0, agree = 0;
      for (const auto& c : golden["cases"]) {
        auto prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
        auto a = last_logits(bf16, prompt), b = last_logits(fp8, prompt);
        bool same = argmax(a) == argmax(b);
        agree += same;
        if (mode == PACA_FP8_W8A16 && top_margin(a) > kMargin) {
          EXPECT_TRUE(same) << name << " " << mode_name << ": " << c["text"];
        }
        double d = kl(a, b);
        EXPECT_GT(d, 0.0) << "FP8 logits should differ from BF16";
        kl_sum += d;
        ++n;
      }
      double mean_kl = kl_sum / n;
      std::printf("[ fp8 ] %s, MLP in FP8 %s: top-1 agrees on %d/%d golden prompts, mean KL vs BF16 %.3g nats\n",
                  name, mode_name, agree, n, mean_kl);
      RecordProperty(std::string(name) + "_" + (mode == PACA_FP8_W8A8 ? "w8a8" : "w8a16") + "_mean_kl",
                     std::to_string(mean_kl));
      EXPECT_LT(mean_kl, 0.05);
      paca_model_free(bf16);
      paca_model_free(fp8);
    }
  }
}

TEST(Fp8, WeightOnlyModeDiffersFromW8A8) {
  SKIP_WITHOUT_SHARED();
  std::string path = test::shared_dir() + "/models/tiny-llama31-fp8";
  std::vector<int32_t> prompt = {128000, 12805, 5304, 264, 892};
  paca_model* w8a8 = load_with(path, PACA_WEIGHTS_AS_STORED, 0, PACA_FP8_AUTO);
  paca_model* w8a16 = load_with(path, PACA_WEIGHTS_AS_STORED, 0, PACA_FP8_W8A16);
  ASSERT_NE(w8a8, nullptr);
  ASSERT_NE(w8a16, nullptr);
  auto a = last_logits(w8a8, prompt), b = last_logits(w8a16, prompt);
  double err = test::rel_l2(b.data(), a.data(), a.size());
  EXPECT_GT(err, 0.0) << "activation rounding must change something";
  EXPECT_LT(err, 5e-2);
  EXPECT_EQ(argmax(a), argmax(b));
  size_t need = 0;
  paca_model_describe_json(w8a16, nullptr, 0, &need);
  std::string js(need, '\0');
  ASSERT_EQ(paca_model_describe_json(w8a16, js.data(), js.size(), &need), PACA_OK);
  EXPECT_NE(js.find("\"w8a16\":3"), std::string::npos) << js;
  EXPECT_NE(js.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << js;
  paca_model_free(w8a8);
  paca_model_free(w8a16);
}

TEST(Fp8, DefaultRecipeKeepsFirstAndLastLayers) {
  std::string dir = test::make_small_model();  // 2 layers: the recipe quantizes nothing
  paca_model* m = load_with(dir, PACA_WEIGHTS_FP8, 0, PACA_FP8_AUTO);
  ASSERT_NE(m, nullptr);
  size_t need = 0;
  paca_model_describe_json(m, nullptr, 0, &need);
  std::string js(need, '\0');
  ASSERT_EQ(paca_model_describe_json(m, js.data(), js.size(), &need), PACA_OK);
  EXPECT_NE(js.find("\"tensors\":[]"), std::string::npos) << js;
  paca_model_free(m);
  m = load_with(dir, PACA_WEIGHTS_FP8, PACA_FP8_MLP, PACA_FP8_AUTO);  // MLP of every layer
  ASSERT_NE(m, nullptr);
  paca_model_describe_json(m, nullptr, 0, &need);
  js.assign(need, '\0');
  ASSERT_EQ(paca_model_describe_json(m, js.data(), js.size(), &need), PACA_OK);
  EXPECT_NE(js.find("\"w8a8-dynamic\":6"), std::string::npos) << js;
  paca_model_free(m);
}

TEST(Fp8, BadParametersAreRefused) {
  std::string dir = test::make_small_model();
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  paca_model* m = nullptr;
  p.weight_dtype = 7;
  EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_INVALID_ARGUMENT);
  paca_model_params_init(&p, sizeof p);
  p.fp8_targets = 64;
  EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_INVALID_ARGUMENT);
  paca_model_params_init(&p, sizeof p);
  p.fp8_mode = -1;
  EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
}

}  // namespace
