// snapshot_fuzz_common.h - the shape fuzz_snapshot reads snapshots for, and a
// writer of valid snapshots of it (the seeds).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/snapshot_format.h"

namespace paca::fuzz {

inline SnapshotShape snapshot_fuzz_shape() {
  SnapshotShape s;
  s.fingerprint = 0x5EED5EED5EED5EEDull;
  s.kv_dtype = 0;  // f32
  s.elem_bytes = 4;
  s.n_layers = 2;
  s.kv_dim = 8;
  s.n_vocab = 64;
  return s;
}

// Writes a snapshot of n_tokens tokens of the fuzz shape to path.
inline void write_fuzz_snapshot(const std::string& path, size_t n_tokens, bool logits, bool sampler, bool split) {
  const SnapshotShape shape = snapshot_fuzz_shape();
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < n_tokens; ++i) tokens.push_back(static_cast<int32_t>((i * 7 + 1) % shape.n_vocab));
  std::vector<float> lg(logits ? shape.n_vocab : 0);
  for (size_t i = 0; i < lg.size(); ++i) lg[i] = 0.25f * static_cast<float>(i) - 3.0f;
  SamplerRecord rec;
  rec.params.temperature = 0.7f;
  rec.params.seed = 99;
  rec.stop_ids = {3, 5};
  rec.logit_bias = {{2, -1.5f}, {9, 0.5f}};
  SnapshotContents c;
  c.shape = shape;
  c.n_ctx = 64;
  c.tokens = tokens;
  c.logits = lg;
  c.sampler = sampler ? &rec : nullptr;
  c.kv = [&](int layer, int is_v, uint8_t* out) {
    auto* f = reinterpret_cast<float*>(out);
    for (size_t i = 0; i < n_tokens * shape.kv_dim; ++i) f[i] = 0.01f * static_cast<float>(i) * (1 + layer) - is_v;
  };
  SnapshotOptions opt;
  opt.byte_split = split;
  write_snapshot_file(path, c, opt);
}

}  // namespace paca::fuzz
