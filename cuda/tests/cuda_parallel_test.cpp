// cuda_parallel_test.cpp - sharded models on CUDA ranks and NcclComm.
//
// NcclHost*: the libnccl loader, run for real on every machine: a library
//   that cannot be opened, one that lacks NCCL's symbols, version text.
// NcclMissing*: run by ctest `nccl_missing` with PACA_NCCL_LIBRARY naming a
//   file that does not exist: every way to ask for NCCL (the id, an in-process
//   NCCL rank, a multi-process CUDA group through the C API over the TCP
//   rendezvous) fails at once with PACA_ERR_DEVICE / Error(device) and a
//   message starting "NCCL unavailable: ". Skipped without that variable.
// CudaParallel*: on a device (skipped with "no CUDA device ..." without one):
//   - tensor parallel 2, pipeline parallel 2 and TP 2 x PP 2 with every rank
//     on cuda:0 (LocalGroups, collectives staged through the host) through
//     the C API: prompt logits within 2e-3 relative L2 of the unsharded model
//     on cuda:0 and within the CUDA-vs-CPU tolerance (2e-2, stories260K
//     3e-2) of the CPU, greedy tokens as the unsharded model on cuda:0;
//   - NCCL with a world of one on cuda:0 (ncclCommInitRankConfig in a group,
//     nonblocking): a ShardedModel whose every layer all-reduces through
//     NCCL gives the unsharded cuda:0 logits and tokens; the collectives and
//     the barrier on device buffers;
//   - a rank of a group of two whose peer never comes: the nonblocking init
//     gives up after comm_timeout_ms with Error(io) (the communicator
//     aborted), never a hang;
//   - two processes' ranks (threads over TcpComm) on cuda:0 with staged
//     collectives give the in-process logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "device.h"
#include "model/test_model.h"
#include "nccl_comm.h"
#include "paca/paca.h"
#include "parallel/device_comm.h"
#include "parallel/sharded_model.h"
#include "parallel/tcp_comm.h"
#include "rank_threads.h"  // tests/unit
#include "runtime/kv_cache.h"
#include "runtime/load.h"
#include "runtime/session.h"
#include "tests/device_skip.h"
#include "util/error.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using paca::cuda::test::have_device;
using paca::cuda::test::models_dir;
using paca::cuda::test::no_device_reason;

using paca::test::free_port;
using paca::test::on_threads;

double rel_l2(const std::vector<float>& got, const std::vector<float>& ref) {
  if (got.size() != ref.size() || ref.empty()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    const double d = static_cast<double>(got[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// ---- the loader, everywhere -------------------------------------------------------

TEST(NcclHost, AMissingLibraryIsAClearError) {
  const char* names[] = {"/nonexistent/libnccl.so.2"};
  const paca::cuda::NcclLibrary lib = paca::cuda::open_nccl(names);
  EXPECT_EQ(lib.api, nullptr);
  EXPECT_EQ(lib.why.rfind("NCCL unavailable: cannot open /nonexistent/libnccl.so.2: ", 0), 0u) << lib.why;
  const paca::cuda::NcclLibrary none = paca::cuda::open_nccl({});
  EXPECT_EQ(none.api, nullptr);
  EXPECT_EQ(none.why.rfind("NCCL unavailable: ", 0), 0u) << none.why;
}

TEST(NcclHost, ALibraryWithoutNcclsSymbolsIsRefused) {
  // libzstd is loaded by every paca process; it is no NCCL
  const char* names[] = {"/nonexistent/a.so", "libzstd.so.1"};
  const paca::cuda::NcclLibrary lib = paca::cuda::open_nccl(names);
  EXPECT_EQ(lib.api, nullptr);
  EXPECT_NE(lib.why.find("cannot open /nonexistent/a.so"), std::string::npos) << lib.why;
  EXPECT_NE(lib.why.find("libzstd.so.1 lacks ncclGetVersion"), std::string::npos) << lib.why;
}

TEST(NcclHost, VersionText) {
  EXPECT_EQ(paca::cuda::nccl_version_text(22809), "2.28.9");
  EXPECT_EQ(paca::cuda::nccl_version_text(21400), "2.14.0");
  EXPECT_EQ(paca::cuda::nccl_version_text(2708), "2.7.8");
  std::printf("this machine: %s\n", paca::nccl_describe().c_str());
}

// ---- PACA_NCCL_LIBRARY names nothing (ctest nccl_missing) -----------------------

TEST(NcclMissing, EveryWayToAskForNcclSaysSo) {
  const char* env = std::getenv("PACA_NCCL_LIBRARY");
  if (env == nullptr || std::string(env).find("/nonexistent/") == std::string::npos)
    GTEST_SKIP() << "run by ctest nccl_missing (PACA_NCCL_LIBRARY=/nonexistent/...)";
  const std::string want = std::string("NCCL unavailable: cannot open ") + env;
  std::string why;
  EXPECT_FALSE(paca::nccl_available(&why));
  EXPECT_EQ(why.rfind(want, 0), 0u) << why;
  try {
    (void)paca::nccl_unique_id();
    ADD_FAILURE() << "no error";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::device);
    EXPECT_EQ(std::string(e.what()).rfind(want, 0), 0u) << e.what();
  }
  // an in-process NCCL rank: NCCL is asked for before the device
  paca::TestModelSpec spec;
  spec.dim = 64;
  spec.n_layers = 2;
  spec.ffn_dim = 96;
  spec.n_vocab = 300;
  paca::ShardOptions so;
  so.device = "cuda:0";
  so.collectives = paca::ShardOptions::Collectives::nccl;
  try {
    paca::ShardedModel m(paca::synthetic_checkpoint(spec, uint64_t{1} << 30), std::move(so), paca::ModelOptions{});
    ADD_FAILURE() << "no error";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::device);
    EXPECT_EQ(std::string(e.what()).rfind(want, 0), 0u) << e.what();
  }
  // two processes' CUDA ranks through the C API: both fail at once
  const std::string dir = models_dir() + "/tiny-llama2";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "shared models absent: " << dir;
  const std::string rdv = "127.0.0.1:" + std::to_string(free_port());
  std::vector<paca_status> st(2, PACA_OK);
  std::vector<std::string> msg(2);
  const auto t0 = Clock::now();
  on_threads(2, [&](int r) {
    paca_model_params p;
    paca_model_params_init(&p, sizeof p);
    p.device = "cuda:0";
    p.tensor_parallel = 2;
    p.world_size = 2;
    p.rank = r;
    p.rendezvous = rdv.c_str();
    p.comm_timeout_ms = 30000;
    paca_model* m = nullptr;
    st[static_cast<size_t>(r)] = paca_model_load(dir.c_str(), &p, &m);
    msg[static_cast<size_t>(r)] = paca_last_error();
    paca_model_free(m);
  });
  EXPECT_LT(Clock::now() - t0, 15s);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(st[static_cast<size_t>(r)], PACA_ERR_DEVICE) << msg[r];
    EXPECT_NE(msg[static_cast<size_t>(r)].find(want), std::string::npos) << msg[r];
  }
}

// ---- on a device ------------------------------------------------------------------

struct Outcome {
  std::vector<float> logits;   // after the prompt
  std::vector<int32_t> greedy;
  std::string backend;
};

Outcome run_capi(const std::string& path, const char* device, int tp, int pp, const std::vector<int32_t>& prompt, int n_gen) {
  Outcome r;
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.device = device;
  p.n_threads = 2;
  p.tensor_parallel = tp;
  p.pipeline_parallel = pp;
  p.comm_timeout_ms = 60000;
  paca_model* m = nullptr;
  EXPECT_EQ(paca_model_load(path.c_str(), &p, &m), PACA_OK) << device << " tp " << tp << " pp " << pp << ": "
                                                            << paca_last_error();
  if (m == nullptr) return r;
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_create(m, nullptr, &s), PACA_OK) << paca_last_error();
  EXPECT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK) << paca_last_error();
  const float* lg = nullptr;
  size_t nv = 0;
  for (int i = 0; i <= n_gen; ++i) {
    EXPECT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK) << paca_last_error();
    if (lg == nullptr) break;
    if (i == 0) r.logits.assign(lg, lg + nv);
    if (i == n_gen) break;
    const std::vector<float> v(lg, lg + nv);
    r.greedy.push_back(argmax(v));
    EXPECT_EQ(paca_session_decode(s, r.greedy.back()), PACA_OK) << paca_last_error();
  }
  paca_session_free(s);
  paca_model_free(m);
  return r;
}

std::vector<int32_t> prompt_of(int n, unsigned seed) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  p[0] = 1;
  for (size_t i = 1; i < p.size(); ++i) p[i] = static_cast<int32_t>(3 + (seed * 7919u + i * 104729u) % 240u);
  return p;
}

int leading_same(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  int same = 0;
  while (same < static_cast<int>(std::min(a.size(), b.size())) && a[same] == b[same]) ++same;
  return same;
}

struct ShardCase {
  const char* path;  // under models/
  double cpu_tol;    // relative L2 against the CPU's unsharded logits
  int tp, pp;
};

TEST(CudaParallel, RanksSharingOneGpuMatchTheUnshardedModel) {
  SKIP_WITHOUT_DEVICE();
  const ShardCase cases[] = {
      {"tiny-llama2", 2e-2, 2, 1},  {"tiny-llama2", 2e-2, 1, 2},  {"tiny-llama2", 2e-2, 2, 2},
      {"tiny-llama31", 2e-2, 2, 1},  // MQA: TP 2 replicates its one kv head
      {"tiny-llama31", 2e-2, 2, 3},
      {"stories260K/stories260K.bin", 3e-2, 2, 1},  // tied embeddings: the LM-head slice is a view of them
  };
  for (const ShardCase& c : cases) {
    const std::string path = models_dir() + "/" + c.path;
    SCOPED_TRACE(std::string(c.path) + " tp " + std::to_string(c.tp) + " pp " + std::to_string(c.pp));
    if (!std::filesystem::exists(path)) {
      ADD_FAILURE() << "model absent: " << path << " (gpu_pack.sh carries it)";
      continue;
    }
    for (int n_prompt : {5, 40}) {  // 5: the GEMV path; 40: cuBLASLt in the prefill
      const std::vector<int32_t> prompt = prompt_of(n_prompt, 3);
      const Outcome cpu = run_capi(path, "cpu", 1, 1, prompt, 8);
      const Outcome whole = run_capi(path, "cuda:0", 1, 1, prompt, 8);
      const Outcome sharded = run_capi(path, "cuda:0", c.tp, c.pp, prompt, 8);
      const double to_whole = rel_l2(sharded.logits, whole.logits), to_cpu = rel_l2(sharded.logits, cpu.logits);
      EXPECT_LT(to_whole, 2e-3) << "prompt " << n_prompt;
      EXPECT_LT(to_cpu, c.cpu_tol) << "prompt " << n_prompt;
      const int same = leading_same(sharded.greedy, whole.greedy);
      EXPECT_GE(same, 4) << "prompt " << n_prompt;
      std::printf("%s tp %d pp %d on cuda:0, prompt %d: rel L2 %.2e to unsharded cuda:0, %.2e to cpu; %d of %zu greedy "
                  "tokens as unsharded cuda:0, %d as cpu\n",
                  c.path, c.tp, c.pp, n_prompt, to_whole, to_cpu, same, whole.greedy.size(),
                  leading_same(sharded.greedy, cpu.greedy));
    }
  }
}

TEST(CudaParallel, DevicesListNamesEveryRank) {
  SKIP_WITHOUT_DEVICE();
  const std::string path = models_dir() + "/tiny-llama2";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared models absent: " << path;
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.tensor_parallel = 2;
  p.devices = "cuda:0,cuda:0";
  paca_model* m = nullptr;
  ASSERT_EQ(paca_model_load(path.c_str(), &p, &m), PACA_OK) << paca_last_error();
  std::vector<char> buf(1 << 16);
  size_t need = 0;
  ASSERT_EQ(paca_model_describe_json(m, buf.data(), buf.size(), &need), PACA_OK) << paca_last_error();
  const std::string backend = nlohmann::json::parse(buf.data())["backend"].get<std::string>();
  EXPECT_NE(backend.find("cuda:0"), std::string::npos) << backend;
  EXPECT_NE(backend.find("staged through the host"), std::string::npos) << backend;
  paca_model_free(m);
  // mixed devices stay refused
  p.devices = "cpu,cuda:0";
  EXPECT_EQ(paca_model_load(path.c_str(), &p, &m), PACA_ERR_UNSUPPORTED);
  EXPECT_EQ(m, nullptr);
}

std::unique_ptr<paca::Checkpoint> open_model(const std::string& path) {
  return paca::open_checkpoint(path, "", paca::MappedFile::Mode::map);
}

// greedy decoding on a runner: the prompt's logits, then n tokens
Outcome run_runner(paca::ModelRunner& m, const std::vector<int32_t>& prompt, int n) {
  Outcome r;
  paca::BlockPool pool(m.kv_backend(), m.kv_layout());
  paca::Session s(m, pool, 0);
  s.prefill(prompt);
  r.logits = s.logits();
  for (int i = 0; i < n; ++i) {
    const int32_t t = argmax(s.logits());
    r.greedy.push_back(t);
    s.prefill(std::span<const int32_t>(&t, 1));
  }
  r.backend = m.backend_name();
  return r;
}

TEST(CudaParallel, NcclWithAWorldOfOneMatchesTheUnshardedModel) {
  SKIP_WITHOUT_DEVICE();
  std::string why;
  ASSERT_TRUE(paca::nccl_available(&why)) << why;
  std::printf("%s\n", paca::nccl_describe().c_str());
  const std::string path = models_dir() + "/tiny-llama2";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared models absent: " << path;
  for (int n_prompt : {5, 40}) {
    const std::vector<int32_t> prompt = prompt_of(n_prompt, 5);
    paca::LoadOptions lo;
    lo.device = "cuda:0";
    auto whole_model = paca::load_model(path, lo);
    const Outcome whole = run_runner(*whole_model, prompt, 8);
    whole_model.reset();
    paca::ShardOptions so;
    so.device = "cuda:0";
    so.collectives = paca::ShardOptions::Collectives::nccl;
    so.timeout = 30s;
    paca::ShardedModel nccl(open_model(path), std::move(so), paca::ModelOptions{});
    const Outcome got = run_runner(nccl, prompt, 8);
    EXPECT_NE(got.backend.find("NCCL"), std::string::npos) << got.backend;
    EXPECT_LT(rel_l2(got.logits, whole.logits), 1e-5) << "prompt " << n_prompt;  // a sum over one rank
    EXPECT_EQ(got.greedy, whole.greedy) << "prompt " << n_prompt;
    std::printf("NCCL world of 1, prompt %d: rel L2 %.2e to unsharded cuda:0 (%s)\n", n_prompt,
                rel_l2(got.logits, whole.logits), got.backend.c_str());
  }
}

TEST(CudaParallel, NcclCollectivesOnDeviceBuffers) {
  SKIP_WITHOUT_DEVICE();
  auto be = paca::make_backend("cuda:0", 1);
  paca::Backend* bes[] = {be.get()};
  std::vector<std::unique_ptr<paca::Communicator>> group = paca::nccl_comm_group(bes, 30s);
  ASSERT_EQ(group.size(), 1u);
  // and the multi-process form: rank 0 of 1 from a fresh id
  std::unique_ptr<paca::Communicator> single = paca::nccl_comm(paca::nccl_unique_id(), 0, 1, *be, 30s);
  for (paca::Communicator* c : {group[0].get(), single.get()}) {
    EXPECT_EQ(c->rank(), 0);
    EXPECT_EQ(c->size(), 1);
    std::vector<float> host(1000);
    for (size_t i = 0; i < host.size(); ++i) host[i] = 0.25f * static_cast<float>(i) - 7.0f;
    auto* a = static_cast<float*>(be->alloc(host.size() * sizeof(float)));
    auto* b = static_cast<float*>(be->alloc(host.size() * sizeof(float)));
    be->copy(a, host.data(), host.size() * sizeof(float));
    c->all_reduce_sum(a, host.size());
    c->all_gather(a, host.size(), b);
    c->barrier();
    std::vector<float> got(host.size());
    be->to_host(b, got.data(), got.size());
    EXPECT_EQ(got, host);
    EXPECT_THROW(c->send(a, 1, 0), paca::Error);  // no other rank
    be->release(a);
    be->release(b);
  }
}

TEST(CudaParallel, APeerThatNeverComesIsATimeoutNotAHang) {
  SKIP_WITHOUT_DEVICE();
  auto be = paca::make_backend("cuda:0", 1);
  const auto t0 = Clock::now();
  try {
    // rank 0 of 2; rank 1 never starts
    (void)paca::nccl_comm(paca::nccl_unique_id(), 0, 2, *be, 3000ms);
    ADD_FAILURE() << "a group of two formed with one rank";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::io) << e.what();
    EXPECT_NE(std::string(e.what()).find("did not finish within 3000 ms"), std::string::npos) << e.what();
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(s, 20.0);
  std::printf("NCCL init without its peer gave up after %.1f s\n", s);
  // the device stays usable
  auto* p = static_cast<float*>(be->alloc(16));
  float back[4] = {1, 1, 1, 1};
  be->to_host(p, back, 4);
  EXPECT_EQ(back[0], 0.0f);
  be->release(p);
}

TEST(CudaParallel, ProcessRanksOnOneGpuWithStagedCollectives) {
  SKIP_WITHOUT_DEVICE();
  const std::string path = models_dir() + "/tiny-llama2";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared models absent: " << path;
  const std::vector<int32_t> prompt = prompt_of(6, 9);
  paca::ShardOptions local;
  local.tp = 2;
  local.device = "cuda:0";
  paca::ShardedModel in_process(open_model(path), std::move(local), paca::ModelOptions{});
  const Outcome want = run_runner(in_process, prompt, 6);
  const int port = free_port();
  std::vector<Outcome> got(2);
  auto errs = on_threads(2, [&](int r) {
    paca::WorldOptions w;
    w.rank = r;
    w.size = 2;
    w.rendezvous = "127.0.0.1:" + std::to_string(port);
    w.timeout = 30s;
    paca::ShardOptions so;
    so.tp = 2;
    so.device = "cuda:0";
    so.collectives = paca::ShardOptions::Collectives::host;
    so.world = paca::tcp_connect_world(w);
    paca::ShardedModel m(open_model(path), std::move(so), paca::ModelOptions{});
    got[static_cast<size_t>(r)] = run_runner(m, prompt, 6);
  });
  for (auto& e : errs) EXPECT_EQ(e, "");
  for (int r = 0; r < 2; ++r) {
    // the same staged rank-order sums: the same bits
    EXPECT_EQ(got[static_cast<size_t>(r)].logits, want.logits) << "rank " << r;
    EXPECT_EQ(got[static_cast<size_t>(r)].greedy, want.greedy) << "rank " << r;
  }
}

}  // namespace
