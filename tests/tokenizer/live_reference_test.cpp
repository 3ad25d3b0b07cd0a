// live_reference_test.cpp - paca against reference tokenizers run live, on
// 5,000+ generated strings: the 8 Llama 3.1 languages (English, German,
// French, Italian, Portuguese, Hindi, Spanish, Thai), CJK, emoji and ZWJ
// sequences, code, long whitespace runs, digit runs, contractions in mixed
// case, ill-formed UTF-8 (lone surrogates as CESU-8 bytes, stray and
// truncated bytes) and special-token text.
//   Llama 2: Debian's python3-sentencepiece on tokenizer.model
//   Llama 3: tiktoken (npm, Rust core) with Llama 3's ranks and pattern, and
//            @lenml/tokenizers (npm, transformers.js) on tokenizer.json
// The npm packages are installed by scripts/tokenizer_reference.sh into a
// folder it names in $PACA_TOKENIZER_REFERENCE_DIR; without it (or without
// python3-sentencepiece) those parts skip.
//
// Documented difference: JavaScript's \s includes U+FEFF and lacks U+0085,
// unlike Unicode White_Space (Rust's regex, tiktoken, HF tokenizers, paca),
// so strings holding those two characters are not compared with
// @lenml/tokenizers (tiktoken covers them).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "tok_test_util.h"
#include "tokenizer/utf8.h"

namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

const std::vector<std::vector<std::string>> kWords = {
    {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "weather", "today", "running", "isn't", "we'll"},
    {"Straße", "Größe", "Mädchen", "schön", "über", "Brötchen", "Fußball", "Übermut", "heißt", "Äpfel", "wir"},
    {"été", "garçon", "français", "où", "déjà", "œuvre", "naïve", "l'homme", "c'est", "Noël", "très", "à"},
    {"perché", "città", "più", "caffè", "però", "l'amico", "così", "giù", "ciao", "bellissimo", "andrò"},
    {"ação", "você", "coração", "não", "órgão", "pão", "avó", "maçã", "está", "obrigado", "informações"},
    {"नमस्ते", "दुनिया", "हिन्दी", "भारत", "क्या", "है", "मैं", "आप", "धन्यवाद", "किताब", "२०२४"},
    {"niño", "año", "¿Qué", "tal?", "¡Hola!", "mañana", "corazón", "español", "señor", "pingüino", "está"},
    {"สวัสดี", "ภาษาไทย", "ครับ", "ขอบคุณ", "ประเทศ", "กรุงเทพ", "๑๒๓", "ไม่", "เป็น", "อยู่", "ที่"},
    {"你好", "世界", "中文", "日本語", "こんにちは", "カタカナ", "ひらがな", "한국어", "안녕하세요", "漢字", "，", "。"},
};
const char* const kEmoji[] = {"🦙", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇩🇪", "🧑🏿‍💻", "✨", "🤷‍♀️", "\u200d", "\ufe0f"};
const char* const kCode[] = {"int main() {\n    return 0;\n}", "def f(x):\n\treturn x ** 2", "for (i = 0; i < n; ++i)",
                             "const a = {b: [1, 2, 3]};", "<div class=\"x\">&amp;</div>", "SELECT * FROM t WHERE id=42;",
                             "x += y->z;  // comment", "#include <stdio.h>", "    if a != b:\r\n        pass"};
const char* const kSpecial[] = {"<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
                                "<|python_tag|>", "<s>", "</s>", "[INST]", "<<SYS>>", "<|eom_id|>"};
const char* const kOdd[] = {"\xFF", "\xC3", "\xE2\x82", "\xF0\x9F\xA6", "\xED\xA0\x80", "\xED\xB0\x80", "\x80\x80",
                            "\xC0\xAF", "\xF4\x90\x80\x80", "\u00a0", "\u3000", "\u2028", "\u0085", "\ufeff", "\u2581",
                            "\u017f", "\u212a", "\t", "\r", "\x01", "\x7f", "\u00ad", "\u0301"};

std::string pick(std::mt19937& rng, const std::vector<std::string>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}
template <size_t N>
std::string pick(std::mt19937& rng, const char* const (&v)[N]) {
  return v[std::uniform_int_distribution<size_t>(0, N - 1)(rng)];
}

std::string mixed_case(std::mt19937& rng, std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z' && rng() % 3 == 0) c = static_cast<char>(c - 32);
  return s;
}

// One generated string of kind k (0..9).
std::string generate(std::mt19937& rng, int k) {
  std::uniform_int_distribution<int> small(1, 12);
  std::string s;
  switch (k) {
    case 0: case 1: case 2: {  // sentences in one of the languages (CJK included)
      const auto& words = kWords[rng() % kWords.size()];
      for (int n = small(rng); n > 0; --n) s += (s.empty() || rng() % 7 == 0 ? "" : " ") + pick(rng, words);
      if (rng() % 2) s += pick(rng, {".", "!", "?", ",", "...", " :)", "\n"});
      break;
    }
    case 3:  // emoji and ZWJ sequences among words
      for (int n = small(rng); n > 0; --n) s += (rng() % 2 ? pick(rng, kEmoji) : " " + pick(rng, kWords[0]));
      break;
    case 4:  // code
      s = pick(rng, kCode);
      if (rng() % 2) s += "\n" + pick(rng, kCode);
      break;
    case 5: {  // whitespace runs, long ones included
      for (int n = small(rng) / 3 + 1; n > 0; --n) {
        int len = std::uniform_int_distribution<int>(1, rng() % 5 == 0 ? 300 : 12)(rng);
        for (int i = 0; i < len; ++i) s += pick(rng, {" ", " ", " ", "\t", "\n", "\r\n"});
        s += pick(rng, kWords[rng() % kWords.size()]);
      }
      break;
    }
    case 6:  // digit runs
      for (int n = small(rng) / 2 + 1; n > 0; --n) {
        int len = std::uniform_int_distribution<int>(1, 40)(rng);
        for (int i = 0; i < len; ++i) s += static_cast<char>('0' + rng() % 10);
        s += pick(rng, {" ", ",", ".", "x", "\n", " abc ", "٣", "๒"});
      }
      break;
    case 7:  // contractions in mixed case
      for (int n = small(rng); n > 0; --n)
        s += mixed_case(rng, pick(rng, {"I'm", " you're", " we've", " they'll", " he'd", " it's", " don't", " 'S",
                                        " o'clock", " rock'n'roll", "''", " 'tis"}));
      break;
    case 8:  // ill-formed UTF-8 and odd characters
      for (int n = small(rng); n > 0; --n) s += rng() % 2 ? pick(rng, kOdd) : pick(rng, kWords[rng() % kWords.size()]);
      break;
    default:  // special-token text in ordinary text
      for (int n = small(rng) / 2 + 1; n > 0; --n)
        s += pick(rng, kSpecial) + (rng() % 2 ? pick(rng, kWords[0]) : "\n\n" + pick(rng, kWords[2]));
      break;
  }
  return s;
}

std::vector<std::string> corpus() {
  std::mt19937 rng(20240601);
  std::vector<std::string> v;
  for (int i = 0; i < 5200; ++i) v.push_back(generate(rng, i % 10));
  return v;
}

std::string b64(const std::string& s) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  size_t i = 0;
  for (; i + 3 <= s.size(); i += 3) {
    uint32_t w = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
    for (int k = 18; k >= 0; k -= 6) o += t[(w >> k) & 63];
  }
  if (size_t r = s.size() - i) {
    uint32_t w = (uint8_t(s[i]) << 16) | (r == 2 ? uint8_t(s[i + 1]) << 8 : 0);
    o += t[(w >> 18) & 63];
    o += t[(w >> 12) & 63];
    o += r == 2 ? t[(w >> 6) & 63] : '=';
    o += '=';
  }
  return o;
}

// Writes the corpus, runs cmd (which reads IN and writes OUT), returns the
// id lists; nullopt (after a skip message) when the reference is missing.
std::optional<std::vector<Ids>> run_reference(const std::string& name, const std::string& cmd_fmt,
                                              const std::vector<std::string>& texts) {
  std::string dir = ::testing::TempDir();
  std::string in = dir + "/paca_ref_" + name + "_in.json", out = dir + "/paca_ref_" + name + "_out.json";
  json arr = json::array();
  for (const auto& t : texts) arr.push_back(b64(t));
  std::ofstream(in) << arr.dump();
  std::remove(out.c_str());
  std::string cmd = cmd_fmt;
  cmd.replace(cmd.find("{in}"), 4, in);
  cmd.replace(cmd.find("{out}"), 5, out);
  int rc = std::system(cmd.c_str());
  if (rc != 0) {
    std::printf("[ reference ] %s: not available (exit %d): %s\n", name.c_str(), rc, cmd.c_str());
    return std::nullopt;
  }
  std::ifstream f(out);
  json j = json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_array() || j.size() != texts.size()) {
    ADD_FAILURE() << name << ": reference output unreadable";
    return std::nullopt;
  }
  return j.get<std::vector<Ids>>();
}

void compare(const std::string& name, const paca::Tokenizer& tok, bool parse_special,
             const std::vector<std::string>& texts, const std::vector<Ids>& ref, bool (*excluded)(const std::string&)) {
  size_t agree = 0, compared = 0, skipped = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (excluded && excluded(texts[i])) {
      ++skipped;
      continue;
    }
    ++compared;
    Ids got = tok.encode(texts[i], {.parse_special = parse_special});
    if (got == ref[i]) ++agree;
    else if (compared - agree <= 10)
      ADD_FAILURE() << name << " differs on \"" << paca::utf8_sanitize(texts[i]) << "\":\n  paca " << toktest::ids_str(got)
                    << "\n  ref  " << toktest::ids_str(ref[i]);
  }
  EXPECT_EQ(agree, compared) << name;
  EXPECT_GE(compared, 4500u);
  std::printf("[ reference ] %s: %zu/%zu strings agree (%zu not compared)\n", name.c_str(), agree, compared, skipped);
}

std::string shq(const std::string& s) { return "'" + s + "'"; }

TEST(LiveReference, Llama2SentencePiece) {
  TOK_SKIP_WITHOUT_SHARED();
  auto texts = corpus();
  std::string model = toktest::shared_dir() + "/tokenizers/llama2/tokenizer.model";
  auto ref = run_reference("sentencepiece",
                           "/usr/bin/python3 " + shq(std::string(PACA_SOURCE_DIR) + "/tests/tokenizer/reference/sp_reference.py") +
                               " " + shq(model) + " {in} {out}",
                           texts);
  if (!ref) GTEST_SKIP() << "python3-sentencepiece not available";
  compare("Llama 2 vs sentencepiece", toktest::shared_tokenizer("tokenizers/llama2/tokenizer.model"), false, texts, *ref,
          nullptr);
}

std::string node_cmd(const std::string& args) {
  const char* dir = std::getenv("PACA_TOKENIZER_REFERENCE_DIR");
  if (!dir || !*dir) return "";
  return "cd " + shq(dir) + " && node " + shq(std::string(PACA_SOURCE_DIR) + "/tests/tokenizer/reference/js_reference.mjs") +
         " " + args;
}

TEST(LiveReference, Llama3Tiktoken) {
  TOK_SKIP_WITHOUT_SHARED();
  std::string cmd = node_cmd("tiktoken " + shq(toktest::shared_dir() + "/tokenizers/llama3/tokenizer.model") + " {in} {out}");
  if (cmd.empty()) GTEST_SKIP() << "set PACA_TOKENIZER_REFERENCE_DIR (scripts/tokenizer_reference.sh)";
  auto texts = corpus();
  auto ref = run_reference("tiktoken", cmd, texts);
  if (!ref) GTEST_SKIP() << "tiktoken (npm) not available";
  compare("Llama 3 vs tiktoken", toktest::shared_tokenizer("tokenizers/llama3/tokenizer.json"), false, texts, *ref,
          nullptr);
}

bool js_whitespace_differs(const std::string& s) {
  return s.find("\xEF\xBB\xBF") != std::string::npos || s.find("\xC2\x85") != std::string::npos;
}

TEST(LiveReference, Llama3TransformersJs) {
  TOK_SKIP_WITHOUT_SHARED();
  std::string cmd = node_cmd("hf " + shq(toktest::shared_dir() + "/tokenizers/llama3") + " {in} {out}");
  if (cmd.empty()) GTEST_SKIP() << "set PACA_TOKENIZER_REFERENCE_DIR (scripts/tokenizer_reference.sh)";
  auto texts = corpus();
  auto ref = run_reference("lenml", cmd, texts);
  if (!ref) GTEST_SKIP() << "@lenml/tokenizers (npm) not available";
  compare("Llama 3 vs @lenml/tokenizers", toktest::shared_tokenizer("tokenizers/llama3/tokenizer.json"), true, texts,
          *ref, js_whitespace_differs);
}

}  // namespace
