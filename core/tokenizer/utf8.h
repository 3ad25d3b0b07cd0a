// utf8.h - UTF-8 decoding with one defined answer to bad input: every
// ill-formed sequence becomes U+FFFD, one per "maximal subpart" (the rule of
// the Unicode standard, WHATWG's TextDecoder and Python's errors="replace").
// Utf8Stream applies the same rule to bytes that arrive piece by piece and
// never emits part of a character.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace paca {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Appends the UTF-8 encoding of cp (<= U+10FFFF, not a surrogate) to out.
void utf8_append(std::string& out, uint32_t cp);

// Decodes the character at s[i] of well-formed UTF-8 (as produced by
// utf8_sanitize); returns its length in bytes and stores it in *cp.
inline size_t utf8_next(std::string_view s, size_t i, uint32_t* cp) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  if (p[0] < 0x80) {
    *cp = p[0];
    return 1;
  }
  if (p[0] < 0xE0) {
    *cp = ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    return 2;
  }
  if (p[0] < 0xF0) {
    *cp = ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    return 3;
  }
  *cp = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
  return 4;
}

// True when s is well-formed UTF-8.
bool utf8_valid(std::string_view s);

// s with every ill-formed sequence replaced by U+FFFD (s itself when valid).
std::string utf8_sanitize(std::string_view s);

// Incremental decoder: push() bytes as they come, read the text that became
// complete from the string passed in. At most 3 bytes are held back.
class Utf8Stream {
 public:
  // Appends to out every complete character of bytes (with U+FFFD for
  // ill-formed sequences); an incomplete one at the end is kept for later.
  void push(std::string_view bytes, std::string& out);
  // Ends the text: an incomplete character held back becomes U+FFFD.
  void flush(std::string& out);
  bool pending() const { return need_ != 0; }

 private:
  void push_byte(unsigned char b, std::string& out);
  char buf_[4] = {};
  int have_ = 0;          // bytes of the current sequence seen
  int need_ = 0;          // bytes still needed (0: between characters)
  unsigned char lo_ = 0x80, hi_ = 0xBF;  // allowed range of the next byte
};

}  // namespace paca
