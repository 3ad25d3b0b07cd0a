// sharded_model.h - one model split into tensor-parallel x pipeline-parallel
// ranks (shard.h), driven as one ModelRunner. Rank numbering: world rank =
// stage * tp + tp_rank. Each rank is a LlamaModel over its shard with its own
// CPU backend; the ranks of a stage all-reduce through their stage's
// communicator, stages pass activations [T, D] to the next stage and the last
// stage sends the logits back to every other stage (so every rank, in any
// process, ends a step with the same logits).
//
// Either every rank lives in this process (threads joined by LocalGroups,
// the CPU path of paca_model_load with tensor_parallel / pipeline_parallel),
// or this process is one rank of a multi-process group (ShardOptions::world:
// MpiComm or TcpComm) and every process runs the same calls in the same
// order.
//
// Devices (ShardOptions::device): every rank of this process runs on the
// same device. CPU ranks use host communicators as above. CUDA ranks keep
// their activations in device memory and talk through device_comm.h: ranks
// of one process (which share one GPU) through their LocalGroups with host
// staging, ranks in separate processes (one GPU each) through NCCL, its id
// sent from rank 0 (and each stage's first rank) over the host world. Before
// any of that, the processes of a group exchange what they run on, so a
// group that mixes CPU and CUDA ranks, or where a rank has no NCCL or no
// device, fails on every rank at once with a clear error.
//
// KV: a session's block holds the blocks of every local rank side by side.
// Its layout is that of a model with tp x n_layers "virtual" layers of the
// per-rank kv width, virtual layer tp_rank * n_layers + layer: rank (stage s,
// tp t) owns the contiguous virtual layers of its stage. With tp = 1 this is
// exactly the unsharded layout (PP snapshots load into an unsharded model and
// back); another tp gives another shape, which snapshot loading refuses.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/llama_model.h"
#include "parallel/comm.h"
#include "parallel/shard.h"

namespace paca {

struct ShardOptions {
  int tp = 1;
  int pp = 1;
  int n_threads = 0;  // compute threads of this process, split among its ranks; 0 = all hardware threads
  std::chrono::milliseconds timeout{60000};  // collectives and messages give up after this
  // null: every rank is a thread of this process. Otherwise this process is
  // rank world->rank() of world->size() == tp * pp (a host communicator:
  // TcpComm, MpiComm).
  std::unique_ptr<Communicator> world;
  // The device of every rank of this process: "cpu", "cuda" or "cuda:N".
  std::string device = "cpu";
  BackendSettings backend;  // the kernels every rank's backend runs
  // How CUDA ranks talk. automatic: NCCL between processes, host staging
  // between the ranks of this process (they share its one device). host:
  // host staging always (StagedComm over the host communicators). nccl:
  // NCCL always; the ranks of one process then need distinct devices, which
  // one device allows for a single rank (tp = pp = 1: NCCL with a world of
  // one, the device test of NcclComm on a one-GPU machine).
  enum class Collectives { automatic, host, nccl } collectives = Collectives::automatic;
  // Progress of the device weight upload (fraction in [0, 1]); false aborts
  // the load with Error(cancelled). Host backends page nothing in here.
  std::function<bool(float)> progress;
};

class ShardedModel final : public ModelRunner {
 public:
  // Throws Error(invalid_argument) when the layout does not fit the model
  // (see tp_layout, pipeline_stages) or the world's size is not tp * pp.
  ShardedModel(std::unique_ptr<Checkpoint> full, ShardOptions so, const ModelOptions& opt);
  ~ShardedModel() override;

  struct Placement {
    int rank = 0;     // world rank
    int stage = 0;
    int tp_rank = 0;
    StageRange layers;
  };
  int tp() const { return tp_; }
  int pp() const { return pp_; }
  int n_local() const { return static_cast<int>(locals_.size()); }
  const Placement& placement(int i) const { return locals_[static_cast<size_t>(i)].at; }
  LlamaModel& local(int i) { return *locals_[static_cast<size_t>(i)].model; }
  const LlamaModel& local(int i) const { return *locals_[static_cast<size_t>(i)].model; }

  const ModelConfig& config() const override { return full_->config; }
  const Checkpoint& checkpoint() const override { return *full_; }
  uint64_t fingerprint() const override { return fingerprint_; }
  uint64_t n_params() const override { return n_params_; }
  uint64_t weight_bytes() const override { return weight_bytes_; }
  std::string backend_name() const override;
  const LogSink& log() const override { return log_; }
  const KvLayout& kv_layout() const override { return kv_layout_; }
  Backend& kv_backend() override { return locals_[0].model->backend(); }
  std::unique_ptr<Scratch> new_scratch() override;
  void step(Scratch& scratch, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
            const std::atomic<bool>* cancel, StepLogits logits) override;
  // In-process ranks: all sequences through each rank in one pass (each
  // weight read once for all), each with the bits it gets alone. A
  // multi-process group steps them one at a time (every process must make
  // the same calls).
  void step_batch(std::span<const BatchSeq> seqs) override;
  std::mutex& compute_mutex() override { return compute_mutex_; }

 private:
  struct Local {
    Placement at;
    std::unique_ptr<LlamaModel> model;
    Communicator* world = nullptr;  // pipeline messages
    Communicator* stage = nullptr;  // tensor-parallel collectives of its stage
    size_t kv_offset = 0;           // bytes into a session's block
  };
  // The construction, in order. open_group: the in-process groups, or this
  // process's place in a multi-process one (which all ranks agree to start;
  // first_backend is then this rank's, made before agreeing); returns the
  // world ranks this process runs. build_ranks: each rank's shard and model.
  // upload_rank_weights: device ranks' weights, progress over all of them.
  // lay_out_kv: a session's KV block, the local ranks' blocks in (tp_rank,
  // first layer) order.
  std::vector<int> open_group(ShardOptions& so, bool cuda, bool nccl, int threads,
                              std::unique_ptr<Backend>& first_backend);
  void build_ranks(const ShardOptions& so, const TpLayout& tpl, const std::vector<StageRange>& stages,
                   const std::vector<int>& ranks, std::unique_ptr<Backend> first_backend, const ModelOptions& o);
  void upload_rank_weights(const std::function<bool(float)>& progress);
  void lay_out_kv();
  // Sets every local rank's world and stage communicators (see the header
  // comment): host ones, staged ones, or NCCL.
  void connect_ranks(const ShardOptions& so, bool cuda, bool nccl);
  // One rank's part of a step: the sequences' tokens (one after another in
  // `tokens`), n_logits of them wanting logits (rows of ws.logits).
  void run_rank(Local& l, Workspace& ws, std::span<const int32_t> tokens, std::span<const SeqStep> seqs,
                int n_logits, const std::atomic<bool>* cancel);
  // Runs run(i) for every local rank i (in-process: one thread each; the
  // first failure aborts the others and is rethrown), or rank 0 of this
  // process in a multi-process group.
  void run_ranks(const std::function<void(size_t)>& run);

  std::unique_ptr<Checkpoint> full_;  // the ranks' views point into it: destroyed last
  int tp_ = 1, pp_ = 1;
  LogSink log_;
  std::vector<std::unique_ptr<LocalGroup>> groups_;  // in-process: the world, then each stage's
  std::unique_ptr<Communicator> world_;              // multi-process
  std::unique_ptr<SubComm> stage_comm_;              // multi-process with pp > 1
  std::vector<std::unique_ptr<Communicator>> dev_comms_;  // CUDA ranks: NCCL or staged (over the above)
  std::string comm_note_;                            // how the ranks talk, for backend_name()
  std::vector<Local> locals_;
  KvLayout kv_layout_;
  uint64_t n_params_ = 0, weight_bytes_ = 0, fingerprint_ = 0;
  std::vector<std::unique_ptr<Workspace>> batch_ws_;  // step_batch's, per local rank (under compute_mutex_)
  bool failed_ = false;  // multi-process: a step failed, the group's message order is lost
  std::mutex compute_mutex_;
};

}  // namespace paca
