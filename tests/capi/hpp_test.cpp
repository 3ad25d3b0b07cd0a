// hpp_test.cpp - the C++ wrapper paca.hpp: its results are those of the C
// calls it wraps (tokens, text, logits, generation), errors become
// paca::Error with the status and paca_last_error()'s message, and handles
// free themselves.
#include <paca/paca.hpp>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace {

TEST(Hpp, MissingFileThrowsWithTheLibrarysMessage) {
  try {
    paca::Model m("/nonexistent/model");
    FAIL() << "no exception";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), PACA_ERR_IO);
    EXPECT_STREQ(e.status_name(), "PACA_ERR_IO");
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model"), std::string::npos) << e.what();
  }
}

TEST(Hpp, GenerationEqualsTheCGenerator) {
  SKIP_WITHOUT_SHARED();
  const std::string path = test::shared_dir() + "/models/stories260K/stories260K.bin";
  paca::Model model(path);
  const std::vector<int32_t> prompt = model.tokenize("Once upon a time");
  // C: tokenize and generate through paca.h directly
  paca_model* cm = test::load_or_die(path);
  int32_t ids[16];
  size_t n = 0;
  ASSERT_EQ(paca_tokenize(cm, "Once upon a time", 16, PACA_TOKENIZE_ADD_BOS, ids, 16, &n), PACA_OK);
  EXPECT_EQ(prompt, std::vector<int32_t>(ids, ids + n));
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
  sp.temperature = 0.8f;
  sp.seed = 3;
  sp.max_new_tokens = 30;
  paca_session* cs = nullptr;
  ASSERT_EQ(paca_session_create(cm, nullptr, &cs), PACA_OK);
  paca_generator* cg = nullptr;
  ASSERT_EQ(paca_generator_create(cs, ids, n, &sp, nullptr, &cg), PACA_OK);
  std::vector<int32_t> want;
  std::string want_text;
  while (paca_generator_stop_reason(cg) == PACA_STOP_NONE) {
    int32_t t = -1;
    const char* s = nullptr;
    size_t len = 0;
    ASSERT_EQ(paca_generator_next(cg, &t, &s, &len), PACA_OK);
    want.push_back(t);
    want_text.append(s, len);
  }
  // C++
  paca::Session session(model);
  paca::Generator gen(session, prompt, &sp);
  std::vector<int32_t> got;
  std::string text;
  while (auto piece = gen.next()) {
    got.push_back(piece->token);
    text += piece->text;
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(text, want_text);
  EXPECT_EQ(gen.stop_reason(), paca_generator_stop_reason(cg));
  EXPECT_FALSE(gen.next().has_value());
  EXPECT_EQ(model.detokenize(prompt), "Once upon a time");
  // logits: the same pointer contents as the C call on a session in the same state
  paca::Session s2(model);
  s2.prefill(prompt);
  auto [lp, nv] = s2.logits();
  const float* cl = nullptr;
  size_t cnv = 0;
  paca_session* cs2 = nullptr;
  ASSERT_EQ(paca_session_create(cm, nullptr, &cs2), PACA_OK);
  ASSERT_EQ(paca_session_prefill(cs2, ids, n), PACA_OK);
  ASSERT_EQ(paca_session_logits(cs2, &cl, &cnv), PACA_OK);
  ASSERT_EQ(nv, cnv);
  EXPECT_EQ(std::vector<float>(lp, lp + nv), std::vector<float>(cl, cl + cnv));
  // errors from a live handle
  try {
    s2.decode(1 << 20);
    FAIL() << "no exception";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), PACA_ERR_INVALID_ARGUMENT);
  }
  paca_session_free(cs2);
  paca_generator_free(cg);
  paca_session_free(cs);
  paca_model_free(cm);
}

}  // namespace
