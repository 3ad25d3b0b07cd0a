// no_nccl.cpp - the NCCL functions of parallel/device_comm.h for a build
// without NCCL support: without the CUDA backend (PACA_CUDA=OFF or no nvcc),
// or with it but without nccl.h at build time. NCCL is then unavailable:
// every function throws Error(device) "NCCL unavailable: ..." (after the
// parameter checks every build makes).
#include "parallel/device_comm.h"
#include "util/error.h"

#ifndef PACA_NO_NCCL_REASON
#define PACA_NO_NCCL_REASON "this build of paca has no CUDA backend (built with PACA_CUDA=OFF or without nvcc)"
#endif

namespace paca {

namespace {
constexpr const char* kWhy = "NCCL unavailable: " PACA_NO_NCCL_REASON;
}  // namespace

bool nccl_available(std::string* why) {
  if (why != nullptr) *why = kWhy;
  return false;
}

std::string nccl_describe() { return kWhy; }

NcclId nccl_unique_id() { fail(Status::device, "{}", kWhy); }

std::unique_ptr<Communicator> nccl_comm(const NcclId&, int rank, int size, Backend&, std::chrono::milliseconds) {
  check(size >= 1 && size <= 1024, Status::invalid_argument, "an NCCL group needs 1..1024 ranks, not {}", size);
  check(rank >= 0 && rank < size, Status::invalid_argument, "NCCL rank {} outside a group of {}", rank, size);
  fail(Status::device, "{}", kWhy);
}

std::vector<std::unique_ptr<Communicator>> nccl_comm_group(std::span<Backend* const> backends,
                                                           std::chrono::milliseconds) {
  check(!backends.empty() && backends.size() <= 1024, Status::invalid_argument,
        "an NCCL group needs 1..1024 ranks, not {}", backends.size());
  fail(Status::device, "{}", kWhy);
}

}  // namespace paca
