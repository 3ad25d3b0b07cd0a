// runner.h - ModelRunner: what a Session drives. A whole model on one backend
// (LlamaModel) or one split into tensor- and pipeline-parallel ranks
// (parallel/sharded_model.h) look the same to a session: a configuration, a
// KV block layout for its pool, and a step that runs tokens and returns the
// last token's logits.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "util/log.h"

namespace paca {

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  // The whole model's configuration and checkpoint (tokenizer, chat
  // template, tensor table), also when this process holds only a shard.
  virtual const ModelConfig& config() const = 0;
  virtual const Checkpoint& checkpoint() const = 0;
  virtual uint64_t fingerprint() const = 0;  // see model/fingerprint.h
  virtual uint64_t n_params() const = 0;     // of the whole model
  virtual uint64_t weight_bytes() const = 0; // held in this process (all its ranks)
  virtual std::string backend_name() const = 0;
  virtual const LogSink& log() const = 0;

  // One KV block of a session holds every position's K/V for everything
  // this process computes: for a sharded model, each local rank's blocks
  // side by side (see ShardedModel). Blocks come from kv_backend().
  virtual const KvLayout& kv_layout() const = 0;
  virtual Backend& kv_backend() = 0;

  // Scratch memory of one sequence.
  class Scratch {
   public:
    virtual ~Scratch() = default;
  };
  virtual std::unique_ptr<Scratch> new_scratch() = 0;

  // Runs tokens at positions pos0, pos0 + 1, ... (at most kMaxStepTokens),
  // writing their K/V into seq, and copies the last token's logits
  // (n_vocab floats) into logits. The caller holds compute_mutex(). Throws
  // Error(cancelled) between layers once *cancel is true.
  virtual void step(Scratch& scratch, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
                    const std::atomic<bool>* cancel, std::span<float> logits) = 0;
  virtual std::mutex& compute_mutex() = 0;

  // One sequence's part of a batched step (step_batch).
  struct BatchSeq {
    Scratch* scratch;                 // the sequence's own scratch
    std::span<const int32_t> tokens;  // at most kMaxStepTokens
    int pos0;
    KvSeq kv;
    std::span<float> logits;  // n_vocab floats: the last token's logits
  };
  // Several sequences in one step, each with exactly the logits step would
  // give it. The default runs them one after another; a runner that can
  // (LlamaModel) runs them together, reading each weight once for all. The
  // caller holds compute_mutex(). Not cancellable.
  virtual void step_batch(std::span<const BatchSeq> seqs) {
    for (const BatchSeq& s : seqs) step(*s.scratch, s.tokens, s.pos0, s.kv, nullptr, s.logits);
  }

  static constexpr int kMaxStepTokens = 256;
};

}  // namespace paca
