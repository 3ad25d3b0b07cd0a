// tensor_parallel.cpp - CPU tensor parallelism over LocalGroup (see
// tensor_parallel.h).
#include "parallel/tensor_parallel.h"

#include <exception>
#include <thread>

#include "util/error.h"

namespace paca {

TensorParallelModel::TensorParallelModel(std::unique_ptr<Checkpoint> full, int n, int threads_per_rank,
                                         const ModelOptions& opt, std::chrono::milliseconds timeout)
    : full_(std::move(full)), layout_(tp_layout(full_->config, n)), group_(n, timeout) {
  ModelOptions o = opt;
  o.n_threads = std::max(1, threads_per_rank);
  for (int r = 0; r < n; ++r) {
    auto model = std::make_unique<LlamaModel>(shard_checkpoint(*full_, layout_, r), make_cpu_backend(o.n_threads), o);
    model->set_communicator(&group_.rank(r));
    ranks_.push_back(std::move(model));
  }
}

TensorParallelModel::~TensorParallelModel() = default;

TensorParallelModel::Sequence::~Sequence() {
  for (Rank& r : ranks_)
    for (uint8_t* b : r.blocks) r.backend->release(b);
}

std::unique_ptr<TensorParallelModel::Sequence> TensorParallelModel::new_sequence(int max_tokens) {
  check(max_tokens > 0 && max_tokens <= full_->config.max_context, Status::invalid_argument,
        "sequence of {} tokens: the context is {}", max_tokens, full_->config.max_context);
  auto seq = std::unique_ptr<Sequence>(new Sequence());
  seq->max_tokens_ = max_tokens;
  for (auto& m : ranks_) {
    Sequence::Rank r;
    r.backend = &m->backend();
    r.ws = std::make_unique<Workspace>(m->backend(), m->config());
    const KvLayout& L = m->kv_layout();
    const int n_blocks = (max_tokens + L.block_tokens - 1) / L.block_tokens;
    for (int b = 0; b < n_blocks; ++b) r.blocks.push_back(static_cast<uint8_t*>(m->backend().alloc(L.block_bytes())));
    seq->ranks_.push_back(std::move(r));
  }
  return seq;
}

std::span<const float> TensorParallelModel::forward(Sequence& seq, std::span<const int32_t> tokens, int pos0) {
  check(!tokens.empty() && pos0 >= 0 && pos0 + static_cast<int64_t>(tokens.size()) <= seq.max_tokens_,
        Status::invalid_argument, "tokens {}..{} outside the sequence's {} positions", pos0,
        pos0 + static_cast<int64_t>(tokens.size()), seq.max_tokens_);
  const int n = size();
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  auto run = [&](int r) {
    try {
      Sequence::Rank& sr = seq.ranks_[static_cast<size_t>(r)];
      sr.ws->reserve(static_cast<int>(tokens.size()));
      LlamaModel& m = *ranks_[static_cast<size_t>(r)];
      const KvSeq kv{&m.kv_layout(), sr.blocks};
      std::lock_guard<std::mutex> lock(m.compute_mutex());
      m.forward(*sr.ws, tokens, pos0, kv, nullptr);
    } catch (...) {
      errors[static_cast<size_t>(r)] = std::current_exception();
      group_.abort();  // the other ranks must not wait for this one
    }
  };
  std::vector<std::thread> threads;
  for (int r = 1; r < n; ++r) threads.emplace_back(run, r);
  run(0);
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  const Act& logits = seq.ranks_[0].ws->logits;
  return {logits.data, static_cast<size_t>(logits.cols)};
}

}  // namespace paca
