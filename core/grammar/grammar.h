// grammar.h - a context-free grammar over bytes, compiled for an incremental
// recogniser (grammar/matcher.h), and the two ways to get one: GBNF text
// (llama.cpp's grammar format) and JSON Schema (grammar/json_schema.h).
//
// The compiled form is a recursive transition network: every rule is a list
// of alternatives, every alternative a sequence of elements laid out back to
// back in one array and closed by an `end` element. An element is either a
// set of bytes (one byte of input) or a call of a rule. Characters are bytes
// of UTF-8: a literal is a sequence of byte sets of one byte each, and a
// character class with non-ASCII members becomes a generated rule whose
// alternatives are the byte sequences of its UTF-8 ranges (surrogates
// excluded). Groups and repetitions become generated rules too, so that a
// repetition {m,n} costs O(n) elements and never copies its operand.
//
// Checked at compile time, each with a clear Error(invalid_argument):
// undefined rules (at the byte of their first reference), a missing `root`,
// left recursion (a rule that can call itself before consuming a byte: the
// recogniser would loop), and size limits (kMaxElements, kMaxRepeat).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace paca {

// A set of bytes (bit b of word b / 64).
struct ByteSet {
  std::array<uint64_t, 4> w{};
  bool has(uint8_t b) const { return ((w[b >> 6] >> (b & 63)) & 1) != 0; }
  void add(uint8_t b) { w[b >> 6] |= uint64_t{1} << (b & 63); }
  void add_range(uint8_t lo, uint8_t hi) {
    for (unsigned b = lo; b <= hi; ++b) add(static_cast<uint8_t>(b));
  }
  void merge(const ByteSet& o) {
    for (size_t i = 0; i < 4; ++i) w[i] |= o.w[i];
  }
  bool empty() const { return (w[0] | w[1] | w[2] | w[3]) == 0; }
  bool operator==(const ByteSet&) const = default;
};

struct GrammarElement {
  enum Kind : uint8_t { bytes, call, end };
  Kind kind = end;
  uint32_t arg = 0;  // bytes: index into Grammar::sets; call: the rule
};

struct Grammar {
  std::vector<GrammarElement> elems;            // every alternative, each closed by an end element
  std::vector<uint32_t> rule_of;                // [elems] the rule an element belongs to
  std::vector<std::vector<uint32_t>> alts;      // [rules] start positions of the rule's alternatives
  std::vector<std::string> names;               // [rules] GBNF names; generated rules "base~N"
  std::vector<ByteSet> sets;                    // the distinct byte sets
  std::vector<ByteSet> follow;                  // [rules] bytes that may come right after the rule completes
  uint32_t root = 0;

  static constexpr size_t kMaxElements = size_t{1} << 21;  // all rules together
  static constexpr uint32_t kMaxRepeat = 100000;           // the bounds of x{m,n}

  size_t n_rules() const { return alts.size(); }
  const ByteSet& set_at(uint32_t pos) const { return sets[elems[pos].arg]; }
};

// Builds a Grammar from rules of sequences (what the GBNF parser and tests
// use). Items name byte sets or rules by index; finish() lays the rules out,
// checks them and computes the follow sets.
class GrammarBuilder {
 public:
  struct Item {
    bool call = false;
    uint32_t v = 0;  // a set (add_set) or a rule (rule / new_rule)
  };
  using Seq = std::vector<Item>;

  // The rule called `name`, created undefined on first use.
  uint32_t rule(std::string_view name);
  // A new generated rule "base~N" (no GBNF name contains ~).
  uint32_t new_rule(std::string_view base);
  bool defined(uint32_t rule) const { return defined_[rule]; }
  void define(uint32_t rule, std::vector<Seq> alts);
  uint32_t add_set(const ByteSet& s);
  // Items matching one character of the UTF-8 encoding of any code point in
  // the given inclusive ranges (negated: any other valid code point): one
  // set item when all are ASCII, else a call of a generated rule.
  Item char_class(std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negated, std::string_view base);
  // The item matching `x` repeated min..max times (max = kUnbounded: any
  // number), as a call of a generated rule; appends to seq.
  static constexpr uint32_t kUnbounded = UINT32_MAX;
  void repeat(Seq& seq, Item x, uint32_t min, uint32_t max, std::string_view base);
  size_t n_rules() const { return names_.size(); }
  const std::string& name(uint32_t rule) const { return names_[rule]; }

  // Lays out the rules with `root` as the start rule. Every rule must be
  // defined (the caller reports undefined ones with their position; here
  // they are Error(internal)). Throws Error(invalid_argument) "grammar: ..."
  // for left recursion or the size limits.
  Grammar finish(uint32_t root);

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t> by_name_;  // rules named by the caller
  std::vector<std::vector<Seq>> rules_;
  std::vector<bool> defined_;
  std::vector<ByteSet> sets_;
  std::map<std::array<uint64_t, 4>, uint32_t> set_index_;                   // memo of add_set
  std::map<std::vector<std::pair<uint32_t, uint32_t>>, Item> classes_;  // memo of char_class
  size_t n_items_ = 0;
  void count(size_t n);
};

// Parses GBNF text. Throws Error(invalid_argument) "grammar: line L, column
// C (byte B): ..." for a syntax error, an undefined rule, a missing root,
// left recursion, or a grammar over the size limits.
Grammar parse_gbnf(std::string_view text);

}  // namespace paca
