// snapshot.h - session snapshots: a session's tokens, last logits, KV blocks
// and (optionally) the settings of the sampler that drives it, in one
// versioned, checksummed, zstd-compressed file, written crash-safely.
//
// File layout (all integers little-endian; format version 1):
//
//   header   64 bytes   magic "PACASNAP", version, flags, model fingerprint,
//                       KV dtype, n_layers, kv_dim, n_vocab, n_tokens, n_ctx,
//                       n_sections, a reserved zero
//   table    40 bytes per section: kind, codec, offset, stored bytes, raw bytes,
//            hash of the stored bytes
//   hash     8 bytes    hash of header + table
//   sections in table order, back to back, each one zstd frame that declares
//            its content size and ends with a content checksum (XXH64, verified
//            by zstd on decompression); the table's hash covers the stored
//            bytes too, so any changed byte of the file is caught before
//            decompression:
//              tokens   int32 [n_tokens]
//              logits   f32 [n_vocab]                  (when the session has them)
//              kv       per layer, K then V: [n_tokens, kv_dim] in the KV dtype;
//                       with flag 1 (byte split) each such plane is stored as its
//                       byte planes, most significant byte first
//              sampler  the sampler record (SamplerRecord)         (optional)
//
// KV is stored per position, not per block, so a snapshot loads into a model
// opened with any KV block size. Reading treats the file as hostile
// (snapshot_format.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "runtime/session.h"
#include "runtime/snapshot_format.h"

namespace paca {

// What a snapshot of a session of `model` must match.
SnapshotShape snapshot_shape(const ModelRunner& model);

// Writes the session (and the sampler's settings, when not null) to path,
// crash-safely (see write_snapshot_file).
void save_snapshot(const Session& session, const SamplerRecord* sampler, const std::string& path,
                   const SnapshotOptions& opt = {});

struct LoadedSnapshot {
  std::unique_ptr<Session> session;
  std::optional<SamplerRecord> sampler;
};

// Reads a snapshot into a new session on model/pool, with the context size it
// was saved with. Errors: io (cannot read) and those of SnapshotReader.
LoadedSnapshot load_snapshot(ModelRunner& model, BlockPool& pool, const std::string& path);
// The same on bytes in memory (`what` names them in messages).
LoadedSnapshot read_snapshot(ModelRunner& model, BlockPool& pool, std::span<const uint8_t> file,
                             const std::string& what);

// Prompt cache: `session` must be empty. Restores from the snapshot at path
// the longest prefix it shares with `tokens`, but at most tokens.size() - 1
// tokens unless the snapshot holds exactly `tokens` and their logits (then
// all of them, logits included), so that the caller always gets logits by
// prefilling tokens[returned value, size). Returns the number of tokens
// restored. On any error (as load_snapshot) the session is left empty.
size_t restore_prefix(Session& session, const std::string& path, std::span<const int32_t> tokens);

}  // namespace paca
