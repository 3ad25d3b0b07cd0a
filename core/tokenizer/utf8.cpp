// utf8.cpp - see utf8.h. The decoder is the state machine of the WHATWG
// Encoding standard ("UTF-8 decoder"), which yields one U+FFFD per maximal
// subpart of an ill-formed sequence.
#include "tokenizer/utf8.h"

namespace paca {

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

void Utf8Stream::push_byte(unsigned char b, std::string& out) {
  if (need_ == 0) {
    if (b < 0x80) {
      out += static_cast<char>(b);
      return;
    }
    lo_ = 0x80;
    hi_ = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      need_ = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      if (b == 0xE0) lo_ = 0xA0;
      if (b == 0xED) hi_ = 0x9F;
      need_ = 2;
    } else if (b >= 0xF0 && b <= 0xF4) {
      if (b == 0xF0) lo_ = 0x90;
      if (b == 0xF4) hi_ = 0x8F;
      need_ = 3;
    } else {
      out += kReplacementChar;
      return;
    }
    buf_[0] = static_cast<char>(b);
    have_ = 1;
    return;
  }
  if (b < lo_ || b > hi_) {
    // The sequence so far is a maximal subpart: one U+FFFD, then b starts afresh.
    need_ = 0;
    have_ = 0;
    out += kReplacementChar;
    push_byte(b, out);
    return;
  }
  lo_ = 0x80;
  hi_ = 0xBF;
  buf_[have_++] = static_cast<char>(b);
  if (--need_ == 0) {
    out.append(buf_, static_cast<size_t>(have_));
    have_ = 0;
  }
}

void Utf8Stream::push(std::string_view bytes, std::string& out) {
  for (char c : bytes) push_byte(static_cast<unsigned char>(c), out);
}

void Utf8Stream::flush(std::string& out) {
  if (need_ != 0) out += kReplacementChar;
  need_ = 0;
  have_ = 0;
}

bool utf8_valid(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char b = p[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (n - i < len) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return false;
    i += len;
  }
  return true;
}

std::string utf8_sanitize(std::string_view s) {
  if (utf8_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  Utf8Stream st;
  st.push(s, out);
  st.flush(out);
  return out;
}

}  // namespace paca
