// comm.h - the communicators between the ranks of a sharded model. The
// interface, Communicator, and its ordering and timeout rules are in
// model/communicator.h.
//
// Implementations: LocalGroup (ranks as threads of one process, below),
// MpiComm (a process per rank, mpi_comm.h), TcpComm (a process per rank over
// sockets, bootstrapped by the TCP rendezvous, tcp_comm.h), SubComm (the
// collectives of a subset of ranks over a parent's point-to-point messages).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "model/communicator.h"

namespace paca {

// Ranks as threads of one process (CPU tensor and pipeline parallelism,
// tests): a shared table of pointers, a generation barrier with a timeout and
// a mailbox per (source, destination) pair.
class LocalGroup {
 public:
  LocalGroup(int size, std::chrono::milliseconds timeout);
  ~LocalGroup();
  Communicator& rank(int r);
  int size() const { return size_; }
  // Marks the group broken (a rank failed): every rank waiting in, or later
  // entering, a collective throws instead of waiting for it.
  void abort();
  // Makes a broken group usable again and drops undelivered messages. Only
  // while no rank is inside a call (e.g. after every rank's thread joined).
  void reset();

 private:
  class Rank;
  friend class Rank;
  void barrier();
  void check_rank(int r, const char* what) const;

  int size_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  unsigned long generation_ = 0;
  bool broken_ = false;
  std::vector<const float*> slots_;
  std::vector<std::deque<std::vector<float>>> mail_;  // [src * size + dst]
  std::vector<std::unique_ptr<Rank>> ranks_;
};

// Collectives written over send/recv, for communicators between processes:
// each rank sends its buffer to every other and adds them all in rank order
// (the same additions as LocalGroup), so results are bit-identical on every
// rank. send must not wait for the matching recv (it buffers or makes
// progress on incoming messages while it waits), since every rank sends
// before it receives.
class PointToPointComm : public Communicator {
 public:
  void all_reduce_sum(float* data, size_t n) override;
  void all_gather(const float* in, size_t n, float* out) override;
  void barrier() override;

 private:
  std::vector<float> buf_;
};

// The collectives of `members` (ranks of parent, in order; this rank among
// them) over parent's send/recv. Used for the tensor-parallel group of one
// pipeline stage in a multi-process run. parent must outlive it.
class SubComm final : public PointToPointComm {
 public:
  SubComm(Communicator& parent, std::vector<int> members);
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(members_.size()); }
  void send(const float* data, size_t n, int dst) override;
  void recv(float* data, size_t n, int src) override;

 private:
  Communicator& parent_;
  std::vector<int> members_;
  int rank_ = 0;
};

}  // namespace paca
