// kv_cache.h - the paged KV cache: a pool of fixed-size blocks (KvLayout)
// shared by all sequences of a model, and the block table of one sequence.
// Blocks are allocated on demand as a sequence grows and returned to the
// pool's free list when it shrinks, so a session with a 128K context costs
// only the blocks it uses.
//
// Blocks are reference counted: a forked sequence shares its parent's blocks
// (copy-on-write). A sequence only ever writes at positions >= its length,
// so only the block holding its length can be written while shared; it is
// copied first (KvBlocks::make_writable), every block below stays shared.
//
// A pool is unbounded (blocks allocated one by one as sequences grow) or
// reserved: a fixed number of blocks allocated at once when the pool is
// made, sized from a fraction of the device's memory (kv_pool_blocks), so a
// GPU's KV memory is claimed up front and a full pool is a clear error
// rather than a failed allocation in the middle of a step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"

namespace paca {

// Blocks of `block_bytes` (rounded up to 256) that fraction (0, 1] of the
// free memory `mem` holds once `headroom` bytes are set aside (what steps
// need besides the KV cache: their activations and the backend's scratch; see
// kv_headroom_bytes). Throws Error(invalid_argument) for a fraction outside
// (0, 1] and Error(out_of_memory) with the numbers ("too little memory for
// the KV cache on <device>: need X bytes (one block), have Y (fraction f of
// Z bytes free less H of headroom, of T)") when not even one block fits.
size_t kv_pool_blocks(double fraction, const DeviceMemory& mem, size_t block_bytes, const std::string& device,
                      uint64_t headroom = 0);

// The memory kept out of a reserved KV pool for a model of config c: two
// workspaces of a full step (a session's and a batch's: step_workspace_bytes
// at ModelRunner::kMaxStepTokens tokens) and kBackendScratchBytes for the
// backend's own buffers (cuBLASLt's workspace, bf16 copies, staging).
constexpr uint64_t kBackendScratchBytes = uint64_t{96} << 20;
uint64_t kv_headroom_bytes(const ModelConfig& c);

class BlockPool {
 public:
  // max_blocks == 0: unbounded. Else exactly max_blocks blocks, allocated
  // now as one buffer; acquire() throws Error(out_of_memory) once all are in
  // use.
  BlockPool(Backend& backend, const KvLayout& layout, size_t max_blocks = 0);
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  const KvLayout& layout() const { return layout_; }
  Backend& backend() const { return backend_; }
  uint8_t* acquire();                  // a block with one reference; thread-safe; throws Error(out_of_memory)
  void retain(uint8_t* block);         // one more reference; thread-safe
  void release(uint8_t* block);        // drops a reference; the last one frees the block; thread-safe
  uint32_t ref_count(const uint8_t* block) const;  // 0 for a free block
  size_t blocks_in_use() const;        // distinct blocks with a reference
  size_t blocks_allocated() const;     // in use + on the free list
  size_t max_blocks() const { return max_blocks_; }  // 0: unbounded

 private:
  Backend& backend_;
  KvLayout layout_;
  mutable std::mutex mutex_;
  size_t max_blocks_ = 0;
  void* reserved_ = nullptr;  // the reserved pool's one buffer
  std::vector<uint8_t*> all_;
  std::vector<uint8_t*> free_;
  std::unordered_map<const uint8_t*, uint32_t> refs_;  // blocks in use -> references
};

// Block table of one sequence.
class KvBlocks {
 public:
  explicit KvBlocks(BlockPool& pool) : pool_(pool) {}
  ~KvBlocks() { resize_for(0); }
  KvBlocks(const KvBlocks&) = delete;
  KvBlocks& operator=(const KvBlocks&) = delete;

  // Holds exactly the blocks needed for `tokens` positions.
  void resize_for(size_t tokens);
  // Drops every block, then shares the blocks `other` uses for its first
  // `tokens` positions (tokens <= what other holds).
  void share_prefix(const KvBlocks& other, size_t tokens);
  // Drops every block, then shares `blocks` (of this pool, each in use).
  void share_blocks(std::span<uint8_t* const> blocks);
  // Before positions >= pos are written: copies the block holding pos when
  // another sequence shares it.
  void make_writable(size_t pos);
  void swap(KvBlocks& other);  // both must come from the same pool
  KvSeq view() const { return KvSeq{&pool_.layout(), blocks_}; }
  size_t n_blocks() const { return blocks_.size(); }
  const std::vector<uint8_t*>& blocks() const { return blocks_; }
  BlockPool& pool() const { return pool_; }

 private:
  BlockPool& pool_;
  std::vector<uint8_t*> blocks_;
};

}  // namespace paca
