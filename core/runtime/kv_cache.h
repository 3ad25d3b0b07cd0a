// kv_cache.h - the paged KV cache: a pool of fixed-size blocks (KvLayout)
// shared by all sequences of a model, and the block table of one sequence.
// Blocks are allocated on demand as a sequence grows and returned to the
// pool's free list when it shrinks, so a session with a 128K context costs
// only the blocks it uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "backend/backend.h"

namespace paca {

class BlockPool {
 public:
  BlockPool(Backend& backend, const KvLayout& layout) : backend_(backend), layout_(layout) {}
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  const KvLayout& layout() const { return layout_; }
  uint8_t* acquire();           // thread-safe; throws Error(out_of_memory)
  void release(uint8_t* block);  // thread-safe
  size_t blocks_in_use() const;

 private:
  Backend& backend_;
  KvLayout layout_;
  mutable std::mutex mutex_;
  std::vector<uint8_t*> all_;
  std::vector<uint8_t*> free_;
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
  KvSeq view() const { return KvSeq{&pool_.layout(), blocks_}; }
  size_t n_blocks() const { return blocks_.size(); }

 private:
  BlockPool& pool_;
  std::vector<uint8_t*> blocks_;
};

}  // namespace paca
