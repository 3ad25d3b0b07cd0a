// grammar.cpp - GrammarBuilder: rules of sequences -> the laid-out Grammar
// (see grammar.h), with UTF-8 character classes, repetitions, the
// left-recursion check and the follow sets the matcher's caches use.
#include "grammar/grammar.h"

#include <algorithm>

#include "util/error.h"

namespace paca {

namespace {

using Range = std::pair<uint32_t, uint32_t>;
using ByteRanges = std::vector<std::pair<uint8_t, uint8_t>>;

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

// The UTF-8 byte sequences of the code points lo..hi (no surrogates inside),
// each a list of byte ranges matched position by position. The range is cut
// where the encoded length changes, then where the continuation bytes would
// not span 80..BF whole, so that every piece is a product of byte ranges.
void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<ByteRanges>& out) {
  for (uint32_t m : {0x7Fu, 0x7FFu, 0xFFFFu})
    if (lo <= m && m < hi) {
      utf8_sequences(lo, m, out);
      utf8_sequences(m + 1, hi, out);
      return;
    }
  if (hi <= 0x7F) {
    out.push_back({{static_cast<uint8_t>(lo), static_cast<uint8_t>(hi)}});
    return;
  }
  const int n = hi <= 0x7FF ? 2 : hi <= 0xFFFF ? 3 : 4;
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_sequences(lo, lo | m, out);
        utf8_sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8_sequences(lo, (hi & ~m) - 1, out);
        utf8_sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  auto encode = [n](uint32_t cp, uint8_t* b) {
    for (int i = n - 1; i > 0; --i) {
      b[i] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
      cp >>= 6;
    }
    static constexpr uint8_t kLead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    b[0] = static_cast<uint8_t>(kLead[n] | cp);
  };
  uint8_t a[4], b[4];
  encode(lo, a);
  encode(hi, b);
  ByteRanges seq;
  for (int i = 0; i < n; ++i) seq.emplace_back(a[i], b[i]);
  out.push_back(std::move(seq));
}

// Sorted, merged, clamped to valid code points, optionally complemented, and
// without the surrogates D800..DFFF.
std::vector<Range> normalize(std::vector<Range> r, bool negated) {
  for (auto& [lo, hi] : r) {
    if (lo > hi) std::swap(lo, hi);
    hi = std::min(hi, kMaxCodePoint);
  }
  std::erase_if(r, [](const Range& x) { return x.first > kMaxCodePoint; });
  std::sort(r.begin(), r.end());
  std::vector<Range> m;
  for (const Range& x : r) {
    if (!m.empty() && x.first <= m.back().second + 1) m.back().second = std::max(m.back().second, x.second);
    else m.push_back(x);
  }
  if (negated) {
    std::vector<Range> c;
    uint32_t next = 0;
    for (const Range& x : m) {
      if (x.first > next) c.emplace_back(next, x.first - 1);
      next = x.second + 1;
    }
    if (next <= kMaxCodePoint) c.emplace_back(next, kMaxCodePoint);
    m = std::move(c);
  }
  std::vector<Range> out;
  for (const Range& x : m) {
    if (x.second < 0xD800 || x.first > 0xDFFF) {
      out.push_back(x);
      continue;
    }
    if (x.first < 0xD800) out.emplace_back(x.first, 0xD7FF);
    if (x.second > 0xDFFF) out.emplace_back(0xE000, x.second);
  }
  return out;
}

// The grammar's flat form: each alternative's items as elements ended by an
// `end` element, with the rule each element belongs to.
Grammar lay_out(const std::vector<std::vector<GrammarBuilder::Seq>>& rules, const std::vector<std::string>& names,
                const std::vector<ByteSet>& sets, uint32_t root) {
  Grammar g;
  g.root = root;
  g.names = names;
  g.sets = sets;
  g.alts.resize(rules.size());
  for (size_t r = 0; r < rules.size(); ++r)
    for (const GrammarBuilder::Seq& s : rules[r]) {
      g.alts[r].push_back(static_cast<uint32_t>(g.elems.size()));
      for (const GrammarBuilder::Item& it : s) {
        g.elems.push_back({it.call ? GrammarElement::call : GrammarElement::bytes, it.v});
        g.rule_of.push_back(static_cast<uint32_t>(r));
      }
      g.elems.push_back({GrammarElement::end, 0});
      g.rule_of.push_back(static_cast<uint32_t>(r));
    }
  return g;
}

// Nullable rules: some alternative made only of calls of nullable rules (a
// work list over "alternative waits for k more nullable callees", so a long
// chain of rules costs linear time, not one pass per link).
std::vector<char> nullable_rules(const Grammar& g) {
  const size_t n = g.alts.size();
  std::vector<char> nullable(n, 0);
  std::vector<uint32_t> waiting(g.elems.size(), 0);  // [alt start] callees not yet known nullable
  std::vector<std::vector<uint32_t>> waiters(n);     // callee -> alt starts (once per occurrence)
  std::vector<uint32_t> queue;
  for (size_t r = 0; r < n; ++r)
    for (uint32_t a : g.alts[r]) {
      uint32_t p = a, calls = 0;
      bool bytes = false;
      for (; g.elems[p].kind != GrammarElement::end; ++p) {
        if (g.elems[p].kind == GrammarElement::bytes) bytes = true;
        else ++calls;
      }
      if (bytes) continue;
      waiting[a] = calls;
      for (p = a; g.elems[p].kind != GrammarElement::end; ++p) waiters[g.elems[p].arg].push_back(a);
      if (calls == 0 && !nullable[r]) {
        nullable[r] = 1;
        queue.push_back(static_cast<uint32_t>(r));
      }
    }
  while (!queue.empty()) {
    const uint32_t r = queue.back();
    queue.pop_back();
    for (uint32_t a : waiters[r])
      if (--waiting[a] == 0 && !nullable[g.rule_of[a]]) {
        nullable[g.rule_of[a]] = 1;
        queue.push_back(g.rule_of[a]);
      }
  }
  return nullable;
}

// For each rule, the rules it calls before consuming a byte: the calls of
// each alternative's prefix up to and including its first non-nullable one.
std::vector<std::vector<uint32_t>> leading_calls(const Grammar& g, const std::vector<char>& nullable) {
  std::vector<std::vector<uint32_t>> edges(g.alts.size());
  for (size_t r = 0; r < g.alts.size(); ++r)
    for (uint32_t p : g.alts[r])
      for (; g.elems[p].kind == GrammarElement::call; ++p) {
        edges[r].push_back(g.elems[p].arg);
        if (!nullable[g.elems[p].arg]) break;
      }
  return edges;
}

// Left recursion: a cycle of leading calls (an iterative depth-first search).
void reject_left_recursion(const Grammar& g, const std::vector<char>& nullable) {
  const std::vector<std::vector<uint32_t>> edges = leading_calls(g, nullable);
  const size_t n = edges.size();
  std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the path, 2 done
  std::vector<std::pair<uint32_t, size_t>> stack;
  for (size_t s = 0; s < n; ++s) {
    if (color[s] != 0) continue;
    stack.push_back({static_cast<uint32_t>(s), 0});
    color[s] = 1;
    while (!stack.empty()) {
      auto& [r, i] = stack.back();
      if (i == edges[r].size()) {
        color[r] = 2;
        stack.pop_back();
        continue;
      }
      const uint32_t t = edges[r][i++];
      if (color[t] == 1)
        fail(Status::invalid_argument,
             "grammar: rule '{}' can reach itself without consuming input (left recursion, or a repetition of "
             "something that can be empty)",
             g.names[t]);
      if (color[t] == 0) {
        color[t] = 1;
        stack.push_back({t, 0});
      }
    }
  }
}

// Merges the first bytes of the sequence at element p into out; true when the
// sequence can be empty.
bool first_of_sequence(const Grammar& g, const std::vector<ByteSet>& first, const std::vector<char>& nullable,
                       uint32_t p, ByteSet& out) {
  for (;; ++p) {
    const GrammarElement& e = g.elems[p];
    if (e.kind == GrammarElement::end) return true;
    if (e.kind == GrammarElement::bytes) {
      out.merge(g.sets[e.arg]);
      return false;
    }
    out.merge(first[e.arg]);
    if (!nullable[e.arg]) return false;
  }
}

// FIRST(rule): the bytes a rule can start with (a work list: a rule's FIRST
// is recomputed when a callee in its nullable prefix changes).
std::vector<ByteSet> first_sets(const Grammar& g, const std::vector<char>& nullable) {
  const size_t n = g.alts.size();
  std::vector<ByteSet> first(n);
  std::vector<std::vector<uint32_t>> dependents(n);
  const std::vector<std::vector<uint32_t>> edges = leading_calls(g, nullable);
  for (size_t r = 0; r < n; ++r)
    for (uint32_t callee : edges[r]) dependents[callee].push_back(static_cast<uint32_t>(r));
  std::vector<uint32_t> queue(n);
  std::vector<char> queued(n, 1);
  for (size_t r = 0; r < n; ++r) queue[r] = static_cast<uint32_t>(n - 1 - r);
  while (!queue.empty()) {
    const uint32_t r = queue.back();
    queue.pop_back();
    queued[r] = 0;
    ByteSet s = first[r];
    for (uint32_t p : g.alts[r]) first_of_sequence(g, first, nullable, p, s);
    if (s == first[r]) continue;
    first[r] = s;
    for (uint32_t d : dependents[r])
      if (!queued[d]) {
        queued[d] = 1;
        queue.push_back(d);
      }
  }
  return first;
}

// FOLLOW(rule): what comes after a call, and FOLLOW(caller) when the rest of
// the caller's alternative can be empty (a work list: follow[caller] flows
// into each callee that can end its caller).
std::vector<ByteSet> follow_sets(const Grammar& g, const std::vector<char>& nullable,
                                 const std::vector<ByteSet>& first) {
  const size_t n = g.alts.size();
  std::vector<ByteSet> follow(n);
  std::vector<std::vector<uint32_t>> heirs(n);  // caller -> callees that can end it
  for (size_t p = 0; p < g.elems.size(); ++p) {
    if (g.elems[p].kind != GrammarElement::call) continue;
    const uint32_t callee = g.elems[p].arg;
    if (first_of_sequence(g, first, nullable, static_cast<uint32_t>(p + 1), follow[callee]))
      heirs[g.rule_of[p]].push_back(callee);
  }
  std::vector<uint32_t> queue(n);
  std::vector<char> queued(n, 1);
  for (size_t r = 0; r < n; ++r) queue[r] = static_cast<uint32_t>(r);
  while (!queue.empty()) {
    const uint32_t q = queue.back();
    queue.pop_back();
    queued[q] = 0;
    for (uint32_t callee : heirs[q]) {
      ByteSet s = follow[callee];
      s.merge(follow[q]);
      if (s == follow[callee]) continue;
      follow[callee] = s;
      if (!queued[callee]) {
        queued[callee] = 1;
        queue.push_back(callee);
      }
    }
  }
  return follow;
}

}  // namespace

uint32_t GrammarBuilder::rule(std::string_view name) {
  const auto it = by_name_.find(std::string(name));
  if (it != by_name_.end()) return it->second;
  names_.emplace_back(name);
  rules_.emplace_back();
  defined_.push_back(false);
  const auto r = static_cast<uint32_t>(names_.size() - 1);
  by_name_.emplace(std::string(name), r);
  return r;
}

uint32_t GrammarBuilder::new_rule(std::string_view base) {
  names_.push_back(fmt::format("{}~{}", base, names_.size()));
  rules_.emplace_back();
  defined_.push_back(false);
  return static_cast<uint32_t>(names_.size() - 1);
}

void GrammarBuilder::count(size_t n) {
  n_items_ += n;
  check(n_items_ <= Grammar::kMaxElements, Status::invalid_argument,
        "grammar: too large (more than {} elements once repetitions are expanded)", Grammar::kMaxElements);
}

void GrammarBuilder::define(uint32_t r, std::vector<Seq> alts) {
  size_t n = 0;
  for (const Seq& s : alts) n += s.size() + 1;
  count(n);
  rules_[r] = std::move(alts);
  defined_[r] = true;
}

uint32_t GrammarBuilder::add_set(const ByteSet& s) {
  const auto [it, fresh] = set_index_.emplace(s.w, static_cast<uint32_t>(sets_.size()));
  if (fresh) sets_.push_back(s);
  return it->second;
}

GrammarBuilder::Item GrammarBuilder::char_class(std::vector<Range> ranges, bool negated, std::string_view base) {
  const std::vector<Range> cps = normalize(std::move(ranges), negated);
  if (const auto it = classes_.find(cps); it != classes_.end()) return it->second;
  ByteSet ascii;
  std::vector<ByteRanges> seqs;
  for (const auto& [lo, hi] : cps) {
    if (lo <= 0x7F) ascii.add_range(static_cast<uint8_t>(lo), static_cast<uint8_t>(std::min<uint32_t>(hi, 0x7F)));
    if (hi >= 0x80) utf8_sequences(std::max<uint32_t>(lo, 0x80), hi, seqs);
  }
  Item result;
  if (seqs.empty()) {
    result = {false, add_set(ascii)};
  } else {
    std::vector<Seq> alts;
    if (!ascii.empty()) alts.push_back({{false, add_set(ascii)}});
    for (const ByteRanges& br : seqs) {
      Seq s;
      for (const auto& [a, b] : br) {
        ByteSet set;
        set.add_range(a, b);
        s.push_back({false, add_set(set)});
      }
      alts.push_back(std::move(s));
    }
    const uint32_t r = new_rule(base);
    define(r, std::move(alts));
    result = {true, r};
  }
  classes_.emplace(cps, result);
  return result;
}

void GrammarBuilder::repeat(Seq& seq, Item x, uint32_t min, uint32_t max, std::string_view base) {
  check(min <= Grammar::kMaxRepeat && (max == kUnbounded || max <= Grammar::kMaxRepeat), Status::invalid_argument,
        "grammar: repetition bounds above {}", Grammar::kMaxRepeat);
  check(max == kUnbounded || min <= max, Status::invalid_argument, "grammar: repetition {{{},{}}} has min > max", min,
        max);
  count(min);
  for (uint32_t i = 0; i < min; ++i) seq.push_back(x);
  if (max == kUnbounded) {  // r ::= x r | ""
    const uint32_t r = new_rule(base);
    define(r, {{x, {true, r}}, {}});
    seq.push_back({true, r});
    return;
  }
  // r_1 ::= x | "";  r_j ::= x r_{j-1} | ""
  uint32_t prev = 0;
  for (uint32_t j = 1; j <= max - min; ++j) {
    const uint32_t r = new_rule(base);
    if (j == 1) define(r, {{x}, {}});
    else define(r, {{x, {true, prev}}, {}});
    prev = r;
  }
  if (max > min) seq.push_back({true, prev});
}

Grammar GrammarBuilder::finish(uint32_t root) {
  const size_t n = rules_.size();
  check(root < n, Status::internal, "grammar: root rule {} out of range", root);
  for (size_t r = 0; r < n; ++r) check(defined_[r], Status::internal, "grammar: rule '{}' is not defined", names_[r]);
  Grammar g = lay_out(rules_, names_, sets_, root);
  const std::vector<char> nullable = nullable_rules(g);
  reject_left_recursion(g, nullable);
  const std::vector<ByteSet> first = first_sets(g, nullable);
  g.follow = follow_sets(g, nullable, first);
  return g;
}

}  // namespace paca
