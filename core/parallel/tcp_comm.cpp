// tcp_comm.cpp - the TCP rendezvous and TcpComm (see tcp_comm.h).
#include "parallel/tcp_comm.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <random>
#include <thread>

#include "util/error.h"

namespace paca {

namespace {

using Clock = std::chrono::steady_clock;
constexpr char kRendezvousMagic[8] = {'P', 'A', 'C', 'A', 'R', 'D', 'V', '1'};
constexpr char kMeshMagic[8] = {'P', 'A', 'C', 'A', 'M', 'S', 'H', '1'};
constexpr uint32_t kProtocolVersion = 1;
constexpr size_t kMaxAddress = 256;

// A file descriptor closed when it goes out of scope.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

[[noreturn]] void sys_fail(const std::string& what) { fail(Status::io, "{}: {}", what, std::strerror(errno)); }

int ms_left(Clock::time_point deadline) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(ms, 0, INT_MAX));
}

void set_nonblocking(int fd) {
  const int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) sys_fail("fcntl(O_NONBLOCK)");
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // latency only: failure is harmless
}

// Waits until fd has `events`; false at the deadline.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) sys_fail("poll");
  }
}

void write_all(int fd, const void* data, size_t n, Clock::time_point deadline, const std::string& what) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
    } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait_fd(fd, POLLOUT, deadline)) fail(Status::io, "{}: timed out while sending", what);
    } else if (k < 0 && errno != EINTR) {
      sys_fail(what);
    }
  }
}

void read_all(int fd, void* data, size_t n, Clock::time_point deadline, const std::string& what) {
  auto* p = static_cast<uint8_t*>(data);
  while (n > 0) {
    const ssize_t k = ::recv(fd, p, n, MSG_DONTWAIT);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
    } else if (k == 0) {
      fail(Status::io, "{}: the peer closed the connection", what);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!wait_fd(fd, POLLIN, deadline)) fail(Status::io, "{}: timed out while receiving", what);
    } else if (errno != EINTR) {
      sys_fail(what);
    }
  }
}

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
uint64_t get_u64(const uint8_t* p) { return get_u32(p) | static_cast<uint64_t>(get_u32(p + 4)) << 32; }

uint32_t read_u32(int fd, Clock::time_point deadline, const std::string& what) {
  uint8_t b[4];
  read_all(fd, b, 4, deadline, what);
  return get_u32(b);
}

std::string read_string(int fd, size_t max, Clock::time_point deadline, const std::string& what) {
  const uint32_t n = read_u32(fd, deadline, what);
  check(n <= max, Status::io, "{}: a field of {} bytes (at most {} allowed)", what, n, max);
  std::string s(n, '\0');
  read_all(fd, s.data(), n, deadline, what);
  return s;
}

struct AddrInfo {
  addrinfo* list = nullptr;
  ~AddrInfo() {
    if (list != nullptr) freeaddrinfo(list);
  }
};

void resolve(AddrInfo& out, const char* host, int port, int family, bool passive) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = (passive ? AI_PASSIVE : 0) | AI_NUMERICSERV;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host, service.c_str(), &hints, &out.list);
  check(rc == 0, Status::io, "cannot resolve '{}': {}", host != nullptr ? host : "*", gai_strerror(rc));
}

// A listening socket on host (nullptr: every address of `family`) and port
// (0: any free port).
Fd listen_on(const char* host, int port, int family, int backlog) {
  AddrInfo ai;
  resolve(ai, host, port, family, true);
  int last_errno = 0;
  for (addrinfo* a = ai.list; a != nullptr; a = a->ai_next) {
    Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (fd.get() < 0) {
      last_errno = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd.get(), backlog) == 0) {
      set_nonblocking(fd.get());
      return fd;
    }
    last_errno = errno;
  }
  errno = last_errno;
  sys_fail(fmt::format("cannot listen on {}:{}", host != nullptr ? host : "*", port));
}

// Connects to host:port, retrying while nobody listens yet, until the deadline.
Fd connect_retry(const std::string& host, int port, Clock::time_point deadline, const std::string& what) {
  std::string last = "no address";
  for (;;) {
    AddrInfo ai;
    resolve(ai, host.c_str(), port, AF_UNSPEC, false);
    for (addrinfo* a = ai.list; a != nullptr; a = a->ai_next) {
      Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
      if (fd.get() < 0) continue;
      set_nonblocking(fd.get());
      int rc = ::connect(fd.get(), a->ai_addr, a->ai_addrlen);
      if (rc < 0 && errno == EINPROGRESS) {
        if (wait_fd(fd.get(), POLLOUT, std::min(deadline, Clock::now() + std::chrono::seconds(2)))) {
          int err = 0;
          socklen_t len = sizeof err;
          getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
          rc = err == 0 ? 0 : -1;
          errno = err;
        } else {
          errno = ETIMEDOUT;
        }
      }
      if (rc == 0) {
        set_nodelay(fd.get());
        return fd;
      }
      last = std::strerror(errno);
    }
    if (Clock::now() >= deadline) fail(Status::io, "{}: cannot connect to {}:{} ({})", what, host, port, last);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100, ms_left(deadline))));
  }
}

std::string numeric_address(const sockaddr_storage& a, socklen_t len) {
  char host[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return "";
  return host;
}

int socket_family(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) sys_fail("getsockname");
  return a.ss_family;
}

int local_port(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) sys_fail("getsockname");
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
}

// Accepts one connection, or returns an invalid Fd at the deadline.
Fd accept_one(int listener, Clock::time_point deadline, std::string* peer_address) {
  while (wait_fd(listener, POLLIN, deadline)) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    const int c = ::accept4(listener, reinterpret_cast<sockaddr*>(&a), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) continue;  // the client gave up, or a signal: wait for the next one
    set_nodelay(c);
    if (peer_address != nullptr) *peer_address = numeric_address(a, len);
    return Fd(c);
  }
  return Fd();
}

// A stray connection (not a paca rank) gets this long to identify itself.
Clock::time_point hello_deadline(Clock::time_point deadline) {
  return std::min(deadline, Clock::now() + std::chrono::seconds(5));
}

// The rendezvous; make_blob gets the address family this rank reaches rank 0 with.
RendezvousResult rendezvous_with(const WorldOptions& w, const std::function<std::string(int family)>& make_blob,
                                 std::vector<Fd>* keep = nullptr) {
  const HostPort hp = parse_host_port(w.rendezvous);
  const auto deadline = Clock::now() + w.timeout;
  check(w.rank >= 0 && w.rank < w.size, Status::invalid_argument, "rendezvous: rank {} outside a world of {}", w.rank, w.size);
  RendezvousResult out;
  out.peers.resize(static_cast<size_t>(w.size));
  if (w.rank == 0) {
    Fd ls = listen_on(hp.host.c_str(), hp.port, AF_UNSPEC, w.size + 8);
    out.peers[0].blob = make_blob(socket_family(ls.get()));
    check(out.peers[0].blob.size() <= kMaxRendezvousBlob, Status::invalid_argument, "rendezvous blob over {} bytes",
          kMaxRendezvousBlob);
    std::vector<Fd> conns(static_cast<size_t>(w.size));
    for (int joined = 1; joined < w.size;) {
      std::string addr;
      Fd c = accept_one(ls.get(), deadline, &addr);
      if (c.get() < 0)
        fail(Status::io, "rendezvous on {}: {} of {} ranks arrived within {} ms", w.rendezvous, joined, w.size,
             w.timeout.count());
      char magic[8];
      uint8_t head[16];
      try {
        const auto hd = hello_deadline(deadline);
        read_all(c.get(), magic, 8, hd, "rendezvous");
        if (std::memcmp(magic, kRendezvousMagic, 8) != 0) continue;  // not a paca rank: drop it
        read_all(c.get(), head, sizeof head, hd, "rendezvous");
      } catch (const Error&) {
        continue;  // closed or silent: drop it
      }
      const uint32_t version = get_u32(head), rank = get_u32(head + 4), size = get_u32(head + 8),
                     blob_len = get_u32(head + 12);
      check(version == kProtocolVersion, Status::io, "rendezvous: a rank speaks protocol version {}, this one {}",
            version, kProtocolVersion);
      check(size == static_cast<uint32_t>(w.size), Status::invalid_argument,
            "rendezvous: a rank joined with world size {}, rank 0 has {}", size, w.size);
      check(rank >= 1 && rank < size, Status::io, "rendezvous: a peer claims rank {} in a world of {}", rank, size);
      check(conns[rank].get() < 0, Status::invalid_argument, "rendezvous: two processes claim rank {}", rank);
      check(blob_len <= kMaxRendezvousBlob, Status::io, "rendezvous: rank {} sent a blob of {} bytes (at most {})", rank,
            blob_len, kMaxRendezvousBlob);
      std::string blob(blob_len, '\0');
      read_all(c.get(), blob.data(), blob_len, deadline, fmt::format("rendezvous with rank {}", rank));
      out.peers[rank] = {addr, std::move(blob)};
      conns[rank] = std::move(c);
      ++joined;
    }
    std::random_device rd;
    out.group_id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    std::string reply(kRendezvousMagic, 8);
    put_u32(reply, kProtocolVersion);
    put_u64(reply, out.group_id);
    put_u32(reply, static_cast<uint32_t>(w.size));
    for (const RendezvousPeer& p : out.peers) {
      put_u32(reply, static_cast<uint32_t>(p.address.size()));
      reply += p.address;
      put_u32(reply, static_cast<uint32_t>(p.blob.size()));
      reply += p.blob;
    }
    for (int r = 1; r < w.size; ++r)
      write_all(conns[static_cast<size_t>(r)].get(), reply.data(), reply.size(), deadline, fmt::format("rendezvous with rank {}", r));
    if (keep != nullptr) *keep = std::move(conns);
    return out;
  }
  Fd c = connect_retry(hp.host, hp.port, deadline, fmt::format("rank {}: rendezvous", w.rank));
  const std::string blob = make_blob(socket_family(c.get()));
  check(blob.size() <= kMaxRendezvousBlob, Status::invalid_argument, "rendezvous blob over {} bytes", kMaxRendezvousBlob);
  std::string hello(kRendezvousMagic, 8);
  put_u32(hello, kProtocolVersion);
  put_u32(hello, static_cast<uint32_t>(w.rank));
  put_u32(hello, static_cast<uint32_t>(w.size));
  put_u32(hello, static_cast<uint32_t>(blob.size()));
  hello += blob;
  const std::string what = fmt::format("rank {}: rendezvous with {}", w.rank, w.rendezvous);
  write_all(c.get(), hello.data(), hello.size(), deadline, what);
  uint8_t head[24];
  read_all(c.get(), head, sizeof head, deadline, what);
  check(std::memcmp(head, kRendezvousMagic, 8) == 0, Status::io, "{}: the answer is not a paca rendezvous", what);
  check(get_u32(head + 8) == kProtocolVersion, Status::io, "{}: protocol version {}, this one {}", what, get_u32(head + 8),
        kProtocolVersion);
  out.group_id = get_u64(head + 12);
  check(get_u32(head + 20) == static_cast<uint32_t>(w.size), Status::io, "{}: rank 0 has world size {}, this rank {}",
        what, get_u32(head + 20), w.size);
  for (RendezvousPeer& p : out.peers) {
    p.address = read_string(c.get(), kMaxAddress, deadline, what);
    p.blob = read_string(c.get(), kMaxRendezvousBlob, deadline, what);
  }
  out.peers[0].address = hp.host;  // rank 0 is where we met it
  if (keep != nullptr) keep->push_back(std::move(c));
  return out;
}

int port_of_blob(const std::string& blob, int rank) {
  check(!blob.empty() && blob.size() <= 5 && blob.find_first_not_of("0123456789") == std::string::npos, Status::io,
        "rendezvous: rank {} published '{}' as its port", rank, blob.substr(0, 16));
  const int port = std::stoi(blob);
  check(port >= 1 && port <= 65535, Status::io, "rendezvous: rank {} published port {}", rank, port);
  return port;
}

class TcpComm final : public PointToPointComm {
 public:
  TcpComm(int rank, int size, std::chrono::milliseconds timeout, std::vector<Fd> peers)
      : rank_(rank),
        size_(size),
        timeout_(timeout),
        peers_(std::move(peers)),
        in_(peers_.size()),
        off_(peers_.size(), 0),
        closed_(peers_.size(), false) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void send(const float* data, size_t n, int dst) override {
    check(dst >= 0 && dst < size_ && dst != rank_, Status::invalid_argument, "rank {}: send to rank {}", rank_, dst);
    const auto deadline = Clock::now() + timeout_;
    std::string frame;
    put_u64(frame, n);
    frame.append(reinterpret_cast<const char*>(data), n * sizeof(float));
    const int fd = peers_[static_cast<size_t>(dst)].get();
    size_t done = 0;
    while (done < frame.size()) {
      const ssize_t k = ::send(fd, frame.data() + done, frame.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (k > 0) {
        done += static_cast<size_t>(k);
      } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pump(fd, deadline, dst);
      } else if (k < 0 && errno != EINTR) {
        fail(Status::io, "rank {}: rank {} closed its connection (it exited or was killed): {}", rank_, dst,
             std::strerror(errno));
      }
    }
  }

  void recv(float* data, size_t n, int src) override {
    check(src >= 0 && src < size_ && src != rank_, Status::invalid_argument, "rank {}: receive from rank {}", rank_, src);
    const auto deadline = Clock::now() + timeout_;
    const size_t s = static_cast<size_t>(src);
    for (;;) {
      const size_t avail = in_[s].size() - off_[s];
      if (avail >= 8) {
        const uint64_t count = get_u64(in_[s].data() + off_[s]);
        check(count == n, Status::io, "rank {}: rank {} sent a message of {} floats, {} expected (the ranks disagree)",
              rank_, src, count, n);
        if (avail >= 8 + n * sizeof(float)) {
          std::memcpy(data, in_[s].data() + off_[s] + 8, n * sizeof(float));
          off_[s] += 8 + n * sizeof(float);
          if (off_[s] == in_[s].size()) {
            in_[s].clear();
            off_[s] = 0;
          }
          return;
        }
      }
      pump(-1, deadline, src);
    }
  }

 private:
  // Waits until a peer has data (read it all into its buffer) or write_fd
  // can take more; Error(io) at the deadline or when a peer is gone.
  void pump(int write_fd, Clock::time_point deadline, int waiting_for) {
    if (closed_[static_cast<size_t>(waiting_for)])
      fail(Status::io, "rank {}: rank {} closed its connection (it exited or was killed)", rank_, waiting_for);
    std::vector<pollfd> ps;
    for (size_t p = 0; p < peers_.size(); ++p) {
      const int fd = closed_[p] ? -1 : peers_[p].get();
      ps.push_back({fd, static_cast<short>(fd >= 0 && fd == write_fd ? POLLIN | POLLOUT : POLLIN), 0});
    }
    const int r = ::poll(ps.data(), ps.size(), ms_left(deadline));
    if (r < 0 && errno != EINTR) sys_fail("poll");
    if (r == 0)
      fail(Status::io, "rank {}: no progress with rank {} within {} ms (it stopped answering)", rank_, waiting_for,
           timeout_.count());
    for (size_t p = 0; p < ps.size(); ++p) {
      if (ps[p].fd < 0 || (ps[p].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      uint8_t buf[65536];
      for (;;) {
        const ssize_t k = ::recv(ps[p].fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k > 0) {
          if (off_[p] > (size_t{1} << 20) && off_[p] * 2 > in_[p].size()) {  // drop what was consumed
            in_[p].erase(in_[p].begin(), in_[p].begin() + static_cast<std::ptrdiff_t>(off_[p]));
            off_[p] = 0;
          }
          in_[p].insert(in_[p].end(), buf, buf + k);
          continue;
        }
        if (k == 0) {  // what it sent before it left stays readable
          closed_[p] = true;
          break;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno != EINTR)
          fail(Status::io, "rank {}: rank {} closed its connection (it exited or was killed): {}", rank_,
               static_cast<int>(p), std::strerror(errno));
      }
    }
  }

  int rank_, size_;
  std::chrono::milliseconds timeout_;
  std::vector<Fd> peers_;  // indexed by rank; invalid for this rank
  std::vector<std::vector<uint8_t>> in_;
  std::vector<size_t> off_;
  std::vector<bool> closed_;  // the peer closed its end (everything it sent is in in_)
};

}  // namespace

RendezvousResult rendezvous(const WorldOptions& w, const std::string& blob) {
  check(blob.size() <= kMaxRendezvousBlob, Status::invalid_argument, "rendezvous blob of {} bytes (at most {})",
        blob.size(), kMaxRendezvousBlob);
  return rendezvous_with(w, [&](int) { return blob; });
}

std::unique_ptr<Communicator> tcp_connect_world(const WorldOptions& w) {
  const auto deadline = Clock::now() + w.timeout;
  Fd listener;
  const RendezvousResult rv = rendezvous_with(w, [&](int family) {
    listener = listen_on(nullptr, 0, family, w.size + 8);
    return std::to_string(local_port(listener.get()));
  });
  std::vector<Fd> peers(static_cast<size_t>(w.size));
  std::string hello(kMeshMagic, 8);
  put_u64(hello, rv.group_id);
  put_u32(hello, static_cast<uint32_t>(w.rank));
  for (int j = 0; j < w.rank; ++j) {
    const RendezvousPeer& p = rv.peers[static_cast<size_t>(j)];
    const std::string what = fmt::format("rank {}: connecting to rank {}", w.rank, j);
    Fd c = connect_retry(p.address, port_of_blob(p.blob, j), deadline, what);
    write_all(c.get(), hello.data(), hello.size(), deadline, what);
    peers[static_cast<size_t>(j)] = std::move(c);
  }
  for (int joined = w.rank + 1; joined < w.size;) {
    Fd c = accept_one(listener.get(), deadline, nullptr);
    if (c.get() < 0)
      fail(Status::io, "rank {}: {} of the {} higher ranks connected within {} ms", w.rank, joined - w.rank - 1,
           w.size - w.rank - 1, w.timeout.count());
    uint8_t h[20];
    try {
      read_all(c.get(), h, sizeof h, hello_deadline(deadline), "mesh");
    } catch (const Error&) {
      continue;
    }
    const uint32_t r = get_u32(h + 16);
    if (std::memcmp(h, kMeshMagic, 8) != 0 || get_u64(h + 8) != rv.group_id || r <= static_cast<uint32_t>(w.rank) ||
        r >= static_cast<uint32_t>(w.size) || peers[r].get() >= 0)
      continue;  // not a rank of this group, or a duplicate: drop it
    peers[r] = std::move(c);
    ++joined;
  }
  return std::make_unique<TcpComm>(w.rank, w.size, w.timeout, std::move(peers));
}

}  // namespace paca
