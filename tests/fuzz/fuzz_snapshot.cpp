// fuzz_snapshot.cpp - libFuzzer target for the session snapshot reader
// (SnapshotReader: header, section table, zstd sections, sampler record).
// Each input is read twice: as it is (the checksums stop most mutations at
// the header) and with its fingerprint and checksums repaired
// (snapshot_testing::fix_header), so the fuzzer also reaches the section
// parsers and zstd. paca::Error is the expected answer to bad input; any
// other exception escapes and is reported as a crash.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_common.h"
#include "snapshot_fuzz_common.h"
#include "util/error.h"

namespace {

void read_all(std::span<const uint8_t> file) {
  try {
    const paca::SnapshotShape shape = paca::fuzz::snapshot_fuzz_shape();
    paca::SnapshotReader r(file, shape, "fuzz.snap");
    const std::vector<int32_t> tokens = r.tokens();
    paca::fuzz::require(tokens.size() == r.n_tokens() && r.n_tokens() <= r.n_ctx());
    for (int32_t t : tokens) paca::fuzz::require(t >= 0 && static_cast<uint32_t>(t) < shape.n_vocab);
    const std::vector<float> logits = r.logits();
    paca::fuzz::require(logits.empty() || logits.size() == shape.n_vocab);
    if (auto s = r.sampler()) {
      for (int32_t id : s->stop_ids) paca::fuzz::require(id >= 0 && static_cast<uint32_t>(id) < shape.n_vocab);
      for (const auto& [id, b] : s->logit_bias) paca::fuzz::require(id >= 0 && static_cast<uint32_t>(id) < shape.n_vocab);
    }
    size_t planes = 0;
    volatile uint8_t sink = 0;
    const size_t plane_bytes = tokens.size() * shape.kv_dim * shape.elem_bytes;
    r.read_kv([&](int layer, int is_v, const uint8_t* p) {
      paca::fuzz::require(static_cast<size_t>(layer * 2 + is_v) == planes++);
      if (plane_bytes > 0) sink = sink + p[0] + p[plane_bytes - 1];
    });
    paca::fuzz::require(planes == 2 * shape.n_layers);
  } catch (const paca::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  read_all(std::span<const uint8_t>(data, size));
  std::vector<uint8_t> fixed(data, data + size);
  paca::snapshot_testing::fix_header(fixed, paca::fuzz::snapshot_fuzz_shape().fingerprint);
  read_all(fixed);
  return 0;
}
