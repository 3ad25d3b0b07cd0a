// parallel_test.cpp - sharded models through paca.h: tensor parallel 2 and 4
// (above the kv-head count of GQA/MQA models), pipeline parallel 2 and 3 and
// TP x PP give the unsharded logits within 1e-5 relative error and the same
// greedy tokens on the tiny models of ../shared; sessions on a sharded model
// fork and snapshot; bad sharding parameters are clear errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

struct Layout {
  int tp, pp;
};

paca_model* load_sharded(const std::string& path, Layout l, int n_threads = 4) {
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.n_threads = n_threads;
  p.tensor_parallel = l.tp;
  p.pipeline_parallel = l.pp;
  p.comm_timeout_ms = 30000;
  paca_model* m = nullptr;
  const paca_status s = paca_model_load(path.c_str(), &p, &m);
  EXPECT_EQ(s, PACA_OK) << path << " tp " << l.tp << " pp " << l.pp << ": " << paca_last_error();
  return m;
}

int32_t argmax(const float* v, size_t n) { return static_cast<int32_t>(std::max_element(v, v + n) - v); }

// The prompt's logits, then greedy tokens with the logits after each.
struct Greedy {
  std::vector<std::vector<float>> logits;
  std::vector<int32_t> tokens;
};

Greedy greedy(paca_model* m, const std::vector<int32_t>& prompt, int steps) {
  Greedy out;
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_create(m, nullptr, &s), PACA_OK) << paca_last_error();
  if (s == nullptr) return out;
  EXPECT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK) << paca_last_error();
  for (int i = 0;; ++i) {
    const float* lg = nullptr;
    size_t n = 0;
    if (paca_session_logits(s, &lg, &n) != PACA_OK) break;
    out.logits.emplace_back(lg, lg + n);
    if (i == steps) break;
    out.tokens.push_back(argmax(lg, n));
    EXPECT_EQ(paca_session_decode(s, out.tokens.back()), PACA_OK) << paca_last_error();
  }
  paca_session_free(s);
  return out;
}

std::vector<int32_t> prompt_of(const std::string& dir) {
  // the golden prompt's ids (golden.json), parsed by hand to stay on paca.h
  const auto bytes = test::read_file(dir + "/golden.json");
  const std::string j(bytes.begin(), bytes.end());
  const size_t at = j.find("\"prompt_tokens\"");
  std::vector<int32_t> ids;
  if (at == std::string::npos) return ids;
  size_t i = j.find('[', at) + 1;
  while (i < j.size() && j[i] != ']') {
    ids.push_back(static_cast<int32_t>(std::strtol(j.c_str() + i, nullptr, 10)));
    i = j.find_first_of(",]", i);
    if (j[i] == ',') ++i;
  }
  return ids;
}

void expect_same(const Greedy& got, const Greedy& ref) {
  EXPECT_EQ(got.tokens, ref.tokens);
  ASSERT_EQ(got.logits.size(), ref.logits.size());
  for (size_t i = 0; i < ref.logits.size(); ++i) {
    ASSERT_EQ(got.logits[i].size(), ref.logits[i].size());
    EXPECT_LE(test::rel_l2(got.logits[i].data(), ref.logits[i].data(), ref.logits[i].size()), 1e-5) << "step " << i;
  }
}

TEST(Parallel, ShardedTinyModelsMatchUnsharded) {
  SKIP_WITHOUT_SHARED();
  struct Case {
    const char* model;
    std::vector<Layout> layouts;
  };
  const Case cases[] = {
      {"tiny-llama3", {{2, 1}, {4, 1}, {1, 2}, {2, 2}, {4, 2}}},  // GQA 4:2, TP 4 > 2 kv heads
      {"tiny-llama31", {{2, 1}, {4, 1}, {1, 3}, {2, 2}}},         // MQA 4:1, 3 layers
      {"tiny-llama32", {{4, 1}, {8, 1}, {2, 2}}},                 // GQA 8:2, tied embeddings
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.model);
    const std::string dir = test::shared_dir() + "/models/" + c.model;
    const std::vector<int32_t> prompt = prompt_of(dir);
    ASSERT_FALSE(prompt.empty());
    paca_model* whole = test::load_or_die(dir, 2);
    ASSERT_NE(whole, nullptr);
    const Greedy ref = greedy(whole, prompt, 12);
    paca_model_free(whole);
    ASSERT_EQ(ref.tokens.size(), 12u);
    for (Layout l : c.layouts) {
      SCOPED_TRACE("tp " + std::to_string(l.tp) + " pp " + std::to_string(l.pp));
      paca_model* m = load_sharded(dir, l);
      ASSERT_NE(m, nullptr);
      expect_same(greedy(m, prompt, 12), ref);
      paca_model_free(m);
    }
  }
}

TEST(Parallel, SessionsOnAShardedModelForkAndSnapshot) {
  const std::string dir = test::make_small_model(21);  // 4 heads, 2 kv heads, 2 layers
  paca_model* whole = test::load_or_die(dir, 2);
  paca_model* tp2pp2 = load_sharded(dir, {2, 2});
  paca_model* pp2 = load_sharded(dir, {1, 2});
  ASSERT_TRUE(whole && tp2pp2 && pp2);
  const std::vector<int32_t> prompt = {1, 20, 30, 40, 50, 60, 70};
  const Greedy ref = greedy(whole, prompt, 4);

  paca_session* s = nullptr;
  ASSERT_EQ(paca_session_create(tp2pp2, nullptr, &s), PACA_OK);
  ASSERT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK) << paca_last_error();
  // fork: the child continues like the parent would
  paca_session* child = nullptr;
  ASSERT_EQ(paca_session_fork(s, &child), PACA_OK) << paca_last_error();
  ASSERT_EQ(paca_session_decode(child, ref.tokens[0]), PACA_OK) << paca_last_error();
  const float* lg = nullptr;
  size_t n = 0;
  ASSERT_EQ(paca_session_logits(child, &lg, &n), PACA_OK);
  EXPECT_LE(test::rel_l2(lg, ref.logits[1].data(), n), 1e-5);
  // a snapshot of the sharded session loads into the same layout and continues the same way
  const std::string snap = test::temp_dir() + "/s.paca";
  ASSERT_EQ(paca_session_save(s, snap.c_str()), PACA_OK) << paca_last_error();
  paca_session* loaded = nullptr;
  ASSERT_EQ(paca_session_load(tp2pp2, snap.c_str(), &loaded), PACA_OK) << paca_last_error();
  ASSERT_EQ(paca_session_decode(loaded, ref.tokens[0]), PACA_OK);
  ASSERT_EQ(paca_session_logits(loaded, &lg, &n), PACA_OK);
  EXPECT_LE(test::rel_l2(lg, ref.logits[1].data(), n), 1e-5);
  // ...but not into a model whose KV is split another way
  paca_session* wrong = nullptr;
  EXPECT_EQ(paca_session_load(whole, snap.c_str(), &wrong), PACA_ERR_FORMAT) << paca_last_error();
  EXPECT_EQ(wrong, nullptr);
  // pipeline stages keep the unsharded KV layout: their snapshots load into the whole model
  paca_session* p = nullptr;
  ASSERT_EQ(paca_session_create(pp2, nullptr, &p), PACA_OK);
  ASSERT_EQ(paca_session_prefill(p, prompt.data(), prompt.size()), PACA_OK);
  ASSERT_EQ(paca_session_save(p, snap.c_str()), PACA_OK);
  paca_session* into_whole = nullptr;
  ASSERT_EQ(paca_session_load(whole, snap.c_str(), &into_whole), PACA_OK) << paca_last_error();
  ASSERT_EQ(paca_session_decode(into_whole, ref.tokens[0]), PACA_OK);
  ASSERT_EQ(paca_session_logits(into_whole, &lg, &n), PACA_OK);
  EXPECT_LE(test::rel_l2(lg, ref.logits[1].data(), n), 1e-5);
  // the parent goes on after its fork and its snapshot
  ASSERT_EQ(paca_session_decode(s, ref.tokens[0]), PACA_OK) << paca_last_error();
  ASSERT_EQ(paca_session_logits(s, &lg, &n), PACA_OK);
  EXPECT_LE(test::rel_l2(lg, ref.logits[1].data(), n), 1e-5);
  for (paca_session* x : {s, child, loaded, p, into_whole}) paca_session_free(x);
  paca_model_free(whole);
  paca_model_free(tp2pp2);
  paca_model_free(pp2);
}

TEST(Parallel, BadShardingParametersAreClearErrors) {
  const std::string dir = test::make_small_model(22);  // 4 heads, 2 kv heads, 2 layers
  struct Bad {
    const char* what;
    void (*set)(paca_model_params&);
    paca_status want;
    const char* says;
  };
  const Bad bad[] = {
      {"tp 3", [](paca_model_params& p) { p.tensor_parallel = 3; }, PACA_ERR_INVALID_ARGUMENT, "does not divide 4 attention heads"},
      {"tp -1", [](paca_model_params& p) { p.tensor_parallel = -1; }, PACA_ERR_INVALID_ARGUMENT, "tensor_parallel"},
      {"tp 5000", [](paca_model_params& p) { p.tensor_parallel = 5000; }, PACA_ERR_INVALID_ARGUMENT, "tensor_parallel"},
      {"pp 9 > layers", [](paca_model_params& p) { p.pipeline_parallel = 9; }, PACA_ERR_INVALID_ARGUMENT, "stages"},
      {"world without tp x pp", [](paca_model_params& p) { p.world_size = 2; }, PACA_ERR_INVALID_ARGUMENT, "world size 2 must equal"},
      {"rank outside world", [](paca_model_params& p) { p.tensor_parallel = 2; p.world_size = 2; p.rank = 7; p.rendezvous = "127.0.0.1:1"; },
       PACA_ERR_INVALID_ARGUMENT, "rank 7 outside"},
      {"rank without world", [](paca_model_params& p) { p.rank = 1; }, PACA_ERR_INVALID_ARGUMENT, "without a world size"},
      {"rank -2", [](paca_model_params& p) { p.rank = -2; }, PACA_ERR_INVALID_ARGUMENT, "rank"},
      {"rendezvous not host:port", [](paca_model_params& p) { p.tensor_parallel = 2; p.world_size = 2; p.rank = 0; p.rendezvous = "nocolon"; },
       PACA_ERR_INVALID_ARGUMENT, "not host:port"},
      {"rendezvous bad port", [](paca_model_params& p) { p.tensor_parallel = 2; p.world_size = 2; p.rank = 0; p.rendezvous = "h:70000"; },
       PACA_ERR_INVALID_ARGUMENT, "outside 1..65535"},
      {"rendezvous without rank", [](paca_model_params& p) { p.tensor_parallel = 2; p.world_size = 2; p.rendezvous = "h:1"; },
       PACA_ERR_INVALID_ARGUMENT, "needs this process's rank"},
      {"rendezvous alone", [](paca_model_params& p) { p.rendezvous = "h:1"; }, PACA_ERR_INVALID_ARGUMENT, "world size > 1"},
      {"devices count", [](paca_model_params& p) { p.tensor_parallel = 2; p.devices = "cpu,cpu,cpu"; }, PACA_ERR_INVALID_ARGUMENT,
       "3 devices for 2 rank(s)"},
      {"devices empty entry", [](paca_model_params& p) { p.tensor_parallel = 2; p.devices = "cpu,"; }, PACA_ERR_INVALID_ARGUMENT,
       "empty entry"},
      {"devices mixed", [](paca_model_params& p) { p.tensor_parallel = 2; p.devices = "cpu,cuda:0"; }, PACA_ERR_UNSUPPORTED,
       "different devices"},
      {"devices unknown", [](paca_model_params& p) { p.tensor_parallel = 2; p.devices = "tpu"; }, PACA_ERR_INVALID_ARGUMENT,
       "unknown device"},
      {"timeout", [](paca_model_params& p) { p.comm_timeout_ms = -5; }, PACA_ERR_INVALID_ARGUMENT, "comm_timeout_ms"},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.what);
    paca_model_params p;
    paca_model_params_init(&p, sizeof p);
    b.set(p);
    paca_model* m = reinterpret_cast<paca_model*>(&p);  // must be overwritten with NULL
    EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), b.want) << paca_last_error();
    EXPECT_EQ(m, nullptr);
    EXPECT_NE(std::string(paca_last_error()).find(b.says), std::string::npos) << paca_last_error();
  }
  // a world of processes outside mpirun and without a rendezvous
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.tensor_parallel = 2;
  p.world_size = 2;
  paca_model* m = nullptr;
  if (std::getenv("OMPI_COMM_WORLD_RANK") == nullptr) {
    EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_UNSUPPORTED) << paca_last_error();
    EXPECT_NE(std::string(paca_last_error()).find("rendezvous"), std::string::npos) << paca_last_error();
  }
  // "cpu" for every rank, or one per rank, is fine
  paca_model_params_init(&p, sizeof p);
  p.tensor_parallel = 2;
  p.devices = "cpu, cpu";
  ASSERT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_OK) << paca_last_error();
  paca_model_free(m);
}

}  // namespace
