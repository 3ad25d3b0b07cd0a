// quantize_test.cpp - paca_quantize_gguf through paca.h: the quantized
// stories260K (a trained model) still tells the golden story, the summary
// is honest about what was written, and bad arguments get clear errors
// without leaving files behind.
#include <gtest/gtest.h>
#include <paca/paca.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

std::vector<int32_t> greedy(paca_model* m, const std::vector<int32_t>& prompt, size_t n) {
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_create(m, nullptr, &s), PACA_OK) << paca_last_error();
  EXPECT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK) << paca_last_error();
  std::vector<int32_t> out;
  for (size_t i = 0; i < n; ++i) {
    const float* logits = nullptr;
    size_t nv = 0;
    EXPECT_EQ(paca_session_logits(s, &logits, &nv), PACA_OK);
    const int32_t best = static_cast<int32_t>(std::max_element(logits, logits + nv) - logits);
    out.push_back(best);
    if (i + 1 < n) {
      EXPECT_EQ(paca_session_decode(s, best), PACA_OK) << paca_last_error();
    }
  }
  paca_session_free(s);
  return out;
}

int32_t count_cb(void* user, float f) {
  auto* calls = static_cast<std::vector<float>*>(user);
  calls->push_back(f);
  return 0;
}
int32_t cancel_cb(void*, float) { return 1; }

}  // namespace

TEST(Quantize, Stories260KKeepsItsStory) {
  SKIP_WITHOUT_SHARED();
  const std::string root = test::shared_dir() + "/models/stories260K/";
  const auto text = test::read_file(root + "golden.json");
  const auto golden = nlohmann::json::parse(text.begin(), text.end());
  const auto prompt = golden["cases"][0]["prompt_tokens"].get<std::vector<int32_t>>();
  auto expect = golden["cases"][0]["greedy"].get<std::vector<int32_t>>();
  const std::string dir = test::temp_dir();
  // the rows of this model (64 and 172 wide) take Q5_0 / Q4_0 / Q8_0 / F16
  for (const char* mix : {"q8_0", "q4_k_m", "Q5_1"}) {
    SCOPED_TRACE(mix);
    const std::string out = dir + "/s-" + mix + ".gguf";
    std::vector<float> calls;
    char buf[1024];
    size_t needed = 0;
    ASSERT_EQ(paca_quantize_gguf((root + "stories260K.gguf").c_str(), out.c_str(), mix, 2, count_cb, &calls, buf,
                                 sizeof buf, &needed),
              PACA_OK)
        << paca_last_error();
    ASSERT_FALSE(calls.empty());
    EXPECT_FLOAT_EQ(calls.back(), 1.0f);
    EXPECT_TRUE(std::is_sorted(calls.begin(), calls.end()));
    const auto summary = nlohmann::json::parse(std::string(buf));
    EXPECT_EQ(needed, std::string(buf).size() + 1);
    EXPECT_EQ(summary["bytes_out"].get<uint64_t>() < summary["bytes_in"].get<uint64_t>(), true) << summary.dump();
    int total = 0;
    for (const auto& [type, n] : summary["types"].items()) total += n.get<int>();
    EXPECT_EQ(total, summary["tensors"].get<int>());
    paca_model* m = test::load_or_die(out, 2);
    ASSERT_NE(m, nullptr);
    // 16 tokens: "Once upon a time, there was a little girl named Lily. She loved to play ..."
    std::vector<int32_t> want(expect.begin(), expect.begin() + 16);
    EXPECT_EQ(greedy(m, prompt, want.size()), want);
    paca_model_free(m);
  }
}

TEST(Quantize, BadArgumentsAreRefused) {
  const std::string dir = test::temp_dir();
  const std::string out = dir + "/out.gguf";
  EXPECT_EQ(paca_quantize_gguf(nullptr, out.c_str(), "q4_0", 1, nullptr, nullptr, nullptr, 0, nullptr),
            PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_quantize_gguf("x.gguf", out.c_str(), "q3_k", 1, nullptr, nullptr, nullptr, 0, nullptr),
            PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("q4_k_m"), std::string::npos) << "the error lists the known mixes";
  EXPECT_NE(paca_quantize_gguf((dir + "/missing.gguf").c_str(), out.c_str(), "q4_0", 1, nullptr, nullptr, nullptr, 0,
                               nullptr),
            PACA_OK);
  const std::string hf = test::make_small_model();
  EXPECT_EQ(paca_quantize_gguf(hf.c_str(), out.c_str(), "q4_0", 1, nullptr, nullptr, nullptr, 0, nullptr),
            PACA_ERR_UNSUPPORTED);
  std::vector<uint8_t> junk(4096, 0x47);
  test::write_file(dir + "/junk.gguf", junk);
  EXPECT_NE(paca_quantize_gguf((dir + "/junk.gguf").c_str(), out.c_str(), "q4_0", 1, nullptr, nullptr, nullptr, 0,
                               nullptr),
            PACA_OK);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
}

TEST(Quantize, ProgressCanCancel) {
  SKIP_WITHOUT_SHARED();
  const std::string in = test::shared_dir() + "/models/stories260K/stories260K.gguf";
  const std::string out = test::temp_dir() + "/cancelled.gguf";
  EXPECT_EQ(paca_quantize_gguf(in.c_str(), out.c_str(), "q4_0", 1, cancel_cb, nullptr, nullptr, 0, nullptr),
            PACA_ERR_CANCELLED);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
}
