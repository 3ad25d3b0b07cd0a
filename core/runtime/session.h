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

  bool has_logits() const { return has_logits_; }
  const std::vector<float>& logits() const { return logits_; }
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
  std::vector<float> logits_;
  std::vector<float> next_logits_;  // the step's output, kept only when the whole prefill succeeds
  bool has_logits_ = false;
  std::atomic<bool> cancel_{false};
};

}  // namespace paca
