// nccl_comm.cpp - NcclComm: a Communicator over NCCL on a CUDA backend's
// stream, and the core's NCCL functions (parallel/device_comm.h). nccl.h
// supplies the types and the prototypes only; every entry point is looked up
// with dlsym in libnccl.so.2, opened on first use.
//
// Every communicator is nonblocking (ncclConfig_t.blocking = 0): an NCCL call
// may return ncclInProgress, and then ncclCommGetAsyncError is polled until
// it settles. After enqueueing a collective or a message, the call polls the
// stream (cudaStreamQuery) and the communicator's async error until the work
// is done or comm_timeout_ms has passed; then the communicator is aborted
// (ncclCommAbort, which also stops NCCL kernels still waiting for a peer) and
// the call throws Error(io). An aborted communicator refuses every later call.
// Waiting for each call costs one host synchronisation per collective (two
// per layer in tensor parallel); waiting once per step instead needs the
// backend's own waits to honour the deadline (design-notes.md).
#include "nccl_comm.h"

#include <cuda_runtime_api.h>  // cudaSetDevice, cudaStreamQuery, cudaMalloc
#include <dlfcn.h>             // dlopen, dlsym
#include <nccl.h>              // nccl* types and prototypes (no link dependency)

#include <algorithm>    // std::min
#include <chrono>       // deadlines
#include <cstdlib>      // std::getenv
#include <cstring>      // std::memcpy
#include <mutex>        // std::call_once
#include <thread>       // std::this_thread
#include <type_traits>  // std::remove_reference_t
#include <vector>       // std::vector

#include "cuda_backend.h"           // cuda_stream_of
#include "parallel/device_comm.h"   // the functions defined here
#include "util/error.h"             // fail, check, Status

namespace paca::cuda {

struct NcclApi {
  decltype(&ncclGetVersion) get_version = nullptr;
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRankConfig) init_rank_config = nullptr;
  decltype(&ncclCommGetAsyncError) get_async_error = nullptr;
  decltype(&ncclCommFinalize) finalize = nullptr;
  decltype(&ncclCommDestroy) destroy = nullptr;
  decltype(&ncclCommAbort) abort = nullptr;
  decltype(&ncclGroupStart) group_start = nullptr;
  decltype(&ncclGroupEnd) group_end = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclAllGather) all_gather = nullptr;
  decltype(&ncclSend) send = nullptr;
  decltype(&ncclRecv) recv = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  decltype(&ncclGetLastError) last_error = nullptr;
};

std::string nccl_version_text(int code) {
  // NCCL_VERSION(X, Y, Z): X * 1000 + Y * 100 + Z up to 2.8, X * 10000 + Y * 100 + Z after
  const int major = code >= 10000 ? code / 10000 : code / 1000;
  const int minor = code >= 10000 ? code / 100 % 100 : code / 100 % 10;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(code % 100);
}

NcclLibrary open_nccl(std::span<const char* const> names) {
  NcclLibrary out;
  if (names.empty()) {
    out.why = "NCCL unavailable: no library name to open";
    return out;
  }
  std::string tried;
  for (const char* name : names) {
    if (name == nullptr || *name == '\0') continue;
    void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = dlerror();
      tried += std::string(tried.empty() ? "" : "; ") + "cannot open " + name + ": " + (e != nullptr ? e : "unknown error");
      continue;
    }
    auto* api = new NcclApi;  // one per opened library, never freed (like the library)
    std::string missing;
    auto get = [&](auto& fn, const char* sym) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, sym));
      if (fn == nullptr && missing.empty()) missing = sym;
    };
    get(api->get_version, "ncclGetVersion");
    get(api->get_unique_id, "ncclGetUniqueId");
    get(api->init_rank_config, "ncclCommInitRankConfig");
    get(api->get_async_error, "ncclCommGetAsyncError");
    get(api->finalize, "ncclCommFinalize");
    get(api->destroy, "ncclCommDestroy");
    get(api->abort, "ncclCommAbort");
    get(api->group_start, "ncclGroupStart");
    get(api->group_end, "ncclGroupEnd");
    get(api->all_reduce, "ncclAllReduce");
    get(api->all_gather, "ncclAllGather");
    get(api->send, "ncclSend");
    get(api->recv, "ncclRecv");
    get(api->error_string, "ncclGetErrorString");
    get(api->last_error, "ncclGetLastError");
    if (!missing.empty()) {
      delete api;
      tried += std::string(tried.empty() ? "" : "; ") + name + " lacks " + missing + " (NCCL 2.14 or newer is needed)";
      continue;
    }
    int version = 0;
    if (api->get_version(&version) != ncclSuccess || version < 21400) {
      delete api;
      tried += std::string(tried.empty() ? "" : "; ") + name + " is NCCL " + nccl_version_text(version) +
               " (2.14 or newer is needed for nonblocking communicators)";
      continue;
    }
    out.api = api;
    out.version = version;
    return out;
  }
  out.why = "NCCL unavailable: " + (tried.empty() ? std::string("no library name to open") : tried);
  return out;
}

const NcclLibrary& nccl_library() {
  static NcclLibrary lib;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("PACA_NCCL_LIBRARY");
    if (env != nullptr && *env != '\0') {
      const char* names[] = {env};
      lib = open_nccl(names);
    } else {
      const char* names[] = {"libnccl.so.2", "libnccl.so"};
      lib = open_nccl(names);
    }
  });
  return lib;
}

namespace {

using Clock = std::chrono::steady_clock;

const NcclApi& api_or_fail() {
  const NcclLibrary& lib = nccl_library();
  if (lib.api == nullptr) fail(Status::device, "{}", lib.why);
  return *lib.api;
}

std::string cuda_text(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

// Polls: yields for the first 200 us, then sleeps 50 us at a time.
void pause_since(Clock::time_point t0) {
  if (Clock::now() - t0 < std::chrono::microseconds(200))
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(std::chrono::microseconds(50));
}

class NcclComm final : public Communicator {
 public:
  NcclComm(const NcclApi& api, ncclComm_t comm, int rank, int size, int device, cudaStream_t stream,
           std::chrono::milliseconds timeout)
      : api_(api), comm_(comm), rank_(rank), size_(size), dev_(device), stream_(stream), timeout_(timeout) {}

  ~NcclComm() override {
    if (scratch_ != nullptr) {
      cudaSetDevice(dev_);
      cudaFree(scratch_);
    }
    if (comm_ == nullptr) return;
    // A healthy communicator is finalised (bounded wait) and destroyed; one
    // that does not settle in time is aborted, so a destructor never hangs.
    const auto deadline = Clock::now() + std::min<std::chrono::milliseconds>(timeout_, std::chrono::seconds(10));
    ncclResult_t r = api_.finalize(comm_);
    const auto t0 = Clock::now();
    while (r == ncclInProgress && Clock::now() < deadline) {
      pause_since(t0);
      if (api_.get_async_error(comm_, &r) != ncclSuccess) r = ncclInternalError;
    }
    if (r == ncclSuccess)
      api_.destroy(comm_);
    else
      api_.abort(comm_);
    (void)cudaGetLastError();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  // Waits for a call's ncclInProgress to settle (init, or any call on a
  // nonblocking communicator); aborts and throws on error or timeout.
  void settle(ncclResult_t r, const char* what, Clock::time_point deadline) {
    const auto t0 = Clock::now();
    while (r == ncclInProgress) {
      if (Clock::now() > deadline)
        abort_and_fail(Status::io, fmt::format("NCCL {} on cuda:{} (rank {} of {}) did not finish within {} ms: a peer "
                                               "is missing or stalled; the communicator was aborted",
                                               what, dev_, rank_, size_, timeout_.count()));
      pause_since(t0);
      ncclResult_t state = ncclSuccess;
      const ncclResult_t q = api_.get_async_error(comm_, &state);
      r = q != ncclSuccess ? q : state;
    }
    if (r != ncclSuccess) abort_and_fail(Status::device, describe(r, what));
  }

  void all_reduce_sum(float* data, size_t n) override {
    begin("all_reduce");
    const auto deadline = Clock::now() + timeout_;
    settle(api_.all_reduce(data, data, n, ncclFloat32, ncclSum, comm_, stream_), "all_reduce", deadline);
    complete("all_reduce", deadline);
  }

  void all_gather(const float* in, size_t n, float* out) override {
    begin("all_gather");
    const auto deadline = Clock::now() + timeout_;
    settle(api_.all_gather(in, out, n, ncclFloat32, comm_, stream_), "all_gather", deadline);
    complete("all_gather", deadline);
  }

  // NCCL cannot check that a message has the size the receiver expects: a
  // mismatch stalls both sides until the timeout.
  void send(const float* data, size_t n, int dst) override {
    check(dst >= 0 && dst < size_ && dst != rank_, Status::invalid_argument, "send to {}: not another rank of a group of {}",
          dst, size_);
    begin("send");
    const auto deadline = Clock::now() + timeout_;
    settle(api_.send(data, n, ncclFloat32, dst, comm_, stream_), "send", deadline);
    complete("send", deadline);
  }

  void recv(float* data, size_t n, int src) override {
    check(src >= 0 && src < size_ && src != rank_, Status::invalid_argument,
          "receive from {}: not another rank of a group of {}", src, size_);
    begin("recv");
    const auto deadline = Clock::now() + timeout_;
    settle(api_.recv(data, n, ncclFloat32, src, comm_, stream_), "recv", deadline);
    complete("recv", deadline);
  }

  void barrier() override {
    begin("barrier");
    if (scratch_ == nullptr) {
      const cudaError_t e = cudaMalloc(&scratch_, sizeof(float));
      if (e != cudaSuccess) {
        (void)cudaGetLastError();
        scratch_ = nullptr;
        fail(Status::device, "NCCL barrier on cuda:{}: cannot allocate its scratch float: {}", dev_, cuda_text(e));
      }
    }
    const auto deadline = Clock::now() + timeout_;
    settle(api_.all_reduce(scratch_, scratch_, 1, ncclFloat32, ncclSum, comm_, stream_), "barrier", deadline);
    complete("barrier", deadline);
  }

 private:
  void begin(const char* what) {
    if (comm_ == nullptr) fail(Status::io, "NCCL {} on cuda:{}: the communicator was aborted earlier ({})", what, dev_, broken_);
    const cudaError_t e = cudaSetDevice(dev_);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      fail(Status::device, "NCCL {}: cudaSetDevice({}) failed: {}", what, dev_, cuda_text(e));
    }
  }

  // Polls the stream until the enqueued work is done.
  void complete(const char* what, Clock::time_point deadline) {
    const auto t0 = Clock::now();
    for (;;) {
      const cudaError_t e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) {
        (void)cudaGetLastError();
        abort_and_fail(Status::device, fmt::format("NCCL {} on cuda:{}: the stream failed: {}", what, dev_, cuda_text(e)));
      }
      ncclResult_t state = ncclSuccess;
      if (api_.get_async_error(comm_, &state) == ncclSuccess && state != ncclSuccess && state != ncclInProgress)
        abort_and_fail(Status::io, describe(state, what));
      if (Clock::now() > deadline)
        abort_and_fail(Status::io, fmt::format("NCCL {} on cuda:{} (rank {} of {}) did not complete within {} ms: a "
                                               "peer is lost or stalled; the communicator was aborted",
                                               what, dev_, rank_, size_, timeout_.count()));
      pause_since(t0);
    }
  }

  std::string describe(ncclResult_t r, const char* what) const {
    std::string s = fmt::format("NCCL {} on cuda:{} (rank {} of {}) failed: {}", what, dev_, rank_, size_,
                                api_.error_string(r));
    const char* last = api_.last_error(comm_);
    if (last != nullptr && *last != '\0') s += std::string(" (") + last + ")";
    return s;
  }

  [[noreturn]] void abort_and_fail(Status st, const std::string& msg) {
    if (comm_ != nullptr) {
      api_.abort(comm_);
      comm_ = nullptr;
    }
    broken_ = msg;
    fail(st, "{}", msg);
  }

  const NcclApi& api_;
  ncclComm_t comm_;
  int rank_, size_, dev_;
  cudaStream_t stream_;
  std::chrono::milliseconds timeout_;
  void* scratch_ = nullptr;
  std::string broken_;
};

struct RankDevice {
  cudaStream_t stream = nullptr;
  int device = 0;
};

RankDevice device_of(Backend& be) {
  RankDevice d;
  check(cuda_stream_of(be, &d.stream, &d.device), Status::invalid_argument,
        "NCCL ranks need a CUDA backend, not '{}'", be.name());
  return d;
}

void check_timeout(std::chrono::milliseconds timeout) {
  check(timeout.count() >= 1 && timeout.count() <= 24LL * 3600 * 1000, Status::invalid_argument,
        "NCCL timeout {} ms outside 1 ms..24 h", timeout.count());
}

ncclConfig_t nonblocking_config() {
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;
  return cfg;
}

ncclUniqueId to_nccl(const NcclId& id) {
  ncclUniqueId u;
  static_assert(sizeof u.internal == kNcclIdBytes, "NCCL_UNIQUE_ID_BYTES changed");
  std::memcpy(u.internal, id.data(), kNcclIdBytes);
  return u;
}

void set_device(int dev) {
  const cudaError_t e = cudaSetDevice(dev);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    fail(Status::device, "NCCL: cudaSetDevice({}) failed: {}", dev, cuda_text(e));
  }
}

}  // namespace

}  // namespace paca::cuda

namespace paca {

using cuda::NcclLibrary;

bool nccl_available(std::string* why) {
  const NcclLibrary& lib = cuda::nccl_library();
  if (lib.api == nullptr && why != nullptr) *why = lib.why;
  return lib.api != nullptr;
}

std::string nccl_describe() {
  const NcclLibrary& lib = cuda::nccl_library();
  return lib.api != nullptr ? "NCCL " + cuda::nccl_version_text(lib.version) : lib.why;
}

NcclId nccl_unique_id() {
  const cuda::NcclApi& api = cuda::api_or_fail();
  ncclUniqueId u;
  const ncclResult_t r = api.get_unique_id(&u);
  if (r != ncclSuccess) {
    const char* last = api.last_error(nullptr);
    fail(Status::device, "NCCL ncclGetUniqueId failed: {}{}{}{}", api.error_string(r), last && *last ? " (" : "",
         last ? last : "", last && *last ? ")" : "");
  }
  NcclId id;
  std::memcpy(id.data(), u.internal, kNcclIdBytes);
  return id;
}

std::unique_ptr<Communicator> nccl_comm(const NcclId& id, int rank, int size, Backend& backend,
                                        std::chrono::milliseconds timeout) {
  check(size >= 1 && size <= 1024, Status::invalid_argument, "an NCCL group needs 1..1024 ranks, not {}", size);
  check(rank >= 0 && rank < size, Status::invalid_argument, "NCCL rank {} outside a group of {}", rank, size);
  cuda::check_timeout(timeout);
  const cuda::RankDevice d = cuda::device_of(backend);
  const cuda::NcclApi& api = cuda::api_or_fail();
  const auto deadline = cuda::Clock::now() + timeout;
  cuda::set_device(d.device);
  ncclConfig_t cfg = cuda::nonblocking_config();
  ncclComm_t c = nullptr;
  const ncclResult_t r = api.init_rank_config(&c, size, cuda::to_nccl(id), rank, &cfg);
  if (c == nullptr) {
    const char* last = api.last_error(nullptr);
    fail(Status::device, "NCCL ncclCommInitRankConfig on cuda:{} (rank {} of {}) failed: {}{}{}", d.device, rank, size,
         api.error_string(r), last && *last ? ": " : "", last ? last : "");
  }
  auto comm = std::make_unique<cuda::NcclComm>(api, c, rank, size, d.device, d.stream, timeout);
  comm->settle(r, "ncclCommInitRankConfig", deadline);
  return comm;
}

std::vector<std::unique_ptr<Communicator>> nccl_comm_group(std::span<Backend* const> backends,
                                                           std::chrono::milliseconds timeout) {
  const int n = static_cast<int>(backends.size());
  check(n >= 1 && n <= 1024, Status::invalid_argument, "an NCCL group needs 1..1024 ranks, not {}", n);
  cuda::check_timeout(timeout);
  std::vector<cuda::RankDevice> devs;
  for (Backend* be : backends) {
    check(be != nullptr, Status::invalid_argument, "an NCCL group with a null backend");
    devs.push_back(cuda::device_of(*be));
    for (size_t j = 0; j + 1 < devs.size(); ++j)
      check(devs[j].device != devs.back().device, Status::invalid_argument,
            "NCCL needs one GPU per rank: ranks {} and {} are both on cuda:{} (ranks sharing a GPU use host staging)", j,
            devs.size() - 1, devs.back().device);
  }
  const cuda::NcclApi& api = cuda::api_or_fail();
  const NcclId id = nccl_unique_id();
  const ncclUniqueId uid = cuda::to_nccl(id);
  const auto deadline = cuda::Clock::now() + timeout;
  std::vector<ncclComm_t> cs(static_cast<size_t>(n), nullptr);
  std::vector<ncclResult_t> rs(static_cast<size_t>(n), ncclSuccess);
  ncclConfig_t cfg = cuda::nonblocking_config();
  ncclResult_t r = api.group_start();
  if (r == ncclSuccess) {
    for (int i = 0; i < n; ++i) {
      const cudaError_t e = cudaSetDevice(devs[static_cast<size_t>(i)].device);
      if (e != cudaSuccess) {
        (void)cudaGetLastError();
        rs[static_cast<size_t>(i)] = ncclUnhandledCudaError;
        continue;
      }
      rs[static_cast<size_t>(i)] = api.init_rank_config(&cs[static_cast<size_t>(i)], n, uid, i, &cfg);
    }
    r = api.group_end();
  }
  // own every communicator that exists before anything can throw
  std::vector<std::unique_ptr<cuda::NcclComm>> comms;
  for (int i = 0; i < n; ++i)
    if (cs[static_cast<size_t>(i)] != nullptr)
      comms.push_back(std::make_unique<cuda::NcclComm>(api, cs[static_cast<size_t>(i)], i, n,
                                                       devs[static_cast<size_t>(i)].device,
                                                       devs[static_cast<size_t>(i)].stream, timeout));
  if (static_cast<int>(comms.size()) != n || (r != ncclSuccess && r != ncclInProgress)) {
    const char* last = api.last_error(nullptr);
    ncclResult_t first = r;
    for (ncclResult_t x : rs)
      if (x != ncclSuccess && x != ncclInProgress) first = x;
    fail(Status::device, "NCCL group init of {} rank(s) failed: {}{}{}", n, api.error_string(first),
         last && *last ? ": " : "", last ? last : "");
  }
  for (auto& c : comms) c->settle(ncclInProgress, "group init", deadline);
  std::vector<std::unique_ptr<Communicator>> out;
  for (auto& c : comms) out.push_back(std::move(c));
  return out;
}

}  // namespace paca
