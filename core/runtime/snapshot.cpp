// snapshot.cpp - see snapshot.h. Moves KV between a session's blocks and the
// per-position planes of the file format (snapshot_format.cpp).
#include "runtime/snapshot.h"

#include <algorithm>

#include "util/error.h"
#include "util/mmap.h"

namespace paca {

namespace {

// Calls fn(block memory, offset in a [n_tokens, kv_dim] plane, bytes) for the
// run of rows each block holds of plane (layer, is_v), positions [0, n_tokens).
template <typename Fn>
void for_each_run(const KvBlocks& kv, int layer, int is_v, size_t n_tokens, Fn fn) {
  const KvLayout& L = kv.pool().layout();
  const size_t row = static_cast<size_t>(L.kv_dim) * L.elem_bytes();
  const size_t bt = static_cast<size_t>(L.block_tokens);
  for (size_t b = 0; b * bt < n_tokens; ++b)
    fn(kv.blocks()[b] + L.offset(layer, is_v, 0), b * bt * row, std::min(bt, n_tokens - b * bt) * row);
}

// Reads the KV of the first `keep` positions into fresh blocks; the caller
// adopts them only after the whole section (and its checksum) was read.
void read_kv_into(const SnapshotReader& r, size_t keep, KvBlocks& kv) {
  kv.resize_for(keep);
  Backend& be = kv.pool().backend();
  r.read_kv([&](int layer, int is_v, const uint8_t* plane) {
    for_each_run(kv, layer, is_v, keep, [&](uint8_t* blk, size_t at, size_t bytes) { be.copy(blk, plane + at, bytes); });
  });
}

}  // namespace

SnapshotShape snapshot_shape(const ModelRunner& model) {
  const KvLayout& L = model.kv_layout();
  SnapshotShape s;
  s.fingerprint = model.fingerprint();
  s.kv_dtype = static_cast<uint32_t>(L.dtype);
  s.elem_bytes = static_cast<uint32_t>(L.elem_bytes());
  s.n_layers = static_cast<uint32_t>(L.n_layers);
  s.kv_dim = static_cast<uint32_t>(L.kv_dim);
  s.n_vocab = static_cast<uint32_t>(model.config().n_vocab);
  return s;
}

void save_snapshot(const Session& session, const SamplerRecord* sampler, const std::string& path,
                   const SnapshotOptions& opt) {
  SnapshotContents c;
  c.shape = snapshot_shape(session.model());
  c.n_ctx = session.context_size();
  c.tokens = session.tokens();
  if (session.has_logits()) c.logits = session.logits();
  c.sampler = sampler;
  const size_t n = session.length();
  Backend& be = session.kv().pool().backend();
  c.kv = [&](int layer, int is_v, uint8_t* out) {
    for_each_run(session.kv(), layer, is_v, n, [&](uint8_t* blk, size_t at, size_t bytes) { be.copy(out + at, blk, bytes); });
  };
  write_snapshot_file(path, c, opt);
}

LoadedSnapshot read_snapshot(ModelRunner& model, BlockPool& pool, std::span<const uint8_t> file,
                             const std::string& what) {
  SnapshotReader r(file, snapshot_shape(model), what);
  std::vector<int32_t> tokens = r.tokens();
  std::vector<float> logits = r.logits();
  LoadedSnapshot out;
  out.sampler = r.sampler();
  KvBlocks kv(pool);
  read_kv_into(r, tokens.size(), kv);
  out.session = std::make_unique<Session>(model, pool, static_cast<int>(r.n_ctx()));
  out.session->adopt(std::move(tokens), kv, std::move(logits));
  return out;
}

LoadedSnapshot load_snapshot(ModelRunner& model, BlockPool& pool, const std::string& path) {
  MappedFile f(path);
  return read_snapshot(model, pool, f.bytes(), path);
}

size_t restore_prefix(Session& session, const std::string& path, std::span<const int32_t> want) {
  check(session.length() == 0, Status::state,
        "the session must be empty to restore a prompt cache (it holds {} tokens)", session.length());
  check(!want.empty(), Status::invalid_argument, "no tokens given");
  MappedFile f(path);
  SnapshotReader r(f.bytes(), snapshot_shape(session.model()), path);
  std::vector<int32_t> tokens = r.tokens();
  std::vector<float> logits = r.logits();
  r.sampler();  // not used here, but a file that is corrupt anywhere is refused
  size_t common = 0;
  while (common < tokens.size() && common < want.size() && tokens[common] == want[common]) ++common;
  size_t keep = common;
  const bool exact = common == want.size() && common == tokens.size() && !logits.empty();
  if (!exact) {
    keep = std::min(common, want.size() - 1);
    logits.clear();
  }
  if (keep > session.context_size()) {
    keep = session.context_size();
    logits.clear();
  }
  KvBlocks kv(session.kv().pool());
  if (keep > 0) read_kv_into(r, keep, kv);  // decompresses the whole section, so its checksums are verified
  tokens.resize(keep);
  session.adopt(std::move(tokens), kv, std::move(logits));
  return keep;
}

}  // namespace paca
