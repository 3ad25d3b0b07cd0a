// comm.h - collectives between the ranks of a sharded model. Every rank calls
// the same collectives in the same order. Reductions add the ranks'
// contributions in rank order, so every rank gets bit-identical results and a
// run is reproducible whatever the timing. A rank that does not arrive within
// the group's timeout makes the others fail with Error(io) instead
// of hanging.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace paca {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // data[0, n) = sum over ranks of their data[0, n)
  virtual void all_reduce_sum(float* data, size_t n) = 0;
  // out[r * n, (r + 1) * n) = rank r's in[0, n), on every rank
  virtual void all_gather(const float* in, size_t n, float* out) = 0;
};

// Ranks as threads of one process (CPU tensor parallelism, tests): a shared
// table of pointers and a generation barrier with a timeout.
class LocalGroup {
 public:
  LocalGroup(int size, std::chrono::milliseconds timeout);
  ~LocalGroup();
  Communicator& rank(int r);
  int size() const { return size_; }
  // Marks the group broken (a rank failed): every rank waiting in, or later
  // entering, a collective throws instead of waiting for it.
  void abort();

 private:
  class Rank;
  friend class Rank;
  void barrier();

  int size_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  unsigned long generation_ = 0;
  bool broken_ = false;
  std::vector<const float*> slots_;
  std::vector<std::unique_ptr<Rank>> ranks_;
};

}  // namespace paca
