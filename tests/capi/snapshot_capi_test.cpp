// snapshot_capi_test.cpp - session forks, snapshot files and the prompt
// cache through paca.h: a snapshot loaded in a fresh process continues
// exactly as the uninterrupted run (greedy and seeded sampling, the random
// test model, the tiny models and stories260K); forks continue independently;
// the prompt cache reuses prefixes; bad files get clear errors and change
// nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

// What a generation produced: the tokens and, for each, the logits it was
// sampled from.
struct Gen {
  std::vector<int32_t> tokens;
  std::vector<float> logits;
  bool operator==(const Gen&) const = default;
};

// Samples n tokens, appending each to the session (so the session ends with
// the logits of its last token).
Gen generate(paca_session* s, paca_sampler* smp, int n) {
  Gen g;
  for (int i = 0; i < n; ++i) {
    const float* lg = nullptr;
    size_t nv = 0;
    EXPECT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK) << paca_last_error();
    if (lg == nullptr) return g;
    g.logits.insert(g.logits.end(), lg, lg + nv);
    int32_t t = -1;
    EXPECT_EQ(paca_sampler_sample(smp, s, &t, nullptr), PACA_OK) << paca_last_error();
    g.tokens.push_back(t);
    EXPECT_EQ(paca_session_decode(s, t), PACA_OK) << paca_last_error();
  }
  return g;
}

// Runs fn in a child process (nothing of this process's models is used
// there) and returns what it produced.
Gen in_fresh_process(const std::function<Gen()>& fn) {
  const std::string out = test::temp_dir() + "/gen.bin";
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    Gen g = fn();
    FILE* f = std::fopen(out.c_str(), "wb");
    const uint64_t nt = g.tokens.size(), nl = g.logits.size();
    bool ok = f != nullptr && std::fwrite(&nt, 8, 1, f) == 1 && std::fwrite(&nl, 8, 1, f) == 1 &&
              std::fwrite(g.tokens.data(), 4, nt, f) == nt && std::fwrite(g.logits.data(), 4, nl, f) == nl;
    ok = f != nullptr && std::fclose(f) == 0 && ok;
    ::_exit(ok && !::testing::Test::HasFailure() ? 0 : 1);
  }
  EXPECT_GT(pid, 0);
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child process failed";
  Gen g;
  std::vector<uint8_t> b = test::read_file(out);
  if (b.size() < 16) return g;
  uint64_t nt = 0, nl = 0;
  std::memcpy(&nt, b.data(), 8);
  std::memcpy(&nl, b.data() + 8, 8);
  if (b.size() != 16 + 4 * (nt + nl)) return g;
  g.tokens.resize(nt);
  g.logits.resize(nl);
  std::memcpy(g.tokens.data(), b.data() + 16, 4 * nt);
  std::memcpy(g.logits.data(), b.data() + 16 + 4 * nt, 4 * nl);
  return g;
}

std::vector<int32_t> prompt_for(paca_model* m, size_t n) {
  paca_model_info info{};
  info.struct_size = sizeof info;
  EXPECT_EQ(paca_model_get_info(m, &info), PACA_OK);
  std::vector<int32_t> p;
  if (info.bos_id >= 0) p.push_back(info.bos_id);
  const int32_t span = std::min(info.n_vocab, 500) - 3;
  for (size_t i = 0; p.size() < n; ++i) p.push_back(static_cast<int32_t>(3 + (i * 37 + 11) % span));
  return p;
}

paca_sampler* make_sampler(paca_model* m, bool seeded) {
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
  sp.ignore_eos = 1;
  if (seeded) {
    sp.temperature = 0.9f;
    sp.seed = 4242;
    sp.top_k = 40;
    sp.top_p = 0.95f;
    sp.repeat_penalty = 1.1f;
  }
  paca_sampler* smp = nullptr;
  EXPECT_EQ(paca_sampler_create(m, &sp, &smp), PACA_OK) << paca_last_error();
  return smp;
}

// N tokens, save, load in a fresh process, M more == N + M uninterrupted.
void check_round_trip(const std::string& model_path, bool seeded) {
  SCOPED_TRACE(model_path + (seeded ? " seeded" : " greedy"));
  constexpr int N = 12, M = 10;
  paca_model* m = test::load_or_die(model_path);
  ASSERT_NE(m, nullptr);
  const auto prompt = prompt_for(m, 9);
  paca_sampler* smp = make_sampler(m, seeded);
  paca_session* whole = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &whole), PACA_OK);
  ASSERT_EQ(paca_session_prefill(whole, prompt.data(), prompt.size()), PACA_OK) << paca_last_error();
  const Gen uninterrupted = generate(whole, smp, N + M);

  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  ASSERT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK);
  const Gen first = generate(s, smp, N);
  const std::string path = test::temp_dir() + "/s.snap";
  ASSERT_EQ(paca_session_save_with_sampler(s, smp, path.c_str()), PACA_OK) << paca_last_error();

  const Gen rest = in_fresh_process([&] {
    paca_model* m2 = test::load_or_die(model_path);
    paca_session* s2 = nullptr;
    paca_sampler* smp2 = nullptr;
    EXPECT_EQ(paca_session_load_with_sampler(m2, path.c_str(), &s2, &smp2), PACA_OK) << paca_last_error();
    EXPECT_NE(smp2, nullptr);
    Gen g;
    if (s2 != nullptr && smp2 != nullptr) g = generate(s2, smp2, M);
    paca_sampler_free(smp2);
    paca_session_free(s2);
    paca_model_free(m2);
    return g;
  });

  Gen want;
  want.tokens.assign(uninterrupted.tokens.begin() + N, uninterrupted.tokens.end());
  const size_t nv = uninterrupted.logits.size() / (N + M);
  want.logits.assign(uninterrupted.logits.begin() + static_cast<long>(N * nv), uninterrupted.logits.end());
  EXPECT_EQ(first.tokens, std::vector<int32_t>(uninterrupted.tokens.begin(), uninterrupted.tokens.begin() + N));
  ASSERT_EQ(rest.tokens.size(), static_cast<size_t>(M));
  EXPECT_EQ(rest.tokens, want.tokens);
  EXPECT_TRUE(rest.logits == want.logits) << "logits after loading differ from the uninterrupted run";
  paca_session_free(s);
  paca_session_free(whole);
  paca_sampler_free(smp);
  paca_model_free(m);
}

TEST(SnapshotCapi, RoundTripInAFreshProcessOnTheTestModel) {
  const std::string dir = test::make_small_model(21);
  check_round_trip(dir, false);
  check_round_trip(dir, true);
}

TEST(SnapshotCapi, RoundTripInAFreshProcessOnTinyModelsAndStories260K) {
  SKIP_WITHOUT_SHARED();
  const std::string models = test::shared_dir() + "/models/";
  for (const char* name : {"tiny-llama2", "tiny-llama3", "tiny-llama31", "tiny-llama32", "stories260K/stories260K.bin",
                           "gguf/tiny-llama3.q8_0.gguf"}) {
    check_round_trip(models + name, false);
    check_round_trip(models + name, true);
  }
}

TEST(SnapshotCapi, ASnapshotWithoutASamplerLoadsWithoutOne) {
  paca_model* m = test::load_or_die(test::make_small_model());
  ASSERT_NE(m, nullptr);
  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
  const std::string path = test::temp_dir() + "/empty.snap";
  ASSERT_EQ(paca_session_save(s, path.c_str()), PACA_OK) << paca_last_error();  // an empty session saves too
  paca_session* l = nullptr;
  paca_sampler* smp = reinterpret_cast<paca_sampler*>(&l);  // must be overwritten
  ASSERT_EQ(paca_session_load_with_sampler(m, path.c_str(), &l, &smp), PACA_OK) << paca_last_error();
  EXPECT_EQ(smp, nullptr);
  EXPECT_EQ(paca_session_length(l), 0u);
  const float* lg = nullptr;
  EXPECT_EQ(paca_session_logits(l, &lg, nullptr), PACA_ERR_STATE);
  paca_session_free(l);
  paca_session_free(s);
  paca_model_free(m);
}

TEST(SnapshotCapi, ForkedChildrenEachEqualAFreshRunOfTheirOwnPrompt) {
  paca_model* m = test::load_or_die(test::make_small_model(5));
  ASSERT_NE(m, nullptr);
  const auto prompt = prompt_for(m, 21);
  paca_session* parent = nullptr;
  ASSERT_EQ(paca_session_create(m, nullptr, &parent), PACA_OK);
  ASSERT_EQ(paca_session_prefill(parent, prompt.data(), prompt.size()), PACA_OK);
  paca_session* kids[2] = {nullptr, nullptr};
  const std::vector<int32_t> suffix[2] = {{7, 8, 9}, {100, 3}};
  for (int k = 0; k < 2; ++k) {
    ASSERT_EQ(paca_session_fork(parent, &kids[k]), PACA_OK) << paca_last_error();
    EXPECT_EQ(paca_session_length(kids[k]), prompt.size());
  }
  paca_session_free(parent);  // the children keep the shared blocks alive
  paca_sampler* greedy = make_sampler(m, false);
  for (int k = 0; k < 2; ++k) {
    ASSERT_EQ(paca_session_prefill(kids[k], suffix[k].data(), suffix[k].size()), PACA_OK);
    const Gen got = generate(kids[k], greedy, 8);
    // a fresh session over the child's full prompt, in the same steps
    paca_session* fresh = nullptr;
    ASSERT_EQ(paca_session_create(m, nullptr, &fresh), PACA_OK);
    ASSERT_EQ(paca_session_prefill(fresh, prompt.data(), prompt.size()), PACA_OK);
    ASSERT_EQ(paca_session_prefill(fresh, suffix[k].data(), suffix[k].size()), PACA_OK);
    EXPECT_TRUE(generate(fresh, greedy, 8) == got) << "child " << k;
    // and one batch prefill of the full prompt agrees to rounding
    std::vector<int32_t> full = prompt;
    full.insert(full.end(), suffix[k].begin(), suffix[k].end());
    paca_session* batch = nullptr;
    ASSERT_EQ(paca_session_create(m, nullptr, &batch), PACA_OK);
    ASSERT_EQ(paca_session_prefill(batch, full.data(), full.size()), PACA_OK);
    const float* lg = nullptr;
    size_t nv = 0;
    ASSERT_EQ(paca_session_logits(batch, &lg, &nv), PACA_OK);
    EXPECT_LE(test::rel_l2(got.logits.data(), lg, nv), 1e-5);
    paca_session_free(batch);
    paca_session_free(fresh);
    paca_session_free(kids[k]);
  }
  paca_sampler_free(greedy);
  paca_model_free(m);
}

std::vector<float> last_logits(paca_session* s) {
  const float* lg = nullptr;
  size_t nv = 0;
  EXPECT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK) << paca_last_error();
  return lg != nullptr ? std::vector<float>(lg, lg + nv) : std::vector<float>{};
}

TEST(SnapshotCapi, PromptCacheReusesTheLongestPrefix) {
  paca_model* m = test::load_or_die(test::make_small_model(9));
  ASSERT_NE(m, nullptr);
  const auto p = prompt_for(m, 20);
  const std::string cache = test::temp_dir() + "/cache.snap";
  auto fresh_logits = [&](const std::vector<std::vector<int32_t>>& chunks) {
    paca_session* s = nullptr;
    EXPECT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
    for (const auto& c : chunks) EXPECT_EQ(paca_session_prefill(s, c.data(), c.size()), PACA_OK);
    auto l = last_logits(s);
    paca_session_free(s);
    return l;
  };
  auto cached = [&](const std::vector<int32_t>& tokens, size_t* reused) {
    paca_session* s = nullptr;
    EXPECT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
    EXPECT_EQ(paca_session_prefill_cached(s, cache.c_str(), tokens.data(), tokens.size(), reused), PACA_OK)
        << paca_last_error();
    EXPECT_EQ(paca_session_length(s), tokens.size());
    return s;
  };

  size_t reused = 99;
  paca_session* s = cached(p, &reused);  // no file yet: a miss
  EXPECT_EQ(reused, 0u);
  EXPECT_EQ(last_logits(s), fresh_logits({p}));
  ASSERT_EQ(paca_session_save(s, cache.c_str()), PACA_OK);
  paca_session_free(s);

  s = cached(p, &reused);  // the same prompt: everything, logits included
  EXPECT_EQ(reused, p.size());
  EXPECT_EQ(last_logits(s), fresh_logits({p}));
  paca_session_free(s);

  std::vector<int32_t> longer = p;
  longer.insert(longer.end(), {5, 6, 7, 8});
  s = cached(longer, &reused);  // extends the cached prompt
  EXPECT_EQ(reused, p.size());
  EXPECT_EQ(last_logits(s), fresh_logits({p, {5, 6, 7, 8}}));
  paca_session_free(s);

  std::vector<int32_t> shorter(p.begin(), p.begin() + 12);
  s = cached(shorter, &reused);  // a prefix of the cached one: all but the last token
  EXPECT_EQ(reused, 11u);
  EXPECT_EQ(last_logits(s), fresh_logits({std::vector<int32_t>(p.begin(), p.begin() + 11), {p[11]}}));
  paca_session_free(s);

  std::vector<int32_t> diverges(p.begin(), p.begin() + 8);
  diverges.insert(diverges.end(), {9, 9, 9});
  s = cached(diverges, &reused);
  EXPECT_EQ(reused, 8u);
  paca_session_free(s);

  // A session that holds tokens is refused and left alone.
  s = cached(p, &reused);
  EXPECT_EQ(paca_session_prefill_cached(s, cache.c_str(), p.data(), p.size(), &reused), PACA_ERR_STATE);
  EXPECT_EQ(paca_session_length(s), p.size());
  paca_session_free(s);
  paca_model_free(m);
}

// ---- bad input --------------------------------------------------------------

struct Bad {
  paca_model* m = nullptr;
  paca_model* other = nullptr;
  std::string dir = test::temp_dir();
  std::string good_path = dir + "/good.snap";
  std::vector<uint8_t> good;
  std::vector<float> logits;
  Bad() {
    m = test::load_or_die(test::make_small_model(31));
    other = test::load_or_die(test::make_small_model(32));  // same shape, other weights
    paca_session* s = nullptr;
    EXPECT_EQ(paca_session_create(m, nullptr, &s), PACA_OK);
    const auto p = prompt_for(m, 30);
    EXPECT_EQ(paca_session_prefill(s, p.data(), p.size()), PACA_OK);
    paca_sampler* smp = make_sampler(m, true);
    EXPECT_EQ(paca_session_save_with_sampler(s, smp, good_path.c_str()), PACA_OK) << paca_last_error();
    logits = last_logits(s);
    paca_sampler_free(smp);
    paca_session_free(s);
    good = test::read_file(good_path);
  }
  ~Bad() {
    paca_model_free(m);
    paca_model_free(other);
  }
  // Loads bytes as a snapshot; expects failure with one of `allowed`, a
  // message, and no session or sampler.
  void expect_refused(const std::vector<uint8_t>& bytes, std::initializer_list<paca_status> allowed,
                      const std::string& says, const std::string& what) {
    const std::string path = dir + "/bad.snap";
    test::write_file(path, bytes);
    paca_session* s = reinterpret_cast<paca_session*>(this);
    paca_sampler* smp = reinterpret_cast<paca_sampler*>(this);
    const paca_status st = paca_session_load_with_sampler(m, path.c_str(), &s, &smp);
    const std::string msg = paca_last_error();
    EXPECT_NE(st, PACA_OK) << what;
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), st), allowed.end()) << what << ": " << paca_status_name(st);
    EXPECT_NE(msg.find(says), std::string::npos) << what << ": " << msg;
    EXPECT_EQ(s, nullptr);
    EXPECT_EQ(smp, nullptr);
    // The prompt cache treats the same file as a miss and stays correct.
    paca_session* c = nullptr;
    ASSERT_EQ(paca_session_create(m, nullptr, &c), PACA_OK);
    const auto p = prompt_for(m, 30);
    size_t reused = 1;
    EXPECT_EQ(paca_session_prefill_cached(c, path.c_str(), p.data(), p.size(), &reused), PACA_OK) << what;
    EXPECT_EQ(reused, 0u) << what;
    EXPECT_EQ(last_logits(c), logits) << what;
    paca_session_free(c);
  }
};

TEST(SnapshotBadInput, TruncatedAnywhere) {
  Bad b;
  for (size_t len = 0; len < b.good.size(); len += (len < 300 ? 1 : 97)) {
    std::vector<uint8_t> t(b.good.begin(), b.good.begin() + static_cast<long>(len));
    b.expect_refused(t, {PACA_ERR_FORMAT}, len < 8 ? "not a paca session snapshot" : "truncated",
                     "truncated to " + std::to_string(len));
  }
}

TEST(SnapshotBadInput, FlippedBytesAnywhere) {
  Bad b;
  for (size_t at = 0; at < b.good.size(); at += (at < 300 ? 1 : 13)) {
    std::vector<uint8_t> f = b.good;
    f[at] ^= static_cast<uint8_t>(1u << (at % 8));
    // a flip in the magic makes another kind of file, in the version a newer
    // one; everywhere else a checksum fails
    const char* says = at < 8 ? "not a paca session snapshot" : at < 12 ? "version" : "corrupt";
    b.expect_refused(f, {PACA_ERR_FORMAT, PACA_ERR_UNSUPPORTED}, says, "byte " + std::to_string(at) + " flipped");
  }
}

TEST(SnapshotBadInput, OtherKindsOfFilesAndGarbageAfterTheEnd) {
  Bad b;
  b.expect_refused({}, {PACA_ERR_FORMAT}, "not a paca session snapshot", "empty file");
  const std::string text = "{\"this\": \"is json\"}";
  b.expect_refused(std::vector<uint8_t>(text.begin(), text.end()), {PACA_ERR_FORMAT}, "not a paca session snapshot",
                   "json");
  std::vector<uint8_t> gguf(4096, 0);  // a GGUF v3 header followed by zeros
  const char magic[] = "GGUF\3";
  std::memcpy(gguf.data(), magic, 5);
  b.expect_refused(gguf, {PACA_ERR_FORMAT}, "not a paca session snapshot", "gguf header");
  std::vector<uint8_t> longer = b.good;
  longer.push_back(0);
  b.expect_refused(longer, {PACA_ERR_FORMAT}, "unexpected bytes", "one byte appended");
}

TEST(SnapshotBadInput, FutureVersion) {
  Bad b;
  std::vector<uint8_t> f = b.good;
  f[8] = 2;  // the version field
  b.expect_refused(f, {PACA_ERR_UNSUPPORTED}, "newer than this library", "version 2");
}

TEST(SnapshotBadInput, WrongModelAndMissingFile) {
  Bad b;
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_load(b.other, b.good_path.c_str(), &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("different model"), std::string::npos) << paca_last_error();
  EXPECT_EQ(s, nullptr);
  // another KV dtype of the same model
  paca_model_params mp;
  paca_model_params_init(&mp, sizeof mp);
  mp.kv_dtype = PACA_KV_BF16;
  paca_model* bf16 = nullptr;
  ASSERT_EQ(paca_model_load(test::make_small_model(31).c_str(), &mp, &bf16), PACA_OK);
  EXPECT_EQ(paca_session_load(bf16, b.good_path.c_str(), &s), PACA_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(paca_last_error()).find("KV cache is f32"), std::string::npos) << paca_last_error();
  paca_model_free(bf16);
  EXPECT_EQ(paca_session_load(b.m, (b.dir + "/missing.snap").c_str(), &s), PACA_ERR_IO);
  EXPECT_EQ(s, nullptr);
  // The file was fine all along.
  ASSERT_EQ(paca_session_load(b.m, b.good_path.c_str(), &s), PACA_OK) << paca_last_error();
  EXPECT_EQ(last_logits(s), b.logits);
  paca_session_free(s);
}

TEST(SnapshotBadInput, NullAndEmptyArguments) {
  Bad b;
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_load(nullptr, b.good_path.c_str(), &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_load(b.m, nullptr, &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_load(b.m, "", &s), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_load(b.m, b.good_path.c_str(), nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_save(nullptr, b.good_path.c_str()), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_fork(nullptr, &s), PACA_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(paca_session_create(b.m, nullptr, &s), PACA_OK);
  EXPECT_EQ(paca_session_save(s, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_fork(s, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_save(s, (b.dir + "/no/such/folder/x.snap").c_str()), PACA_ERR_IO);
  EXPECT_NE(std::string(paca_last_error()).find("cannot create"), std::string::npos) << paca_last_error();
  int32_t t = 1;
  EXPECT_EQ(paca_session_prefill_cached(s, nullptr, &t, 1, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_prefill_cached(s, b.good_path.c_str(), nullptr, 1, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_prefill_cached(s, b.good_path.c_str(), &t, 0, nullptr), PACA_ERR_INVALID_ARGUMENT);
  t = 1 << 30;  // outside the vocabulary: the prefill fails and the session stays empty
  EXPECT_EQ(paca_session_prefill_cached(s, b.good_path.c_str(), &t, 1, nullptr), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_length(s), 0u);
  paca_session_free(s);
}

}  // namespace
