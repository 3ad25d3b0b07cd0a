// shard.h - tensor-parallel shards of a checkpoint (the ShardPlan of
// design.md): rank r of N holds q/k/v/gate/up by output rows (whole heads;
// when N exceeds the kv heads each kv head is replicated on N / Hkv ranks),
// o/down by input columns (their outputs are partial sums, all-reduced), the
// LM head by vocabulary rows (its logits all-gathered), and the embedding and
// norms whole. Row slices are views into the full checkpoint's memory; column
// slices are copied once (reading only those columns).
//
// Pipeline parallelism cuts the layers into stages (StageRange): a stage's
// checkpoint holds only its layers (renumbered from 0), the embedding on the
// first stage and the final norm and LM head on the last.
#pragma once

#include <memory>
#include <vector>

#include "model/checkpoint.h"

namespace paca {

struct TpLayout {
  int size = 1;
  int q_heads = 0;      // query heads per rank
  int kv_heads = 0;     // kv heads per rank
  int ffn = 0;          // FFN width per rank
  int vocab_rows = 0;   // LM-head rows per rank (the last rank's slice is zero-padded to this)
};

// The one rule of how N ranks split a shape (loading and plan.h both use
// it). Throws Error(invalid_argument) when N is outside 1..kMaxTensorParallel,
// does not divide the heads or the FFN, or (N > kv heads) is not a multiple of
// the kv heads.
constexpr int kMaxTensorParallel = 1024;
TpLayout tp_layout(int n_heads, int n_kv_heads, int ffn_dim, int n_vocab, int n);
inline TpLayout tp_layout(const ModelConfig& c, int n) {
  return tp_layout(c.n_heads, c.n_kv_heads, c.ffn_dim, c.n_vocab, n);
}

// Layers [first, first + count) of the whole model.
struct StageRange {
  int first = 0;
  int count = 0;
};

// M stages over n_layers layers, balanced: stage s gets layers
// [s L/M, (s+1) L/M), the first L mod M stages one more (docs/plan.md).
// Throws Error(invalid_argument) unless 1 <= M <= n_layers.
std::vector<StageRange> pipeline_stages(int n_layers, int m);

// Rank r of tensor parallel `layout`, holding the layers of `stage` out of
// `n_stages` (the whole model when n_stages == 1). `full` must outlive it
// (views point into it).
std::unique_ptr<Checkpoint> shard_checkpoint(const Checkpoint& full, const TpLayout& layout, int rank,
                                             StageRange stage, int stage_index, int n_stages);
inline std::unique_ptr<Checkpoint> shard_checkpoint(const Checkpoint& full, const TpLayout& layout, int rank) {
  return shard_checkpoint(full, layout, rank, StageRange{0, full.config.n_layers}, 0, 1);
}

}  // namespace paca
