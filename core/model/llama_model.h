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
#include "model/checkpoint.h"
#include "model/communicator.h"
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

// Bytes of a Workspace for `tokens` rows and `logit_rows` rows of logits.
uint64_t step_workspace_bytes(const ModelConfig& c, int tokens, int logit_rows);

// Scratch activations of one step for up to `capacity` tokens and
// `logit_rows` sequences that want logits.
class Workspace {
 public:
  Workspace(Backend& backend, const ModelConfig& c);
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  // grows the buffers to hold `tokens` rows and `logit_rows` rows of logits
  void reserve(int tokens, int logit_rows = 1);
  int capacity() const { return capacity_; }
  int logit_capacity() const { return logit_rows_; }

  Act x, xn, q, k, v, att, o, g, u, logits;  // logits: [logit_rows, vocab]

 private:
  Backend& backend_;
  const ModelConfig& c_;
  int capacity_ = 0;
  int logit_rows_ = 0;
  void* mem_ = nullptr;
};

// One sequence's part of a batched step: its new tokens at positions pos0,
// pos0 + 1, ..., the KV blocks they are written into, and whether the last
// token's logits are wanted.
struct SeqStep {
  std::span<const int32_t> tokens;
  int pos0 = 0;
  KvSeq kv;
  bool logits = true;
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
  ~LlamaModel() override;
  LlamaModel(const LlamaModel&) = delete;
  LlamaModel& operator=(const LlamaModel&) = delete;

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
            const std::atomic<bool>* cancel, StepLogits logits) override;
  bool keeps_logits() const override { return true; }
  void kept_logits(Scratch& scratch, std::span<float> out) override;
  void top_k(Scratch& scratch, size_t k, std::vector<Candidate>& out, uint64_t* mass) override;
  // All sequences through one forward_batch (the scratches are not used).
  void step_batch(std::span<const BatchSeq> seqs) override;

  // Runs tokens (at positions pos0, pos0 + 1, ...) through the model, writing
  // their K/V into seq, and leaves the last token's logits in ws.logits.
  // tokens.size() <= ws.capacity(). The caller holds compute_mutex(). Throws
  // Error(cancelled) between layers when *cancel becomes true.
  void forward(Workspace& ws, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
               const std::atomic<bool>* cancel);

  // Several sequences in one step: their tokens go through every matmul
  // together (each weight is read once for all of them); attention runs per
  // sequence over its own KV blocks. The last-token logits of the i-th
  // sequence that wants them land in row i of ws.logits. Total tokens <=
  // ws.capacity(), sequences wanting logits <= ws.logit_capacity(). Each
  // sequence's results are the same bits as when it runs alone.
  void forward_batch(Workspace& ws, std::span<const SeqStep> seqs, const std::atomic<bool>* cancel);

  // The pieces of forward, for pipeline stages (parallel/sharded_model.cpp),
  // which replace embed_tokens with the activations the previous stage sent
  // and final_logits with sending theirs on:
  //   embed_tokens: ws.x[0, T) = the tokens' embeddings (has_embedding());
  //   run_layers: ws.x[0, T) through this model's layers (a stage's own),
  //     the rows being the sequences' tokens one sequence after another;
  //   final_logits: row i of ws.logits = LM head of the final norm of the
  //     last row of the i-th sequence that wants logits (has_head()).
  // The (T, pos0, seq) forms are the one-sequence case.
  bool has_embedding() const { return ckpt_->has_embedding; }
  bool has_head() const { return ckpt_->has_head; }
  void embed_tokens(Workspace& ws, std::span<const int32_t> tokens);
  void run_layers(Workspace& ws, std::span<const SeqStep> seqs, const std::atomic<bool>* cancel);
  void run_layers(Workspace& ws, int T, int pos0, const KvSeq& seq, const std::atomic<bool>* cancel);
  void final_logits(Workspace& ws, std::span<const SeqStep> seqs);
  void final_logits(Workspace& ws, int T);
  // forward_batch brackets its ops with Backend::begin_step / end_step (see
  // backend.h) unless tensor parallel collectives run between them.

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
  // pos_ = the positions of seqs' rows, one sequence after another
  void positions_of(std::span<const SeqStep> seqs);
  void layers(Workspace& ws, std::span<const SeqStep> seqs, const std::atomic<bool>* cancel);  // over pos_

  std::vector<int32_t> pos_, tokens_;  // scratch: positions and tokens of the current step
  std::vector<KvSeq> step_kv_;         // scratch: the sequences' KV blocks (Backend::begin_step)
  std::vector<int> step_rows_;         // scratch: the sequences' row counts
  std::unique_ptr<Workspace> batch_ws_;  // step_batch's scratch (under compute_mutex_)
  Communicator* comm_ = nullptr;
  // tensor parallel, in the backend's memory: this rank's LM-head rows
  // [lm_head_rows] and every rank's [size * lm_head_rows]
  float* shard_logits_ = nullptr;
  float* gathered_logits_ = nullptr;
  uint64_t n_params_ = 0;
  uint64_t weight_bytes_ = 0;
  uint64_t fingerprint_ = 0;
  std::mutex compute_mutex_;
};

}  // namespace paca
