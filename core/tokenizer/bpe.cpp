// bpe.cpp - see bpe.h.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <climits>
#include <queue>

namespace paca {

void PairTable::reserve(size_t pairs) {
  size_t cap = 16;
  while (cap < pairs * 2) cap *= 2;
  if (cap <= slots_.size()) return;
  std::vector<Entry> old;
  old.swap(slots_);
  slots_.assign(cap, Entry{kEmpty, 0, 0});
  mask_ = cap - 1;
  count_ = 0;
  for (const Entry& e : old)
    if (e.key != kEmpty) add(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key & 0xFFFFFFFFu), e.priority, e.result);
}

void PairTable::grow() { reserve(std::max<size_t>(count_ + 1, slots_.size())); }

void PairTable::add(int32_t left, int32_t right, int32_t priority, int32_t result) {
  if ((count_ + 1) * 2 > slots_.size()) grow();
  uint64_t key = pack(left, right);
  for (uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    Entry& e = slots_[i];
    if (e.key == kEmpty) {
      e = Entry{key, priority, result};
      ++count_;
      return;
    }
    if (e.key == key) {
      if (priority < e.priority) {
        e.priority = priority;
        e.result = result;
      }
      return;
    }
  }
}

namespace {

constexpr size_t kLinearLimit = 64;

void merge_linear(const PairTable& table, std::vector<int32_t>& s) {
  struct Pair {
    int32_t priority, result;
  };
  Pair pairs[kLinearLimit];
  size_t m = s.size();
  auto rank = [&](size_t i) {
    Pair p{INT32_MAX, -1};
    if (!table.find(s[i], s[i + 1], &p.priority, &p.result)) p.priority = INT32_MAX;
    return p;
  };
  for (size_t i = 0; i + 1 < m; ++i) pairs[i] = rank(i);
  while (m > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < m; ++i)
      if (pairs[i].priority < pairs[best].priority) best = i;
    if (pairs[best].priority == INT32_MAX) break;
    s[best] = pairs[best].result;
    s.erase(s.begin() + static_cast<long>(best) + 1);
    for (size_t k = best + 1; k + 2 < m; ++k) pairs[k] = pairs[k + 1];
    --m;
    if (best + 1 < m) pairs[best] = rank(best);
    if (best > 0) pairs[best - 1] = rank(best - 1);
  }
}

void merge_heap(const PairTable& table, std::vector<int32_t>& s) {
  const size_t n = s.size();
  std::vector<int32_t> prev(n), next(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct Cand {
    int32_t priority, pos, left, right, result;
    bool operator>(const Cand& o) const { return priority != o.priority ? priority > o.priority : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto consider = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    int32_t pr, res;
    if (table.find(s[i], s[next[i]], &pr, &res)) heap.push({pr, i, s[i], s[next[i]], res});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(static_cast<int32_t>(i));
  std::vector<bool> dead(n, false);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int32_t i = c.pos, j = next[i];
    if (dead[i] || j < 0 || s[i] != c.left || s[j] != c.right) continue;  // stale
    s[i] = c.result;
    dead[j] = true;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    consider(prev[i]);
    consider(i);
  }
  size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) s[w++] = s[i];
  s.resize(w);
}

}  // namespace

void bpe_merge(const PairTable& table, std::vector<int32_t>& symbols, std::vector<int32_t>& out) {
  if (symbols.size() > 1) {
    if (symbols.size() <= kLinearLimit) merge_linear(table, symbols);
    else merge_heap(table, symbols);
  }
  out.insert(out.end(), symbols.begin(), symbols.end());
}

}  // namespace paca
