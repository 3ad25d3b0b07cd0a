// plan.cpp - shard-plan arithmetic (see plan.h).
#include "parallel/plan.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "parallel/shard.h"
#include "util/error.h"

namespace paca {

namespace {

// name, dim, layers, heads, kv heads, head dim, ffn, vocab, tied, context, rope theta
// (Meta's published configurations; tiny and 110m are test shapes).
const ModelShape kShapes[] = {
    {"tiny", 128, 4, 4, 2, 32, 384, 4096, false, 2048, 500000.0f},
    {"110m", 768, 12, 12, 12, 64, 2048, 32000, false, 2048, 10000.0f},
    {"llama2-7b", 4096, 32, 32, 32, 128, 11008, 32000, false, 4096, 10000.0f},
    {"llama2-13b", 5120, 40, 40, 40, 128, 13824, 32000, false, 4096, 10000.0f},
    {"llama2-70b", 8192, 80, 64, 8, 128, 28672, 32000, false, 4096, 10000.0f},
    {"llama3-8b", 4096, 32, 32, 8, 128, 14336, 128256, false, 8192, 500000.0f},
    {"llama3-70b", 8192, 80, 64, 8, 128, 28672, 128256, false, 8192, 500000.0f},
    {"llama3.1-8b", 4096, 32, 32, 8, 128, 14336, 128256, false, 131072, 500000.0f},
    {"llama3.1-70b", 8192, 80, 64, 8, 128, 28672, 128256, false, 131072, 500000.0f},
    {"llama3.1-405b", 16384, 126, 128, 8, 128, 53248, 128256, false, 131072, 500000.0f},
    {"llama3.2-1b", 2048, 16, 32, 8, 64, 8192, 128256, true, 131072, 500000.0f},
    {"llama3.2-3b", 3072, 28, 24, 8, 128, 8192, 128256, true, 131072, 500000.0f},
};

uint64_t checked_mul(uint64_t a, uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) fail(Status::invalid_argument, "plan: sizes overflow 64 bits");
  return a * b;
}

// Bytes of a [rows, cols] linear weight: BF16, or FP8 plus one f32 scale per row.
uint64_t linear_bytes(uint64_t rows, uint64_t cols, bool fp8) {
  return fp8 ? checked_mul(rows, cols) + rows * 4 : checked_mul(checked_mul(rows, cols), 2);
}

size_t kv_elem_bytes(DType t) { return t == DType::f32 ? 4 : t == DType::bf16 ? 2 : 1; }

}  // namespace

const ModelShape* find_shape(const std::string& name) {
  for (const ModelShape& s : kShapes)
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string> shape_names() {
  std::vector<std::string> out;
  for (const ModelShape& s : kShapes) out.push_back(s.name);
  return out;
}

Plan make_plan(const PlanRequest& req) {
  const ModelShape& m = req.shape;
  check(m.dim > 0 && m.n_layers > 0 && m.n_heads > 0 && m.n_kv_heads > 0 && m.head_dim > 0 && m.ffn_dim > 0 &&
            m.n_vocab > 0,
        Status::invalid_argument, "plan: every dimension of the shape must be positive");
  check(m.n_heads % m.n_kv_heads == 0, Status::invalid_argument, "plan: {} heads are not a multiple of {} kv heads",
        m.n_heads, m.n_kv_heads);
  // the loader's own rules (shard.h): the plan is of a layout paca can load
  TpLayout L;
  std::vector<StageRange> stages;
  try {
    L = tp_layout(m.n_heads, m.n_kv_heads, m.ffn_dim, m.n_vocab, req.tp);
    stages = pipeline_stages(m.n_layers, req.pp);
  } catch (const Error& e) {
    throw Error(e.status(), std::string("plan: ") + e.what());
  }
  const int kv_per_rank = L.kv_heads;
  check(req.context > 0 && req.batch > 0 && req.prefill_chunk > 0, Status::invalid_argument,
        "plan: context, batch and prefill chunk must be positive");
  check(req.kv_dtype == DType::f32 || req.kv_dtype == DType::bf16 || req.kv_dtype == DType::f8e4m3,
        Status::invalid_argument, "plan: KV dtype must be f32, bf16 or fp8");
  check(std::isfinite(req.device_bytes) && req.device_bytes > 0 && std::isfinite(req.reserve_bytes) && req.reserve_bytes >= 0,
        Status::invalid_argument, "plan: device memory must be positive");

  const uint64_t D = static_cast<uint64_t>(m.dim), hd = static_cast<uint64_t>(m.head_dim);
  const uint64_t q_rank = static_cast<uint64_t>(L.q_heads) * hd, kv_rank = static_cast<uint64_t>(kv_per_rank) * hd;
  const uint64_t f_rank = static_cast<uint64_t>(L.ffn);
  const uint64_t v_rank = static_cast<uint64_t>(L.vocab_rows);  // vocabulary shard (the last one padded)

  Plan plan;
  plan.request = req;
  plan.kv_heads_per_rank = kv_per_rank;
  for (int s = 0; s < req.pp; ++s) {
    const int first = stages[s].first, count = stages[s].count;
    uint64_t weights = 0;
    for (int l = first; l < first + count; ++l) {
      const bool fp8_layer = req.fp8 && !(req.fp8_keep_first_last && (l == 0 || l == m.n_layers - 1));
      const bool fp8_attn = fp8_layer && req.fp8_attention;
      weights += 2 * D * 2;                                   // attention and FFN norms (BF16), replicated
      weights += linear_bytes(q_rank, D, fp8_attn);           // q: output rows
      weights += 2 * linear_bytes(kv_rank, D, fp8_attn);      // k, v: output rows (whole kv heads)
      weights += linear_bytes(D, q_rank, fp8_attn);           // o: input columns
      weights += 2 * linear_bytes(f_rank, D, fp8_layer);      // gate, up: output rows
      weights += linear_bytes(D, f_rank, fp8_layer);          // down: input columns
    }
    if (s == 0) weights += linear_bytes(v_rank, D, false);    // embedding, by vocabulary
    if (s == req.pp - 1) {
      weights += D * 2;                                       // final norm
      if (!m.tied_embeddings || req.pp > 1) weights += linear_bytes(v_rank, D, false);  // LM head
    }
    const uint64_t kv_token = static_cast<uint64_t>(count) * 2 * kv_rank * kv_elem_bytes(req.kv_dtype);
    plan.kv_bytes_per_token_per_rank = std::max(plan.kv_bytes_per_token_per_rank, kv_token);
    const uint64_t kv = checked_mul(checked_mul(kv_token, static_cast<uint64_t>(req.context)), static_cast<uint64_t>(req.batch));
    // f32 activations of the tokens in flight (a prefill chunk or one token per
    // sequence): residual, normed input, attention output, FFN input (4 D),
    // gate, up, product (3 F/N), q, k, v of this rank; plus one row of logits
    // per sequence over this rank's vocabulary shard.
    const uint64_t in_flight = static_cast<uint64_t>(std::max(req.batch, req.prefill_chunk));
    const uint64_t workspace = checked_mul(in_flight, 4 * D + 3 * f_rank + q_rank + 2 * kv_rank) * 4 +
                               checked_mul(static_cast<uint64_t>(req.batch), v_rank) * 4;
    for (int r = 0; r < req.tp; ++r) {
      RankPlan rp;
      rp.tp_rank = r;
      rp.stage = s;
      rp.first_layer = first;
      rp.n_layers = count;
      rp.weight_bytes = weights;
      rp.kv_bytes = kv;
      rp.workspace_bytes = workspace;
      plan.max_rank_bytes = std::max(plan.max_rank_bytes, rp.total());
      plan.ranks.push_back(rp);
    }
  }
  plan.fits = static_cast<double>(plan.max_rank_bytes) <= req.device_bytes - req.reserve_bytes;
  return plan;
}

std::string plan_json(const Plan& p) {
  using ojson = nlohmann::ordered_json;
  const PlanRequest& q = p.request;
  ojson j;
  j["shape"] = {{"name", q.shape.name},           {"dim", q.shape.dim},         {"n_layers", q.shape.n_layers},
                {"n_heads", q.shape.n_heads},     {"n_kv_heads", q.shape.n_kv_heads}, {"head_dim", q.shape.head_dim},
                {"ffn_dim", q.shape.ffn_dim},     {"n_vocab", q.shape.n_vocab}, {"tied_embeddings", q.shape.tied_embeddings}};
  j["tp"] = q.tp;
  j["pp"] = q.pp;
  j["weights"] = q.fp8 ? (q.fp8_attention ? "fp8 (mlp+attention)" : "fp8 (mlp)") : "bf16";
  j["fp8_keep_first_last"] = q.fp8 && q.fp8_keep_first_last;
  j["kv_dtype"] = q.kv_dtype == DType::f32 ? "f32" : q.kv_dtype == DType::bf16 ? "bf16" : "fp8";
  j["context"] = q.context;
  j["batch"] = q.batch;
  j["device_memory_bytes"] = q.device_bytes;
  j["reserve_bytes"] = q.reserve_bytes;
  j["kv_heads_per_rank"] = p.kv_heads_per_rank;
  j["kv_bytes_per_token_per_rank"] = p.kv_bytes_per_token_per_rank;
  ojson ranks = ojson::array();
  for (const RankPlan& r : p.ranks)
    ranks.push_back({{"tp_rank", r.tp_rank},
                     {"stage", r.stage},
                     {"layers", {r.first_layer, r.n_layers}},
                     {"weight_bytes", r.weight_bytes},
                     {"kv_bytes", r.kv_bytes},
                     {"workspace_bytes", r.workspace_bytes},
                     {"total_bytes", r.total()}});
  j["ranks"] = std::move(ranks);
  j["max_rank_bytes"] = p.max_rank_bytes;
  j["fits"] = p.fits;
  return j.dump();
}

PlanRequest plan_request_from_json(const std::string& text) {
  using json = nlohmann::json;
  const json j = json::parse(text, nullptr, false);
  check(!j.is_discarded() && j.is_object(), Status::invalid_argument, "plan request: not a JSON object");
  PlanRequest r;
  auto integer = [&](const char* key, int64_t lo, int64_t hi, int64_t def) -> int64_t {
    auto it = j.find(key);
    if (it == j.end()) return def;
    check(it->is_number_integer(), Status::invalid_argument, "plan request: \"{}\" must be an integer", key);
    const int64_t v = it->get<int64_t>();
    check(v >= lo && v <= hi, Status::invalid_argument, "plan request: \"{}\" = {} is outside {}..{}", key, v, lo, hi);
    return v;
  };
  auto number = [&](const char* key, double lo, double hi, double def) -> double {
    auto it = j.find(key);
    if (it == j.end()) return def;
    check(it->is_number(), Status::invalid_argument, "plan request: \"{}\" must be a number", key);
    const double v = it->get<double>();
    check(std::isfinite(v) && v >= lo && v <= hi, Status::invalid_argument, "plan request: \"{}\" is outside {}..{}", key,
          lo, hi);
    return v;
  };
  auto boolean = [&](const char* key, bool def) {
    auto it = j.find(key);
    if (it == j.end()) return def;
    check(it->is_boolean(), Status::invalid_argument, "plan request: \"{}\" must be true or false", key);
    return it->get<bool>();
  };
  auto shape = j.find("shape");
  check(shape != j.end(), Status::invalid_argument, "plan request: \"shape\" (a name or an object of dimensions) is required");
  if (shape->is_string()) {
    const ModelShape* s = find_shape(shape->get<std::string>());
    if (s == nullptr) {
      std::string names;
      for (const std::string& n : shape_names()) names += (names.empty() ? "" : ", ") + n;
      fail(Status::invalid_argument, "plan request: unknown shape '{}' (known: {})", shape->get<std::string>(), names);
    }
    r.shape = *s;
  } else {
    check(shape->is_object(), Status::invalid_argument, "plan request: \"shape\" must be a name or an object");
    auto dim = [&](const char* key, bool required) {
      auto it = shape->find(key);
      if (it == shape->end()) {
        check(!required, Status::invalid_argument, "plan request: shape.{} is required", key);
        return 0;
      }
      check(it->is_number_integer() && it->get<int64_t>() > 0 && it->get<int64_t>() <= (int64_t{1} << 24),
            Status::invalid_argument, "plan request: shape.{} must be an integer in 1..2^24", key);
      return static_cast<int>(it->get<int64_t>());
    };
    r.shape.name = "custom";
    r.shape.dim = dim("dim", true);
    r.shape.n_layers = dim("n_layers", true);
    r.shape.n_heads = dim("n_heads", true);
    r.shape.n_kv_heads = dim("n_kv_heads", false);
    if (r.shape.n_kv_heads == 0) r.shape.n_kv_heads = r.shape.n_heads;
    r.shape.head_dim = dim("head_dim", false);
    if (r.shape.head_dim == 0) {
      check(r.shape.dim % r.shape.n_heads == 0, Status::invalid_argument,
            "plan request: shape.dim {} is not a multiple of {} heads (give shape.head_dim)", r.shape.dim, r.shape.n_heads);
      r.shape.head_dim = r.shape.dim / r.shape.n_heads;
    }
    r.shape.ffn_dim = dim("ffn_dim", true);
    r.shape.n_vocab = dim("n_vocab", true);
    auto tied = shape->find("tied_embeddings");
    if (tied != shape->end()) {
      check(tied->is_boolean(), Status::invalid_argument, "plan request: shape.tied_embeddings must be true or false");
      r.shape.tied_embeddings = tied->get<bool>();
    }
  }
  r.tp = static_cast<int>(integer("tp", 1, kMaxTensorParallel, 1));
  r.pp = static_cast<int>(integer("pp", 1, 4096, 1));
  if (auto w = j.find("weights"); w != j.end()) {
    check(w->is_string() && (*w == "bf16" || *w == "fp8"), Status::invalid_argument,
          "plan request: \"weights\" must be \"bf16\" or \"fp8\"");
    r.fp8 = *w == "fp8";
  }
  r.fp8_attention = boolean("fp8_attention", false);
  r.fp8_keep_first_last = boolean("fp8_keep_first_last", true);
  if (auto kv = j.find("kv_dtype"); kv != j.end()) {
    check(kv->is_string() && (*kv == "f32" || *kv == "bf16" || *kv == "fp8"), Status::invalid_argument,
          "plan request: \"kv_dtype\" must be \"f32\", \"bf16\" or \"fp8\"");
    r.kv_dtype = *kv == "f32" ? DType::f32 : *kv == "bf16" ? DType::bf16 : DType::f8e4m3;
  }
  r.context = integer("context", 1, int64_t{1} << 24, 8192);
  r.batch = integer("batch", 1, int64_t{1} << 20, 1);
  r.prefill_chunk = integer("prefill_chunk", 1, int64_t{1} << 20, 256);
  r.device_bytes = number("device_memory_gb", 1e-3, 1e6, 80.0) * 1e9;
  r.reserve_bytes = number("reserve_gb", 0, 1e6, 1.073741824) * 1e9;
  return r;
}

}  // namespace paca
