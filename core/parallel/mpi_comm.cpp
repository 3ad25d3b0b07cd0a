// mpi_comm.cpp - MpiComm (see mpi_comm.h).
#include "parallel/mpi_comm.h"

// the C API only: OpenMPI's mpi.h otherwise pulls in its deprecated C++ bindings
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <chrono>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "util/error.h"

namespace paca {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kTag = 0x7aca;

std::string mpi_error(int rc) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(msg, static_cast<size_t>(len));
}

void check_mpi(int rc, const std::string& what) {
  if (rc != MPI_SUCCESS) fail(Status::io, "{}: {}", what, mpi_error(rc));
}

// Initialises MPI on first use; finalises it when the process exits.
class MpiRuntime {
 public:
  static MpiRuntime& get() {
    static MpiRuntime rt;
    return rt;
  }
  ~MpiRuntime() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (initialized_ && !finalized) MPI_Finalize();
  }

 private:
  MpiRuntime() {
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
      initialized_ = true;
      check(provided >= MPI_THREAD_SERIALIZED, Status::unsupported, "the MPI library gives thread level {}, paca needs {}",
            provided, MPI_THREAD_SERIALIZED);
    }
    check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  }
  bool initialized_ = false;
};

class MpiComm final : public PointToPointComm {
 public:
  MpiComm(MPI_Comm comm, std::chrono::milliseconds timeout) : comm_(comm), timeout_(timeout) {
    check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;  // a model still alive at exit, after MPI was shut down
    // give sends in flight a bounded chance to finish, then let them go
    try {
      progress_sends(Clock::now() + std::min<std::chrono::milliseconds>(timeout_, std::chrono::seconds(5)));
    } catch (...) {
    }
    for (Pending& p : pending_) MPI_Request_free(&p.req);
    MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void send(const float* data, size_t n, int dst) override {
    check(dst >= 0 && dst < size_ && dst != rank_, Status::invalid_argument, "rank {}: send to rank {}", rank_, dst);
    check(n <= static_cast<size_t>(INT32_MAX), Status::invalid_argument, "message of {} floats is too large for MPI", n);
    pending_.emplace_back();
    Pending& p = pending_.back();
    p.data.assign(data, data + n);
    p.dst = dst;
    const int rc = MPI_Isend(p.data.data(), static_cast<int>(n), MPI_FLOAT, dst, kTag, comm_, &p.req);
    if (rc != MPI_SUCCESS) {
      pending_.pop_back();
      fail(Status::io, "rank {}: MPI_Isend to rank {}: {}", rank_, dst, mpi_error(rc));
    }
    test_sends();
    // bound the memory held by sends nobody receives
    if (pending_.size() > 64) progress_sends(Clock::now() + timeout_);
  }

  void recv(float* data, size_t n, int src) override {
    check(src >= 0 && src < size_ && src != rank_, Status::invalid_argument, "rank {}: receive from rank {}", rank_, src);
    check(n <= static_cast<size_t>(INT32_MAX), Status::invalid_argument, "message of {} floats is too large for MPI", n);
    MPI_Request req;
    check_mpi(MPI_Irecv(data, static_cast<int>(n), MPI_FLOAT, src, kTag, comm_, &req),
              fmt::format("rank {}: MPI_Irecv from rank {}", rank_, src));
    MPI_Status st;
    if (!wait(req, st, Clock::now() + timeout_)) {
      MPI_Cancel(&req);
      MPI_Request_free(&req);
      fail(Status::io, "rank {}: nothing from rank {} within {} ms (it died or stopped answering)", rank_, src,
           timeout_.count());
    }
    int count = 0;
    MPI_Get_count(&st, MPI_FLOAT, &count);
    check(static_cast<size_t>(count) == n, Status::io, "rank {}: rank {} sent {} floats, {} expected", rank_, src, count, n);
  }

 private:
  struct Pending {
    std::vector<float> data;
    MPI_Request req = MPI_REQUEST_NULL;
    int dst = 0;
  };

  // Polls req until it completes (true) or the deadline passes (false),
  // making progress on pending sends meanwhile.
  bool wait(MPI_Request& req, MPI_Status& st, Clock::time_point deadline) {
    for (int spins = 0;; ++spins) {
      int done = 0;
      const int rc = MPI_Test(&req, &done, &st);
      if (rc != MPI_SUCCESS) fail(Status::io, "rank {}: MPI_Test: {}", rank_, mpi_error(rc));
      if (done) return true;
      test_sends();
      if (Clock::now() >= deadline) return false;
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  void test_sends() {
    for (auto it = pending_.begin(); it != pending_.end();) {
      int done = 0;
      const int rc = MPI_Test(&it->req, &done, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) fail(Status::io, "rank {}: send to rank {} failed: {}", rank_, it->dst, mpi_error(rc));
      it = done ? pending_.erase(it) : std::next(it);
    }
  }

  void progress_sends(Clock::time_point deadline) {
    while (!pending_.empty()) {
      test_sends();
      if (pending_.empty()) return;
      if (Clock::now() >= deadline)
        fail(Status::io, "rank {}: rank {} did not take a message within {} ms (it died or stopped answering)", rank_,
             pending_.front().dst, timeout_.count());
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  MPI_Comm comm_;
  std::chrono::milliseconds timeout_;
  int rank_ = 0, size_ = 1;
  std::list<Pending> pending_;  // list: the buffers must not move while MPI reads them
};

}  // namespace

std::unique_ptr<Communicator> mpi_connect_world(const WorldOptions& w) {
  MpiRuntime::get();
  int rank = 0, size = 0;
  check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size");
  check(size == w.size, Status::invalid_argument, "mpirun started {} processes, the world size is {}", size, w.size);
  check(w.rank < 0 || w.rank == rank, Status::invalid_argument, "rank {} given, but mpirun made this process rank {}",
        w.rank, rank);
  MPI_Comm comm;
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  auto c = std::make_unique<MpiComm>(comm, w.timeout);
  // every rank is up before the first message (bounded: a rank that never came up is an error)
  MPI_Request req;
  check_mpi(MPI_Ibarrier(comm, &req), "MPI_Ibarrier");
  const auto deadline = Clock::now() + w.timeout;
  for (;;) {
    int done = 0;
    check_mpi(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) break;
    if (Clock::now() >= deadline) fail(Status::io, "rank {}: not every rank joined within {} ms", rank, w.timeout.count());
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return c;
}

}  // namespace paca
