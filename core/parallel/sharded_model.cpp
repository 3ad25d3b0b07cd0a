// sharded_model.cpp - tensor x pipeline parallelism on the CPU (see
// sharded_model.h).
#include "parallel/sharded_model.h"

#include <algorithm>
#include <exception>
#include <thread>

#include "model/fingerprint.h"
#include "parallel/device_comm.h"
#include "util/error.h"

namespace paca {

namespace {

struct ShardScratch final : ModelRunner::Scratch {
  std::vector<std::unique_ptr<Workspace>> ws;    // per local rank
  std::vector<std::vector<uint8_t*>> blocks;     // per local rank: its part of each block
};

}  // namespace

namespace {

const char* kind_name(float kind) { return kind == 1.0f ? "cuda" : "cpu"; }

// Multi-process: every process tells every other what it runs on and whether
// it is ready (a backend, NCCL when needed), so a bad group fails everywhere
// at once instead of timing out rank by rank. Throws this process's own
// error first, then the group's.
void agree_on_start(Communicator& world, bool cuda, const std::string& nccl_why, const std::exception_ptr& backend_error) {
  const float mine[3] = {cuda ? 1.0f : 0.0f, nccl_why.empty() ? 1.0f : 0.0f, backend_error ? 0.0f : 1.0f};
  const int n = world.size();
  std::vector<float> all(static_cast<size_t>(3 * n));
  world.all_gather(mine, 3, all.data());
  for (int r = 0; r < n; ++r)
    if (all[static_cast<size_t>(3 * r)] != all[0])
      fail(Status::unsupported,
           "rank 0 runs on {} and rank {} on {}: the ranks of a group cannot mix CPU and CUDA devices", kind_name(all[0]),
           r, kind_name(all[static_cast<size_t>(3 * r)]));
  if (!nccl_why.empty()) fail(Status::device, "{}", nccl_why);
  if (backend_error) std::rethrow_exception(backend_error);
  for (int r = 0; r < n; ++r) {
    if (all[static_cast<size_t>(3 * r + 1)] == 0.0f)
      fail(Status::device, "rank {} of the group cannot use NCCL (its error says why)", r);
    if (all[static_cast<size_t>(3 * r + 2)] == 0.0f)
      fail(Status::device, "rank {} of the group could not open its device (its error says why)", r);
  }
}

}  // namespace

ShardedModel::ShardedModel(std::unique_ptr<Checkpoint> full, ShardOptions so, const ModelOptions& opt)
    : full_(std::move(full)), tp_(so.tp), pp_(so.pp), log_(opt.log) {
  const TpLayout tpl = tp_layout(full_->config, so.tp);
  const std::vector<StageRange> stages = pipeline_stages(full_->config.n_layers, so.pp);
  check(so.timeout.count() > 0, Status::invalid_argument, "the collective timeout must be positive");
  check(so.device == "cpu" || parse_cuda_device(so.device) >= 0, Status::invalid_argument,
        "unknown device '{}' (expected \"cpu\", \"cuda\" or \"cuda:N\")", so.device);
  const bool cuda = so.device != "cpu";
  check(cuda || so.collectives != ShardOptions::Collectives::nccl, Status::invalid_argument,
        "NCCL collectives need CUDA ranks, not device '{}'", so.device);
  const bool nccl = cuda && (so.collectives == ShardOptions::Collectives::nccl ||
                             (so.collectives == ShardOptions::Collectives::automatic && so.world != nullptr));
  const int threads = so.n_threads > 0 ? so.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::unique_ptr<Backend> first_backend;  // multi-process: made before the group agrees to start
  const std::vector<int> ranks = open_group(so, cuda, nccl, threads, first_backend);
  ModelOptions o = opt;
  o.n_threads = std::max(1, threads / static_cast<int>(ranks.size()));
  build_ranks(so, tpl, stages, ranks, std::move(first_backend), o);
  connect_ranks(so, cuda, nccl);
  upload_rank_weights(so.progress);
  lay_out_kv();
  for (const auto& [name, t] : full_->tensors) n_params_ += static_cast<uint64_t>(t.rows) * static_cast<uint64_t>(t.cols);
  fingerprint_ = model_fingerprint(*full_);
}

std::vector<int> ShardedModel::open_group(ShardOptions& so, bool cuda, bool nccl, int threads,
                                          std::unique_ptr<Backend>& first_backend) {
  const int world_size = so.tp * so.pp;
  std::vector<int> ranks;
  if (so.world == nullptr) {
    for (int r = 0; r < world_size; ++r) ranks.push_back(r);
    check(!nccl || world_size == 1, Status::invalid_argument,
          "NCCL needs one GPU per rank: the {} ranks of this process would all run on {} (use host staging)", world_size,
          so.device);
    std::string why;
    if (nccl && !nccl_available(&why)) fail(Status::device, "{}", why);
    groups_.push_back(std::make_unique<LocalGroup>(world_size, so.timeout));
    for (int s = 0; s < so.pp; ++s) groups_.push_back(std::make_unique<LocalGroup>(so.tp, so.timeout));
    return ranks;
  }
  check(so.world->size() == world_size, Status::invalid_argument,
        "a group of {} processes cannot run tensor parallel {} x pipeline parallel {} (needs {})", so.world->size(), so.tp,
        so.pp, world_size);
  world_ = std::move(so.world);
  ranks.push_back(world_->rank());
  std::string nccl_why;
  if (nccl) nccl_available(&nccl_why);
  std::exception_ptr backend_error;
  if (nccl_why.empty()) {
    try {
      first_backend = make_backend(so.device, threads, so.backend);
    } catch (const Error&) {
      backend_error = std::current_exception();
    }
  }
  agree_on_start(*world_, cuda, nccl_why, backend_error);
  if (so.pp > 1) {
    const int stage = world_->rank() / so.tp;
    std::vector<int> members;
    for (int t = 0; t < so.tp; ++t) members.push_back(stage * so.tp + t);
    stage_comm_ = std::make_unique<SubComm>(*world_, std::move(members));
  }
  return ranks;
}

void ShardedModel::build_ranks(const ShardOptions& so, const TpLayout& tpl, const std::vector<StageRange>& stages,
                               const std::vector<int>& ranks, std::unique_ptr<Backend> first_backend,
                               const ModelOptions& o) {
  for (int r : ranks) {
    Local l;
    l.at.rank = r;
    l.at.stage = r / so.tp;
    l.at.tp_rank = r % so.tp;
    l.at.layers = stages[static_cast<size_t>(l.at.stage)];
    std::unique_ptr<Backend> be = first_backend ? std::move(first_backend) : make_backend(so.device, o.n_threads, so.backend);
    l.model = std::make_unique<LlamaModel>(shard_checkpoint(*full_, tpl, l.at.tp_rank, l.at.layers, l.at.stage, so.pp),
                                           std::move(be), o);
    weight_bytes_ += l.model->weight_bytes();
    locals_.push_back(std::move(l));
  }
}

void ShardedModel::upload_rank_weights(const std::function<bool(float)>& progress) {
  // device ranks get their shard's weights (the host ones page in at load)
  const size_t n_local = locals_.size();
  for (size_t i = 0; i < n_local; ++i) {
    Backend& be = locals_[i].model->backend();
    if (be.weights_on_host()) continue;
    std::vector<const TensorView*> views;
    for (const auto& [name, t] : locals_[i].model->checkpoint().tensors) views.push_back(&t);
    std::function<bool(float)> part;
    if (progress)
      part = [&progress, i, n_local](float f) {
        return progress((static_cast<float>(i) + f) / static_cast<float>(n_local));
      };
    be.upload_weights(views, part);
  }
}

void ShardedModel::lay_out_kv() {
  // a session's block: the local ranks' blocks in (tp_rank, first layer) order
  std::vector<size_t> order(locals_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Placement &pa = locals_[a].at, &pb = locals_[b].at;
    return pa.tp_rank != pb.tp_rank ? pa.tp_rank < pb.tp_rank : pa.layers.first < pb.layers.first;
  });
  kv_layout_ = locals_[0].model->kv_layout();
  int vlayers = 0;
  for (size_t i : order) {
    locals_[i].kv_offset = kv_layout_.offset(vlayers, 0, 0);
    vlayers += locals_[i].at.layers.count;
  }
  kv_layout_.n_layers = vlayers;
}

ShardedModel::~ShardedModel() {
  dev_comms_.clear();  // NCCL communicators go before the backends whose streams they use
}

void ShardedModel::connect_ranks(const ShardOptions& so, bool cuda, bool nccl) {
  auto own = [&](std::unique_ptr<Communicator> comm) {
    dev_comms_.push_back(std::move(comm));
    return dev_comms_.back().get();
  };
  const size_t n = locals_.size();
  std::vector<Communicator*> world(n), stage(n);
  if (world_ == nullptr) {
    if (nccl) {  // a single rank (checked): its stage is its world
      std::vector<Backend*> bes;
      for (Local& l : locals_) bes.push_back(&l.model->backend());
      std::vector<std::unique_ptr<Communicator>> comms = nccl_comm_group(bes, so.timeout);
      for (size_t i = 0; i < n; ++i) world[i] = stage[i] = own(std::move(comms[i]));
    } else {
      for (size_t i = 0; i < n; ++i) {
        const Placement& at = locals_[i].at;
        Communicator& hw = groups_[0]->rank(at.rank);
        Communicator& hs = groups_[static_cast<size_t>(1 + at.stage)]->rank(at.tp_rank);
        Backend& be = locals_[i].model->backend();
        world[i] = cuda ? own(std::make_unique<StagedComm>(hw, be)) : &hw;
        stage[i] = cuda ? own(std::make_unique<StagedComm>(hs, be)) : &hs;
      }
    }
  } else {
    Communicator& hw = *world_;
    Communicator& hs = stage_comm_ != nullptr ? static_cast<Communicator&>(*stage_comm_) : *world_;
    Backend& be = locals_[0].model->backend();
    if (nccl) {
      std::vector<int> all(static_cast<size_t>(world_->size()));
      for (size_t r = 0; r < all.size(); ++r) all[r] = static_cast<int>(r);
      world[0] = stage[0] = own(connect_nccl(hw, all, be, so.timeout));
      if (pp_ > 1) {
        std::vector<int> members;
        for (int t = 0; t < tp_; ++t) members.push_back(locals_[0].at.stage * tp_ + t);
        stage[0] = own(connect_nccl(hw, members, be, so.timeout));
      }
    } else {
      world[0] = cuda ? own(std::make_unique<StagedComm>(hw, be)) : &hw;
      stage[0] = cuda ? own(std::make_unique<StagedComm>(hs, be)) : &hs;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    locals_[i].world = world[i];
    locals_[i].stage = stage[i];
    locals_[i].model->set_communicator(stage[i]);
  }
  comm_note_ = nccl ? ", NCCL" : cuda ? ", collectives staged through the host" : "";
}

std::string ShardedModel::backend_name() const {
  return fmt::format("{} (tensor parallel {} x pipeline parallel {}, {} rank(s) in this process{})",
                     locals_[0].model->backend_name(), tp_, pp_, locals_.size(), comm_note_);
}

std::unique_ptr<ModelRunner::Scratch> ShardedModel::new_scratch() {
  auto s = std::make_unique<ShardScratch>();
  for (Local& l : locals_) s->ws.push_back(std::make_unique<Workspace>(l.model->backend(), l.model->config()));
  s->blocks.resize(locals_.size());
  return s;
}

void ShardedModel::run_rank(Local& l, Workspace& ws, std::span<const int32_t> tokens, std::span<const SeqStep> seqs,
                            int n_logits, const std::atomic<bool>* cancel) {
  LlamaModel& m = *l.model;
  const size_t act = tokens.size() * static_cast<size_t>(full_->config.dim);
  const size_t logits = static_cast<size_t>(n_logits) * static_cast<size_t>(full_->config.n_vocab);
  if (m.has_embedding())
    m.embed_tokens(ws, tokens);
  else
    l.world->recv(ws.x.data, act, l.at.rank - tp_);
  m.run_layers(ws, seqs, cancel);
  if (!m.has_head()) {
    l.world->send(ws.x.data, act, l.at.rank + tp_);
    if (logits > 0) l.world->recv(ws.logits.data, logits, (pp_ - 1) * tp_ + l.at.tp_rank);
    return;
  }
  m.final_logits(ws, seqs);
  if (logits > 0)
    for (int s = 0; s + 1 < pp_; ++s) l.world->send(ws.logits.data, logits, s * tp_ + l.at.tp_rank);
}

void ShardedModel::run_ranks(const std::function<void(size_t)>& run) {
  if (world_ != nullptr) {
    try {
      run(0);
    } catch (...) {
      failed_ = true;
      throw;
    }
    return;
  }
  std::mutex mu;
  std::exception_ptr first;  // the first rank to fail; the others fail because it aborted the groups
  auto guarded = [&](size_t i) {
    try {
      run(i);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!first) first = std::current_exception();
      }
      for (auto& g : groups_) g->abort();
    }
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < locals_.size(); ++i) threads.emplace_back(guarded, i);
  guarded(0);
  for (auto& t : threads) t.join();
  if (first) {
    for (auto& g : groups_) g->reset();  // every rank has returned: the groups can serve the next step
    std::rethrow_exception(first);
  }
}

void ShardedModel::step(Scratch& scratch, std::span<const int32_t> tokens, int pos0, const KvSeq& seq,
                        const std::atomic<bool>* cancel, StepLogits logits) {
  // every rank computes the logits of every step (the ranks of other
  // processes do not know which steps want them); they reach only the host
  check(!tokens.empty() && tokens.size() <= static_cast<size_t>(kMaxStepTokens) && !logits.keep &&
            (logits.host.empty() || logits.host.size() == static_cast<size_t>(full_->config.n_vocab)),
        Status::internal, "ShardedModel::step: {} tokens, {} logits", tokens.size(), logits.host.size());
  check(!failed_, Status::state,
        "an earlier step failed on this rank of a multi-process group: the group cannot continue (load the model again)");
  auto& s = static_cast<ShardScratch&>(scratch);
  const size_t n = locals_.size();
  for (size_t i = 0; i < n; ++i) {
    s.ws[i]->reserve(static_cast<int>(tokens.size()));
    s.blocks[i].resize(seq.blocks.size());
    for (size_t b = 0; b < seq.blocks.size(); ++b) s.blocks[i][b] = seq.blocks[b] + locals_[i].kv_offset;
  }
  run_ranks([&](size_t i) {
    const SeqStep one{tokens, pos0, KvSeq{&locals_[i].model->kv_layout(), s.blocks[i]}, true};
    run_rank(locals_[i], *s.ws[i], tokens, std::span<const SeqStep>(&one, 1), 1, cancel);
  });
  if (logits.host.empty()) return;
  const Act& lg = s.ws[0]->logits;
  locals_[0].model->backend().to_host(lg.data, logits.host.data(), logits.host.size());
}

void ShardedModel::step_batch(std::span<const BatchSeq> seqs) {
  if (world_ != nullptr) {
    ModelRunner::step_batch(seqs);
    return;
  }
  if (seqs.empty()) return;
  const size_t vocab = static_cast<size_t>(full_->config.n_vocab);
  std::vector<int32_t> tokens;
  int n_logits = 0;
  for (const BatchSeq& b : seqs) {
    check(!b.tokens.empty() && b.tokens.size() <= static_cast<size_t>(kMaxStepTokens) && !b.logits.keep &&
              (b.logits.host.empty() || b.logits.host.size() == vocab),
          Status::internal, "ShardedModel::step_batch: {} tokens, {} logits", b.tokens.size(), b.logits.host.size());
    tokens.insert(tokens.end(), b.tokens.begin(), b.tokens.end());
    n_logits += b.logits.host.empty() ? 0 : 1;
  }
  const size_t n = locals_.size();
  if (batch_ws_.size() != n) {
    batch_ws_.clear();
    for (Local& l : locals_) batch_ws_.push_back(std::make_unique<Workspace>(l.model->backend(), l.model->config()));
  }
  // each rank's part of each sequence's blocks
  std::vector<std::vector<std::vector<uint8_t*>>> blocks(n, std::vector<std::vector<uint8_t*>>(seqs.size()));
  std::vector<std::vector<SeqStep>> steps(n);
  for (size_t i = 0; i < n; ++i) {
    batch_ws_[i]->reserve(static_cast<int>(tokens.size()), std::max(n_logits, 1));
    for (size_t q = 0; q < seqs.size(); ++q) {
      const KvSeq& kv = seqs[q].kv;
      for (uint8_t* b : kv.blocks) blocks[i][q].push_back(b + locals_[i].kv_offset);
      steps[i].push_back(SeqStep{seqs[q].tokens, seqs[q].pos0, KvSeq{&locals_[i].model->kv_layout(), blocks[i][q]},
                                 !seqs[q].logits.host.empty()});
    }
  }
  run_ranks([&](size_t i) { run_rank(locals_[i], *batch_ws_[i], tokens, steps[i], n_logits, nullptr); });
  int row = 0;
  for (const BatchSeq& b : seqs) {
    if (b.logits.host.empty()) continue;
    locals_[0].model->backend().to_host(batch_ws_[0]->logits.row(row++), b.logits.host.data(), vocab);
  }
}

}  // namespace paca
