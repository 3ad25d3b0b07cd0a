// plan_test.cpp - paca_plan_json and the named shapes through paca.h: the
// plan of an unsharded model equals what a real load reports; BF16 weights
// of the published Llama 3.1 models equal 2 bytes x their published parameter
// counts; TP/PP splits conserve the sharded bytes; hostile requests fail
// cleanly.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "test_util.h"

using json = nlohmann::json;

namespace {

json plan(const json& request, paca_status* status = nullptr) {
  const std::string rq = request.dump();
  size_t need = 0;
  paca_status st = paca_plan_json(rq.c_str(), nullptr, 0, &need);
  if (st != PACA_ERR_BUFFER_TOO_SMALL) {
    if (status) *status = st;
    return json();
  }
  std::string buf(need, '\0');
  st = paca_plan_json(rq.c_str(), buf.data(), buf.size(), &need);
  if (status) *status = st;
  EXPECT_EQ(st, PACA_OK) << paca_last_error();
  buf.resize(need - 1);
  return json::parse(buf);
}

uint64_t u64(const json& j) { return j.get<uint64_t>(); }

}  // namespace

TEST(Plan, UnshardedPlanEqualsARealLoad) {
  for (const char* name : {"tiny", "110m"}) {
    for (int tied : {0, 1}) {
      SCOPED_TRACE(std::string(name) + (tied ? " tied" : ""));
      paca_test_model_params shape;
      ASSERT_EQ(paca_test_model_params_for_shape(name, &shape), PACA_OK) << paca_last_error();
      shape.tied_embeddings = tied;
      shape.max_context = 256;
      paca_model* m = nullptr;
      ASSERT_EQ(paca_model_load_synthetic(&shape, nullptr, &m), PACA_OK) << paca_last_error();
      paca_model_info info{};
      info.struct_size = sizeof info;
      ASSERT_EQ(paca_model_get_info(m, &info), PACA_OK);
      const json p = plan({{"shape",
                            {{"dim", shape.dim}, {"n_layers", shape.n_layers}, {"n_heads", shape.n_heads},
                             {"n_kv_heads", shape.n_kv_heads}, {"ffn_dim", shape.ffn_dim}, {"n_vocab", shape.n_vocab},
                             {"tied_embeddings", tied != 0}}},
                           {"kv_dtype", "f32"},  // the CPU cache's dtype
                           {"context", 256}});
      ASSERT_EQ(p["ranks"].size(), 1u);
      EXPECT_EQ(u64(p["ranks"][0]["weight_bytes"]), info.weight_bytes);
      EXPECT_EQ(u64(p["kv_bytes_per_token_per_rank"]), info.kv_bytes_per_token);
      EXPECT_EQ(u64(p["ranks"][0]["kv_bytes"]), info.kv_bytes_per_token * 256u);
      paca_model_free(m);
    }
  }
}

TEST(Plan, ShardedPlanEqualsARealShardedLoad) {
  // Per rank, the weights and KV a sharded load reports (paca_model_describe_json,
  // "parallel") against the plan of the same layout. One known difference: the
  // CPU ranks keep the whole embedding (a lookup needs no split), where the plan
  // splits it by vocabulary as the GPU path will.
  for (int32_t tied : {0, 1}) {
    for (auto [tp, pp] : {std::pair{2, 1}, std::pair{4, 1}, std::pair{1, 2}, std::pair{2, 2}}) {
      SCOPED_TRACE("tied " + std::to_string(tied) + " tp " + std::to_string(tp) + " pp " + std::to_string(pp));
      paca_test_model_params shape;  // vocab 4096: every split is even
      paca_test_model_params_init(&shape, sizeof shape);
      shape.tied_embeddings = tied;
      shape.max_context = 256;
      paca_model_params mp;
      paca_model_params_init(&mp, sizeof mp);
      mp.n_threads = 1;
      mp.tensor_parallel = tp;
      mp.pipeline_parallel = pp;
      paca_model* m = nullptr;
      ASSERT_EQ(paca_model_load_synthetic(&shape, &mp, &m), PACA_OK) << paca_last_error();
      size_t need = 0;
      paca_model_describe_json(m, nullptr, 0, &need);
      std::string buf(need, '\0');
      ASSERT_EQ(paca_model_describe_json(m, buf.data(), buf.size(), &need), PACA_OK);
      const json real = json::parse(buf.c_str());
      const json p = plan({{"shape",
                            {{"dim", shape.dim}, {"n_layers", shape.n_layers}, {"n_heads", shape.n_heads},
                             {"n_kv_heads", shape.n_kv_heads}, {"ffn_dim", shape.ffn_dim}, {"n_vocab", shape.n_vocab},
                             {"tied_embeddings", tied != 0}}},
                           {"tp", tp},
                           {"pp", pp},
                           {"kv_dtype", "f32"},
                           {"context", 256}});
      const json& ranks = real["parallel"]["ranks"];
      ASSERT_EQ(ranks.size(), p["ranks"].size());
      const uint64_t V = static_cast<uint64_t>(shape.n_vocab), D = static_cast<uint64_t>(shape.dim);
      for (size_t r = 0; r < ranks.size(); ++r) {
        const json& pr = p["ranks"][r];
        EXPECT_EQ(ranks[r]["stage"], pr["stage"]) << "rank " << r;
        EXPECT_EQ(ranks[r]["first_layer"].get<int>(), pr["layers"][0].get<int>()) << "rank " << r;
        const uint64_t whole_embedding = ranks[r]["stage"].get<int>() == 0 ? (V - V / static_cast<uint64_t>(tp)) * D * 2 : 0;
        EXPECT_EQ(u64(ranks[r]["weight_bytes"]), u64(pr["weight_bytes"]) + whole_embedding) << "rank " << r;
        EXPECT_EQ(u64(ranks[r]["kv_bytes_per_token"]) * 256u, u64(pr["kv_bytes"])) << "rank " << r;
      }
      paca_model_free(m);
    }
  }
}

TEST(Plan, PublishedParameterCounts) {
  // Hugging Face model cards: Llama 3.1 8B / 70B / 405B parameter counts.
  const std::pair<const char*, uint64_t> published[] = {
      {"llama3.1-8b", 8030261248ull}, {"llama3.1-70b", 70553706496ull}, {"llama3.1-405b", 405853388800ull}};
  for (const auto& [name, params] : published) {
    const json p = plan({{"shape", name}});
    EXPECT_EQ(u64(p["ranks"][0]["weight_bytes"]), 2 * params) << name;
  }
}

TEST(Plan, ShardsConserveBytes) {
  const json one = plan({{"shape", "llama3.1-70b"}, {"context", 4096}});
  const uint64_t total = u64(one["ranks"][0]["weight_bytes"]);
  const uint64_t D = 8192, L = 80;
  const uint64_t replicated = L * 2 * D * 2 + D * 2;  // norms
  for (int tp : {2, 4, 8, 16}) {
    const json p = plan({{"shape", "llama3.1-70b"}, {"tp", tp}, {"context", 4096}});
    ASSERT_EQ(p["ranks"].size(), static_cast<size_t>(tp));
    uint64_t sum = 0;
    for (const auto& r : p["ranks"]) sum += u64(r["weight_bytes"]);
    // Everything but the norms is split exactly (128256 divides by 2..16); k/v
    // are replicated once tp exceeds the 8 kv heads.
    const uint64_t kv_weights = L * 2 * (8 * 128) * D * 2;
    const uint64_t extra_kv = tp > 8 ? kv_weights * (tp / 8 - 1) : 0;
    EXPECT_EQ(sum, total + replicated * (tp - 1) + extra_kv) << "tp " << tp;
    EXPECT_EQ(p["kv_heads_per_rank"].get<int>(), tp >= 8 ? 1 : 8 / tp);
  }
  // Pipeline stages split the layers, the embedding on the first stage and the head on the last.
  const json pp = plan({{"shape", "llama3.1-70b"}, {"pp", 3}, {"context", 4096}});
  ASSERT_EQ(pp["ranks"].size(), 3u);
  uint64_t sum = 0;
  int layers = 0;
  for (const auto& r : pp["ranks"]) {
    sum += u64(r["weight_bytes"]);
    EXPECT_EQ(r["layers"][0].get<int>(), layers);
    layers += r["layers"][1].get<int>();
  }
  EXPECT_EQ(layers, 80);
  EXPECT_EQ(sum, total);
  EXPECT_EQ(u64(pp["ranks"][0]["kv_bytes"]) + u64(pp["ranks"][1]["kv_bytes"]) + u64(pp["ranks"][2]["kv_bytes"]),
            u64(one["ranks"][0]["kv_bytes"]));
}

TEST(Plan, Fp8AndFit) {
  const json bf16 = plan({{"shape", "llama3.1-405b"}, {"tp", 8}, {"context", 8192}});
  const json fp8 = plan({{"shape", "llama3.1-405b"}, {"tp", 8}, {"context", 8192}, {"weights", "fp8"}});
  EXPECT_FALSE(bf16["fits"].get<bool>());  // 101 GB of weights per rank
  EXPECT_TRUE(fp8["fits"].get<bool>());
  // MLP in FP8 except the first and last layer: each such weight 1 byte plus a 4-byte scale per row.
  const uint64_t D = 16384, F = 53248 / 8;
  const uint64_t saved_per_layer = 3 * F * D - 2 * F * 4 - D * 4;
  EXPECT_EQ(u64(bf16["ranks"][0]["weight_bytes"]) - u64(fp8["ranks"][0]["weight_bytes"]), 124 * saved_per_layer);
}

TEST(Plan, HostileRequests) {
  paca_status st = PACA_OK;
  for (const char* bad : {"", "[", "[]", "{}", R"({"shape": "llama9"})", R"({"shape": 3})",
                          R"({"shape": "llama3.1-8b", "tp": 3})", R"({"shape": "llama3.1-8b", "tp": 0})",
                          R"({"shape": "llama3.1-8b", "tp": 12})", R"({"shape": "llama3.1-8b", "pp": 33})",
                          R"({"shape": "llama3.1-8b", "context": -1})", R"({"shape": "llama3.1-8b", "context": 1e300})",
                          R"({"shape": "llama3.1-8b", "batch": 99999999999999999999})",
                          R"({"shape": "llama3.1-8b", "weights": "int4"})", R"({"shape": "llama3.1-8b", "kv_dtype": 2})",
                          R"({"shape": "llama3.1-8b", "device_memory_gb": -5})",
                          R"({"shape": {"dim": 64, "n_layers": 2, "n_heads": 3, "ffn_dim": 10, "n_vocab": 5}})",
                          R"({"shape": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 3, "ffn_dim": 10, "n_vocab": 5}})",
                          R"({"shape": {"dim": 0, "n_layers": 2, "n_heads": 4, "ffn_dim": 10, "n_vocab": 5}})"}) {
    size_t need = 77;
    EXPECT_EQ(paca_plan_json(bad, nullptr, 0, &need), PACA_ERR_INVALID_ARGUMENT) << bad;
    EXPECT_EQ(need, 0u) << bad;
    EXPECT_NE(std::string(paca_last_error()).find("plan"), std::string::npos) << bad << ": " << paca_last_error();
  }
  (void)st;
  size_t need = 0;
  EXPECT_EQ(paca_plan_json(nullptr, nullptr, 0, &need), PACA_ERR_INVALID_ARGUMENT);
  char small[4];
  EXPECT_EQ(paca_plan_json(R"({"shape": "tiny"})", small, sizeof small, &need), PACA_ERR_BUFFER_TOO_SMALL);
  EXPECT_GT(need, sizeof small);
  paca_test_model_params p;
  EXPECT_EQ(paca_test_model_params_for_shape("nope", &p), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("llama3.1-405b"), std::string::npos);
  EXPECT_EQ(paca_test_model_params_for_shape(nullptr, &p), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_test_model_params_for_shape("tiny", nullptr), PACA_ERR_INVALID_ARGUMENT);
}
