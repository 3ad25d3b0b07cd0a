// step_bracket_test.cpp - what LlamaModel promises a backend about steps
// (backend.h): every op of a forward step lies between begin_step and
// end_step (abort_step when the step fails), begin_step gets the step's
// token ids, positions and KV blocks, no result is read inside the bracket,
// and each residual add but the last is fused with the norm after it.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/llama_model.h"
#include "model/test_model.h"
#include "runtime/kv_cache.h"
#include "runtime/load.h"
#include "runtime/session.h"
#include "util/error.h"

namespace {

using namespace paca;

// The CPU backend behind a recorder of the step protocol.
class Recorder final : public Backend {
 public:
  explicit Recorder(std::unique_ptr<Backend> inner) : in_(std::move(inner)) {}
  std::string name() const override { return "recorder over " + in_->name(); }
  void* alloc(size_t bytes) override { return in_->alloc(bytes); }
  void release(void* p) override { in_->release(p); }
  void copy(void* dst, const void* src, size_t bytes) override {
    op("copy");
    in_->copy(dst, src, bytes);
  }
  void embed(const TensorView& t, std::span<const int32_t> tokens, Act out) override {
    op("embed");
    embedded.assign(tokens.begin(), tokens.end());
    in_->embed(t, tokens, out);
  }
  void rmsnorm(Act x, const TensorView& w, float eps, Act out) override {
    op("rmsnorm");
    in_->rmsnorm(x, w, eps, out);
  }
  void matmul(Act x, const TensorView& w, Act out) override {
    op("matmul");
    in_->matmul(x, w, out);
  }
  void rope(Act x, int h, int d, std::span<const int32_t> pos, std::span<const float> f, RopeLayout l) override {
    op("rope");
    in_->rope(x, h, d, pos, f, l);
  }
  void kv_write(const KvSeq& s, int layer, Act k, Act v, std::span<const int32_t> pos) override {
    op("kv_write");
    in_->kv_write(s, layer, k, v, pos);
  }
  void rope_kv_write(Act q, Act k, Act v, const KvSeq& s, int layer, std::span<const int32_t> pos,
                     std::span<const float> f, RopeLayout l, const AttentionShape& sh) override {
    op("rope_kv_write");
    in_->rope_kv_write(q, k, v, s, layer, pos, f, l, sh);  // the CPU's: the composed default
  }
  void attention(Act q, const KvSeq& s, int layer, std::span<const int32_t> pos, const AttentionShape& sh,
                 Act out) override {
    op("attention");
    in_->attention(q, s, layer, pos, sh, out);
  }
  void swiglu(Act g, Act u, Act out) override {
    op("swiglu");
    in_->swiglu(g, u, out);
  }
  void add(Act x, Act y) override {
    op("add");
    in_->add(x, y);
  }
  void add_rmsnorm(Act x, Act y, const TensorView& w, float eps, Act out) override {
    op("add_rmsnorm");
    in_->add_rmsnorm(x, y, w, eps, out);  // the CPU's: the composed default
  }
  void to_host(const float* src, float* dst, size_t n) override {
    if (in_step) ++violations;  // results are read only after end_step
    ++to_host_calls;
    in_->to_host(src, dst, n);
  }
  DeviceMemory memory() const override { return in_->memory(); }

  void begin_step(const StepInputs& in) override {
    if (in_step) ++violations;
    in_step = true;
    ++begins;
    tokens.assign(in.tokens.begin(), in.tokens.end());
    pos.assign(in.pos.begin(), in.pos.end());
    rows.assign(in.seq_rows.begin(), in.seq_rows.end());
    blocks.clear();
    for (const KvSeq& s : in.seqs) blocks.push_back(s.blocks.size());
  }
  void end_step() override {
    if (!in_step) ++violations;
    in_step = false;
    ++ends;
  }
  void abort_step() noexcept override {
    if (!in_step) ++violations;
    in_step = false;
    ++aborts;
  }

  int begins = 0, ends = 0, aborts = 0, violations = 0, to_host_calls = 0;
  bool in_step = false;
  std::vector<std::string> ops;  // every op in order, "-" suffix when called outside a step
  std::vector<int32_t> tokens, pos, embedded;
  std::vector<int> rows;
  std::vector<size_t> blocks;

 private:
  void op(const char* name) { ops.push_back(std::string(name) + (in_step ? "" : "-")); }
  std::unique_ptr<Backend> in_;
};

TestModelSpec small_spec() {
  TestModelSpec spec;
  spec.seed = 3;
  spec.dim = 64;
  spec.n_layers = 3;
  spec.n_heads = 4;
  spec.n_kv_heads = 2;
  spec.ffn_dim = 96;
  spec.n_vocab = 200;
  spec.max_context = 128;
  return spec;
}

std::unique_ptr<LlamaModel> model_on(std::unique_ptr<Backend> be) {
  ModelOptions opt;
  opt.kv_block_tokens = 8;
  return std::make_unique<LlamaModel>(synthetic_checkpoint(small_spec(), uint64_t{1} << 30), std::move(be), opt);
}

TEST(StepBracket, EveryOpOfAStepIsInsideTheBracket) {
  auto rec_owned = std::make_unique<Recorder>(make_cpu_backend(2));
  Recorder& rec = *rec_owned;
  auto m = model_on(std::move(rec_owned));
  BlockPool pool(m->backend(), m->kv_layout());
  Session s(*m, pool, 0);
  const std::vector<int32_t> prompt = {1, 17, 33, 120, 5, 9, 77, 41, 3, 2};  // 10 tokens: two 8-token blocks
  s.prefill(prompt);
  EXPECT_EQ(rec.begins, 1);
  EXPECT_EQ(rec.ends, 1);
  EXPECT_EQ(rec.tokens, prompt);
  EXPECT_EQ(rec.embedded, prompt);
  EXPECT_EQ(rec.pos, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(rec.rows, std::vector<int>{10});
  EXPECT_EQ(rec.blocks, std::vector<size_t>{2});
  const int32_t t = 50;
  rec.ops.clear();
  s.prefill(std::span<const int32_t>(&t, 1));
  EXPECT_EQ(rec.begins, 2);
  EXPECT_EQ(rec.ends, 2);
  EXPECT_EQ(rec.pos, std::vector<int32_t>{10});
  EXPECT_EQ(rec.violations, 0);
  // the logits stay on the backend (one copy into the session's scratch,
  // after end_step) until they are asked for, and are read once
  EXPECT_EQ(rec.to_host_calls, 0);
  ASSERT_FALSE(rec.ops.empty());
  EXPECT_EQ(rec.ops.back(), "copy-");
  rec.ops.pop_back();
  const std::vector<float> first = s.logits();
  EXPECT_EQ(rec.to_host_calls, 1);
  EXPECT_EQ(s.logits(), first);
  EXPECT_EQ(rec.to_host_calls, 1);
  // 3 layers: norm, (qkv, rope_kv_write, attention, o, add_rmsnorm, gate, up, swiglu, down, add_rmsnorm or add)
  int fused = 0, adds = 0, norms = 0, rope_kv = 0, apart = 0;
  for (const std::string& o : rec.ops) {
    EXPECT_NE(o.back(), '-') << o << " outside the step";
    fused += o == "add_rmsnorm";
    adds += o == "add";
    norms += o == "rmsnorm";
    rope_kv += o == "rope_kv_write";
    apart += o == "rope" || o == "kv_write";
  }
  EXPECT_EQ(rope_kv, 3);  // one fused RoPE + KV write per layer (one sequence)
  EXPECT_EQ(apart, 0);    // the model never calls rope or kv_write on its own
  EXPECT_EQ(fused, 2 * 3 - 1);  // every residual add but the last layer's FFN one
  EXPECT_EQ(adds, 1);
  EXPECT_EQ(norms, 2);  // the first attention norm and the final norm
  EXPECT_EQ(rec.ops.front(), "embed");
}

TEST(StepBracket, BatchedStepsGiveEverySequence) {
  auto rec_owned = std::make_unique<Recorder>(make_cpu_backend(2));
  Recorder& rec = *rec_owned;
  auto m = model_on(std::move(rec_owned));
  BlockPool pool(m->backend(), m->kv_layout());
  Session a(*m, pool, 0), b(*m, pool, 0);
  a.prefill(std::vector<int32_t>{1, 2, 3});
  b.prefill(std::vector<int32_t>{4, 5, 6, 7, 8, 9, 10, 11, 12});
  const std::vector<int32_t> ta = {20}, tb = {30};
  const Session::BatchItem items[] = {{&a, ta}, {&b, tb}};
  Session::step_batch(items);
  EXPECT_EQ(rec.tokens, (std::vector<int32_t>{20, 30}));
  EXPECT_EQ(rec.pos, (std::vector<int32_t>{3, 9}));
  EXPECT_EQ(rec.rows, (std::vector<int>{1, 1}));
  EXPECT_EQ(rec.blocks, (std::vector<size_t>{1, 2}));
  EXPECT_EQ(rec.begins, rec.ends);
  EXPECT_EQ(rec.violations, 0);
}

// A cancelled step aborts the bracket (the backend drops what it deferred)
// and the session is unchanged; the next step brackets again.
TEST(StepBracket, CancellationAbortsTheStep) {
  auto rec_owned = std::make_unique<Recorder>(make_cpu_backend(2));
  Recorder& rec = *rec_owned;
  auto m = model_on(std::move(rec_owned));
  BlockPool pool(m->backend(), m->kv_layout());
  auto scratch = m->new_scratch();
  KvBlocks kv(pool);
  kv.resize_for(4);
  std::vector<float> logits(static_cast<size_t>(m->config().n_vocab));
  const std::atomic<bool> cancel{true};
  const std::vector<int32_t> prompt = {1, 2, 3, 4};
  try {
    m->step(*scratch, prompt, 0, kv.view(), &cancel, {logits});
    ADD_FAILURE() << "a cancelled step ran";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::cancelled);
  }
  EXPECT_EQ(rec.begins, 1);
  EXPECT_EQ(rec.aborts, 1);
  EXPECT_EQ(rec.ends, 0);
  EXPECT_FALSE(rec.in_step);
  m->step(*scratch, prompt, 0, kv.view(), nullptr, {logits});
  EXPECT_EQ(rec.begins, 2);
  EXPECT_EQ(rec.ends, 1);
  EXPECT_EQ(rec.violations, 0);
}

}  // namespace
