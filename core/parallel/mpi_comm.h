// mpi_comm.h - a communicator over MPI (Debian's OpenMPI), one process per
// rank, started by mpirun. Built only with PACA_MPI (PACA_HAVE_MPI).
//
// MPI's blocking calls can wait forever for a peer that died, so every
// operation here is nonblocking (MPI_Isend / MPI_Irecv / MPI_Ibarrier),
// polled with MPI_Test until a deadline; errors are returned, not fatal
// (MPI_ERRORS_RETURN), and become Error(io). Sends copy their data and
// complete in the background (later calls make progress on them), so ranks
// that all send before they receive never block each other. Collectives are
// PointToPointComm's (rank-order sums, bit-identical to LocalGroup's).
//
// MPI is initialised once per process, on the first connect, and finalised
// at exit.
#pragma once

#include <memory>

#include "parallel/comm.h"
#include "parallel/world.h"

namespace paca {

std::unique_ptr<Communicator> mpi_connect_world(const WorldOptions& w);

}  // namespace paca
