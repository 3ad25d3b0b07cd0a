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
#include <vector>

#include "backend/backend.h"
#include "model/checkpoint.h"
#include "util/error.h"
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

  // Where a step leaves the last token's logits: copied to `host` (n_vocab
  // floats) when it is not empty; else, with `keep`, in the scratch, on the
  // backend (kept_logits / top_k read them; only when keeps_logits()); else
  // nowhere (a runner may then skip the LM head: a prefill's earlier chunks).
  struct StepLogits {
    std::span<float> host;
    bool keep = false;
  };

  // Runs tokens at positions pos0, pos0 + 1, ... (at most kMaxStepTokens),
  // writing their K/V into seq, and puts the last token's logits where
  // `logits` says. The caller holds compute_mutex(). Throws Error(cancelled)
  // between layers once *cancel is true. The logits a scratch keeps change
  // only when a step that keeps them succeeds.
  virtual void step(Scratch& scratch, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
                    const std::atomic<bool>* cancel, StepLogits logits) = 0;
  virtual std::mutex& compute_mutex() = 0;

  // Logits kept on the backend. A session then reads them to the host only
  // when they are asked for, and a sampler that needs only the best few
  // (Sampler::best_needed) gets those from the backend (Backend::top_k), so
  // a device sends k candidates, not the vocabulary. The caller holds
  // compute_mutex(); the scratch's last keeping step must have succeeded.
  virtual bool keeps_logits() const { return false; }
  virtual void kept_logits(Scratch& scratch, std::span<float> out) {
    (void)scratch, (void)out;
    fail(Status::internal, "kept_logits: this model keeps no logits");
  }
  // The k best of the kept logits, and their mass when asked (Backend::top_k).
  virtual void top_k(Scratch& scratch, size_t k, std::vector<Candidate>& out, uint64_t* mass) {
    (void)scratch, (void)k, (void)out, (void)mass;
    fail(Status::internal, "top_k: this model keeps no logits");
  }

  // One sequence's part of a batched step (step_batch).
  struct BatchSeq {
    Scratch* scratch;                 // the sequence's own scratch
    std::span<const int32_t> tokens;  // at most kMaxStepTokens
    int pos0;
    KvSeq kv;
    StepLogits logits;  // the last token's
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
