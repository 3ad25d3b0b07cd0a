// session.h - one sequence on a model: its tokens, its KV blocks, the last
// logits. Used by one thread at a time (cancel() excepted). The model is a
// ModelRunner: whole, or sharded into tensor/pipeline-parallel ranks.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/runner.h"
#include "runtime/kv_cache.h"
#include "sample/sampler.h"

namespace paca {

class Session {
 public:
  // n_ctx <= 0: the model's max_context.
  Session(ModelRunner& model, BlockPool& pool, int n_ctx);

  // Appends tokens and computes the logits of the last one. On any error
  // (bad id, context full, cancellation) the session is left unchanged.
  void prefill(std::span<const int32_t> tokens);

  // One forward step for several sessions of one model (batching): appends
  // each item's tokens to its session and computes that session's last
  // logits, all in one pass, with the same bits as separate prefills. All or
  // nothing: on any error (bad id, context full, a session twice, sessions of
  // different models, more than kMaxStepTokens for one session) every
  // session is left unchanged. ModelRunner::step_batch does the work.
  struct BatchItem {
    Session* session;
    std::span<const int32_t> tokens;
  };
  static void step_batch(std::span<const BatchItem> items);

  void rewind(size_t n_tokens);
  void cancel() { cancel_.store(true); }

  // A new session with the same context size, holding the first n_tokens
  // tokens (all of them when n_tokens == length()). Its KV blocks are this
  // session's, shared copy-on-write: nothing is copied until one of the two
  // writes into the block both hold. The logits come along when the whole
  // sequence is taken. Thread-safe against other sessions of the pool; this
  // session must not be running a prefill meanwhile.
  std::unique_ptr<Session> fork(size_t n_tokens) const;

  // Replaces this session's state with `tokens`, the KV blocks in `kv` (from
  // the same pool, holding exactly the blocks of those positions; taken over, `kv` is left
  // with this session's old blocks) and the last logits (empty: none). Used by
  // snapshot loading once everything has been read and checked; cannot fail
  // except on a size mismatch (Error(internal)), which changes nothing.
  void adopt(std::vector<int32_t> tokens, KvBlocks& kv, std::vector<float> logits);

  const KvBlocks& kv() const { return kv_; }
  ModelRunner& model() const { return model_; }

  bool has_logits() const { return at_ != LogitsAt::none; }
  // The last logits (n_vocab floats). A model that keeps them on its backend
  // (ModelRunner::keeps_logits) has them read to the host here, on the first
  // call after a step (which takes the model's compute mutex); the vector
  // stays where it is from then on, so a pointer into it stays valid.
  const std::vector<float>& logits() const;
  // The k best of the last logits as select_top_k gives them, found by the
  // model's backend when it keeps them (only k candidates leave a device),
  // and when mass is not null the logits' mass (Backend::top_k).
  void top_k(size_t k, std::vector<Candidate>& out, uint64_t* mass = nullptr) const;
  // The next token by `sampler` from the last logits (see Sampler::sample),
  // through top_k when the sampler needs only the best few (and the mass for
  // top-p), reading the whole vocabulary only when those do not decide it.
  // Throws Error(state) when there are no logits.
  int32_t sample(Sampler& sampler, Logprobs* out = nullptr, size_t n_top = 0) const;
  const std::vector<int32_t>& tokens() const { return tokens_; }
  size_t length() const { return tokens_.size(); }
  size_t context_size() const { return static_cast<size_t>(n_ctx_); }

  static constexpr int kMaxStepTokens = ModelRunner::kMaxStepTokens;  // prefill runs in chunks of this size

 private:
  ModelRunner& model_;
  int n_ctx_;
  KvBlocks kv_;
  std::unique_ptr<ModelRunner::Scratch> scratch_;
  std::vector<int32_t> tokens_;
  // Where the last logits are: nowhere, in logits_ only, kept by the model
  // in scratch_ only, or in both (read once by logits()).
  enum class LogitsAt { none, host, kept, kept_and_host };
  mutable LogitsAt at_ = LogitsAt::none;
  mutable std::vector<float> logits_;
  std::vector<float> next_logits_;  // a host step's output, taken only when the whole prefill succeeds
  mutable std::vector<Candidate> best_;  // sample()'s candidates
  void after_step(bool kept);
  std::atomic<bool> cancel_{false};
};

}  // namespace paca
