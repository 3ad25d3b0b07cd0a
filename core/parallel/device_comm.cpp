// device_comm.cpp - StagedComm and the NCCL id bootstrap (see device_comm.h).
#include "parallel/device_comm.h"

#include <algorithm>

#include "util/error.h"

namespace paca {

void StagedComm::all_reduce_sum(float* data, size_t n) {
  a_.resize(n);
  be_.to_host(data, a_.data(), n);
  host_.all_reduce_sum(a_.data(), n);
  be_.copy(data, a_.data(), n * sizeof(float));
}

void StagedComm::all_gather(const float* in, size_t n, float* out) {
  const size_t total = n * static_cast<size_t>(size());
  a_.resize(n);
  b_.resize(total);
  be_.to_host(in, a_.data(), n);
  host_.all_gather(a_.data(), n, b_.data());
  be_.copy(out, b_.data(), total * sizeof(float));
}

void StagedComm::send(const float* data, size_t n, int dst) {
  a_.resize(n);
  be_.to_host(data, a_.data(), n);
  host_.send(a_.data(), n, dst);
}

void StagedComm::recv(float* data, size_t n, int src) {
  a_.resize(n);
  host_.recv(a_.data(), n, src);
  be_.copy(data, a_.data(), n * sizeof(float));
}

NcclId share_nccl_id(Communicator& host, std::span<const int> members, const std::function<NcclId()>& make) {
  check(!members.empty(), Status::internal, "an NCCL group without members");
  const auto me = std::find(members.begin(), members.end(), host.rank());
  check(me != members.end(), Status::internal, "rank {} shares an NCCL id of a group it is not in", host.rank());
  // one float per byte (0..255): exact over every communicator
  std::array<float, kNcclIdBytes> wire{};
  NcclId id{};
  if (me == members.begin()) {
    try {
      id = make();
    } catch (...) {
      // tell the others at once (byte 0 = -1) rather than let them time out
      wire.fill(-1.0f);
      try {
        for (auto m = members.begin() + 1; m != members.end(); ++m) host.send(wire.data(), wire.size(), *m);
      } catch (const Error&) {
        // the first error is the one to report
      }
      throw;
    }
    for (size_t i = 0; i < kNcclIdBytes; ++i) wire[i] = static_cast<float>(id[i]);
    for (auto m = members.begin() + 1; m != members.end(); ++m) host.send(wire.data(), wire.size(), *m);
    return id;
  }
  host.recv(wire.data(), wire.size(), members.front());
  check(wire[0] != -1.0f, Status::device, "rank {} could not make the NCCL id (see its error)", members.front());
  for (size_t i = 0; i < kNcclIdBytes; ++i) {
    const float v = wire[i];
    check(v >= 0.0f && v <= 255.0f && v == static_cast<float>(static_cast<int>(v)), Status::io,
          "rank {} sent a malformed NCCL id (byte {} is {})", members.front(), i, v);
    id[i] = static_cast<uint8_t>(v);
  }
  return id;
}

std::unique_ptr<Communicator> connect_nccl(Communicator& host, std::span<const int> members, Backend& backend,
                                           std::chrono::milliseconds timeout) {
  const NcclId id = share_nccl_id(host, members, [] { return nccl_unique_id(); });
  const int rank = static_cast<int>(std::find(members.begin(), members.end(), host.rank()) - members.begin());
  return nccl_comm(id, rank, static_cast<int>(members.size()), backend, timeout);
}

}  // namespace paca
