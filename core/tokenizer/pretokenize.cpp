// pretokenize.cpp - see pretokenize.h. At each position the alternatives are
// tried in the pattern's order; what each one matches after backtracking:
//   1 (?i:'s|'t|'re|'ve|'m|'ll|'d)   an apostrophe and the letters, any case
//   2 [^\r\n\p{L}\p{N}]?\p{L}+       a letter run, or one non-letter/number/CR/LF
//                                    character followed by a letter run
//   3 \p{N}{1,3}                     up to three numbers
//   4  ?[^\s\p{L}\p{N}]+[\r\n]*      an optional ASCII space, a run of "other"
//                                    characters, then any CR/LF
//   5 \s*[\r\n]+                     a whitespace run that contains CR/LF, up to
//                                    and including its last CR/LF
//   6 \s+(?!\S)                      a whitespace run at the end of the text, or
//                                    all but its last character otherwise
//   7 \s+                            (a single whitespace character before a
//                                    non-space: what 6 leaves)
#include "tokenizer/pretokenize.h"

#include "tokenizer/unicode.h"
#include "tokenizer/utf8.h"

namespace paca {

const std::string_view kLlama3SplitPattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

namespace {

struct Ch {
  uint32_t cp;
  uint32_t len;
  uint8_t flags;
};

inline Ch char_at(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return {b, 1, cp_flags(b)};
  uint32_t cp;
  auto n = static_cast<uint32_t>(utf8_next(s, i, &cp));
  return {cp, n, cp_flags(cp)};
}

constexpr uint8_t kLN = kCpLetter | kCpNumber;
constexpr uint8_t kWLN = kCpWhitespace | kCpLetter | kCpNumber;

inline bool is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// End of the run of characters starting at i whose flags satisfy pred.
template <typename Pred>
inline size_t run_end(std::string_view s, size_t i, Pred pred) {
  while (i < s.size()) {
    Ch c = char_at(s, i);
    if (!pred(c)) break;
    i += c.len;
  }
  return i;
}

}  // namespace

size_t llama3_piece_length(std::string_view s, size_t p) {
  const size_t n = s.size();
  const Ch c = char_at(s, p);
  const size_t q = p + c.len;  // position after c

  // 1: contractions
  if (c.cp == '\'' && q < n) {
    Ch c2 = char_at(s, q);
    char f2 = contraction_fold(c2.cp);
    if (f2 == 's' || f2 == 't' || f2 == 'm' || f2 == 'd') return 1 + c2.len;
    if ((f2 == 'r' || f2 == 'v' || f2 == 'l') && q + c2.len < n) {
      Ch c3 = char_at(s, q + c2.len);
      char f3 = contraction_fold(c3.cp);
      if ((f2 == 'l' && f3 == 'l') || (f2 != 'l' && f3 == 'e')) return 1 + c2.len + c3.len;
    }
  }
  auto letter = [](const Ch& x) { return (x.flags & kCpLetter) != 0; };
  // 2: letters, optionally after one non-letter/number/CR/LF character
  if (c.flags & kCpLetter) return run_end(s, q, letter) - p;
  if (!(c.flags & kLN) && !is_crlf(c.cp) && q < n && letter(char_at(s, q))) return run_end(s, q, letter) - p;
  // 3: up to three numbers
  if (c.flags & kCpNumber) {
    size_t e = q;
    for (int k = 1; k < 3 && e < n; ++k) {
      Ch d = char_at(s, e);
      if (!(d.flags & kCpNumber)) break;
      e += d.len;
    }
    return e - p;
  }
  // 4: optional space, "other" characters, trailing CR/LF
  auto other = [](const Ch& x) { return (x.flags & kWLN) == 0; };
  auto crlf = [](const Ch& x) { return is_crlf(x.cp); };
  if (c.cp == ' ' && q < n && other(char_at(s, q))) return run_end(s, run_end(s, q, other), crlf) - p;
  if (other(c)) return run_end(s, run_end(s, q, other), crlf) - p;
  // 5-7: c is whitespace
  size_t e = p, last_start = p, after_crlf = 0;
  while (e < n) {
    Ch d = char_at(s, e);
    if (!(d.flags & kCpWhitespace)) break;
    last_start = e;
    e += d.len;
    if (is_crlf(d.cp)) after_crlf = e;
  }
  if (after_crlf != 0) return after_crlf - p;  // 5
  if (e == n || last_start == p) return e - p;  // 6 at the end, or 7
  return last_start - p;                        // 6: leave the last space to the next piece
}

}  // namespace paca
