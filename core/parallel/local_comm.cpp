// local_comm.cpp - LocalGroup: collectives between threads; PointToPointComm
// and SubComm: collectives over point-to-point messages (see comm.h).
#include <algorithm>
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

  void send(const float* data, size_t n, int dst) override {
    g_.check_rank(dst, "send to");
    std::vector<float> msg(data, data + n);
    std::lock_guard<std::mutex> lock(g_.mu_);
    if (g_.broken_) fail(Status::io, "send aborted: another rank failed");
    g_.mail_[static_cast<size_t>(r_ * g_.size_ + dst)].push_back(std::move(msg));
    g_.cv_.notify_all();
  }

  void recv(float* data, size_t n, int src) override {
    g_.check_rank(src, "receive from");
    std::unique_lock<std::mutex> lock(g_.mu_);
    auto& box = g_.mail_[static_cast<size_t>(src * g_.size_ + r_)];
    if (!g_.cv_.wait_for(lock, g_.timeout_, [&] { return !box.empty() || g_.broken_; })) {
      g_.broken_ = true;
      g_.cv_.notify_all();
      fail(Status::io, "receive from rank {} timed out after {} ms", src, g_.timeout_.count());
    }
    if (box.empty()) fail(Status::io, "receive aborted: another rank failed");
    std::vector<float> msg = std::move(box.front());
    box.pop_front();
    check(msg.size() == n, Status::io, "rank {} sent {} floats, rank {} expected {}", src, msg.size(), r_, n);
    std::memcpy(data, msg.data(), n * sizeof(float));
  }

  void barrier() override { g_.barrier(); }

 private:
  LocalGroup& g_;
  int r_;
  std::vector<float> sum_;
};

LocalGroup::LocalGroup(int size, std::chrono::milliseconds timeout) : size_(size), timeout_(timeout) {
  check(size >= 1 && size <= 1024, Status::invalid_argument, "a local group needs 1..1024 ranks, not {}", size);
  check(timeout.count() > 0, Status::invalid_argument, "a local group needs a positive timeout");
  slots_.resize(static_cast<size_t>(size));
  mail_.resize(static_cast<size_t>(size) * static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) ranks_.push_back(std::make_unique<Rank>(*this, r));
}

LocalGroup::~LocalGroup() = default;

Communicator& LocalGroup::rank(int r) {
  check_rank(r, "rank");
  return *ranks_[static_cast<size_t>(r)];
}

void LocalGroup::check_rank(int r, const char* what) const {
  check(r >= 0 && r < size_, Status::invalid_argument, "{} {}: outside a group of {}", what, r, size_);
}

void LocalGroup::abort() {
  std::lock_guard<std::mutex> lock(mu_);
  broken_ = true;
  cv_.notify_all();
}

void LocalGroup::reset() {
  std::lock_guard<std::mutex> lock(mu_);
  broken_ = false;
  arrived_ = 0;
  ++generation_;
  for (auto& box : mail_) box.clear();
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

SubComm::SubComm(Communicator& parent, std::vector<int> members) : parent_(parent), members_(std::move(members)) {
  auto me = std::find(members_.begin(), members_.end(), parent.rank());
  check(me != members_.end(), Status::internal, "rank {} is not a member of its sub-group", parent.rank());
  for (int m : members_)
    check(m >= 0 && m < parent.size(), Status::internal, "sub-group member {} outside a group of {}", m, parent.size());
  rank_ = static_cast<int>(me - members_.begin());
}

void PointToPointComm::all_gather(const float* in, size_t n, float* out) {
  const int me = rank(), size = this->size();
  for (int r = 0; r < size; ++r)
    if (r != me) send(in, n, r);
  for (int r = 0; r < size; ++r) {
    float* dst = out + static_cast<size_t>(r) * n;
    if (r == me)
      std::memmove(dst, in, n * sizeof(float));
    else
      recv(dst, n, r);
  }
}

void PointToPointComm::all_reduce_sum(float* data, size_t n) {
  const size_t size = static_cast<size_t>(this->size());
  buf_.resize(n * size);
  all_gather(data, n, buf_.data());
  // the same additions in the same order as LocalGroup: 0 + r0 + r1 + ...
  for (size_t i = 0; i < n; ++i) {
    float s = 0.0f;
    for (size_t r = 0; r < size; ++r) s += buf_[r * n + i];
    data[i] = s;
  }
}

void PointToPointComm::barrier() {
  float token = 0.0f;
  all_reduce_sum(&token, 1);
}

void SubComm::send(const float* data, size_t n, int dst) {
  check(dst >= 0 && dst < size(), Status::invalid_argument, "send to {}: outside a group of {}", dst, size());
  parent_.send(data, n, members_[static_cast<size_t>(dst)]);
}

void SubComm::recv(float* data, size_t n, int src) {
  check(src >= 0 && src < size(), Status::invalid_argument, "receive from {}: outside a group of {}", src, size());
  parent_.recv(data, n, members_[static_cast<size_t>(src)]);
}

}  // namespace paca
