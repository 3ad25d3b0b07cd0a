// session_test.cpp - session semantics through paca.h: determinism across
// thread counts, batch vs one-by-one prefill, rewind, context limits,
// chunked prefill, KV dtype, load cancellation, handle lifetimes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

std::vector<float> logits_after(paca_model* m, const std::vector<int32_t>& prompt, bool one_by_one = false) {
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_create(m, nullptr, &s), PACA_OK) << paca_last_error();
  if (one_by_one) {
    for (int32_t t : prompt) EXPECT_EQ(paca_session_decode(s, t), PACA_OK) << paca_last_error();
  } else {
    EXPECT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK) << paca_last_error();
  }
  const float* lg = nullptr;
  size_t nv = 0;
  EXPECT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK);
  std::vector<float> out(lg, lg + nv);
  paca_session_free(s);
  return out;
}

std::vector<int32_t> some_tokens(int n, int vocab) {
  std::vector<int32_t> t;
  uint32_t x = 12345;
  for (int i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    t.push_back(static_cast<int32_t>((x >> 8) % static_cast<uint32_t>(vocab)));
  }
  return t;
}

TEST(Session, ThreadCountDoesNotChangeLogits) {
  std::string dir = test::make_small_model();
  auto prompt = some_tokens(40, 300);
  std::vector<float> ref;
  for (int threads : {1, 2, 3, 8}) {
    paca_model* m = test::load_or_die(dir, threads);
    ASSERT_NE(m, nullptr);
    auto lg = logits_after(m, prompt);
    if (ref.empty()) ref = lg;
    else EXPECT_EQ(0, std::memcmp(ref.data(), lg.data(), ref.size() * sizeof(float))) << threads << " threads";
    paca_model_free(m);
  }
}

TEST(Session, ThreadCountDoesNotChangeLogitsOnRealModel) {
  SKIP_WITHOUT_SHARED();
  std::string path = test::shared_dir() + "/models/tiny-llama3";
  std::vector<int32_t> prompt = {128000, 12805, 5304, 264, 892};
  std::vector<float> ref;
  for (int threads : {1, 2, 5}) {
    paca_model* m = test::load_or_die(path, threads);
    ASSERT_NE(m, nullptr);
    auto lg = logits_after(m, prompt);
    if (ref.empty()) ref = lg;
    else EXPECT_EQ(0, std::memcmp(ref.data(), lg.data(), ref.size() * sizeof(float))) << threads << " threads";
    paca_model_free(m);
  }
}

// A token's logits are the same bits whether it ran in a prefill (blocked
// matmuls over many tokens) or alone (decode GEMV): every output is summed in
// one fixed order (backend/cpu/kernels.h). ctest also runs this suite with
// PACA_CPU_ISA=scalar.
TEST(Session, BatchPrefillEqualsTokenByToken) {
  paca_model* m = test::load_or_die(test::make_small_model());
  ASSERT_NE(m, nullptr);
  auto prompt = some_tokens(37, 300);
  auto a = logits_after(m, prompt, false);
  auto b = logits_after(m, prompt, true);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "rel_l2 " << test::rel_l2(a.data(), b.data(), a.size());
  paca_model_free(m);
}

TEST(Session, BatchPrefillEqualsTokenByTokenOnRealModels) {
  SKIP_WITHOUT_SHARED();
  // GQA models with BF16 weights, a trained model in GGUF (stories260K)
  for (const char* name : {"tiny-llama2", "tiny-llama3", "tiny-llama32", "stories260K/stories260K.gguf"}) {
    paca_model* m = test::load_or_die(test::shared_dir() + "/models/" + name);
    ASSERT_NE(m, nullptr) << name;
    paca_model_info info{};
    info.struct_size = sizeof info;
    ASSERT_EQ(paca_model_get_info(m, &info), PACA_OK);
    auto prompt = some_tokens(21, static_cast<int>(info.n_vocab));
    auto a = logits_after(m, prompt, false);
    auto b = logits_after(m, prompt, true);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)))
        << name << " rel_l2 " << test::rel_l2(a.data(), b.data(), a.size());
    paca_model_free(m);
  }
}

TEST(Session, RewindThenReplayReproducesLogits) {
  paca_model* m = test::load_or_die(test::make_small_model());
  ASSERT_NE(m, nullptr);
  auto prompt = some_tokens(30, 300);
  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  ASSERT_EQ(paca_session_prefill(s, prompt.data(), 20), PACA_OK);
  ASSERT_EQ(paca_session_prefill(s, prompt.data() + 20, 10), PACA_OK);
  EXPECT_EQ(paca_session_length(s), 30u);
  const float* lg = nullptr;
  size_t nv = 0;
  ASSERT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK);
  std::vector<float> full(lg, lg + nv);

  ASSERT_EQ(paca_session_rewind(s, 17), PACA_OK);
  EXPECT_EQ(paca_session_length(s), 17u);
  EXPECT_EQ(paca_session_logits(s, &lg, &nv), PACA_ERR_STATE) << "logits must be gone after a rewind";
  // replace the tail with different tokens, then rewind again and replay the original
  auto other = some_tokens(13, 7);
  ASSERT_EQ(paca_session_prefill(s, other.data(), other.size()), PACA_OK);
  ASSERT_EQ(paca_session_rewind(s, 17), PACA_OK);
  ASSERT_EQ(paca_session_prefill(s, prompt.data() + 17, 13), PACA_OK);
  ASSERT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK);
  EXPECT_LE(test::rel_l2(lg, full.data(), nv), 1e-6);

  std::vector<int32_t> ids(30);
  size_t need = 0;
  ASSERT_EQ(paca_session_tokens(s, ids.data(), ids.size(), &need), PACA_OK);
  EXPECT_EQ(need, 30u);
  EXPECT_EQ(ids, prompt);
  EXPECT_EQ(paca_session_tokens(s, ids.data(), 3, &need), PACA_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(paca_session_rewind(s, 31), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_rewind(s, 0), PACA_OK);
  EXPECT_EQ(paca_session_length(s), 0u);
  paca_session_free(s);
  paca_model_free(m);
}

TEST(Session, ContextFullLeavesSessionUnchanged) {
  paca_model* m = test::load_or_die(test::make_small_model());
  ASSERT_NE(m, nullptr);
  paca_session_params sp;
  paca_session_params_init(&sp, sizeof sp);
  sp.n_ctx = 24;
  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, &sp, &s), PACA_OK);
  EXPECT_EQ(paca_session_context_size(s), 24u);
  auto prompt = some_tokens(25, 300);
  EXPECT_EQ(paca_session_prefill(s, prompt.data(), 25), PACA_ERR_CONTEXT_FULL);
  EXPECT_NE(std::string(paca_last_error()).find("24"), std::string::npos) << paca_last_error();
  EXPECT_EQ(paca_session_length(s), 0u);
  ASSERT_EQ(paca_session_prefill(s, prompt.data(), 24), PACA_OK);
  const float* lg = nullptr;
  size_t nv = 0;
  ASSERT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK);
  std::vector<float> before(lg, lg + nv);
  EXPECT_EQ(paca_session_decode(s, 5), PACA_ERR_CONTEXT_FULL);
  EXPECT_EQ(paca_session_length(s), 24u);
  ASSERT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK);
  EXPECT_EQ(0, std::memcmp(before.data(), lg, nv * sizeof(float)));
  paca_session_free(s);
  paca_model_free(m);
}

// kv_memory_fraction: bad values are invalid arguments, one too small for a
// block fails the load with the numbers, a small reservation computes the
// same bits as the unbounded pool.
TEST(Session, KvMemoryFraction) {
  const std::string dir = test::make_small_model();
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.cpu_isa = test::test_cpu_isa();
  EXPECT_EQ(p.kv_memory_fraction, 0.0f);
  p.n_threads = 2;
  paca_model* m = nullptr;
  for (float bad : {-0.1f, 1.01f, std::nanf(""), INFINITY}) {
    p.kv_memory_fraction = bad;
    EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_INVALID_ARGUMENT) << bad;
    EXPECT_EQ(m, nullptr);
    EXPECT_NE(std::string(paca_last_error()).find("kv_memory_fraction"), std::string::npos) << paca_last_error();
  }
  p.kv_memory_fraction = 1e-30f;
  EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(m, nullptr);
  const std::string msg = paca_last_error();
  EXPECT_NE(msg.find("too little memory for the KV cache"), std::string::npos) << msg;
  EXPECT_NE(msg.find("need "), std::string::npos) << msg;
  EXPECT_NE(msg.find("have 0"), std::string::npos) << msg;
  // an old caller's struct without the field gets the default (no reservation)
  p.struct_size = offsetof(paca_model_params, kv_memory_fraction);
  ASSERT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_OK) << paca_last_error();
  paca_model_free(m);
  p.struct_size = sizeof p;
  p.kv_memory_fraction = 1e-4f;  // 100 KB per GB of the host's available memory: blocks of 8 KB
  ASSERT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_OK) << paca_last_error();
  paca_model* plain = test::load_or_die(dir, 2);
  const auto prompt = some_tokens(40, 300);
  const std::vector<float> a = logits_after(m, prompt), b = logits_after(plain, prompt);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  paca_model_free(plain);
  paca_model_free(m);
}

TEST(Session, LongPrefillIsChunkedCorrectly) {
  // 600 tokens cross the 256-token step size twice and many 16-token KV blocks.
  std::string dir = test::temp_dir() + "/m";
  paca_test_model_params p;
  paca_test_model_params_init(&p, sizeof p);
  p.dim = 32;
  p.n_layers = 1;
  p.n_heads = 2;
  p.n_kv_heads = 1;
  p.ffn_dim = 64;
  p.n_vocab = 100;
  p.max_context = 1024;
  ASSERT_EQ(paca_make_test_model(dir.c_str(), &p), PACA_OK) << paca_last_error();
  paca_model* m = test::load_or_die(dir);
  ASSERT_NE(m, nullptr);
  auto prompt = some_tokens(600, 100);
  auto a = logits_after(m, prompt, false);
  auto b = logits_after(m, prompt, true);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "rel_l2 " << test::rel_l2(a.data(), b.data(), a.size());
  paca_model_free(m);
}

TEST(Session, Bf16KvCacheIsCloseToF32) {
  std::string dir = test::make_small_model();
  auto prompt = some_tokens(40, 300);
  paca_model* m32 = test::load_or_die(dir);
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.cpu_isa = test::test_cpu_isa();
  p.kv_dtype = PACA_KV_BF16;
  p.kv_block_tokens = 5;  // an odd block size as well
  paca_model* m16 = nullptr;
  ASSERT_EQ(paca_model_load(dir.c_str(), &p, &m16), PACA_OK) << paca_last_error();
  paca_model_info i32{}, i16{};
  i32.struct_size = i16.struct_size = sizeof(paca_model_info);
  ASSERT_EQ(paca_model_get_info(m32, &i32), PACA_OK);
  ASSERT_EQ(paca_model_get_info(m16, &i16), PACA_OK);
  EXPECT_EQ(i32.kv_bytes_per_token, 2 * i16.kv_bytes_per_token);
  auto a = logits_after(m32, prompt);
  auto b = logits_after(m16, prompt);
  double err = test::rel_l2(b.data(), a.data(), a.size());
  EXPECT_GT(err, 0.0) << "bf16 KV should not be bit-identical to f32";
  EXPECT_LT(err, 2e-2);
  paca_model_free(m32);
  paca_model_free(m16);
}

// The default KV dtype is automatic: the exact f32 cache on the CPU (the
// same bytes and logits as asking for f32). Unknown values are refused.
TEST(Session, DefaultKvDtypeIsF32OnTheCpu) {
  std::string dir = test::make_small_model();
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.cpu_isa = test::test_cpu_isa();
  EXPECT_EQ(p.kv_dtype, PACA_KV_AUTO);
  paca_model* automatic = nullptr;
  ASSERT_EQ(paca_model_load(dir.c_str(), &p, &automatic), PACA_OK) << paca_last_error();
  p.kv_dtype = PACA_KV_F32;
  paca_model* f32 = nullptr;
  ASSERT_EQ(paca_model_load(dir.c_str(), &p, &f32), PACA_OK) << paca_last_error();
  paca_model_info ia{}, i32{};
  ia.struct_size = i32.struct_size = sizeof(paca_model_info);
  ASSERT_EQ(paca_model_get_info(automatic, &ia), PACA_OK);
  ASSERT_EQ(paca_model_get_info(f32, &i32), PACA_OK);
  EXPECT_EQ(ia.kv_bytes_per_token, i32.kv_bytes_per_token);
  auto prompt = some_tokens(30, 7);
  auto a = logits_after(automatic, prompt), b = logits_after(f32, prompt);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  paca_model_free(automatic);
  paca_model_free(f32);
  for (int32_t bad : {-2, 2, 77}) {
    p.kv_dtype = bad;
    paca_model* m = nullptr;
    EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_INVALID_ARGUMENT) << bad;
    EXPECT_EQ(m, nullptr);
    EXPECT_NE(std::string(paca_last_error()).find("kv_dtype"), std::string::npos) << paca_last_error();
  }
}

int32_t abort_at_half(void* user, float f) {
  ++*static_cast<int*>(user);
  return f >= 0.5f ? 1 : 0;
}

TEST(Session, ProgressCallbackCanAbortLoad) {
  std::string dir = test::make_small_model();
  int calls = 0;
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.cpu_isa = test::test_cpu_isa();
  p.progress = abort_at_half;
  p.progress_user = &calls;
  paca_model* m = nullptr;
  EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_CANCELLED);
  EXPECT_EQ(m, nullptr);
  EXPECT_GE(calls, 2);
}

TEST(Session, SessionOutlivesModelHandle) {
  paca_model* m = test::load_or_die(test::make_small_model());
  ASSERT_NE(m, nullptr);
  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  paca_model_free(m);
  int32_t t = 3;
  EXPECT_EQ(paca_session_decode(s, t), PACA_OK) << paca_last_error();
  paca_session_free(s);
}

TEST(Session, LogitsBeforeAnyTokenIsAStateError) {
  paca_model* m = test::load_or_die(test::make_small_model());
  ASSERT_NE(m, nullptr);
  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  const float* lg = reinterpret_cast<const float*>(&s);
  size_t nv = 1;
  EXPECT_EQ(paca_session_logits(s, &lg, &nv), PACA_ERR_STATE);
  EXPECT_EQ(lg, nullptr);
  EXPECT_EQ(nv, 0u);
  paca_session_free(s);
  paca_model_free(m);
}

}  // namespace

TEST(Session, LoadModesGiveTheSameLogits) {
  // PACA_LOAD_READ copies the files into (huge-page) memory: same logits, bit
  // for bit, as the mapped files. The default, PACA_LOAD_AUTO, reads a file
  // this small; paca_model_info says what each load did. A bad load_mode is
  // refused.
  std::string dir = test::make_small_model(11);
  auto prompt = some_tokens(24, 300);
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.cpu_isa = test::test_cpu_isa();
  EXPECT_EQ(p.load_mode, PACA_LOAD_AUTO);
  p.n_threads = 2;
  std::vector<float> ref;
  for (int mode : {PACA_LOAD_MMAP, PACA_LOAD_READ, PACA_LOAD_AUTO}) {
    p.load_mode = mode;
    paca_model* m = nullptr;
    ASSERT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_OK) << paca_last_error();
    paca_model_info info{};
    info.struct_size = sizeof info;
    ASSERT_EQ(paca_model_get_info(m, &info), PACA_OK);
    EXPECT_EQ(info.load_mode, mode == PACA_LOAD_MMAP ? PACA_LOAD_MMAP : PACA_LOAD_READ) << "mode " << mode;
    const std::vector<float> lg = logits_after(m, prompt);
    ASSERT_FALSE(lg.empty());
    if (ref.empty()) ref = lg;
    else EXPECT_EQ(std::memcmp(ref.data(), lg.data(), ref.size() * sizeof(float)), 0) << "mode " << mode;
    paca_model_free(m);
  }
  p.load_mode = 7;
  paca_model* bad = nullptr;
  EXPECT_EQ(paca_model_load(dir.c_str(), &p, &bad), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(bad, nullptr);
  EXPECT_NE(std::string(paca_last_error()).find("load_mode"), std::string::npos);
}

TEST(Session, SyntheticModelEqualsWrittenTestModel) {
  // paca_model_load_synthetic builds in memory the model paca_make_test_model
  // writes: same logits, bit for bit.
  paca_test_model_params shape;  // the shape of make_small_model
  paca_test_model_params_init(&shape, sizeof shape);
  shape.seed = 11;
  shape.dim = 64;
  shape.n_layers = 2;
  shape.n_heads = 4;
  shape.n_kv_heads = 2;
  shape.ffn_dim = 160;
  shape.n_vocab = 300;
  shape.max_context = 64;
  std::string dir = test::make_small_model(11);
  paca_model* written = test::load_or_die(dir, 2);
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.cpu_isa = test::test_cpu_isa();
  p.n_threads = 2;
  paca_model* synthetic = nullptr;
  ASSERT_EQ(paca_model_load_synthetic(&shape, &p, &synthetic), PACA_OK) << paca_last_error();
  auto prompt = some_tokens(20, 300);
  const std::vector<float> a = logits_after(written, prompt), b = logits_after(synthetic, prompt);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  paca_model_info wi{}, si{};
  wi.struct_size = si.struct_size = sizeof wi;
  ASSERT_EQ(paca_model_get_info(written, &wi), PACA_OK);
  ASSERT_EQ(paca_model_get_info(synthetic, &si), PACA_OK);
  EXPECT_EQ(wi.n_params, si.n_params);
  // No tokenizer: tokenizer calls say so.
  size_t n = 0;
  EXPECT_EQ(paca_tokenize(synthetic, "a", 1, 0, nullptr, 0, &n), PACA_ERR_STATE);
  paca_model_free(synthetic);
  paca_model_free(written);

  // Too big for this machine: a clear error with the sizes, nothing loaded.
  paca_test_model_params huge;
  paca_test_model_params_init(&huge, sizeof huge);
  huge.dim = 16384;
  huge.n_heads = 128;
  huge.n_kv_heads = 8;
  huge.ffn_dim = 53248;
  huge.n_layers = 126;
  huge.n_vocab = 128256;
  paca_model* none = nullptr;
  EXPECT_EQ(paca_model_load_synthetic(&huge, &p, &none), PACA_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(none, nullptr);
  EXPECT_NE(std::string(paca_last_error()).find("GB of weights"), std::string::npos) << paca_last_error();
  // Bad arguments.
  EXPECT_EQ(paca_model_load_synthetic(&shape, &p, nullptr), PACA_ERR_INVALID_ARGUMENT);
  paca_test_model_params bad = shape;
  bad.n_heads = 7;
  EXPECT_EQ(paca_model_load_synthetic(&bad, &p, &none), PACA_ERR_INVALID_ARGUMENT);
  p.tokenizer_path = "x";
  EXPECT_EQ(paca_model_load_synthetic(&shape, &p, &none), PACA_ERR_INVALID_ARGUMENT);
}
