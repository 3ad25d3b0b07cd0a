// plan.h - the paper plan of a sharded deployment: for a model shape, a
// tensor-parallel (TP) x pipeline-parallel (PP) layout, weight and KV dtypes,
// context and batch, the bytes every rank holds (weights, KV cache, workspace)
// and whether that fits a device of a given memory. Pure arithmetic on the
// shard plan design.md describes: q/k/v/gate/up split by output rows (whole
// heads; kv heads replicated when TP exceeds their count), o/down by input
// columns, embedding and LM head by vocabulary, norms replicated; PP splits
// the layers into contiguous stages, the embedding on the first and the final
// norm and LM head on the last.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format/tensor.h"

namespace paca {

struct ModelShape {
  std::string name;
  int dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn_dim = 0, n_vocab = 0;
  bool tied_embeddings = false;
  int max_context = 0;  // of the published model (benchmarks cap it lower)
  float rope_theta = 0;
};

// The named shapes (llama2-7b, llama3-8b, llama3.1-8b, llama3.1-70b,
// llama3.1-405b, llama3.2-1b, llama3.2-3b, 110m, tiny); nullptr when unknown.
const ModelShape* find_shape(const std::string& name);
std::vector<std::string> shape_names();

struct PlanRequest {
  ModelShape shape;
  int tp = 1, pp = 1;
  bool fp8 = false;                // FP8 E4M3 linear weights with one f32 scale per output row
  bool fp8_attention = false;      // ... also q/k/v/o (default: the MLP only, Meta's recipe)
  bool fp8_keep_first_last = true;  // ... first and last layer kept in BF16 (Meta's recipe)
  DType kv_dtype = DType::bf16;    // f32, bf16 or f8e4m3
  int64_t context = 8192;          // tokens per sequence
  int64_t batch = 1;               // sequences
  int64_t prefill_chunk = 256;     // tokens per prefill step (sizes the workspace)
  double device_bytes = 80e9;      // memory of one device
  double reserve_bytes = 1073741824.0;  // kept free per device (driver context, library workspaces)
};

struct RankPlan {
  int tp_rank = 0, stage = 0;
  int first_layer = 0, n_layers = 0;
  uint64_t weight_bytes = 0, kv_bytes = 0, workspace_bytes = 0;
  uint64_t total() const { return weight_bytes + kv_bytes + workspace_bytes; }
};

struct Plan {
  PlanRequest request;
  int kv_heads_per_rank = 0;
  uint64_t kv_bytes_per_token_per_rank = 0;  // for a rank of the largest stage
  std::vector<RankPlan> ranks;                // stage-major: stage s, TP rank r at s * tp + r
  uint64_t max_rank_bytes = 0;
  bool fits = false;
};

// Throws Error(invalid_argument) naming the problem: a TP degree that does
// not divide the heads, the FFN or the kv heads (or a multiple of them), more
// stages than layers, non-positive sizes, sizes that overflow.
Plan make_plan(const PlanRequest& req);

// {"shape": {...}, "tp", "pp", "weights": "bf16"|"fp8", "kv_dtype", "context", "batch",
//  "device_memory_bytes", "reserve_bytes", "kv_heads_per_rank", "kv_bytes_per_token_per_rank",
//  "ranks": [{"tp_rank", "stage", "layers": [first, count], "weight_bytes", "kv_bytes",
//             "workspace_bytes", "total_bytes"}], "max_rank_bytes", "fits"}
std::string plan_json(const Plan& plan);

// A request from JSON (paca_plan_json's input; see paca.h). Throws
// Error(invalid_argument) for malformed or out-of-range fields.
PlanRequest plan_request_from_json(const std::string& json);

}  // namespace paca
