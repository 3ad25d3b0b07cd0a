// kv_cache.cpp - see kv_cache.h.
#include "runtime/kv_cache.h"

namespace paca {

BlockPool::~BlockPool() {
  for (uint8_t* b : all_) backend_.release(b);
}

uint8_t* BlockPool::acquire() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!free_.empty()) {
    uint8_t* b = free_.back();
    free_.pop_back();
    return b;
  }
  all_.reserve(all_.size() + 1);
  uint8_t* b = static_cast<uint8_t*>(backend_.alloc(layout_.block_bytes()));
  all_.push_back(b);
  return b;
}

void BlockPool::release(uint8_t* block) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_.push_back(block);
}

size_t BlockPool::blocks_in_use() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return all_.size() - free_.size();
}

void KvBlocks::resize_for(size_t tokens) {
  const size_t bt = static_cast<size_t>(pool_.layout().block_tokens);
  size_t need = (tokens + bt - 1) / bt;
  while (blocks_.size() > need) {
    pool_.release(blocks_.back());
    blocks_.pop_back();
  }
  blocks_.reserve(need);
  while (blocks_.size() < need) blocks_.push_back(pool_.acquire());
}

}  // namespace paca
