// bpe.h - merge-rank BPE, the algorithm of tiktoken and of Hugging Face's BPE
// model: start from initial symbols (token ids) and repeatedly merge the
// adjacent pair with the lowest priority (leftmost on ties) until no adjacent
// pair can merge. A PairTable says, for each mergeable pair of ids, its
// priority and the id it becomes:
//   - from a merges list (tokenizer.json, GGUF): priority = the merge's index
//   - from tiktoken ranks (Meta's tokenizer.model): every split of a token into
//     two tokens, priority = the rank (id) of the whole
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace paca {

class PairTable {
 public:
  void reserve(size_t pairs);
  // Adds (left, right) -> result at priority; an existing pair keeps the lower priority.
  void add(int32_t left, int32_t right, int32_t priority, int32_t result);
  // Finds (left, right); false when the pair does not merge.
  bool find(int32_t left, int32_t right, int32_t* priority, int32_t* result) const {
    if (count_ == 0) return false;
    uint64_t key = pack(left, right);
    for (uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == key) {
        *priority = e.priority;
        *result = e.result;
        return true;
      }
      if (e.key == kEmpty) return false;
    }
  }
  size_t size() const { return count_; }

 private:
  struct Entry {
    uint64_t key;
    int32_t priority;
    int32_t result;
  };
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDull;
    k ^= k >> 33;
    return k;
  }
  void grow();
  std::vector<Entry> slots_;
  size_t count_ = 0;
  uint64_t mask_ = 0;
};

// Merges symbols (token ids) in place by table and appends the result to out.
// Linear scans for short inputs, a heap over a linked list for long ones, so
// a piece of n symbols costs O(n log n) at worst.
void bpe_merge(const PairTable& table, std::vector<int32_t>& symbols, std::vector<int32_t>& out);

}  // namespace paca
