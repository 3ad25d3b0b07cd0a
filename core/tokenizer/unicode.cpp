// unicode.cpp - lookups over the generated tables (unicode_tables.cpp). The
// Basic Multilingual Plane is expanded once into a 64 KiB flag table; code
// points above it are found by binary search over the ranges.
#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace paca {

namespace {

using unicode_data::CodeRange;

bool in_ranges(const CodeRange* r, size_t n, uint32_t cp) {
  const CodeRange* end = r + n;
  const CodeRange* it = std::upper_bound(r, end, cp, [](uint32_t v, const CodeRange& x) { return v < x.first; });
  return it != r && cp <= (it - 1)->last;
}

struct BmpTable {
  std::array<uint8_t, 0x10000> flags{};
  BmpTable() {
    auto fill = [&](const CodeRange* r, size_t n, uint8_t bit) {
      for (size_t i = 0; i < n; ++i)
        for (uint32_t cp = r[i].first; cp <= r[i].last && cp < 0x10000; ++cp) flags[cp] |= bit;
    };
    fill(unicode_data::k_letter, unicode_data::k_letter_count, kCpLetter);
    fill(unicode_data::k_number, unicode_data::k_number_count, kCpNumber);
    fill(unicode_data::k_whitespace, unicode_data::k_whitespace_count, kCpWhitespace);
  }
};

const BmpTable& bmp() {
  static const BmpTable t;
  return t;
}

}  // namespace

uint8_t cp_flags(uint32_t cp) {
  if (cp < 0x10000) return bmp().flags[cp];
  if (cp > 0x10FFFF) return 0;
  uint8_t f = 0;
  if (in_ranges(unicode_data::k_letter, unicode_data::k_letter_count, cp)) f |= kCpLetter;
  if (in_ranges(unicode_data::k_number, unicode_data::k_number_count, cp)) f |= kCpNumber;
  if (in_ranges(unicode_data::k_whitespace, unicode_data::k_whitespace_count, cp)) f |= kCpWhitespace;
  return f;
}

char contraction_fold(uint32_t cp) {
  if (cp < 128) {
    char c = static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    switch (c) {
      case 's': case 't': case 'r': case 'e': case 'v': case 'm': case 'l': case 'd': return c;
      default: return 0;
    }
  }
  for (size_t i = 0; i < unicode_data::k_fold_count; ++i)
    if (unicode_data::k_fold[i].cp == cp) return unicode_data::k_fold[i].letter;
  return 0;
}

}  // namespace paca
