// device_comm.h - communicators for ranks whose buffers live in device
// memory (CUDA ranks), and the bootstrap of NCCL communicators.
//
// A Communicator's buffers are always in the memory of the rank's backend:
// host memory for CPU ranks, device memory for CUDA ranks. Two ways serve
// CUDA ranks:
//
// StagedComm wraps a host communicator (LocalGroup rank, TcpComm, MpiComm,
//   SubComm) for a rank on a device backend: each call copies the device
//   buffer to host memory through the backend (which waits for its stream),
//   runs the host call and copies the result back. The sums are the host
//   communicator's (rank order, bit-identical on every rank). It serves
//   several ranks on one GPU (NCCL refuses two ranks on one device), which
//   is a test and development layout, not a fast one.
//
// NCCL (cuda/nccl_comm.cpp; libnccl opened with dlopen on first use): every
//   call runs on the rank's backend stream, on device memory. Reductions are
//   NCCL's (not in rank order: results agree with the other communicators
//   within float rounding, not bit for bit). Each call waits for its
//   completion, polling the stream and ncclCommGetAsyncError against the
//   timeout; on timeout the communicator is aborted (ncclCommAbort) and the
//   call throws Error(io), so a lost peer is an error, never a hang. In a
//   build without CUDA, or where libnccl.so.2 cannot be opened, every NCCL
//   function throws Error(device) with a message starting "NCCL unavailable: ".
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "parallel/comm.h"

namespace paca {

class StagedComm final : public Communicator {
 public:
  // host and backend must outlive it.
  StagedComm(Communicator& host, Backend& backend) : host_(host), be_(backend) {}
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  void all_reduce_sum(float* data, size_t n) override;
  void all_gather(const float* in, size_t n, float* out) override;
  void send(const float* data, size_t n, int dst) override;
  void recv(float* data, size_t n, int src) override;
  void barrier() override { host_.barrier(); }

 private:
  Communicator& host_;
  Backend& be_;
  std::vector<float> a_, b_;
};

// ---- NCCL (defined by cuda/nccl_comm.cpp, or core/backend/no_cuda.cpp) ------

inline constexpr size_t kNcclIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
using NcclId = std::array<uint8_t, kNcclIdBytes>;

// Whether NCCL can be used in this process; when not, *why (if given) says
// why, starting "NCCL unavailable: ". Opens libnccl.so.2 on the first call.
bool nccl_available(std::string* why);
// "NCCL 2.28.9" (the library's version), or the reason it is unavailable.
std::string nccl_describe();
// A new unique id (ncclGetUniqueId). Throws Error(device) when unavailable.
NcclId nccl_unique_id();
// This process's rank `rank` of a group of `size` that all use `id`, on
// backend's device and stream (backend must be a CUDA backend and outlive
// the result). Nonblocking init, bounded by timeout; throws Error(device)
// when unavailable or when NCCL fails, Error(io) when the group does not
// form within the timeout.
std::unique_ptr<Communicator> nccl_comm(const NcclId& id, int rank, int size, Backend& backend,
                                        std::chrono::milliseconds timeout);
// One process driving several GPUs: a group of backends.size() ranks, rank i
// on backends[i] (distinct devices; NCCL refuses two ranks on one device),
// initialised together (ncclGroupStart / ncclGroupEnd).
std::vector<std::unique_ptr<Communicator>> nccl_comm_group(std::span<Backend* const> backends,
                                                           std::chrono::milliseconds timeout);

// ---- bootstrap over a host communicator ---------------------------------------

// The id made by members[0] (make() runs there only), sent over host to the
// other members; every member returns it. host must be a host-memory
// communicator; every member calls this with the same members. Not the
// caller's rank among members: Error(internal).
NcclId share_nccl_id(Communicator& host, std::span<const int> members, const std::function<NcclId()>& make);

// The NCCL communicator of members (ranks of host; this process among them)
// on backend: the id from members[0] over host, then nccl_comm.
std::unique_ptr<Communicator> connect_nccl(Communicator& host, std::span<const int> members, Backend& backend,
                                           std::chrono::milliseconds timeout);

}  // namespace paca
