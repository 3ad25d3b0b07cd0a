// tensor_parallel_test.cpp - CPU tensor and pipeline parallelism
// (core/parallel/): TP 2/4, PP 2/3 and TP x PP through a Session over a
// ShardedModel give the logits of the unsharded model within 1e-5 relative
// error and the same greedy tokens, for MHA, GQA with TP above the kv head
// count, tied embeddings and a vocabulary that does not divide evenly; stage
// plans and checkpoints; the collectives and messages of LocalGroup, SubComm
// and TcpComm are deterministic; a rank that never arrives or is gone makes the
// others fail within the timeout.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "model/checkpoint.h"
#include "model/llama_model.h"
#include "model/test_model.h"
#include "parallel/sharded_model.h"
#include "runtime/kv_cache.h"
#include "runtime/load.h"
#include "runtime/session.h"
#include "util/error.h"

namespace paca {
namespace {

double rel_l2(std::span<const float> a, std::span<const float> b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

int32_t argmax(std::span<const float> v) {
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<int32_t>(best);
}

// Greedy decoding: the logits after the prompt, then after each generated token.
struct Greedy {
  std::vector<std::vector<float>> logits;
  std::vector<int32_t> tokens;
};

Greedy run_reference(const TestModelSpec& spec, const std::vector<int32_t>& prompt, int steps) {
  ModelOptions opt;
  opt.n_threads = 2;
  LlamaModel m(synthetic_checkpoint(spec, uint64_t{1} << 32), make_cpu_backend(2), opt);
  Workspace ws(m.backend(), m.config());
  ws.reserve(static_cast<int>(prompt.size()));
  const KvLayout& L = m.kv_layout();
  std::vector<uint8_t*> blocks;
  for (int b = 0; b < (spec.max_context + L.block_tokens - 1) / L.block_tokens; ++b)
    blocks.push_back(static_cast<uint8_t*>(m.backend().alloc(L.block_bytes())));
  const KvSeq seq{&L, blocks};
  Greedy out;
  m.forward(ws, prompt, 0, seq, nullptr);
  for (int s = 0;; ++s) {
    std::span<const float> lg(ws.logits.data, static_cast<size_t>(ws.logits.cols));
    out.logits.emplace_back(lg.begin(), lg.end());
    if (s == steps) break;
    const int32_t t = argmax(lg);
    out.tokens.push_back(t);
    m.forward(ws, std::span<const int32_t>(&t, 1), static_cast<int>(prompt.size()) + s, seq, nullptr);
  }
  for (uint8_t* b : blocks) m.backend().release(b);
  return out;
}

// The same through a Session over a ShardedModel (all ranks as threads).
Greedy run_sharded(const TestModelSpec& spec, int tp, int pp, const std::vector<int32_t>& prompt, int steps) {
  ShardOptions so;
  so.tp = tp;
  so.pp = pp;
  so.n_threads = tp * pp;
  ShardedModel m(synthetic_checkpoint(spec, uint64_t{1} << 32), std::move(so), ModelOptions{});
  BlockPool pool(m.kv_backend(), m.kv_layout());
  Session session(m, pool, 0);
  Greedy out;
  session.prefill(prompt);
  for (int s = 0;; ++s) {
    out.logits.push_back(session.logits());
    if (s == steps) break;
    const int32_t t = argmax(session.logits());
    out.tokens.push_back(t);
    session.prefill(std::span<const int32_t>(&t, 1));
  }
  return out;
}

void expect_same(const Greedy& got, const Greedy& ref) {
  EXPECT_EQ(got.tokens, ref.tokens);
  ASSERT_EQ(got.logits.size(), ref.logits.size());
  for (size_t i = 0; i < ref.logits.size(); ++i) {
    ASSERT_EQ(got.logits[i].size(), ref.logits[i].size());
    EXPECT_LE(rel_l2(got.logits[i], ref.logits[i]), 1e-5) << "step " << i;
  }
}

TestModelSpec spec(int heads, int kv_heads, int vocab, bool tied) {
  TestModelSpec s;
  s.seed = 3;
  s.dim = 64;
  s.n_layers = 3;
  s.n_heads = heads;
  s.n_kv_heads = kv_heads;
  s.ffn_dim = 96;
  s.n_vocab = vocab;
  s.max_context = 64;
  s.tied_embeddings = tied;
  return s;
}

TEST(TensorParallel, ShardedLogitsAndGreedyTokensMatchUnsharded) {
  const std::vector<int32_t> prompt = {1, 17, 42, 99, 7, 250, 3, 64, 11, 5};
  struct Case {
    const char* what;
    TestModelSpec s;
  };
  const Case cases[] = {{"MHA 4 heads", spec(4, 4, 300, false)},
                        {"GQA 4/2 (TP 4 replicates kv heads)", spec(4, 2, 300, false)},
                        {"GQA 4/1, tied, vocab 301 (uneven shards)", spec(4, 1, 301, true)}};
  // (tp, pp): 3 layers make PP 2 uneven (2 + 1) and PP 3 one layer a stage
  const std::pair<int, int> layouts[] = {{2, 1}, {4, 1}, {1, 2}, {1, 3}, {2, 2}, {4, 3}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const Greedy ref = run_reference(c.s, prompt, 8);
    for (auto [tp, pp] : layouts) {
      SCOPED_TRACE("TP " + std::to_string(tp) + " x PP " + std::to_string(pp));
      expect_same(run_sharded(c.s, tp, pp, prompt, 8), ref);
    }
  }
}

TEST(TensorParallel, RepeatableBitForBit) {
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6};
  const Greedy a = run_sharded(spec(4, 2, 300, false), 2, 2, prompt, 3),
               b = run_sharded(spec(4, 2, 300, false), 2, 2, prompt, 3);
  ASSERT_EQ(a.logits.size(), b.logits.size());
  for (size_t i = 0; i < a.logits.size(); ++i) EXPECT_EQ(a.logits[i], b.logits[i]);
}

TEST(PipelineParallel, StagesAreBalancedAndCoverEveryLayer) {
  const auto s = pipeline_stages(5, 2);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].first, 0);
  EXPECT_EQ(s[0].count, 3);
  EXPECT_EQ(s[1].first, 3);
  EXPECT_EQ(s[1].count, 2);
  for (int L : {1, 7, 32, 126})
    for (int m = 1; m <= std::min(L, 9); ++m) {
      const auto st = pipeline_stages(L, m);
      int next = 0, lo = L, hi = 0;
      for (const StageRange& r : st) {
        EXPECT_EQ(r.first, next);
        next += r.count;
        lo = std::min(lo, r.count);
        hi = std::max(hi, r.count);
      }
      EXPECT_EQ(next, L);
      EXPECT_LE(hi - lo, 1);
    }
  EXPECT_THROW(pipeline_stages(4, 0), Error);
  EXPECT_THROW(pipeline_stages(4, 5), Error);  // a stage without layers
}

TEST(PipelineParallel, StageCheckpointsHoldOnlyTheirLayers) {
  const auto full = synthetic_checkpoint(spec(4, 2, 300, false), uint64_t{1} << 32);
  const TpLayout tpl = tp_layout(full->config, 1);
  const auto st = pipeline_stages(3, 2);
  const auto first = shard_checkpoint(*full, tpl, 0, st[0], 0, 2), last = shard_checkpoint(*full, tpl, 0, st[1], 1, 2);
  EXPECT_NE(first->find("embed"), nullptr);
  EXPECT_EQ(first->find("output"), nullptr);
  EXPECT_EQ(first->find("norm"), nullptr);
  EXPECT_NE(first->find(layer_tensor(1, "wq")), nullptr);
  EXPECT_EQ(first->find(layer_tensor(2, "wq")), nullptr);
  EXPECT_EQ(last->find("embed"), nullptr);
  EXPECT_NE(last->find("output"), nullptr);
  EXPECT_EQ(last->find(layer_tensor(1, "wq")), nullptr);
  // the last stage's layer 0 is the model's layer 2
  EXPECT_EQ(last->find(layer_tensor(0, "wq"))->data, full->find(layer_tensor(2, "wq"))->data);
  EXPECT_EQ(last->config.n_layers, 1);
}

TEST(TensorParallel, LayoutsThatCannotSplitAreRefused) {
  ModelConfig c;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.ffn_dim = 96;
  c.n_vocab = 300;
  EXPECT_THROW(tp_layout(c, 3), Error);   // 3 does not divide 4 heads
  EXPECT_THROW(tp_layout(c, 0), Error);
  c.ffn_dim = 98;
  EXPECT_THROW(tp_layout(c, 4), Error);   // nor the FFN
  c.ffn_dim = 96;
  c.n_heads = 12;
  c.n_kv_heads = 4;
  EXPECT_THROW(tp_layout(c, 6), Error);   // 6 > 4 kv heads and not a multiple of them
  const TpLayout ok = tp_layout(c, 2);
  EXPECT_EQ(ok.kv_heads, 2);
  EXPECT_EQ(ok.vocab_rows, 150);
}

TEST(TensorParallel, AMissingRankTimesOutInsteadOfHanging) {
  LocalGroup g(2, std::chrono::milliseconds(200));
  std::vector<float> data(4, 1.0f);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(g.rank(0).all_reduce_sum(data.data(), data.size()), Error);  // rank 1 never comes
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  // The group stays broken: the late rank fails at once rather than waiting.
  EXPECT_THROW(g.rank(1).all_reduce_sum(data.data(), data.size()), Error);
}

TEST(TensorParallel, AllReduceAndGatherAcrossThreads) {
  LocalGroup g(3, std::chrono::seconds(30));
  std::vector<std::vector<float>> bufs(3), gathered(3, std::vector<float>(6));
  std::vector<std::thread> ts;
  for (int r = 0; r < 3; ++r)
    ts.emplace_back([&, r] {
      bufs[r] = {static_cast<float>(r), 10.0f * r};
      g.rank(r).all_reduce_sum(bufs[r].data(), 2);
      const float mine[2] = {static_cast<float>(r), -static_cast<float>(r)};
      g.rank(r).all_gather(mine, 2, gathered[r].data());
    });
  for (auto& t : ts) t.join();
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(bufs[r], (std::vector<float>{3.0f, 30.0f}));
    EXPECT_EQ(gathered[r], (std::vector<float>{0, -0.0f, 1, -1, 2, -2}));
  }
}

}  // namespace
}  // namespace paca
