// matcher.cpp - GrammarVocab (the byte trie of a vocabulary) and
// GrammarMatcher (the pushdown recogniser and the per-position token
// splits); see matcher.h for the design.
#include "grammar/matcher.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <mutex>
#include <unordered_map>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace paca {

// ---- the vocabulary trie ---------------------------------------------------

GrammarVocab::GrammarVocab(const std::vector<std::string>& pieces, std::vector<int32_t> end_ids) {
  check(pieces.size() < (size_t{1} << 31), Status::invalid_argument, "grammar: vocabulary too large");
  n_vocab_ = static_cast<int32_t>(pieces.size());
  offsets_.reserve(pieces.size() + 1);
  offsets_.push_back(0);
  for (const std::string& p : pieces) {
    bytes_ += p;
    check(bytes_.size() < (size_t{1} << 32), Status::invalid_argument, "grammar: vocabulary too large");
    offsets_.push_back(static_cast<uint32_t>(bytes_.size()));
  }
  std::erase_if(end_ids, [&](int32_t id) { return id < 0 || id >= n_vocab_; });
  std::sort(end_ids.begin(), end_ids.end());
  end_ids.erase(std::unique(end_ids.begin(), end_ids.end()), end_ids.end());
  end_ids_ = std::move(end_ids);

  // the matchable tokens sorted by their bytes, then the trie in preorder
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < n_vocab_; ++id)
    if (!piece(id).empty() && !std::binary_search(end_ids_.begin(), end_ids_.end(), id)) ids.push_back(id);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    const std::string_view x = piece(a), y = piece(b);
    return x < y || (x == y && a < b);
  });
  nodes_.push_back({0, 0, 0, 0, 0});
  std::vector<uint32_t> path{0};  // path[d]: the node at depth d
  std::string_view prev;
  auto close = [&](uint32_t n) {
    nodes_[n].end = static_cast<uint32_t>(nodes_.size());
    nodes_[n].tok_end = static_cast<uint32_t>(order_.size());
  };
  for (int32_t id : ids) {
    const std::string_view p = piece(id);
    max_piece_ = std::max(max_piece_, p.size());
    size_t lcp = 0;
    while (lcp < p.size() && lcp < prev.size() && p[lcp] == prev[lcp]) ++lcp;
    while (path.size() - 1 > lcp) {
      close(path.back());
      path.pop_back();
    }
    for (size_t i = lcp; i < p.size(); ++i) {
      const auto at = static_cast<uint32_t>(order_.size());
      nodes_.push_back({static_cast<uint8_t>(p[i]), 0, at, at, at});
      path.push_back(static_cast<uint32_t>(nodes_.size() - 1));
    }
    order_.push_back(id);
    nodes_[path.back()].tok_own = static_cast<uint32_t>(order_.size());
    prev = p;
  }
  while (!path.empty()) {
    close(path.back());
    path.pop_back();
  }
}

std::shared_ptr<const GrammarVocab> GrammarVocab::from_tokenizer(const Tokenizer& tok, int32_t n_vocab,
                                                                 std::span<const int32_t> end_ids) {
  std::vector<std::string> pieces(static_cast<size_t>(std::max(n_vocab, 0)));
  for (int32_t id = 0; id < n_vocab; ++id)
    if (tok.accepts(id)) pieces[static_cast<size_t>(id)] = std::string(tok.piece(id, false));
  return std::make_shared<const GrammarVocab>(pieces, std::vector<int32_t>(end_ids.begin(), end_ids.end()));
}

// ---- the recogniser --------------------------------------------------------

namespace {

constexpr uint32_t kBottom = 0;  // below the start rule: popping it completes the text
constexpr uint32_t kEscape = 1;  // below a cache walk's rule: popping it leaves the rule
constexpr uint32_t kEmpty = UINT32_MAX;
constexpr size_t kCompactFrames = size_t{1} << 18;
// A split is computed for the positions of the top kContext frames of a
// stack: a walk that stays inside them does not depend on the frames below.
// One frame would do, but the innermost rule is often tiny (a character
// class, one character of a string) and left at once, which would make
// nearly every token "uncertain"; a few frames reach the rule that matters.
constexpr size_t kContext = 10;

struct Frame {
  uint32_t pos;     // top: the position waiting for a byte; below: where to return
  uint32_t parent;  // the frame below (kBottom / kEscape at the bottom)
  uint32_t depth;
};

// The parses alive after some bytes; `end`: one of them popped the bottom
// frame (the text can be complete, or a cache walk left its rule).
struct StackSet {
  std::vector<uint32_t> stacks;
  bool end = false;
  void clear() {
    stacks.clear();
    end = false;
  }
  bool alive() const { return end || !stacks.empty(); }
};

// One position's split of the vocabulary (see matcher.h).
struct PosCache {
  std::vector<uint64_t> bits;    // accepted, as a bit mask (dense sets)
  std::vector<int32_t> ids;      // accepted, as ids (sparse sets)
  std::vector<uint32_t> uncertain;  // ranks in GrammarVocab::order() (trie preorder), ascending
};

inline uint64_t mix(uint32_t pos, uint32_t parent) {
  uint64_t h = (uint64_t{pos} << 32 | parent) * 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 29);
}

}  // namespace

// The splits by context: the positions of a stack's top kContext frames
// (fewer when the stack is shallower, then ending at the bottom), as bytes.
struct CompiledGrammar::Splits {
  std::mutex mu;  // guards by_context
  std::unordered_map<std::string, std::unique_ptr<PosCache>> by_context;
};

CompiledGrammar::CompiledGrammar(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)) {
  check(grammar_ != nullptr && vocab_ != nullptr, Status::internal, "grammar: no grammar or vocabulary");
  splits_ = std::make_unique<Splits>();
}

CompiledGrammar::~CompiledGrammar() = default;

size_t CompiledGrammar::n_cached() const {
  std::lock_guard<std::mutex> lock(splits_->mu);
  return splits_->by_context.size();
}

struct GrammarMatcher::Impl {
  const Grammar& g;
  const GrammarVocab& v;
  CompiledGrammar::Splits& splits;
  std::vector<Frame> frames{{0, kBottom, 0}, {0, kEscape, 0}};
  std::vector<uint32_t> table;  // open addressing over frame ids (kEmpty: free)
  std::vector<uint32_t> mark;   // [frames] generation of the last visit
  uint32_t gen = 0;
  std::vector<std::pair<uint32_t, uint32_t>> work;  // closure work list: (pos, parent)
  StackSet state;
  StackSet a, b;                 // scratch of walk
  std::vector<StackSet> levels;  // scratch of the trie walks, one per trie depth
  struct WalkIter {
    uint32_t node, child;
  };
  std::vector<WalkIter> iters;
  std::unordered_map<uint32_t, const PosCache*> by_frame;  // stack (frame id) -> its split; cleared by compact()
  // advance() memoised by (stack set, byte): the trie walks of cache_at and
  // walk_uncertain meet the same set of parses at many trie nodes (inside a
  // string, a number, any repetition), and their closures were most of a
  // cold mask's time. Keys and results live in one pool of frame ids; an
  // entry is (hash -> key offset, key length, result offset, result length,
  // end). A hash collision with another key is simply not memoised. Cleared
  // by compact() (frame ids change) and when it outgrows kMaxMemo entries or
  // kMaxMemoIds ids (about 1.3 MiB per matcher at most: four times that
  // measured the same).
  struct Memo {
    uint32_t key, key_len, val, val_len;
    bool end;
  };
  static constexpr size_t kMaxMemo = size_t{1} << 14, kMaxMemoIds = size_t{1} << 17;
  std::unordered_map<uint64_t, Memo> memo;
  std::vector<uint32_t> memo_pool;

  explicit Impl(CompiledGrammar& c) : g(c.grammar()), v(c.vocab()), splits(*c.splits_) {
    table.assign(1024, kEmpty);
    mark.assign(frames.size(), 0);
    levels.resize(v.max_piece() + 2);
    new_generation();
    for (uint32_t alt : g.alts[g.root]) work.emplace_back(alt, kBottom);
    closure(state);
  }

  void new_generation() {
    if (++gen == 0) {
      std::fill(mark.begin(), mark.end(), 0);
      gen = 1;
    }
  }

  void rehash(size_t cap) {
    table.assign(cap, kEmpty);
    const size_t m = cap - 1;
    for (uint32_t id = 2; id < frames.size(); ++id) {
      size_t i = mix(frames[id].pos, frames[id].parent) & m;
      while (table[i] != kEmpty) i = (i + 1) & m;
      table[i] = id;
    }
  }

  uint32_t intern(uint32_t pos, uint32_t parent) {
    const size_t m = table.size() - 1;
    size_t i = mix(pos, parent) & m;
    for (; table[i] != kEmpty; i = (i + 1) & m) {
      const Frame& f = frames[table[i]];
      if (f.pos == pos && f.parent == parent) return table[i];
    }
    const auto id = static_cast<uint32_t>(frames.size());
    frames.push_back({pos, parent, frames[parent].depth + 1});
    mark.push_back(0);
    table[i] = id;
    if (frames.size() * 2 > table.size()) rehash(table.size() * 2);
    return id;
  }

  // Expands the work list into `out`: stacks whose top waits for a byte.
  void closure(StackSet& out) {
    while (!work.empty()) {
      const auto [pos, parent] = work.back();
      work.pop_back();
      const GrammarElement& e = g.elems[pos];
      uint32_t id;
      if (e.kind == GrammarElement::end) {  // the rule completes: continue at the frame below
        if (parent <= kEscape) {
          out.end = true;
          continue;
        }
        id = parent;
      } else {
        id = intern(pos, parent);
      }
      if (mark[id] == gen) continue;
      mark[id] = gen;
      const Frame f = frames[id];
      const GrammarElement& top = g.elems[f.pos];
      if (top.kind == GrammarElement::bytes) {
        out.stacks.push_back(id);
        check(out.stacks.size() <= kMaxStacks, Status::invalid_argument,
              "grammar: too ambiguous (more than {} parses alive at once)", kMaxStacks);
      } else {  // a call (frames never sit on an end: pops go straight to the frame below)
        uint32_t cont = f.parent;  // a tail call returns where its caller returns
        if (g.elems[f.pos + 1].kind != GrammarElement::end) {
          if (frames[f.parent].depth >= kMaxDepth) continue;  // nested too deep: this parse is dropped
          cont = intern(f.pos + 1, f.parent);
        }
        for (uint32_t alt : g.alts[top.arg]) work.emplace_back(alt, cont);
      }
    }
  }

  void advance(const StackSet& in, uint8_t byte, StackSet& out) {
    uint64_t h = 0x9E3779B97F4A7C15ull * (byte + 1);
    for (uint32_t s : in.stacks) h = (h ^ s) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    if (const auto it = memo.find(h); it != memo.end()) {
      const Memo& e = it->second;
      if (e.key_len == in.stacks.size() &&
          std::equal(in.stacks.begin(), in.stacks.end(), memo_pool.begin() + e.key)) {
        out.stacks.assign(memo_pool.begin() + e.val, memo_pool.begin() + e.val + e.val_len);
        out.end = e.end;
        return;
      }
      step(in, byte, out);  // another set with the same hash: not memoised
      return;
    }
    step(in, byte, out);
    if (memo.size() >= kMaxMemo || memo_pool.size() + in.stacks.size() + out.stacks.size() > kMaxMemoIds) clear_memo();
    const auto key = static_cast<uint32_t>(memo_pool.size());
    memo_pool.insert(memo_pool.end(), in.stacks.begin(), in.stacks.end());
    const auto val = static_cast<uint32_t>(memo_pool.size());
    memo_pool.insert(memo_pool.end(), out.stacks.begin(), out.stacks.end());
    memo.emplace(h, Memo{key, static_cast<uint32_t>(in.stacks.size()), val, static_cast<uint32_t>(out.stacks.size()),
                         out.end});
  }

  void clear_memo() {
    memo.clear();
    memo_pool.clear();
  }

  void step(const StackSet& in, uint8_t byte, StackSet& out) {
    out.clear();
    work.clear();  // an earlier closure may have thrown ("too ambiguous") half way
    new_generation();
    for (uint32_t s : in.stacks) {
      const Frame f = frames[s];
      if (g.set_at(f.pos).has(byte)) work.emplace_back(f.pos + 1, f.parent);
    }
    closure(out);
  }

  // The parses of `from` after `bytes` into a (false when none is alive);
  // `memoised` false: every step computed afresh (the reference of allows()).
  bool walk(const StackSet& from, std::string_view bytes, bool memoised = true) {
    a.stacks.assign(from.stacks.begin(), from.stacks.end());
    a.end = from.end;
    for (char c : bytes) {
      if (memoised)
        advance(a, static_cast<uint8_t>(c), b);
      else
        step(a, static_cast<uint8_t>(c), b);
      std::swap(a, b);
      if (!a.alive()) return false;
    }
    return true;
  }

  // Sets in mask the tokens of `ranks` (sorted ranks in the trie order) that
  // the stack accepts: one walk of the trie from the stack, entering only
  // subtrees that hold such tokens and cutting each at its first rejected
  // byte, so shared prefixes are walked once.
  void walk_uncertain(uint32_t stack, const std::vector<uint32_t>& ranks, std::vector<uint64_t>& mask) {
    const auto& nodes = v.nodes();
    const auto& order = v.order();
    levels[0].clear();
    levels[0].stacks.push_back(stack);
    std::vector<WalkIter>& st = iters;
    st.assign(1, {0, 1});
    size_t k = 0;
    while (!st.empty() && k < ranks.size()) {
      WalkIter& it = st.back();
      if (it.child >= nodes[it.node].end) {
        st.pop_back();
        continue;
      }
      const uint32_t ch = it.child;
      const GrammarVocab::Node& n = nodes[ch];
      it.child = n.end;
      while (k < ranks.size() && ranks[k] < n.tok_begin) ++k;
      if (k == ranks.size() || ranks[k] >= n.tok_end) continue;
      const size_t d = st.size() - 1;
      advance(levels[d], n.byte, levels[d + 1]);
      if (!levels[d + 1].alive()) continue;
      for (; k < ranks.size() && ranks[k] < n.tok_own; ++k) {
        const int32_t id = order[ranks[k]];
        mask[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
      }
      if (n.end > ch + 1) st.push_back({ch, ch + 1});
    }
  }

  // The split for the context of stack s (the positions of its top kContext
  // frames): found in this matcher's memo by frame id, else among the
  // compiled grammar's, else computed here (a race between matchers computes
  // it twice; the first is kept).
  const PosCache& cache_at(uint32_t s) {
    if (const auto it = by_frame.find(s); it != by_frame.end()) return *it->second;
    uint32_t ctx[kContext];
    size_t n_ctx = 0;
    uint32_t f = s;
    for (; f > kEscape && n_ctx < kContext; f = frames[f].parent) ctx[n_ctx++] = frames[f].pos;
    const bool to_bottom = f == kBottom;  // the whole stack: leaving it completes the text
    std::string key(reinterpret_cast<const char*>(ctx), n_ctx * sizeof(uint32_t));
    key += to_bottom ? 'b' : 'e';
    {
      std::lock_guard<std::mutex> lock(splits.mu);
      if (const auto it = splits.by_context.find(key); it != splits.by_context.end()) {
        by_frame.emplace(s, it->second.get());
        return *it->second;
      }
    }
    auto c = std::make_unique<PosCache>();
    // below the context: nothing (to_bottom) or the unknown frames (kEscape),
    // which may only go on with a byte that can follow the bottom frame's rule
    ByteSet follow;
    if (!to_bottom) follow = g.follow[g.rule_of[ctx[n_ctx - 1]]];
    uint32_t top = to_bottom ? kBottom : kEscape;
    for (size_t i = n_ctx; i-- > 0;) top = intern(ctx[i], top);
    const auto& nodes = v.nodes();
    const auto& order = v.order();
    std::vector<int32_t> acc;
    levels[0].clear();
    levels[0].stacks.push_back(top);
    struct Iter {
      uint32_t node, child;
      bool pending;  // a parse left the rule above and the next byte may follow it
    };
    std::vector<Iter> st{{0, 1, false}};
    while (!st.empty()) {
      Iter& it = st.back();
      if (it.child >= nodes[it.node].end) {
        st.pop_back();
        continue;
      }
      const uint32_t ch = it.child;
      it.child = nodes[ch].end;
      const size_t d = st.size() - 1;
      const GrammarVocab::Node& n = nodes[ch];
      const bool pending = it.pending || (levels[d].end && follow.has(n.byte));
      advance(levels[d], n.byte, levels[d + 1]);
      if (!levels[d + 1].alive()) {
        if (pending)
          for (uint32_t r = n.tok_begin; r < n.tok_end; ++r) c->uncertain.push_back(r);
        continue;
      }
      acc.insert(acc.end(), order.begin() + n.tok_begin, order.begin() + n.tok_own);
      if (n.end > ch + 1) st.push_back({ch, ch + 1, pending});
    }
    if (acc.size() * 32 >= static_cast<size_t>(v.n_vocab())) {
      c->bits.assign((static_cast<size_t>(v.n_vocab()) + 63) / 64, 0);
      for (int32_t id : acc) c->bits[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
    } else {
      c->ids = std::move(acc);
    }
    std::lock_guard<std::mutex> lock(splits.mu);
    auto& slot = splits.by_context[key];
    if (slot == nullptr) slot = std::move(c);
    by_frame.emplace(s, slot.get());
    return *slot;
  }

  // Rebuilds the frame arena with only the frames of the state's stacks.
  void compact() {
    std::vector<Frame> old = std::move(frames);
    frames = {old[0], old[1]};
    table.assign(1024, kEmpty);
    std::vector<uint32_t> remap(old.size(), kEmpty);
    remap[kBottom] = kBottom;
    remap[kEscape] = kEscape;
    std::vector<uint32_t> chain;
    for (uint32_t& s : state.stacks) {
      chain.clear();
      for (uint32_t x = s; remap[x] == kEmpty; x = old[x].parent) chain.push_back(x);
      for (size_t i = chain.size(); i-- > 0;) {
        const uint32_t x = chain[i];
        remap[x] = intern(old[x].pos, remap[old[x].parent]);
      }
      s = remap[s];
    }
    mark.assign(frames.size(), 0);
    gen = 0;
    new_generation();
    by_frame.clear();
    clear_memo();
  }
};

GrammarMatcher::GrammarMatcher(std::shared_ptr<CompiledGrammar> compiled) : compiled_(std::move(compiled)) {
  check(compiled_ != nullptr, Status::internal, "grammar matcher: no compiled grammar");
  impl_ = std::make_unique<Impl>(*compiled_);
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab)
    : GrammarMatcher(std::make_shared<CompiledGrammar>(std::move(grammar), std::move(vocab))) {}

GrammarMatcher::~GrammarMatcher() = default;

size_t GrammarMatcher::fill_mask(std::vector<uint64_t>& mask) {
  const size_t words = (static_cast<size_t>(vocab().n_vocab()) + 63) / 64;
  mask.assign(words, 0);
  if (ended_) return 0;
  Impl& m = *impl_;
  // the accepted sets of the stacks' contexts (each distinct split once)
  const PosCache* seen[64];
  size_t n_seen = 0;
  for (uint32_t s : m.state.stacks) {
    const PosCache& c = m.cache_at(s);
    if (std::find(seen, seen + n_seen, &c) != seen + n_seen) continue;
    if (n_seen < 64) seen[n_seen++] = &c;
    if (!c.bits.empty()) {
      for (size_t i = 0; i < words; ++i) mask[i] |= c.bits[i];
    } else {
      for (int32_t id : c.ids) mask[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
    }
  }
  // the uncertain tokens, checked against each whole stack
  for (size_t k = 0; k < m.state.stacks.size(); ++k) {
    const uint32_t s = m.state.stacks[k];
    const PosCache& c = m.cache_at(s);
    if (!c.uncertain.empty()) m.walk_uncertain(s, c.uncertain, mask);
  }
  if (m.state.end)
    for (int32_t id : vocab().end_ids()) mask[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
  size_t n = 0;
  for (uint64_t w : mask) n += static_cast<size_t>(std::popcount(w));
  return n;
}

bool GrammarMatcher::allows(int32_t token) {
  if (ended_ || token < 0 || token >= vocab().n_vocab()) return false;
  const auto& e = vocab().end_ids();
  if (std::binary_search(e.begin(), e.end(), token)) return impl_->state.end;
  const std::string_view p = vocab().piece(token);
  return !p.empty() && impl_->walk(impl_->state, p, false);
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  if (ended_) return false;
  Impl& m = *impl_;
  if (!m.walk(m.state, bytes)) return false;
  std::swap(m.state, m.a);
  n_bytes_ += bytes.size();
  if (m.frames.size() > kCompactFrames) m.compact();
  return true;
}

void GrammarMatcher::accept(int32_t token) {
  check(!ended_, Status::invalid_argument, "grammar: token {} after the end of the text", token);
  check(token >= 0 && token < vocab().n_vocab(), Status::invalid_argument, "grammar: token {} is outside the vocabulary",
        token);
  const auto& e = vocab().end_ids();
  if (std::binary_search(e.begin(), e.end(), token)) {
    check(impl_->state.end, Status::invalid_argument,
          "grammar: end token {} where the grammar is not complete (after {} bytes)", token, n_bytes_);
    ended_ = true;
    return;
  }
  const std::string_view p = vocab().piece(token);
  check(!p.empty() && accept_bytes(p), Status::invalid_argument,
        "grammar: token {} is not allowed after {} bytes of text", token, n_bytes_);
}

bool GrammarMatcher::can_end() const { return !ended_ && impl_->state.end; }


}  // namespace paca
