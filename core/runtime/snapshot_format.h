// snapshot_format.h - the session snapshot file format (see snapshot.h for
// the layout): the writer and the hostile-input reader, on plain data. Knows
// nothing of sessions or models, so the fuzzer can run the reader alone.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sample/sampler.h"

namespace paca {

constexpr uint32_t kSnapshotVersion = 1;

// What a paca_sampler holds besides scratch: its settings. The sampler keeps
// no random state (a draw is keyed by (seed, position) and the position is the
// session's length), so these settings are all a continuation needs.
struct SamplerRecord {
  SamplerParams params;
  int32_t n_top_logprobs = 0;
  uint64_t max_new_tokens = 0;
  bool ignore_eos = false;
  std::vector<int32_t> stop_ids;
  std::vector<std::pair<int32_t, float>> logit_bias;
};

struct SnapshotOptions {
  int zstd_level = 1;      // 1 is fast; KV values gain little from higher levels (bench/RESULTS.md)
  bool byte_split = true;  // store each KV plane as byte planes (see bench/RESULTS.md)
};

// What a snapshot must match to load: the model and its KV cache.
struct SnapshotShape {
  uint64_t fingerprint = 0;
  uint32_t kv_dtype = 0;    // DType value
  uint32_t elem_bytes = 4;  // bytes of one KV element
  uint32_t n_layers = 0;
  uint32_t kv_dim = 0;
  uint32_t n_vocab = 0;
};

// A KV plane (layer, is_v): [n_tokens, kv_dim] elements, row-major.
using PlaneSource = std::function<void(int layer, int is_v, uint8_t* out)>;
using PlaneSink = std::function<void(int layer, int is_v, const uint8_t* in)>;

struct SnapshotContents {
  SnapshotShape shape;
  uint64_t n_ctx = 0;
  std::span<const int32_t> tokens;
  std::span<const float> logits;        // empty: none
  const SamplerRecord* sampler = nullptr;
  PlaneSource kv;                       // fills each plane on request
};

// Writes a snapshot to path crash-safely: to "<path>.tmp.<pid>.<n>" in the same
// folder, flushed (fsync), renamed over path, then the folder flushed. A crash
// at any point leaves path as it was or complete. Throws Error(io) naming the
// step that failed; the temporary file is removed on failure.
void write_snapshot_file(const std::string& path, const SnapshotContents& c, const SnapshotOptions& opt);

// Parses and checks the header against `expect` and the input's length in
// the constructor; the sections are decompressed (and their checksums
// verified) by the accessors. Every failure is an Error: format (not a
// snapshot, truncated, corrupt, absurd or inconsistent sizes), unsupported (a
// newer format version, another KV dtype, unknown flags), invalid_argument
// (made with another model: the fingerprint differs). `file` must outlive
// the reader.
class SnapshotReader {
 public:
  SnapshotReader(std::span<const uint8_t> file, const SnapshotShape& expect, std::string what);
  ~SnapshotReader();
  SnapshotReader(const SnapshotReader&) = delete;
  SnapshotReader& operator=(const SnapshotReader&) = delete;

  uint64_t n_tokens() const;
  uint64_t n_ctx() const;
  std::vector<int32_t> tokens() const;  // each checked to be inside the vocabulary
  std::vector<float> logits() const;    // empty when the snapshot has none
  std::optional<SamplerRecord> sampler() const;
  // Decompresses the KV section, calling sink for every plane in file order
  // (layer 0 K, layer 0 V, layer 1 K, ...); verifies the section's checksum
  // at its end, so a sink must not commit anything before this returns.
  void read_kv(const PlaneSink& sink) const;

 private:
  struct Parsed;
  std::span<const uint8_t> file_;
  std::string what_;
  std::unique_ptr<Parsed> p_;
};

namespace snapshot_testing {
// Test-only: when set, called after each step of writing a snapshot ("open",
// "write", "header", "fsync", "close", "rename", "dirsync"). A test may throw
// (a failing step) or _exit (a crash) from it. Not reachable from the C ABI.
extern void (*after_step)(const char* step);
// Test-only: patches an in-memory snapshot's header so that it passes the
// fingerprint and header-hash checks for `fingerprint`, letting a fuzzer reach
// the section readers. Leaves inputs shorter than a header alone.
void fix_header(std::vector<uint8_t>& file, uint64_t fingerprint);
}  // namespace snapshot_testing

}  // namespace paca
