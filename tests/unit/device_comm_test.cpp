// device_comm_test.cpp - the host side of CUDA ranks' communication, run on
// every machine: StagedComm gives its host communicator's results bit for
// bit; the NCCL id travels from a group's first member to the others over
// LocalGroup and over TcpComm (loopback), intact for every byte value, and a
// first member that cannot make one fails the others at once; malformed ids
// and misuse are clear errors; the NCCL functions check their parameters
// before they look for NCCL or a device; a multi-process group that mixes CPU
// and CUDA ranks, or whose CUDA ranks have no device, fails on every rank at
// once (no timeout). The device side is in cuda/tests/cuda_parallel_test.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "model/test_model.h"
#include "parallel/device_comm.h"
#include "parallel/sharded_model.h"
#include "parallel/tcp_comm.h"
#include "rank_threads.h"
#include "runtime/load.h"
#include "util/error.h"

namespace paca {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using test::free_port;
using test::on_threads;

WorldOptions tcp_world(int rank, int size, int port, std::chrono::milliseconds timeout = 20s) {
  return test::loopback_world(rank, size, port, timeout);
}

// Every byte value, in an order that is not the identity.
NcclId test_id(uint8_t salt) {
  NcclId id;
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(i * 7 + salt);
  id[3] = 0;
  id[4] = 255;
  return id;
}

bool have_cuda_device() {
  try {
    (void)make_backend("cuda:0", 1);
    return true;
  } catch (const Error&) {
    return false;
  }
}

TEST(StagedComm, GivesTheHostCommunicatorsResultsBitForBit) {
  // CPU backends: staging copies host memory to host memory, so this checks
  // the staging logic (sizes, offsets, which buffer goes where)
  LocalGroup direct(3, 10s), staged_group(3, 10s);
  std::vector<std::unique_ptr<Backend>> bes;
  for (int r = 0; r < 3; ++r) bes.push_back(make_cpu_backend(1));
  auto data = [](int r, size_t n) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = 0.1f * static_cast<float>(i + 1) / static_cast<float>(r + 3) + 1e-7f * r;
    return v;
  };
  std::vector<std::vector<float>> want_sum(3), got_sum(3), want_gather(3), got_gather(3), got_msg(3);
  auto errs = on_threads(3, [&](int r) {
    want_sum[r] = data(r, 37);
    direct.rank(r).all_reduce_sum(want_sum[r].data(), 37);
    want_gather[r].resize(3 * 11);
    direct.rank(r).all_gather(data(r, 11).data(), 11, want_gather[r].data());
  });
  for (auto& e : errs) EXPECT_EQ(e, "");
  errs = on_threads(3, [&](int r) {
    Backend& be = *bes[static_cast<size_t>(r)];
    StagedComm c(staged_group.rank(r), be);
    EXPECT_EQ(c.rank(), r);
    EXPECT_EQ(c.size(), 3);
    auto* sum = static_cast<float*>(be.alloc(37 * sizeof(float)));
    be.copy(sum, data(r, 37).data(), 37 * sizeof(float));
    c.all_reduce_sum(sum, 37);
    got_sum[r].assign(sum, sum + 37);
    auto* in = static_cast<float*>(be.alloc(11 * sizeof(float)));
    auto* out = static_cast<float*>(be.alloc(33 * sizeof(float)));
    be.copy(in, data(r, 11).data(), 11 * sizeof(float));
    c.all_gather(in, 11, out);
    got_gather[r].assign(out, out + 33);
    // a ring of messages: r -> r + 1
    c.send(in, 11, (r + 1) % 3);
    c.recv(out, 11, (r + 2) % 3);
    got_msg[r].assign(out, out + 11);
    c.barrier();
    for (float* p : {sum, in, out}) be.release(p);
  });
  for (auto& e : errs) EXPECT_EQ(e, "");
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(got_sum[r], want_sum[r]) << r;
    EXPECT_EQ(got_gather[r], want_gather[r]) << r;
    EXPECT_EQ(got_msg[r], data((r + 2) % 3, 11)) << r;
  }
}

TEST(NcclId, TravelsFromTheFirstMemberOverLocalGroup) {
  LocalGroup g(4, 10s);
  std::vector<NcclId> got(4);
  std::atomic<int> made{0};
  // two groups at once: {2, 0} (rank 2 makes it) and {1, 3}
  auto errs = on_threads(4, [&](int r) {
    const std::vector<int> members = (r == 0 || r == 2) ? std::vector<int>{2, 0} : std::vector<int>{1, 3};
    got[static_cast<size_t>(r)] = share_nccl_id(g.rank(r), members, [&] {
      ++made;
      return test_id(static_cast<uint8_t>(r));
    });
  });
  for (auto& e : errs) EXPECT_EQ(e, "");
  EXPECT_EQ(made.load(), 2);
  EXPECT_EQ(got[0], test_id(2));
  EXPECT_EQ(got[2], test_id(2));
  EXPECT_EQ(got[1], test_id(1));
  EXPECT_EQ(got[3], test_id(1));
  // a rank outside the members is a bug of the caller
  const std::vector<int> others = {1, 2};
  try {
    share_nccl_id(g.rank(0), others, [] { return NcclId{}; });
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::internal);
  }
}

TEST(NcclId, TravelsOverTheTcpRendezvous) {
  const int port = free_port();
  std::vector<NcclId> got(3);
  auto errs = on_threads(3, [&](int r) {
    auto world = tcp_connect_world(tcp_world(r, 3, port));
    const std::vector<int> all = {0, 1, 2};
    got[static_cast<size_t>(r)] = share_nccl_id(*world, all, [] { return test_id(9); });
  });
  for (auto& e : errs) EXPECT_EQ(e, "");
  for (const NcclId& id : got) EXPECT_EQ(id, test_id(9));
}

TEST(NcclId, AFirstMemberThatCannotMakeOneFailsTheOthersAtOnce) {
  LocalGroup g(3, 30s);  // the others would wait 30 s for a missing id
  const auto t0 = Clock::now();
  auto errs = on_threads(3, [&](int r) {
    const std::vector<int> all = {0, 1, 2};
    share_nccl_id(g.rank(r), all, []() -> NcclId { fail(Status::device, "NCCL unavailable: test"); });
  });
  EXPECT_LT(Clock::now() - t0, 10s);
  EXPECT_EQ(errs[0], "NCCL unavailable: test");
  for (int r = 1; r < 3; ++r)
    EXPECT_NE(errs[static_cast<size_t>(r)].find("rank 0 could not make the NCCL id"), std::string::npos)
        << errs[static_cast<size_t>(r)];
}

TEST(NcclId, MalformedBytesAreRefused) {
  LocalGroup g(2, 10s);
  const std::vector<int> all = {0, 1};
  for (float bad : {256.0f, 1.5f, -3.0f, std::numeric_limits<float>::quiet_NaN()}) {
    std::vector<float> wire(kNcclIdBytes, 7.0f);
    wire[100] = bad;
    g.rank(0).send(wire.data(), wire.size(), 1);
    try {
      share_nccl_id(g.rank(1), all, [] { return NcclId{}; });
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::io);
      EXPECT_NE(std::string(e.what()).find("malformed NCCL id (byte 100"), std::string::npos) << e.what();
    }
  }
  // a message of another size
  std::vector<float> shorter(5, 1.0f);
  g.rank(0).send(shorter.data(), shorter.size(), 1);
  EXPECT_THROW(share_nccl_id(g.rank(1), all, [] { return NcclId{}; }), Error);
}

TEST(Nccl, ParametersAreCheckedBeforeNcclOrADevice) {
  auto cpu = make_cpu_backend(1);
  struct Bad {
    int rank, size;
    const char* says;
  };
  for (const Bad& b : {Bad{0, 0, "1..1024 ranks"}, Bad{0, 2000, "1..1024 ranks"}, Bad{-1, 2, "rank -1 outside"},
                       Bad{2, 2, "rank 2 outside"}}) {
    try {
      (void)nccl_comm(NcclId{}, b.rank, b.size, *cpu, 1000ms);
      ADD_FAILURE() << b.says;
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::invalid_argument) << e.what();
      EXPECT_NE(std::string(e.what()).find(b.says), std::string::npos) << e.what();
    }
  }
  std::vector<Backend*> none;
  EXPECT_THROW((void)nccl_comm_group(none, 1000ms), Error);
  std::string why;
  if (nccl_available(&why)) {
    // NCCL is here: a CPU backend is still no NCCL rank
    try {
      (void)nccl_comm(NcclId{}, 0, 1, *cpu, 1000ms);
      ADD_FAILURE() << "a CPU backend was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("need a CUDA backend"), std::string::npos) << e.what();
    }
    Backend* one[] = {cpu.get()};
    EXPECT_THROW((void)nccl_comm_group(one, 1000ms), Error);
    EXPECT_EQ(nccl_describe().rfind("NCCL 2.", 0), 0u) << nccl_describe();
    const NcclId a = nccl_unique_id(), b = nccl_unique_id();
    EXPECT_NE(a, b);  // ncclGetUniqueId needs no GPU
  } else {
    EXPECT_EQ(why.rfind("NCCL unavailable: ", 0), 0u) << why;
    EXPECT_EQ(nccl_describe(), why);
    try {
      (void)nccl_unique_id();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::device);
      EXPECT_EQ(std::string(e.what()), why);
    }
  }
}

TestModelSpec small_spec() {
  TestModelSpec spec;
  spec.seed = 8;
  spec.dim = 64;
  spec.n_layers = 2;
  spec.n_heads = 4;
  spec.n_kv_heads = 2;
  spec.ffn_dim = 96;
  spec.n_vocab = 300;
  spec.max_context = 64;
  return spec;
}

TEST(ShardedDevices, BadDeviceChoicesAreClearErrors) {
  auto expect_error = [](ShardOptions so, Status st, const std::string& says) {
    try {
      ShardedModel m(synthetic_checkpoint(small_spec(), uint64_t{1} << 30), std::move(so), ModelOptions{});
      ADD_FAILURE() << "no error for: " << says;
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), st) << e.what();
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  ShardOptions so;
  so.tp = 2;
  so.device = "tpu:0";
  expect_error(std::move(so), Status::invalid_argument, "unknown device 'tpu:0'");
  so = ShardOptions{};
  so.tp = 2;
  so.collectives = ShardOptions::Collectives::nccl;
  expect_error(std::move(so), Status::invalid_argument, "NCCL collectives need CUDA ranks");
  so = ShardOptions{};
  so.tp = 2;
  so.device = "cuda:0";
  so.collectives = ShardOptions::Collectives::nccl;
  expect_error(std::move(so), Status::invalid_argument, "NCCL needs one GPU per rank");
  if (!have_cuda_device()) {
    so = ShardOptions{};
    so.tp = 2;
    so.device = "cuda:0";
    expect_error(std::move(so), Status::device, "device 'cuda:0' is unavailable");
  }
}

// Processes (threads here, over TCP) that disagree about their devices, or
// cannot open them, all fail at once with a clear error.
TEST(ShardedDevices, AGroupThatCannotStartFailsEveryRankAtOnce) {
  struct Case {
    const char* devices[2];
    const char* says[2];
  };
  std::vector<Case> cases = {
      {{"cpu", "cuda:0"}, {"rank 0 runs on cpu and rank 1 on cuda", "rank 0 runs on cpu and rank 1 on cuda"}},
  };
  if (!have_cuda_device()) {
    std::string why;
    const bool nccl = nccl_available(&why);
    // NCCL is checked first, then the device
    cases.push_back({{"cuda:0", "cuda:0"},
                     {nccl ? "no CUDA device" : "NCCL unavailable", nccl ? "no CUDA device" : "NCCL unavailable"}});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.devices[0]) + "," + c.devices[1]);
    const int port = free_port();
    const auto t0 = Clock::now();
    auto errs = on_threads(2, [&](int r) {
      ShardOptions so;
      so.tp = 2;
      so.n_threads = 1;
      so.timeout = 30s;  // a rank left waiting would take this long
      so.device = c.devices[r];
      so.world = tcp_connect_world(tcp_world(r, 2, port, 30s));
      ShardedModel m(synthetic_checkpoint(small_spec(), uint64_t{1} << 30), std::move(so), ModelOptions{});
    });
    EXPECT_LT(Clock::now() - t0, 15s);
    for (int r = 0; r < 2; ++r)
      EXPECT_NE(errs[static_cast<size_t>(r)].find(c.says[r]), std::string::npos) << "rank " << r << ": " << errs[r];
  }
}

}  // namespace
}  // namespace paca
