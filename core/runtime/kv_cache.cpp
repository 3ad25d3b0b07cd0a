// kv_cache.cpp - see kv_cache.h.
#include "runtime/kv_cache.h"

#include <cstdint>
#include <utility>

#include "model/llama_model.h"
#include "util/error.h"

namespace paca {

size_t kv_pool_blocks(double fraction, const DeviceMemory& mem, size_t block_bytes, const std::string& device,
                      uint64_t headroom) {
  check(fraction > 0 && fraction <= 1, Status::invalid_argument, "KV memory fraction {} is outside (0, 1]", fraction);
  check(block_bytes > 0, Status::internal, "a KV block of 0 bytes");
  block_bytes = (block_bytes + 255) / 256 * 256;  // the stride BlockPool gives a reserved block
  const uint64_t usable = mem.free > headroom ? mem.free - headroom : 0;
  const double have = fraction * static_cast<double>(usable);
  const size_t blocks = static_cast<size_t>(have / static_cast<double>(block_bytes));
  if (blocks == 0)
    fail(Status::out_of_memory,
         "too little memory for the KV cache on {}: need {} bytes (one block), have {} ({} of {} bytes free less {} "
         "of headroom for the steps' workspaces, of {})",
         device, block_bytes, static_cast<uint64_t>(have), fraction, mem.free, headroom, mem.total);
  return blocks;
}

uint64_t kv_headroom_bytes(const ModelConfig& c) {
  return 2 * step_workspace_bytes(c, ModelRunner::kMaxStepTokens, 1) + kBackendScratchBytes;
}

BlockPool::BlockPool(Backend& backend, const KvLayout& layout, size_t max_blocks)
    : backend_(backend), layout_(layout), max_blocks_(max_blocks) {
  if (max_blocks_ == 0) return;
  const size_t bytes = (layout_.block_bytes() + 255) / 256 * 256;  // every block 256-byte aligned, as alloc's are
  check(max_blocks_ <= SIZE_MAX / bytes, Status::invalid_argument, "a KV pool of {} blocks of {} bytes", max_blocks_,
        bytes);
  reserved_ = backend_.alloc(max_blocks_ * bytes);
  all_.reserve(max_blocks_);
  free_.reserve(max_blocks_);
  for (size_t i = 0; i < max_blocks_; ++i) all_.push_back(static_cast<uint8_t*>(reserved_) + i * bytes);
  free_.assign(all_.rbegin(), all_.rend());  // acquire hands out block 0 first
}

BlockPool::~BlockPool() {
  if (reserved_ != nullptr) {
    backend_.release(reserved_);
    return;
  }
  for (uint8_t* b : all_) backend_.release(b);
}

uint8_t* BlockPool::acquire() {
  std::lock_guard<std::mutex> lock(mutex_);
  uint8_t* b = nullptr;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (max_blocks_ > 0) {
    fail(Status::out_of_memory,
         "the KV cache is full: all {} blocks ({} tokens, {} bytes) are in use; load the model with a larger KV "
         "memory fraction or free sessions",
         max_blocks_, max_blocks_ * static_cast<size_t>(layout_.block_tokens), max_blocks_ * layout_.block_bytes());
  } else {
    all_.reserve(all_.size() + 1);
    b = static_cast<uint8_t*>(backend_.alloc(layout_.block_bytes()));
    all_.push_back(b);
  }
  refs_[b] = 1;
  return b;
}

void BlockPool::retain(uint8_t* block) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = refs_.find(block);
  check(it != refs_.end(), Status::internal, "retain of a KV block that is not in use");
  ++it->second;
}

void BlockPool::release(uint8_t* block) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = refs_.find(block);
  if (it == refs_.end()) return;  // not ours or already free: never double-free
  if (--it->second == 0) {
    refs_.erase(it);
    free_.push_back(block);
  }
}

uint32_t BlockPool::ref_count(const uint8_t* block) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = refs_.find(block);
  return it == refs_.end() ? 0 : it->second;
}

size_t BlockPool::blocks_in_use() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return refs_.size();
}

size_t BlockPool::blocks_allocated() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return all_.size();
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

void KvBlocks::share_prefix(const KvBlocks& other, size_t tokens) {
  check(&other.pool_ == &pool_, Status::internal, "KV blocks of different pools cannot be shared");
  const size_t bt = static_cast<size_t>(pool_.layout().block_tokens);
  const size_t need = (tokens + bt - 1) / bt;
  check(need <= other.blocks_.size(), Status::internal, "sharing {} tokens of a sequence holding {} blocks", tokens,
        other.blocks_.size());
  share_blocks(std::span<uint8_t* const>(other.blocks_.data(), need));
}

void KvBlocks::share_blocks(std::span<uint8_t* const> blocks) {
  for (uint8_t* b : blocks) pool_.retain(b);  // first: blocks may be some of our own
  resize_for(0);
  blocks_.assign(blocks.begin(), blocks.end());
}

void KvBlocks::make_writable(size_t pos) {
  const size_t b = pos / static_cast<size_t>(pool_.layout().block_tokens);
  if (b >= blocks_.size() || pool_.ref_count(blocks_[b]) <= 1) return;
  uint8_t* copy = pool_.acquire();
  pool_.backend().copy(copy, blocks_[b], pool_.layout().block_bytes());
  pool_.release(blocks_[b]);
  blocks_[b] = copy;
}

void KvBlocks::swap(KvBlocks& other) {
  check(&other.pool_ == &pool_, Status::internal, "KV blocks of different pools cannot be swapped");
  blocks_.swap(other.blocks_);
}

}  // namespace paca
