// world.cpp - joining a multi-process group (see world.h).
#include "parallel/world.h"

#include <cstdlib>
#include <string_view>

#include "parallel/tcp_comm.h"
#include "util/error.h"

#if PACA_HAVE_MPI
#include "parallel/mpi_comm.h"
#endif

namespace paca {

namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return -1;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return (*end == '\0' && x >= 0 && x <= 1 << 20) ? static_cast<int>(x) : -1;
}

}  // namespace

bool mpi_built() { return PACA_HAVE_MPI != 0; }
int launcher_rank() { return env_int("OMPI_COMM_WORLD_RANK"); }
int launcher_size() { return env_int("OMPI_COMM_WORLD_SIZE"); }
bool mpi_launched() { return launcher_rank() >= 0 && launcher_size() >= 1; }

HostPort parse_host_port(const std::string& s) {
  const size_t colon = s.rfind(':');
  check(colon != std::string::npos && colon > 0 && colon + 1 < s.size() && s.size() <= 300, Status::invalid_argument,
        "rendezvous '{}' is not host:port", s);
  HostPort hp;
  hp.host = s.substr(0, colon);
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') hp.host = hp.host.substr(1, hp.host.size() - 2);
  const std::string port = s.substr(colon + 1);
  check(port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos, Status::invalid_argument,
        "rendezvous '{}': the port '{}' is not a number", s, port);
  hp.port = std::stoi(port);
  check(hp.port >= 1 && hp.port <= 65535, Status::invalid_argument, "rendezvous '{}': port {} outside 1..65535", s, hp.port);
  for (char c : hp.host)
    check(c > ' ' && c < 127, Status::invalid_argument, "rendezvous '{}': the host has a control or non-ASCII character", s);
  return hp;
}

void check_parallel_options(int tp, int pp, const WorldOptions& w) {
  check(tp >= 1 && tp <= 1024, Status::invalid_argument, "tensor parallel {} outside 1..1024", tp);
  check(pp >= 1 && pp <= 1024, Status::invalid_argument, "pipeline parallel {} outside 1..1024", pp);
  check(tp * pp <= 1024, Status::invalid_argument, "tensor parallel {} x pipeline parallel {} exceeds 1024 ranks", tp, pp);
  check(w.size >= 1 && w.size <= 1024, Status::invalid_argument, "world size {} outside 1..1024", w.size);
  check(w.timeout.count() >= 1 && w.timeout.count() <= 24LL * 3600 * 1000, Status::invalid_argument,
        "collective timeout {} ms outside 1 ms..24 h", w.timeout.count());
  if (w.size == 1) {
    check(w.rank <= 0, Status::invalid_argument, "rank {} given without a world size > 1", w.rank);
    check(w.rendezvous.empty(), Status::invalid_argument, "a rendezvous needs a world size > 1");
    return;
  }
  check(w.size == tp * pp, Status::invalid_argument,
        "world size {} must equal tensor parallel {} x pipeline parallel {} (one rank per process)", w.size, tp, pp);
  check(w.rank >= -1 && w.rank < w.size, Status::invalid_argument, "rank {} outside a world of {}", w.rank, w.size);
  if (!w.rendezvous.empty()) {
    parse_host_port(w.rendezvous);
    check(w.rank >= 0, Status::invalid_argument, "a TCP rendezvous needs this process's rank (0..{})", w.size - 1);
  }
}

std::unique_ptr<Communicator> connect_world(const WorldOptions& w) {
  check(w.size > 1, Status::internal, "connect_world for a single process");
  if (!w.rendezvous.empty()) return tcp_connect_world(w);
#if PACA_HAVE_MPI
  check(mpi_launched(), Status::unsupported,
        "a world of {} processes needs a rendezvous (host:port) or a start by mpirun (OMPI_COMM_WORLD_RANK is not set)",
        w.size);
  return mpi_connect_world(w);
#else
  fail(Status::unsupported, "a world of {} processes needs a rendezvous (host:port): this build of paca has no MPI",
       w.size);
#endif
}

}  // namespace paca
