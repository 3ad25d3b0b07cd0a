// byte_level.cpp - see byte_level.h.
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace paca {

namespace {

bool printable(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

struct Tables {
  std::array<uint32_t, 256> to_char{};
  std::array<int16_t, 0x144> to_byte{};  // code points below U+0144 only
  Tables() {
    to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = printable(b) ? static_cast<uint32_t>(b) : 0x100u + static_cast<uint32_t>(n++);
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

uint32_t byte_to_char(uint8_t b) { return tables().to_char[b]; }

bool byte_level_decode(std::string_view s, std::string& out) {
  out.clear();
  if (!utf8_valid(s)) return false;
  const Tables& t = tables();
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    i += utf8_next(s, i, &cp);
    if (cp >= t.to_byte.size() || t.to_byte[cp] < 0) return false;
    out += static_cast<char>(t.to_byte[cp]);
  }
  return true;
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  for (char c : bytes) utf8_append(out, byte_to_char(static_cast<uint8_t>(c)));
  return out;
}

}  // namespace paca
