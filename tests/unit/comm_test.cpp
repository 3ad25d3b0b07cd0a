// comm_test.cpp - the communicators of core/parallel: LocalGroup's messages,
// SubComm, the TCP rendezvous (including bytes that are not a rendezvous) and
// TcpComm, with ranks as threads of this process over loopback; a rank that
// is gone or silent makes the others fail within the timeout; a
// ShardedModel whose ranks talk over TcpComm gives the in-process logits bit
// for bit.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "rank_threads.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>

#include "model/test_model.h"
#include "parallel/comm.h"
#include "parallel/sharded_model.h"
#include "parallel/tcp_comm.h"
#include "parallel/world.h"
#include "runtime/kv_cache.h"
#include "runtime/load.h"
#include "runtime/session.h"
#include "util/error.h"

namespace paca {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test::free_port;
using test::on_threads;

WorldOptions world(int rank, int size, int port, std::chrono::milliseconds timeout = 20s) {
  return test::loopback_world(rank, size, port, timeout);
}

TEST(LocalGroup, MessagesArriveInOrderAndSizesAreChecked) {
  LocalGroup g(2, 5s);
  const float a[3] = {1, 2, 3}, b[2] = {4, 5};
  g.rank(0).send(a, 3, 1);
  g.rank(0).send(b, 2, 1);
  float got[3] = {};
  g.rank(1).recv(got, 3, 0);
  EXPECT_EQ(std::vector<float>(got, got + 3), (std::vector<float>{1, 2, 3}));
  EXPECT_THROW(g.rank(1).recv(got, 3, 0), Error);  // 2 floats were sent
  EXPECT_THROW(g.rank(0).send(a, 1, 2), Error);     // no rank 2
}

TEST(LocalGroup, AReceiveFromASilentRankTimesOut) {
  LocalGroup g(2, 200ms);
  float x = 0;
  const auto t0 = Clock::now();
  try {
    g.rank(1).recv(&x, 1, 0);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::io);
    EXPECT_NE(std::string(e.what()).find("timed out after 200 ms"), std::string::npos) << e.what();
  }
  EXPECT_LT(Clock::now() - t0, 5s);
  g.reset();  // usable again
  g.rank(0).send(&x, 1, 1);
  g.rank(1).recv(&x, 1, 0);
}

TEST(SubComm, CollectivesOfAStageMatchLocalGroupBitForBit) {
  // ranks 0..3 as 2 stages of 2; each stage all-reduces over the world's messages
  LocalGroup world4(4, 10s), stage(2, 10s);
  std::vector<std::vector<float>> sub(4), local(2);
  auto data = [](int r) {
    std::vector<float> v(5);
    for (size_t i = 0; i < v.size(); ++i) v[i] = 0.1f * static_cast<float>(i + 1) * static_cast<float>(r % 2 + 1) + 1e-7f * r;
    return v;
  };
  auto errs = on_threads(4, [&](int r) {
    SubComm s(world4.rank(r), {r / 2 * 2, r / 2 * 2 + 1});
    sub[static_cast<size_t>(r)] = data(r % 2);
    s.all_reduce_sum(sub[static_cast<size_t>(r)].data(), 5);
    s.barrier();
  });
  for (auto& e : errs) EXPECT_EQ(e, "");
  on_threads(2, [&](int r) {
    local[static_cast<size_t>(r)] = data(r);
    stage.rank(r).all_reduce_sum(local[static_cast<size_t>(r)].data(), 5);
  });
  for (int r = 0; r < 4; ++r) EXPECT_EQ(sub[static_cast<size_t>(r)], local[0]);
}

TEST(Rendezvous, GathersEveryRanksBlobAndIgnoresStrangers) {
  const int port = free_port();
  std::vector<RendezvousResult> res(3);
  std::thread stranger([&] {
    // connects first and sends bytes that are not a rendezvous hello: dropped
    std::this_thread::sleep_for(100ms);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      const char junk[] = "GET / HTTP/1.0\r\n\r\n\xff\xff\xff\xff";
      (void)!::write(fd, junk, sizeof junk);
    }
    std::this_thread::sleep_for(300ms);
    ::close(fd);
  });
  auto errs = on_threads(3, [&](int r) {
    if (r > 0) std::this_thread::sleep_for(300ms);  // after the stranger
    res[static_cast<size_t>(r)] = rendezvous(world(r, 3, port), "blob of rank " + std::to_string(r));
  });
  stranger.join();
  for (auto& e : errs) EXPECT_EQ(e, "");
  for (int r = 0; r < 3; ++r) {
    ASSERT_EQ(res[static_cast<size_t>(r)].peers.size(), 3u);
    EXPECT_EQ(res[static_cast<size_t>(r)].group_id, res[0].group_id);
    for (int q = 0; q < 3; ++q) EXPECT_EQ(res[static_cast<size_t>(r)].peers[static_cast<size_t>(q)].blob, "blob of rank " + std::to_string(q));
  }
}

TEST(Rendezvous, HostileAnswersAndMissingRanksAreClearErrors) {
  // a "rank 0" that answers with a huge length field
  const int port = free_port();
  std::thread fake([&] {
    const int ls = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(ls, 4);
    const int c = ::accept(ls, nullptr, nullptr);
    char hello[24];
    (void)!::read(c, hello, sizeof hello);
    unsigned char reply[24 + 4] = {'P', 'A', 'C', 'A', 'R', 'D', 'V', '1', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
                                   0xff, 0xff, 0xff, 0x7f};
    (void)!::write(c, reply, sizeof reply);
    std::this_thread::sleep_for(200ms);
    ::close(c);
    ::close(ls);
  });
  std::string err;
  try {
    rendezvous(world(1, 2, port, 5s), "x");
  } catch (const Error& e) {
    err = e.what();
  }
  fake.join();
  EXPECT_NE(err.find("at most"), std::string::npos) << err;

  // rank 0 alone: the others never come
  const auto t0 = Clock::now();
  EXPECT_THROW(rendezvous(world(0, 2, free_port(), 300ms), ""), Error);
  EXPECT_LT(Clock::now() - t0, 5s);
  // a rank with nobody listening gives up at its timeout
  EXPECT_THROW(rendezvous(world(1, 2, free_port(), 300ms), ""), Error);
  // bad options
  EXPECT_THROW(parse_host_port("nocolon"), Error);
  EXPECT_THROW(parse_host_port("host:99999"), Error);
  EXPECT_THROW(parse_host_port("host:12ab"), Error);
  EXPECT_THROW(check_parallel_options(2, 1, world(-1, 2, 1)), Error);  // TCP needs the rank
  EXPECT_THROW(check_parallel_options(2, 2, world(0, 2, 1)), Error);   // 2 processes for 4 ranks
}

TEST(TcpComm, CollectivesAndMessagesOverLoopback) {
  const int port = free_port();
  std::vector<std::vector<float>> sum(3), gathered(3, std::vector<float>(6));
  std::vector<float> got(3);
  auto errs = on_threads(3, [&](int r) {
    auto c = tcp_connect_world(world(r, 3, port));
    ASSERT_EQ(c->rank(), r);
    ASSERT_EQ(c->size(), 3);
    sum[static_cast<size_t>(r)] = {static_cast<float>(r), 10.0f * r};
    c->all_reduce_sum(sum[static_cast<size_t>(r)].data(), 2);
    const float mine[2] = {static_cast<float>(r), -static_cast<float>(r)};
    c->all_gather(mine, 2, gathered[static_cast<size_t>(r)].data());
    // a ring of large messages, all sent before any is received
    std::vector<float> big(300000, static_cast<float>(r)), in(300000);
    c->send(big.data(), big.size(), (r + 1) % 3);
    c->recv(in.data(), in.size(), (r + 2) % 3);
    got[static_cast<size_t>(r)] = in[12345];
    c->barrier();
  });
  for (auto& e : errs) EXPECT_EQ(e, "");
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(sum[static_cast<size_t>(r)], (std::vector<float>{3.0f, 30.0f}));
    EXPECT_EQ(gathered[static_cast<size_t>(r)], (std::vector<float>{0, -0.0f, 1, -1, 2, -2}));
    EXPECT_EQ(got[static_cast<size_t>(r)], static_cast<float>((r + 2) % 3));
  }
}

TEST(TcpComm, ARankThatIsGoneOrSilentMakesTheOthersFailInTime) {
  const int port = free_port();
  std::string gone, silent;
  std::atomic<bool> rank1_done{false};
  auto errs = on_threads(3, [&](int r) {
    auto c = tcp_connect_world(world(r, 3, port, 1500ms));
    float x = 1;
    c->all_reduce_sum(&x, 1);
    if (r == 2) return;  // exits: its sockets close
    const auto t0 = Clock::now();
    try {
      if (r == 0) {
        c->recv(&x, 1, 2);  // rank 2 is gone
      } else {
        c->recv(&x, 1, 0);  // rank 0 never sends to rank 1
      }
    } catch (const Error& e) {
      (r == 0 ? gone : silent) = e.what();
    }
    EXPECT_LT(Clock::now() - t0, 5s);
    if (r == 1) rank1_done = true;
    while (r == 0 && !rank1_done) std::this_thread::sleep_for(10ms);  // alive but silent until rank 1 gave up
  });
  for (auto& e : errs) EXPECT_EQ(e, "");
  EXPECT_NE(gone.find("rank 2 closed its connection"), std::string::npos) << gone;
  EXPECT_NE(silent.find("within 1500 ms"), std::string::npos) << silent;
}

TEST(TcpComm, ShardedModelOverTcpMatchesInProcessBitForBit) {
  TestModelSpec spec;
  spec.seed = 5;
  spec.dim = 64;
  spec.n_layers = 3;
  spec.n_heads = 4;
  spec.n_kv_heads = 2;
  spec.ffn_dim = 96;
  spec.n_vocab = 300;
  spec.max_context = 64;
  const std::vector<int32_t> prompt = {1, 5, 9, 200, 17};
  auto run = [&](ShardedModel& m) {
    BlockPool pool(m.kv_backend(), m.kv_layout());
    Session s(m, pool, 0);
    s.prefill(prompt);
    std::vector<std::vector<float>> out{s.logits()};
    for (int i = 0; i < 4; ++i) {
      int32_t t = static_cast<int32_t>(std::max_element(s.logits().begin(), s.logits().end()) - s.logits().begin());
      s.prefill(std::span<const int32_t>(&t, 1));
      out.push_back(s.logits());
    }
    return out;
  };
  ShardOptions local;
  local.tp = 2;
  local.pp = 2;
  local.n_threads = 4;
  ShardedModel in_process(synthetic_checkpoint(spec, uint64_t{1} << 30), std::move(local), ModelOptions{});
  const auto want = run(in_process);
  const int port = free_port();
  std::vector<std::vector<std::vector<float>>> got(4);
  auto errs = on_threads(4, [&](int r) {
    ShardOptions so;
    so.tp = 2;
    so.pp = 2;
    so.n_threads = 1;
    so.world = tcp_connect_world(world(r, 4, port));
    ShardedModel m(synthetic_checkpoint(spec, uint64_t{1} << 30), std::move(so), ModelOptions{});
    got[static_cast<size_t>(r)] = run(m);
  });
  for (auto& e : errs) EXPECT_EQ(e, "");
  for (int r = 0; r < 4; ++r) EXPECT_EQ(got[static_cast<size_t>(r)], want) << "rank " << r;
}

}  // namespace
}  // namespace paca
