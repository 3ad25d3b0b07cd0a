// tensor_parallel.h - one model split N ways by tensor parallelism on the
// CPU: each rank is a LlamaModel over its shard (shard.h) with its own CPU
// backend and thread budget, the ranks are threads of this process joined by
// a LocalGroup (comm.h). The same LlamaModel code runs a rank of a GPU or
// multi-process group with another Communicator.
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <vector>

#include "model/llama_model.h"
#include "parallel/comm.h"
#include "parallel/shard.h"

namespace paca {

class TensorParallelModel {
 public:
  // Shards `full` into n ranks with threads_per_rank compute threads each.
  // Collectives give up after `timeout` (a rank that died).
  TensorParallelModel(std::unique_ptr<Checkpoint> full, int n, int threads_per_rank, const ModelOptions& opt,
                      std::chrono::milliseconds timeout = std::chrono::seconds(60));
  ~TensorParallelModel();

  int size() const { return static_cast<int>(ranks_.size()); }
  const TpLayout& layout() const { return layout_; }
  LlamaModel& rank(int r) { return *ranks_[static_cast<size_t>(r)]; }

  // One sequence: every rank's KV blocks (for up to max_tokens) and workspace.
  class Sequence {
   public:
    ~Sequence();
    int max_tokens() const { return max_tokens_; }

   private:
    friend class TensorParallelModel;
    struct Rank {
      std::unique_ptr<Workspace> ws;
      std::vector<uint8_t*> blocks;
      Backend* backend = nullptr;
    };
    std::vector<Rank> ranks_;
    int max_tokens_ = 0;
  };
  std::unique_ptr<Sequence> new_sequence(int max_tokens);

  // Runs tokens at positions pos0, pos0 + 1, ... on every rank at once (one
  // thread per rank) and returns the last token's logits. A rank's failure
  // aborts the others' collectives and is rethrown here.
  std::span<const float> forward(Sequence& seq, std::span<const int32_t> tokens, int pos0);

 private:
  std::unique_ptr<Checkpoint> full_;  // the ranks' views point into it: destroyed last
  TpLayout layout_;
  LocalGroup group_;
  std::vector<std::unique_ptr<LlamaModel>> ranks_;
};

}  // namespace paca
