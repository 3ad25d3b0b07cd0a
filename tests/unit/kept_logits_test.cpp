// kept_logits_test.cpp - logits kept on the backend (ModelRunner::keeps_logits,
// runner.h): a session reads them to the host only when asked, samples from
// the backend's k best when the sampler needs no more, and gives exactly what
// a session whose every step copies the logits to the host gives, through
// chunked prefills, batched steps, forks, rewinds and failed steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/llama_model.h"
#include "model/test_model.h"
#include "runtime/kv_cache.h"
#include "runtime/load.h"
#include "runtime/session.h"
#include "sample/rng.h"
#include "sample/sampler.h"
#include "util/error.h"

namespace {

using namespace paca;

// The CPU backend, counting what leaves it and failing a chosen matmul.
class Counting final : public Backend {
 public:
  explicit Counting(std::unique_ptr<Backend> inner) : in_(std::move(inner)) {}
  std::string name() const override { return in_->name(); }
  void* alloc(size_t bytes) override { return in_->alloc(bytes); }
  void release(void* p) override { in_->release(p); }
  void copy(void* dst, const void* src, size_t bytes) override { in_->copy(dst, src, bytes); }
  void embed(const TensorView& t, std::span<const int32_t> tokens, Act out) override { in_->embed(t, tokens, out); }
  void rmsnorm(Act x, const TensorView& w, float eps, Act out) override { in_->rmsnorm(x, w, eps, out); }
  void matmul(Act x, const TensorView& w, Act out) override {
    if (fail_in > 0 && --fail_in == 0) fail(Status::io, "injected failure");
    in_->matmul(x, w, out);
  }
  void rope(Act x, int h, int d, std::span<const int32_t> pos, std::span<const float> f, RopeLayout l) override {
    in_->rope(x, h, d, pos, f, l);
  }
  void kv_write(const KvSeq& s, int layer, Act k, Act v, std::span<const int32_t> pos) override {
    in_->kv_write(s, layer, k, v, pos);
  }
  void attention(Act q, const KvSeq& s, int layer, std::span<const int32_t> pos, const AttentionShape& sh,
                 Act out) override {
    in_->attention(q, s, layer, pos, sh, out);
  }
  void swiglu(Act g, Act u, Act out) override { in_->swiglu(g, u, out); }
  void add(Act x, Act y) override { in_->add(x, y); }
  void to_host(const float* src, float* dst, size_t n) override {
    ++to_host_calls;
    in_->to_host(src, dst, n);
  }
  void top_k(const float* logits, size_t n, size_t k, std::vector<Candidate>& out, uint64_t* mass) override {
    ++top_k_calls;
    Backend::top_k(logits, n, k, out, mass);  // the default: read them all, select on the host
  }
  DeviceMemory memory() const override { return in_->memory(); }

  int to_host_calls = 0, top_k_calls = 0;
  int fail_in = 0;  // > 0: the fail_in-th matmul from now throws

 private:
  std::unique_ptr<Backend> in_;
};

// A runner over a LlamaModel that keeps no logits: every step copies them to
// the host, as before logits could stay on the backend (the reference).
class HostRunner final : public ModelRunner {
 public:
  explicit HostRunner(LlamaModel& m) : m_(m) {}
  const ModelConfig& config() const override { return m_.config(); }
  const Checkpoint& checkpoint() const override { return m_.checkpoint(); }
  uint64_t fingerprint() const override { return m_.fingerprint(); }
  uint64_t n_params() const override { return m_.n_params(); }
  uint64_t weight_bytes() const override { return m_.weight_bytes(); }
  std::string backend_name() const override { return m_.backend_name(); }
  const LogSink& log() const override { return m_.log(); }
  const KvLayout& kv_layout() const override { return m_.kv_layout(); }
  Backend& kv_backend() override { return m_.kv_backend(); }
  std::unique_ptr<Scratch> new_scratch() override { return m_.new_scratch(); }
  void step(Scratch& scratch, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
            const std::atomic<bool>* cancel, StepLogits logits) override {
    EXPECT_FALSE(logits.keep);
    ++steps;
    with_logits += logits.host.empty() ? 0 : 1;
    m_.step(scratch, tokens, pos0, seq, cancel, logits);
  }
  void step_batch(std::span<const BatchSeq> seqs) override { m_.step_batch(seqs); }
  std::mutex& compute_mutex() override { return m_.compute_mutex(); }
  int steps = 0, with_logits = 0;

 private:
  LlamaModel& m_;
};

TestModelSpec spec() {
  TestModelSpec s;
  s.seed = 5;
  s.dim = 64;
  s.n_layers = 2;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.ffn_dim = 96;
  s.n_vocab = 700;
  s.max_context = 640;
  return s;
}

struct Models {
  Counting* be = nullptr;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<HostRunner> host;
  std::unique_ptr<BlockPool> pool;
  Models() {
    auto owned = std::make_unique<Counting>(make_cpu_backend(2));
    be = owned.get();
    ModelOptions opt;
    opt.kv_block_tokens = 16;
    model = std::make_unique<LlamaModel>(synthetic_checkpoint(spec(), uint64_t{1} << 30), std::move(owned), opt);
    host = std::make_unique<HostRunner>(*model);
    pool = std::make_unique<BlockPool>(model->backend(), model->kv_layout());
  }
};

std::vector<int32_t> prompt(size_t n, uint64_t seed) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(sampler_uniform(seed, i) * 700));
  return t;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

SamplerParams params(float t, int32_t k, float top_p = 1.0f, float min_p = 0.0f) {
  SamplerParams p;
  p.temperature = t;
  p.top_k = k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.seed = 77;
  return p;
}

TEST(KeptLogits, TheModelKeepsAndTheReferenceDoesNot) {
  Models m;
  EXPECT_TRUE(m.model->keeps_logits());
  EXPECT_FALSE(m.host->keeps_logits());
}

// A 600-token prompt runs as chunks of 256, 256 and 88: the logits of the
// last chunk only (the LM head is skipped before), the same bits both ways;
// they are read from the backend once, when asked for.
TEST(KeptLogits, ChunkedPrefillGivesTheSameLogits) {
  Models m;
  Session kept(*m.model, *m.pool, 0), host(*m.host, *m.pool, 0);
  const auto p = prompt(600, 1);
  host.prefill(p);
  EXPECT_EQ(m.host->steps, 3);
  EXPECT_EQ(m.host->with_logits, 1);
  const int before = m.be->to_host_calls;
  kept.prefill(p);
  EXPECT_EQ(m.be->to_host_calls, before);  // nothing read yet
  EXPECT_TRUE(kept.has_logits());
  EXPECT_TRUE(same_bits(kept.logits(), host.logits()));
  EXPECT_EQ(m.be->to_host_calls, before + 1);
  const float* where = kept.logits().data();
  EXPECT_EQ(m.be->to_host_calls, before + 1);  // read once
  const int32_t t = 3;
  kept.prefill(std::span<const int32_t>(&t, 1));
  host.prefill(std::span<const int32_t>(&t, 1));
  EXPECT_TRUE(same_bits(kept.logits(), host.logits()));
  EXPECT_EQ(kept.logits().data(), where);  // a pointer into the logits stays valid
}

// Every sampler the chain allows, through Session::sample, on both sessions,
// token for token; the kept session sends only the k best when the sampler
// needs no more (greedy, top-k; top-p and min-p when the truncated set is
// among the 256 best), and all logits otherwise.
TEST(KeptLogits, SamplingGivesTheSameTokensAndReadsOnlyTheBest) {
  struct Case {
    SamplerParams p;
    bool logprobs;
    bool best;  // expected to go through top_k
    int fits;   // top-p/min-p without top-k: 1 when the set is among the 256 best (nothing more read)
  };
  std::vector<Case> cases = {
      {params(0.0f, 0), false, true, 1},         {params(0.9f, 1), false, true, 1},
      {params(0.9f, 40, 0.9f), false, true, 1},  {params(1.3f, 256, 1.0f, 0.02f), false, true, 1},
      {params(0.8f, 0, 0.9f), false, true, 0},   {params(0.8f, 0, 0.5f, 0.9f), false, true, 1},
      {params(0.8f, 0, 0.2f), false, true, 1},   {params(0.8f, 257), false, false, 1},
      {params(0.0f, 0), true, false, 1},         {params(0.9f, 40), true, false, 1},
  };
  SamplerParams pen = params(0.0f, 0);
  pen.repeat_penalty = 1.3f;
  cases.push_back({pen, false, false, 1});
  for (size_t c = 0; c < cases.size(); ++c) {
    SCOPED_TRACE("case " + std::to_string(c));
    Models m;
    Session kept(*m.model, *m.pool, 0), host(*m.host, *m.pool, 0);
    const auto p = prompt(40, 100 + c);
    kept.prefill(p);
    host.prefill(p);
    Sampler sk(cases[c].p, 700), sh(cases[c].p, 700);
    Logprobs lk, lh;
    for (int i = 0; i < 12; ++i) {
      const int reads = m.be->to_host_calls, tops = m.be->top_k_calls;
      const int32_t a = kept.sample(sk, cases[c].logprobs ? &lk : nullptr, 3);
      const bool used_best = m.be->top_k_calls == tops + 1;
      EXPECT_EQ(used_best, cases[c].best);
      // the default top_k reads all logits itself; the sampler reads none
      // beyond it unless the truncated set goes on beyond the best
      EXPECT_EQ(m.be->to_host_calls, reads + 1 + (cases[c].fits == 1 ? 0 : 1));
      const int32_t b = host.sample(sh, cases[c].logprobs ? &lh : nullptr, 3);
      ASSERT_EQ(a, b) << "token " << i;
      if (cases[c].logprobs) {
        EXPECT_EQ(lk.logprob, lh.logprob);
        ASSERT_EQ(lk.top.size(), lh.top.size());
      }
      kept.prefill(std::span<const int32_t>(&a, 1));
      host.prefill(std::span<const int32_t>(&b, 1));
    }
    EXPECT_TRUE(same_bits(kept.logits(), host.logits()));
  }
}

// Batched steps keep each session's logits in its own scratch.
TEST(KeptLogits, BatchedStepKeepsEachSessionsLogits) {
  Models m;
  std::vector<std::unique_ptr<Session>> kept, host;
  for (int i = 0; i < 3; ++i) {
    kept.push_back(std::make_unique<Session>(*m.model, *m.pool, 0));
    host.push_back(std::make_unique<Session>(*m.host, *m.pool, 0));
    const auto p = prompt(static_cast<size_t>(5 + 7 * i), 200 + static_cast<uint64_t>(i));
    kept[i]->prefill(p);
    host[i]->prefill(p);
  }
  for (int round = 0; round < 3; ++round) {
    std::vector<int32_t> next(3);
    std::vector<Session::BatchItem> ik, ih;
    for (int i = 0; i < 3; ++i) {
      Sampler g(params(0.0f, 0), 700);
      next[i] = kept[i]->sample(g);
      ik.push_back({kept[i].get(), std::span<const int32_t>(&next[i], 1)});
      ih.push_back({host[i].get(), std::span<const int32_t>(&next[i], 1)});
    }
    Session::step_batch(ik);
    Session::step_batch(ih);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(same_bits(kept[i]->logits(), host[i]->logits())) << i;
  }
}

// A prefill that fails anywhere leaves the previous logits, also when an
// earlier chunk of it succeeded (the earlier chunks keep nothing).
TEST(KeptLogits, AFailedPrefillLeavesThePreviousLogits) {
  Models m;
  Session s(*m.model, *m.pool, 0);
  s.prefill(prompt(20, 300));
  const std::vector<float> before = s.logits();
  const size_t len = s.length();
  // 7 matmuls per layer, 2 layers: 14 in the first chunk (no LM head), then
  // 14 + the LM head in the second. Fail in the first chunk, at the start of
  // the second and at its LM head.
  for (int at : {1, 15, 29}) {
    SCOPED_TRACE("matmul " + std::to_string(at));
    m.be->fail_in = at;
    try {
      s.prefill(prompt(300, 301));  // 256 + 44 tokens: the first chunk has no LM head
      ADD_FAILURE() << "the injected failure did not happen";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::io);
    }
    m.be->fail_in = 0;
    EXPECT_EQ(s.length(), len);
    // the logits must come from the backend again to prove the kept ones held
    Sampler g(params(0.0f, 0), 700);
    std::vector<Candidate> best;
    s.top_k(5, best);
    ASSERT_EQ(best.size(), 5u);
    std::vector<Candidate> want;
    select_top_k(before, 5, want);
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_EQ(best[i].id, want[i].id);
      EXPECT_EQ(best[i].logit, want[i].logit);
    }
  }
  EXPECT_TRUE(same_bits(s.logits(), before));
}

// A fork taken whole carries the logits; a rewind drops them.
TEST(KeptLogits, ForkAndRewind) {
  Models m;
  Session s(*m.model, *m.pool, 0);
  s.prefill(prompt(30, 400));
  auto child = s.fork(s.length());
  ASSERT_TRUE(child->has_logits());
  EXPECT_TRUE(same_bits(child->logits(), s.logits()));
  auto part = s.fork(10);
  EXPECT_FALSE(part->has_logits());
  s.rewind(29);
  EXPECT_FALSE(s.has_logits());
  std::vector<Candidate> best;
  EXPECT_THROW(s.top_k(1, best), Error);
  Sampler g(params(0.0f, 0), 700);
  EXPECT_THROW(s.sample(g), Error);
  // the child's next step keeps its own logits, unaffected by the parent
  const int32_t t = 9;
  child->prefill(std::span<const int32_t>(&t, 1));
  s.prefill(std::span<const int32_t>(&t, 1));
  Session fresh(*m.host, *m.pool, 0);
  auto p = prompt(30, 400);
  p.push_back(t);
  fresh.prefill(p);
  EXPECT_TRUE(same_bits(child->logits(), fresh.logits()));
}

// The CPU backend's top_k (in place) and the Backend default (read to the
// host) against a full sort, with ties, -inf, NaN and +inf.
TEST(KeptLogits, BackendTopKMatchesAFullSort) {
  auto cpu = make_cpu_backend(1);
  const float inf = std::numeric_limits<float>::infinity();
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const size_t n = 1 + static_cast<size_t>(sampler_uniform(seed, 999) * 3000);
    std::vector<float> l(n);
    for (size_t i = 0; i < n; ++i) {
      const double u = sampler_uniform(seed, i);
      l[i] = static_cast<float>(std::floor(u * 64.0) / 8.0 - 4.0);  // many ties
      const double v = sampler_uniform(seed + 1000, i);
      if (v < 0.05) l[i] = -inf;
      else if (v < 0.08) l[i] = std::numeric_limits<float>::quiet_NaN();
      else if (v < 0.081) l[i] = inf;
      else if (v < 0.09) l[i] = -0.0f;
    }
    std::vector<int32_t> idx;
    for (size_t i = 0; i < n; ++i)
      if (l[i] > -inf) idx.push_back(static_cast<int32_t>(i));
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
    auto* dev = static_cast<float*>(cpu->alloc(n * sizeof(float)));
    cpu->copy(dev, l.data(), n * sizeof(float));
    for (size_t k : {size_t{1}, size_t{2}, size_t{17}, size_t{256}, n}) {
      std::vector<Candidate> a, b;
      uint64_t mass_a = 1, mass_b = 2;
      cpu->top_k(dev, n, k, a, &mass_a);
      cpu->Backend::top_k(dev, n, k, b, k == 1 ? nullptr : &mass_b);
      const size_t want = std::min(k, idx.size());
      ASSERT_EQ(a.size(), want);
      ASSERT_EQ(b.size(), want);
      // the mass top-p needs: every finite logit's, against the maximum
      const float top = idx.empty() ? 0.0f : l[static_cast<size_t>(idx[0])];
      if (!idx.empty() && std::isfinite(top)) {
        uint64_t mass = 0;
        for (float x : l)
          if (x > -inf) mass += token_mass(x, top, 1.0f, mass_scale(n));
        EXPECT_EQ(mass_a, mass);
        EXPECT_GT(mass_a, 0u);
        if (k != 1) {
          EXPECT_EQ(mass_b, mass);
        }
      }
      if (idx.empty()) {
        EXPECT_EQ(mass_a, 0u);
      }
      if (k == 1) {
        EXPECT_EQ(mass_b, 2u);  // not asked for: untouched
      }
      for (size_t i = 0; i < want; ++i) {
        EXPECT_EQ(a[i].id, idx[i]) << "seed " << seed << " k " << k << " rank " << i;
        EXPECT_EQ(b[i].id, idx[i]);
      }
    }
    cpu->release(dev);
  }
}

}  // namespace
