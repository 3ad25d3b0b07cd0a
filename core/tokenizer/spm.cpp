// spm.cpp - see spm.h. Symbols form a linked list over the text; candidate
// pairs wait in a max-heap by (score, leftmost) and are checked for staleness
// when popped, so a text of n characters costs O(n log n).
#include "tokenizer/spm.h"

#include <queue>

#include "tokenizer/utf8.h"

namespace paca {

namespace {

struct Symbol {
  int32_t prev, next;
  uint32_t start, len;  // bytes of the text; len 0 once merged away
};

struct Bigram {
  float score;
  int32_t left, right;
  uint32_t len;  // combined length when queued (stale if it changed)
  bool operator<(const Bigram& o) const {  // priority_queue top = highest score, then leftmost
    return score < o.score || (score == o.score && left > o.left);
  }
};

}  // namespace

void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    size_t n = utf8_next(text, i, &cp);
    auto k = static_cast<int32_t>(sym.size());
    sym.push_back({k - 1, k + 1, static_cast<uint32_t>(i), static_cast<uint32_t>(n)});
    i += n;
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  std::priority_queue<Bigram> queue;
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    uint32_t len = sym[l].len + sym[r].len;
    int32_t id = vocab.find_normal(text.substr(sym[l].start, len));
    if (id >= 0) queue.push({vocab.at(id).score, l, r, len});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_pair(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  while (!queue.empty()) {
    Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len || l.next != b.right) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_pair(l.prev, b.left);
    try_pair(b.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) {
    std::string_view piece = text.substr(sym[i].start, sym[i].len);
    int32_t id = vocab.find_normal(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    bool have_bytes = true;
    for (char c : piece) have_bytes = have_bytes && vocab.byte_token(static_cast<uint8_t>(c)) >= 0;
    if (have_bytes) {
      for (char c : piece) out.push_back(vocab.byte_token(static_cast<uint8_t>(c)));
    } else if (vocab.unk >= 0) {
      out.push_back(vocab.unk);
    }
  }
}

}  // namespace paca
