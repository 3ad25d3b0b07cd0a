// communicator.h - what a shard of the model calls to reach the other ranks:
// collectives and point-to-point messages. The model defines the interface
// it needs and parallel/ implements it (parallel/comm.h: threads of one
// process, between processes, subsets), so model/ never includes parallel/.
// Every rank calls the same collectives in the same order. Reductions add
// the ranks' contributions in rank order, so every rank gets bit-identical
// results and a run is reproducible whatever the timing. A rank that does
// not arrive within the group's timeout makes the others fail with
// Error(io) instead of hanging.
#pragma once

#include <cstddef>

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
  // Point to point (pipeline stages): send returns once data may be reused
  // (it may buffer); recv waits for the next message from src, which must
  // hold exactly n floats (another size is Error(io)).
  virtual void send(const float* data, size_t n, int dst) = 0;
  virtual void recv(float* data, size_t n, int src) = 0;
  // Returns once every rank has entered it.
  virtual void barrier() = 0;
};

}  // namespace paca
