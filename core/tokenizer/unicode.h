// unicode.h - the Unicode properties the tokenizers need: letter (\p{L}),
// number (\p{N}) and White_Space (\s), plus the case folds of the Llama 3
// contraction letters. The data is generated from Debian's unicode-data
// package by scripts/gen_unicode_tables.py into unicode_tables.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

namespace paca {

namespace unicode_data {
struct CodeRange {
  uint32_t first, last;  // inclusive
};
struct FoldEntry {
  uint32_t cp;
  char letter;  // the ASCII lower-case letter cp folds to
};
extern const CodeRange k_letter[];
extern const size_t k_letter_count;
extern const CodeRange k_number[];
extern const size_t k_number_count;
extern const CodeRange k_whitespace[];
extern const size_t k_whitespace_count;
extern const FoldEntry k_fold[];
extern const size_t k_fold_count;
}  // namespace unicode_data

// Property bits of one code point.
enum : uint8_t {
  kCpLetter = 1,      // General_Category L*
  kCpNumber = 2,      // General_Category N*
  kCpWhitespace = 4,  // White_Space
};

// Property bits of cp (0 for anything else, including unassigned code points
// and values above U+10FFFF). O(1) in the BMP, a binary search above it.
uint8_t cp_flags(uint32_t cp);

// The ASCII letter of "strevmld" that cp matches case-insensitively (Unicode
// simple case folding: 'S' and U+017F LONG S -> 's'), or 0.
char contraction_fold(uint32_t cp);

}  // namespace paca
