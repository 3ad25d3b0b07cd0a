// llama_model.h - a loaded Llama model: its configuration, its weights (views
// into the mapped checkpoint), the backend that computes with them, and the
// forward pass written once over Backend ops.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "parallel/comm.h"
#include "model/checkpoint.h"
#include "model/runner.h"
#include "util/log.h"

namespace paca {

struct LayerWeights {
  const TensorView* attn_norm;  // [D]
  const TensorView* wq;         // [H*d, D]
  const TensorView* wk;         // [Hkv*d, D]
  const TensorView* wv;         // [Hkv*d, D]
  const TensorView* wo;         // [D, H*d]
  const TensorView* ffn_norm;   // [D]
  const TensorView* w1;         // gate [F, D]
  const TensorView* w2;         // down [D, F]
  const TensorView* w3;         // up [F, D]
};

// Scratch activations of one sequence for up to `capacity` tokens per step.
class Workspace {
 public:
  Workspace(Backend& backend, const ModelConfig& c);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void reserve(int tokens);  // grows the buffers to hold `tokens` rows
  int capacity() const { return capacity_; }

  Act x, xn, q, k, v, att, o, g, u, logits;

 private:
  Backend& backend_;
  const ModelConfig& c_;
  int capacity_ = 0;
  void* mem_ = nullptr;
};

struct ModelOptions {
  int n_threads = 0;
  DType kv_dtype = DType::f32;
  int kv_block_tokens = 16;
  LogSink log;
};

class LlamaModel final : public ModelRunner {
 public:
  LlamaModel(std::unique_ptr<Checkpoint> ckpt, std::unique_ptr<Backend> backend, const ModelOptions& opt);

  const ModelConfig& config() const override { return ckpt_->config; }
  const Checkpoint& checkpoint() const override { return *ckpt_; }
  Backend& backend() { return *backend_; }
  const KvLayout& kv_layout() const override { return kv_layout_; }
  const LogSink& log() const override { return opt_.log; }
  std::mutex& compute_mutex() override { return compute_mutex_; }
  uint64_t n_params() const override { return n_params_; }
  uint64_t weight_bytes() const override { return weight_bytes_; }
  uint64_t fingerprint() const override { return fingerprint_; }  // see model/fingerprint.h
  std::string backend_name() const override { return backend_->name(); }
  Backend& kv_backend() override { return *backend_; }
  std::unique_ptr<Scratch> new_scratch() override;
  void step(Scratch& scratch, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
            const std::atomic<bool>* cancel, std::span<float> logits) override;

  // Runs tokens (at positions pos0, pos0 + 1, ...) through the model, writing
  // their K/V into seq, and leaves the last token's logits in ws.logits.
  // tokens.size() <= ws.capacity(). The caller holds compute_mutex(). Throws
  // Error(cancelled) between layers when *cancel becomes true.
  void forward(Workspace& ws, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
               const std::atomic<bool>* cancel);

  // The pieces of forward, for pipeline stages (parallel/sharded_model.cpp),
  // which replace embed_tokens with the activations the previous stage sent
  // and final_logits with sending theirs on:
  //   embed_tokens: ws.x[0, T) = the tokens' embeddings (has_embedding());
  //   run_layers: ws.x[0, T) through this model's layers (a stage's own);
  //   final_logits: ws.logits = LM head of the final norm of ws.x[T - 1] (has_head()).
  bool has_embedding() const { return ckpt_->has_embedding; }
  bool has_head() const { return ckpt_->has_head; }
  void embed_tokens(Workspace& ws, std::span<const int32_t> tokens);
  void run_layers(Workspace& ws, int T, int pos0, const KvSeq& seq, const std::atomic<bool>* cancel);
  void final_logits(Workspace& ws, int T);

  // A tensor-parallel rank (its checkpoint from shard_checkpoint): forward
  // all-reduces the o and down projections' partial sums and all-gathers the
  // LM head's vocabulary slices through comm, which must outlive the model.
  void set_communicator(Communicator* comm) { comm_ = comm; }

 private:
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<Backend> backend_;
  ModelOptions opt_;
  KvLayout kv_layout_;
  std::vector<LayerWeights> layers_;
  const TensorView* embed_ = nullptr;
  const TensorView* norm_ = nullptr;
  const TensorView* output_ = nullptr;
  std::vector<float> rope_freqs_;
  std::vector<int32_t> pos_;  // scratch: positions of the current step
  Communicator* comm_ = nullptr;
  std::vector<float> shard_logits_, gathered_logits_;  // tensor parallel: this rank's and all ranks' LM-head rows
  uint64_t n_params_ = 0;
  uint64_t weight_bytes_ = 0;
  uint64_t fingerprint_ = 0;
  std::mutex compute_mutex_;
};

}  // namespace paca
