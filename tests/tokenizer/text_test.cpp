// text_test.cpp - the text layer under the tokenizers: UTF-8 decoding with
// U+FFFD replacement (one per maximal subpart), the Unicode tables, GPT-2's
// byte mapping and the Llama 3 pre-tokenizer's splits.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"
#include "tokenizer/utf8.h"

namespace {

using paca::utf8_sanitize;
const std::string R = "\xEF\xBF\xBD";  // U+FFFD

TEST(Utf8, ValidTextIsUnchanged) {
  for (std::string s : {"", "abc", "caf\xC3\xA9", "\xE4\xBD\xA0\xE5\xA5\xBD", "\xF0\x9F\xA6\x99", "a\0b"}) {
    EXPECT_TRUE(paca::utf8_valid(s)) << s;
    EXPECT_EQ(utf8_sanitize(s), s);
  }
}

TEST(Utf8, MaximalSubpartsBecomeOneReplacementEach) {
  // The examples of the Unicode standard (table 3-8) and WHATWG.
  EXPECT_EQ(utf8_sanitize("\x80"), R);
  EXPECT_EQ(utf8_sanitize("\xFF"), R);
  EXPECT_EQ(utf8_sanitize("\xC0\xAF"), R + R);               // overlong lead C0 is never valid
  EXPECT_EQ(utf8_sanitize("\xE0\x80\xAF"), R + R + R);       // E0 needs A0..BF next
  EXPECT_EQ(utf8_sanitize("\xED\xA0\x80"), R + R + R);       // a UTF-16 surrogate (CESU-8)
  EXPECT_EQ(utf8_sanitize("\xF0\x9F\x98"), R);               // truncated 4-byte character: one
  EXPECT_EQ(utf8_sanitize("\xF0\x9F\x98" "a"), R + "a");
  EXPECT_EQ(utf8_sanitize("\xF4\x90\x80\x80"), R + R + R + R);  // above U+10FFFF
  EXPECT_EQ(utf8_sanitize("a\xE2\x82" "b\xC3"), "a" + R + "b" + R);
  EXPECT_EQ(utf8_sanitize("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + R + R + R + "b" + R + "c" + R + R + "d");
}

TEST(Utf8, StreamHoldsBackIncompleteCharacters) {
  paca::Utf8Stream s;
  std::string out;
  s.push("\xF0\x9F", out);
  EXPECT_EQ(out, "");
  EXPECT_TRUE(s.pending());
  s.push("\xA6", out);
  EXPECT_EQ(out, "");
  s.push("\x99!", out);
  EXPECT_EQ(out, "\xF0\x9F\xA6\x99!");
  s.push("\xE4\xBD", out);
  s.flush(out);  // unfinished at the end: one U+FFFD
  EXPECT_EQ(out, "\xF0\x9F\xA6\x99!" + R);
  EXPECT_FALSE(s.pending());
}

TEST(Unicode, Categories) {
  EXPECT_EQ(paca::cp_flags('a'), paca::kCpLetter);
  EXPECT_EQ(paca::cp_flags('7'), paca::kCpNumber);
  EXPECT_EQ(paca::cp_flags(' '), paca::kCpWhitespace);
  EXPECT_EQ(paca::cp_flags('\n'), paca::kCpWhitespace);
  EXPECT_EQ(paca::cp_flags(0x85), paca::kCpWhitespace);    // NEL
  EXPECT_EQ(paca::cp_flags(0xA0), paca::kCpWhitespace);    // NBSP
  EXPECT_EQ(paca::cp_flags(0x3000), paca::kCpWhitespace);  // ideographic space
  EXPECT_EQ(paca::cp_flags(0x1C), 0);                      // not White_Space (Python isspace says yes)
  EXPECT_EQ(paca::cp_flags(0xFEFF), 0);                    // BOM is not White_Space
  EXPECT_EQ(paca::cp_flags(0x4E2D), paca::kCpLetter);      // 中 (Lo)
  EXPECT_EQ(paca::cp_flags(0x0E01), paca::kCpLetter);      // Thai ko kai
  EXPECT_EQ(paca::cp_flags(0x0E31), 0);                    // Thai vowel sign (Mn): not a letter
  EXPECT_EQ(paca::cp_flags(0x0966), paca::kCpNumber);      // Devanagari digit zero (Nd)
  EXPECT_EQ(paca::cp_flags(0x00BD), paca::kCpNumber);      // ½ (No)
  EXPECT_EQ(paca::cp_flags(0x2167), paca::kCpNumber);      // Roman numeral eight (Nl)
  EXPECT_EQ(paca::cp_flags(0x1F999), 0);                   // 🦙 (So)
  EXPECT_EQ(paca::cp_flags(0x20000), paca::kCpLetter);     // CJK extension B (range entry)
  EXPECT_EQ(paca::cp_flags(0x1D7CE), paca::kCpNumber);     // mathematical bold digit zero
  EXPECT_EQ(paca::cp_flags(0x110000), 0);
  EXPECT_EQ(paca::contraction_fold('S'), 's');
  EXPECT_EQ(paca::contraction_fold(0x17F), 's');  // LONG S folds to s
  EXPECT_EQ(paca::contraction_fold('x'), 0);
  EXPECT_EQ(paca::contraction_fold(0x212A), 0);   // KELVIN SIGN folds to k: not a contraction letter
}

TEST(ByteLevel, MappingRoundTrips) {
  EXPECT_EQ(paca::byte_to_char(' '), 0x120u);
  EXPECT_EQ(paca::byte_to_char('\n'), 0x10Au);
  EXPECT_EQ(paca::byte_to_char('!'), static_cast<uint32_t>('!'));
  EXPECT_EQ(paca::byte_to_char(0xAD), 0x143u);
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::string back;
  ASSERT_TRUE(paca::byte_level_decode(paca::byte_level_encode(all), back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(paca::byte_level_decode("\xE4\xBD\xA0", back));  // 你 is outside the mapping
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t n = paca::llama3_piece_length(s, i);
    EXPECT_GT(n, 0u);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

using V = std::vector<std::string>;

TEST(Pretokenize, Llama3SplitPattern) {
  EXPECT_EQ(split("Hello, world!"), (V{"Hello", ",", " world", "!"}));
  EXPECT_EQ(split("I'm 12345 ok"), (V{"I", "'m", " ", "123", "45", " ok"}));
  EXPECT_EQ(split("WE'RE YOU'LL he'D it'S"), (V{"WE", "'RE", " YOU", "'LL", " he", "'D", " it", "'S"}));
  EXPECT_EQ(split("'x 'll"), (V{"'x", " '", "ll"}));
  EXPECT_EQ(split("it\xC5\xBF"), (V{"it\xC5\xBF"}));  // ſ is a letter...
  EXPECT_EQ(split("'\xC5\xBFt"), (V{"'\xC5\xBF", "t"}));  // ...and folds to s after an apostrophe
  EXPECT_EQ(split("   leading"), (V{"  ", " leading"}));
  EXPECT_EQ(split("a  \n\n  b"), (V{"a", "  \n\n", " ", " b"}));
  EXPECT_EQ(split("x\r\n\r\ny"), (V{"x", "\r\n\r\n", "y"}));
  EXPECT_EQ(split("end   "), (V{"end", "   "}));
  EXPECT_EQ(split("\t tab"), (V{"\t", " tab"}));
  EXPECT_EQ(split(" ... !!\n"), (V{" ...", " !!\n"}));
  EXPECT_EQ(split("$100"), (V{"$", "100"}));
  EXPECT_EQ(split("\xC2\xA0word"), (V{"\xC2\xA0word"}));           // NBSP joins the word after it
  EXPECT_EQ(split("\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C"), (V{"\xE4\xBD\xA0\xE5\xA5\xBD", "\xEF\xBC\x8C"}));
  EXPECT_EQ(split("x\xF0\x9F\xA6\x99\xF0\x9F\xA6\x99 y"), (V{"x", "\xF0\x9F\xA6\x99\xF0\x9F\xA6\x99", " y"}));
  EXPECT_EQ(split("\xE0\xB9\x91\xE0\xB9\x92\xE0\xB9\x93\xE0\xB9\x94"),  // Thai digits: numbers in threes
            (V{"\xE0\xB9\x91\xE0\xB9\x92\xE0\xB9\x93", "\xE0\xB9\x94"}));
  EXPECT_EQ(split("a\n"), (V{"a", "\n"}));
  EXPECT_EQ(split(" "), (V{" "}));
  EXPECT_EQ(split("\n \n x"), (V{"\n \n", " x"}));
}

}  // namespace
