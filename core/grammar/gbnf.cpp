// gbnf.cpp - the GBNF parser (llama.cpp's grammar format) -> GrammarBuilder.
//
//   rule        name ::= alternatives         names: [A-Za-z0-9_-]+
//   alternatives sequence ( "|" sequence )*
//   sequence    ( item postfix? )*
//   item        "literal" | [class] | [^class] | . | name | ( alternatives )
//   postfix     * | + | ? | {m} | {m,} | {m,n}
//   comments    # to the end of the line
//
// A rule ends at a newline outside parentheses unless what follows (after
// blank lines and comments) is "|" (more alternatives) or is not the start
// of a new rule `name ::=` (the sequence goes on). Escapes in literals and
// classes: \n \r \t \\ \" \' \[ \] \- \^ \xHH \uHHHH \UHHHHHHHH (code points,
// encoded as UTF-8). The text must be valid UTF-8.
#include <string>
#include <vector>

#include "grammar/grammar.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace paca {

namespace {

constexpr int kMaxNesting = 256;

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view text) : s_(text) {}

  Grammar parse() {
    for (;;) {
      skip(true);
      if (at_end()) break;
      parse_rule();
    }
    const size_t root_pos = find_root();
    for (size_t r = 0; r < b_.n_rules(); ++r)
      if (!b_.defined(static_cast<uint32_t>(r)))
        error(refs_[r], fmt::format("rule '{}' is referenced but not defined", b_.name(static_cast<uint32_t>(r))));
    return b_.finish(static_cast<uint32_t>(root_pos));
  }

 private:
  std::string_view s_;
  size_t p_ = 0;
  GrammarBuilder b_;
  std::vector<size_t> refs_;  // [rules] byte of the first reference or definition
  std::vector<size_t> defs_;  // [rules] byte of the definition (or npos)

  bool at_end() const { return p_ >= s_.size(); }
  char peek(size_t k = 0) const { return p_ + k < s_.size() ? s_[p_ + k] : '\0'; }

  [[noreturn]] void error(size_t at, const std::string& msg) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else if ((static_cast<unsigned char>(s_[i]) & 0xC0) != 0x80) {
        ++col;
      }
    }
    fail(Status::invalid_argument, "grammar: line {}, column {} (byte {}): {}", line, col, at, msg);
  }

  // spaces, tabs, CRs and comments; newlines too when `newlines`
  void skip(bool newlines) {
    while (!at_end()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
        ++p_;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n') ++p_;
      } else {
        break;
      }
    }
  }

  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }

  std::string_view parse_name() {
    const size_t start = p_;
    while (!at_end() && name_char(peek())) ++p_;
    if (p_ == start) error(p_, "expected a rule name");
    return s_.substr(start, p_ - start);
  }

  uint32_t rule_id(std::string_view name, size_t at) {
    const uint32_t r = b_.rule(name);
    if (refs_.size() <= r) {
      refs_.resize(r + 1, at);
      defs_.resize(r + 1, std::string_view::npos);
    }
    return r;
  }

  // Is a new rule "name ::=" at byte q?
  bool rule_start_at(size_t q) const {
    size_t i = q;
    while (i < s_.size() && name_char(s_[i])) ++i;
    if (i == q) return false;
    while (i < s_.size() && (s_[i] == ' ' || s_[i] == '\t')) ++i;
    return s_.substr(i, 3) == "::=";
  }

  void parse_rule() {
    const size_t at = p_;
    const std::string_view name = parse_name();
    const uint32_t r = rule_id(name, at);
    if (defs_[r] != std::string_view::npos) {
      error(at, fmt::format("rule '{}' is defined twice", name));
    }
    defs_[r] = at;
    skip(false);
    if (s_.substr(p_, 3) != "::=") error(p_, fmt::format("expected '::=' after the rule name '{}'", name));
    p_ += 3;
    b_.define(r, parse_alternatives(0, name));
    skip(false);
    if (!at_end() && peek() != '\n') error(p_, fmt::format("unexpected character '{}'", peek()));
  }

  std::vector<GrammarBuilder::Seq> parse_alternatives(int depth, std::string_view base) {
    std::vector<GrammarBuilder::Seq> alts;
    alts.push_back(parse_sequence(depth, base));
    for (;;) {
      const size_t save = p_;
      skip(true);
      if (peek() == '|') {
        ++p_;
        alts.push_back(parse_sequence(depth, base));
      } else {
        p_ = save;
        return alts;
      }
    }
  }

  GrammarBuilder::Seq parse_sequence(int depth, std::string_view base) {
    GrammarBuilder::Seq seq;
    for (;;) {
      skip(depth > 0);
      if (at_end()) return seq;
      const char c = peek();
      if (c == '|' || c == ')') return seq;
      if (c == '\n') {  // depth 0: the rule ends unless the sequence goes on
        size_t q = p_;
        {
          const size_t save = p_;
          skip(true);
          q = p_;
          p_ = save;
        }
        if (q >= s_.size() || s_[q] == '|' || rule_start_at(q)) return seq;
        p_ = q;
        continue;
      }
      const size_t item_at = p_;
      GrammarBuilder::Seq frag = parse_item(depth, base);
      parse_postfix(frag, item_at, base, seq);
    }
  }

  // A fragment with one item, as repetitions need: a group rule otherwise.
  GrammarBuilder::Item single(GrammarBuilder::Seq frag, std::string_view base) {
    if (frag.size() == 1) return frag[0];
    const uint32_t r = b_.new_rule(base);
    b_.define(r, {std::move(frag)});
    return {true, r};
  }

  uint32_t parse_count() {
    const size_t at = p_;
    uint64_t v = 0;
    if (!(peek() >= '0' && peek() <= '9')) error(at, "expected a number in the repetition");
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + static_cast<uint64_t>(peek() - '0');
      if (v > Grammar::kMaxRepeat) error(at, fmt::format("repetition count above {}", Grammar::kMaxRepeat));
      ++p_;
    }
    return static_cast<uint32_t>(v);
  }

  void parse_postfix(GrammarBuilder::Seq frag, size_t item_at, std::string_view base, GrammarBuilder::Seq& out) {
    const char c = peek();
    uint32_t min = 1, max = 1;
    if (c == '*') {
      min = 0;
      max = GrammarBuilder::kUnbounded;
      ++p_;
    } else if (c == '+') {
      max = GrammarBuilder::kUnbounded;
      ++p_;
    } else if (c == '?') {
      min = 0;
      ++p_;
    } else if (c == '{') {
      const size_t at = p_;
      ++p_;
      skip(false);
      min = max = parse_count();
      skip(false);
      if (peek() == ',') {
        ++p_;
        skip(false);
        max = peek() == '}' ? GrammarBuilder::kUnbounded : parse_count();
        skip(false);
      }
      if (peek() != '}') error(p_, "expected '}' to close the repetition");
      ++p_;
      if (max != GrammarBuilder::kUnbounded && min > max) error(at, fmt::format("repetition {{{},{}}}: min > max", min, max));
    } else {
      out.insert(out.end(), frag.begin(), frag.end());
      return;
    }
    if (frag.empty()) return;  // a repetition of nothing is nothing
    (void)item_at;
    b_.repeat(out, single(std::move(frag), base), min, max, base);
  }

  // One UTF-8 character (validated) or an escape, at p_; returns its code point.
  uint32_t parse_char(const char* where) {
    const size_t at = p_;
    const auto u = [&](size_t k) { return static_cast<unsigned char>(peek(k)); };
    if (at_end()) error(at, fmt::format("unterminated {}", where));
    if (peek() == '\\') {
      const char e = peek(1);
      p_ += 2;
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': case '|': case '.':
        case '(': case ')': case '*': case '+': case '?': case '{': case '}':
          return static_cast<unsigned char>(e);
        case 'x': case 'u': case 'U': {
          const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t v = 0;
          for (int i = 0; i < n; ++i) {
            const char h = peek();
            int d = -1;
            if (h >= '0' && h <= '9') d = h - '0';
            else if (h >= 'a' && h <= 'f') d = h - 'a' + 10;
            else if (h >= 'A' && h <= 'F') d = h - 'A' + 10;
            if (d < 0) error(p_, fmt::format("expected {} hex digits after \\{}", n, e));
            v = v * 16 + static_cast<uint32_t>(d);
            ++p_;
          }
          if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            error(at, fmt::format("\\{} escape U+{:X} is not a Unicode scalar value", e, v));
          return v;
        }
        default:
          error(at, e == '\0' ? std::string("unterminated escape") : fmt::format("unknown escape '\\{}'", e));
      }
    }
    const unsigned char c0 = u(0);
    if (c0 < 0x80) {
      ++p_;
      return c0;
    }
    int n = 0;
    uint32_t cp = 0;
    if (c0 >= 0xC2 && c0 <= 0xDF) n = 2, cp = c0 & 0x1F;
    else if (c0 >= 0xE0 && c0 <= 0xEF) n = 3, cp = c0 & 0x0F;
    else if (c0 >= 0xF0 && c0 <= 0xF4) n = 4, cp = c0 & 0x07;
    else error(at, "invalid UTF-8 in the grammar");
    for (int i = 1; i < n; ++i) {
      if ((u(static_cast<size_t>(i)) & 0xC0) != 0x80) error(at, "invalid UTF-8 in the grammar");
      cp = (cp << 6) | (u(static_cast<size_t>(i)) & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) error(at, "invalid UTF-8 in the grammar");
    p_ += static_cast<size_t>(n);
    return cp;
  }

  void push_utf8(uint32_t cp, GrammarBuilder::Seq& out) {
    std::string bytes;
    utf8_append(bytes, cp);
    for (char b : bytes) {
      ByteSet set;
      set.add(static_cast<uint8_t>(b));
      out.push_back({false, b_.add_set(set)});
    }
  }

  GrammarBuilder::Seq parse_item(int depth, std::string_view base) {
    GrammarBuilder::Seq out;
    const size_t at = p_;
    const char c = peek();
    if (c == '"') {
      ++p_;
      while (peek() != '"') {
        if (at_end() || peek() == '\n') error(at, "unterminated string literal");
        push_utf8(parse_char("string literal"), out);
      }
      ++p_;
    } else if (c == '[') {
      ++p_;
      bool negated = false;
      if (peek() == '^') {
        negated = true;
        ++p_;
      }
      std::vector<std::pair<uint32_t, uint32_t>> ranges;
      while (peek() != ']') {
        if (at_end() || peek() == '\n') error(at, "unterminated character class");
        const uint32_t lo = parse_char("character class");
        uint32_t hi = lo;
        if (peek() == '-' && p_ + 1 < s_.size() && peek(1) != ']' && peek(1) != '\n') {
          ++p_;
          const size_t hi_at = p_;
          hi = parse_char("character class");
          if (hi < lo) error(hi_at, fmt::format("character range U+{:X}-U+{:X} is reversed", lo, hi));
        }
        ranges.emplace_back(lo, hi);
      }
      ++p_;
      out.push_back(b_.char_class(std::move(ranges), negated, base));
    } else if (c == '.') {
      ++p_;
      out.push_back(b_.char_class({}, true, base));
    } else if (c == '(') {
      if (depth >= kMaxNesting) error(at, fmt::format("parentheses nested deeper than {}", kMaxNesting));
      ++p_;
      auto alts = parse_alternatives(depth + 1, base);
      skip(true);
      if (peek() != ')') error(at, "unclosed '('");
      ++p_;
      if (alts.size() == 1) return std::move(alts[0]);
      const uint32_t r = b_.new_rule(base);
      b_.define(r, std::move(alts));
      out.push_back({true, r});
    } else if (name_char(c)) {
      const std::string_view name = parse_name();
      {
        size_t q = p_;
        while (q < s_.size() && (s_[q] == ' ' || s_[q] == '\t')) ++q;
        if (s_.substr(q, 3) == "::=") error(at, fmt::format("expected a newline before the rule '{}'", name));
      }
      out.push_back({true, rule_id(name, at)});
    } else {
      error(at, fmt::format("unexpected character '{}'", c == '\0' ? std::string("\\0") : std::string(1, c)));
    }
    return out;
  }

  size_t find_root() {
    for (size_t r = 0; r < b_.n_rules(); ++r)
      if (b_.name(static_cast<uint32_t>(r)) == "root" && b_.defined(static_cast<uint32_t>(r))) return r;
    fail(Status::invalid_argument, "grammar: no rule named 'root' (the start rule)");
  }
};

}  // namespace

Grammar parse_gbnf(std::string_view text) { return GbnfParser(text).parse(); }

}  // namespace paca
