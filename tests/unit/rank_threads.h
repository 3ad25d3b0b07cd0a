// rank_threads.h - helpers of the communicator tests (tests/unit and
// cuda/tests): ranks as threads of the test process, a free loopback port, a
// TCP rendezvous on it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "parallel/world.h"

namespace paca::test {

// A loopback port nobody listens on right now.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Rank `rank` of `size` processes meeting at 127.0.0.1:port.
inline WorldOptions loopback_world(int rank, int size, int port,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  WorldOptions w;
  w.rank = rank;
  w.size = size;
  w.rendezvous = "127.0.0.1:" + std::to_string(port);
  w.timeout = timeout;
  return w;
}

// Runs fn(rank) on n threads; returns each rank's error message ("" = none).
inline std::vector<std::string> on_threads(int n, const std::function<void(int)>& fn) {
  std::vector<std::string> err(static_cast<size_t>(n));
  std::vector<std::thread> ts;
  for (int r = 0; r < n; ++r)
    ts.emplace_back([&, r] {
      try {
        fn(r);
      } catch (const std::exception& e) {
        err[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : ts) t.join();
  return err;
}

}  // namespace paca::test
