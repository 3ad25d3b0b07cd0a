// roundtrip_test.cpp - property tests on generated strings (8 Llama 3.1
// languages, CJK, emoji and ZWJ sequences, code, whitespace and digit runs,
// contractions in mixed case, special-token text):
//   decode(encode(t)) == t                 for valid UTF-8 t, with the
//                                          documented exceptions below
//   encode(decode(encode(t))) == encode(t)
//   every file of one vocabulary gives the same ids (tokenizer.json,
//   tiktoken tokenizer.model and GGUF for Llama 3; tokenizer.model, GGUF and
//   a generated Llama-2-style tokenizer.json for Llama 2)
// Exceptions to the first property: invalid UTF-8 comes back as U+FFFD;
// Llama 2 encodes U+2581 like a space, so it decodes as ' '; special-token
// text parsed as control tokens decodes to nothing unless rendered.
#include <gtest/gtest.h>

#include <random>

#include "tok_test_util.h"
#include "tokenizer/tokenizer_files.h"
#include "tokenizer/utf8.h"

namespace {

using paca::Tokenizer;

const char* const kFragments[] = {
    "Hello", " world", "The quick brown fox", " jumps", "Once upon a time", "I'm", "YOU'RE", "we'Ll", "It'S", "'ve",
    "don't", "DON'T", "Größe", " Straße", "Müller", "ça va", " français", "l'été", "perché", " città", "ação",
    " você", "coração", "¿Qué tal?", " niño", "नमस्ते", " दुनिया", "हिन्दी", "สวัสดี", "ภาษาไทย", "ครับ", "你好",
    "世界", "こんにちは", "カタカナ", "한국어", "안녕", "🦙", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "\u200d",
    "int main() {", "  return 0;", "}", "x += 1;", "if (a && b) {", "def f(x):", "    pass", "<div class=\"a\">",
    "https://example.com/a?b=c", "\t", "\n", "\r\n", "  ", "    ", "\n\n\n", "          ", "0", "7", "42", "123456789",
    "3.14159", "1,000,000", "½", "٣", "๑๒๓", "Ⅷ", "<|eot_id|>", "<|begin_of_text|>", "<s>", "</s>", "<unk>",
    "[INST]", "<<SYS>>", "\u00a0", "\u3000", "\u2028", "\u0085", "\ufeff", "…", "—", "«", "»", "“", "”", "€", "£",
    "¥", "©", "™", "ſ", "'ſ", "K", "ǅ", "ﬁ", "Ａ", "𝔘", "𝟘", "\u0301", "e\u0301", "Ω", "ß", "İ", "ı",
};

std::string random_text(std::mt19937& rng) {
  std::uniform_int_distribution<size_t> pick(0, std::size(kFragments) - 1);
  std::uniform_int_distribution<int> len(1, 12), sep(0, 5);
  std::string s;
  for (int k = len(rng); k > 0; --k) {
    s += kFragments[pick(rng)];
    switch (sep(rng)) {
      case 0: s += ' '; break;
      case 1: s += "  "; break;
      default: break;
    }
  }
  return s;
}

bool has_spm_space_marker(const std::string& s) { return s.find("\xE2\x96\x81") != std::string::npos; }

void check_roundtrips(const Tokenizer& t, bool spm, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  int checked = 0;
  for (int i = 0; i < n; ++i) {
    std::string text = random_text(rng);
    ASSERT_TRUE(paca::utf8_valid(text));
    std::vector<int32_t> ids = t.encode(text, {});
    std::string back = t.decode(ids, {});
    if (!(spm && has_spm_space_marker(text))) {
      EXPECT_EQ(back, text) << "decode(encode(t)) != t";
      ++checked;
    }
    EXPECT_EQ(t.encode(back, {}), ids) << text;
    // with special parsing: control tokens round-trip when rendered
    std::vector<int32_t> sids = t.encode(text, {.parse_special = true});
    if (!spm) {
      EXPECT_EQ(t.decode(sids, {.render_special = true}), text) << text;
    }
  }
  EXPECT_GT(checked, n / 2);
}

TEST(RoundTrip, Llama3) {
  TOK_SKIP_WITHOUT_SHARED();
  check_roundtrips(toktest::shared_tokenizer("tokenizers/llama3/tokenizer.json"), false, 3000, 1);
}

TEST(RoundTrip, Llama2) {
  TOK_SKIP_WITHOUT_SHARED();
  check_roundtrips(toktest::shared_tokenizer("tokenizers/llama2/tokenizer.model"), true, 3000, 2);
}

TEST(RoundTrip, Tok512) {
  TOK_SKIP_WITHOUT_SHARED();
  check_roundtrips(toktest::shared_tokenizer("models/stories260K/tok512.bin"), true, 1000, 3);
}

TEST(RoundTrip, RandomBytesDecodeToValidUtf8) {
  TOK_SKIP_WITHOUT_SHARED();
  std::mt19937 rng(4);
  for (const char* file : {"tokenizers/llama3/tokenizer.json", "tokenizers/llama2/tokenizer.model"}) {
    const Tokenizer& t = toktest::shared_tokenizer(file);
    std::uniform_int_distribution<int32_t> id(0, t.n_tokens() - 1);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int i = 0; i < 300; ++i) {
      std::vector<int32_t> ids(20);
      for (auto& x : ids) x = id(rng);
      EXPECT_TRUE(paca::utf8_valid(t.decode(ids, {.render_special = true})));
      std::string junk(40, '\0');
      for (char& c : junk) c = static_cast<char>(byte(rng));
      std::vector<int32_t> enc = t.encode(junk, {.parse_special = true});
      EXPECT_EQ(t.decode(enc, {.render_special = true}), paca::utf8_sanitize(junk)) << file;
    }
  }
}

void check_same_ids(const std::vector<const Tokenizer*>& ts, int n, uint32_t seed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < n; ++i) {
    std::string text = random_text(rng);
    for (bool special : {false, true}) {
      std::vector<int32_t> want = ts[0]->encode(text, {.add_special = true, .parse_special = special});
      for (size_t k = 1; k < ts.size(); ++k)
        EXPECT_EQ(ts[k]->encode(text, {.add_special = true, .parse_special = special}), want)
            << ts[k]->source() << " vs " << ts[0]->source() << " on \"" << text << "\"";
    }
  }
}

TEST(SameVocabulary, Llama3FilesAgree) {
  TOK_SKIP_WITHOUT_SHARED();
  check_same_ids({&toktest::shared_tokenizer("tokenizers/llama3/tokenizer.json"),
                  &toktest::shared_tokenizer("tokenizers/llama3/tokenizer.model"),
                  &toktest::shared_tokenizer("models/gguf/tiny-llama31.gguf")},
                 2000, 5);
}

TEST(SameVocabulary, Llama2FilesAgree) {
  TOK_SKIP_WITHOUT_SHARED();
  check_same_ids({&toktest::shared_tokenizer("tokenizers/llama2/tokenizer.model"),
                  &toktest::shared_tokenizer("tokenizers/vectors/ggml-vocab-llama-spm.gguf"),
                  &toktest::shared_tokenizer("models/gguf/tiny-llama2.gguf")},
                 2000, 6);
}

TEST(SameVocabulary, Tok512FilesAgree) {
  TOK_SKIP_WITHOUT_SHARED();
  check_same_ids({&toktest::shared_tokenizer("models/stories260K/tok512.bin"),
                  &toktest::shared_tokenizer("models/stories260K/stories260K.gguf"),
                  &toktest::shared_tokenizer("models/stories260K/tok512.model")},
                 1000, 7);
}

}  // namespace
