// world.h - how a process joins a multi-process group of ranks: the options
// (rank, size, rendezvous, timeout), their validation, and connect_world,
// which picks the communicator: TcpComm when a rendezvous "host:port" is
// given, else MpiComm when paca was built with MPI and the process was
// started by mpirun.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "parallel/comm.h"

namespace paca {

struct WorldOptions {
  int rank = -1;           // this process's rank; -1: from the launcher (mpirun's environment)
  int size = 1;            // processes in the group; 1: this process alone
  std::string rendezvous;  // "host:port" of rank 0's TCP rendezvous; "": MPI
  std::chrono::milliseconds timeout{60000};  // connecting, collectives, messages
};

// Throws Error(invalid_argument) naming the first problem: tp or pp outside
// 1..1024, a size outside 1..1024, a multi-process size other than tp * pp,
// a rank outside the group, a rendezvous that is not host:port, a timeout
// outside 1 ms..24 h.
void check_parallel_options(int tp, int pp, const WorldOptions& w);

// Joins the group (w.size > 1). Throws Error(io) when the peers do not all
// arrive within the timeout, Error(unsupported) when MPI is needed but paca
// was built without it or the process was not started by mpirun.
std::unique_ptr<Communicator> connect_world(const WorldOptions& w);

// Whether this build has MpiComm, and whether this process was started by an
// MPI launcher (and so may use it); the launcher's rank and size, -1 when
// there is none.
bool mpi_built();
bool mpi_launched();
int launcher_rank();
int launcher_size();

// "host:port" -> host, port (1..65535); throws Error(invalid_argument).
struct HostPort {
  std::string host;
  int port = 0;
};
HostPort parse_host_port(const std::string& s);

}  // namespace paca
