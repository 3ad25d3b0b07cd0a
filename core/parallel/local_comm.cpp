// local_comm.cpp - LocalGroup: collectives between threads (see comm.h).
#include <cstring>

#include "parallel/comm.h"
#include "util/error.h"

namespace paca {

class LocalGroup::Rank final : public Communicator {
 public:
  Rank(LocalGroup& g, int r) : g_(g), r_(r) {}
  int rank() const override { return r_; }
  int size() const override { return g_.size_; }

  void all_reduce_sum(float* data, size_t n) override {
    sum_.assign(n, 0.0f);
    g_.slots_[static_cast<size_t>(r_)] = data;
    g_.barrier();  // every rank has posted its buffer
    for (int r = 0; r < g_.size_; ++r) {
      const float* src = g_.slots_[static_cast<size_t>(r)];
      for (size_t i = 0; i < n; ++i) sum_[i] += src[i];
    }
    g_.barrier();  // every rank has read every buffer
    std::memcpy(data, sum_.data(), n * sizeof(float));
  }

  void all_gather(const float* in, size_t n, float* out) override {
    g_.slots_[static_cast<size_t>(r_)] = in;
    g_.barrier();
    for (int r = 0; r < g_.size_; ++r) std::memcpy(out + static_cast<size_t>(r) * n, g_.slots_[static_cast<size_t>(r)], n * sizeof(float));
    g_.barrier();
  }

 private:
  LocalGroup& g_;
  int r_;
  std::vector<float> sum_;
};

LocalGroup::LocalGroup(int size, std::chrono::milliseconds timeout) : size_(size), timeout_(timeout) {
  check(size >= 1 && size <= 1024, Status::invalid_argument, "a local group needs 1..1024 ranks, not {}", size);
  slots_.resize(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) ranks_.push_back(std::make_unique<Rank>(*this, r));
}

LocalGroup::~LocalGroup() = default;

Communicator& LocalGroup::rank(int r) {
  check(r >= 0 && r < size_, Status::invalid_argument, "rank {} outside a group of {}", r, size_);
  return *ranks_[static_cast<size_t>(r)];
}

void LocalGroup::abort() {
  std::lock_guard<std::mutex> lock(mu_);
  broken_ = true;
  cv_.notify_all();
}

void LocalGroup::barrier() {
  std::unique_lock<std::mutex> lock(mu_);
  if (broken_) fail(Status::io, "collective aborted: another rank failed");
  const unsigned long gen = generation_;
  if (++arrived_ == size_) {
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
    return;
  }
  if (!cv_.wait_for(lock, timeout_, [&] { return generation_ != gen || broken_; })) {
    broken_ = true;
    cv_.notify_all();
    fail(Status::io, "collective timed out after {} ms: {} of {} ranks arrived", timeout_.count(), arrived_, size_);
  }
  if (generation_ == gen) fail(Status::io, "collective aborted: another rank failed");
}

}  // namespace paca
