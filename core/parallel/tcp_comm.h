// tcp_comm.h - the TCP rendezvous and a communicator over TCP sockets.
//
// Rendezvous: rank 0 listens on host:port, every other rank connects (with
// retries until the timeout) and sends its rank, the world size and a small
// blob; rank 0 answers everyone with the table of all ranks' blobs, each
// with the address rank 0 saw it connect from, and a random group id. It is
// the bootstrap of TcpComm (the blob is the port of each rank's listener) and
// can carry any other small bootstrap datum (e.g. an NCCL unique id in rank
// 0's blob). Every byte read from a socket is checked (magic, version,
// lengths, ranks) before it is used.
//
// TcpComm: a full mesh of connections built from that table (rank i connects
// to every lower rank, and accepts every higher one). Messages are framed
// with their length; while a rank waits to send or to receive it keeps
// reading whatever its peers send, so ranks that all send before they
// receive never block each other. A peer that closes its connection (it
// exited or was killed) is an immediate Error(io) naming it; a peer that
// stops answering is an Error(io) after the timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parallel/comm.h"
#include "parallel/world.h"

namespace paca {

struct RendezvousPeer {
  std::string address;  // numeric address rank 0 saw the rank connect from ("" for rank 0 itself)
  std::string blob;
};
struct RendezvousResult {
  uint64_t group_id = 0;
  std::vector<RendezvousPeer> peers;  // indexed by rank
};

// Blobs are at most kMaxRendezvousBlob bytes.
inline constexpr size_t kMaxRendezvousBlob = 4096;
RendezvousResult rendezvous(const WorldOptions& w, const std::string& blob);

std::unique_ptr<Communicator> tcp_connect_world(const WorldOptions& w);

}  // namespace paca
