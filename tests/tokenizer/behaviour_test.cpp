// behaviour_test.cpp - what the tokenizers do beyond the vectors: special
// tokens only when allowed, BOS per config, decoding (leading space, control
// tokens, byte fallback), the streaming detokenizer, attributes.
#include <gtest/gtest.h>

#include "tok_test_util.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace {

using paca::DecodeOptions;
using paca::EncodeOptions;
using paca::Tokenizer;
using I = std::vector<int32_t>;
const std::string R = "\xEF\xBF\xBD";

const Tokenizer& llama3() { return toktest::shared_tokenizer("tokenizers/llama3/tokenizer.json"); }
const Tokenizer& llama2() { return toktest::shared_tokenizer("tokenizers/llama2/tokenizer.model"); }

TEST(Special, Llama3ControlTextIsTextUnlessAllowed) {
  TOK_SKIP_WITHOUT_SHARED();
  const Tokenizer& t = llama3();
  const std::string text = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>";
  I plain = t.encode(text, {});
  for (int32_t id : plain) EXPECT_LT(id, 128000) << "special text became a control token without parse_special";
  I special = t.encode(text, {.parse_special = true});
  EXPECT_EQ(special, (I{128006, 882, 128007, 271, 13347, 128009}));
  EXPECT_EQ(t.encode(text, {.add_special = true, .parse_special = true}).front(), 128000);
  // Decoding: control tokens render only when asked.
  EXPECT_EQ(t.decode(special, {}), "user\n\nHi");
  EXPECT_EQ(t.decode(special, {.render_special = true}), text);
}

TEST(Special, Llama2BosAndSpaceAfterSpecial) {
  TOK_SKIP_WITHOUT_SHARED();
  const Tokenizer& t = llama2();
  EXPECT_EQ(t.encode("<s>Hello", {.parse_special = true}), (I{1, 15043}));   // dummy prefix again after <s>
  EXPECT_NE(t.encode("<s>Hello", {}).front(), 1);                         // text without parse_special
  EXPECT_EQ(t.encode("", {.add_special = true}), (I{1}));                   // empty text: BOS only
  EXPECT_EQ(t.encode("", {}), (I{}));
  EXPECT_EQ(t.decode(I{1, 15043, 3186, 2}, {}), "Hello world");
  EXPECT_EQ(t.decode(I{1, 15043, 3186, 2}, {.render_special = true}), "<s> Hello world</s>");
  EXPECT_EQ(t.decode(I{15043, 3186}, {.keep_leading_space = true}), " Hello world");
  EXPECT_EQ(t.decode(I{29871, 13}, {}), "\n");  // "▁" + <0x0A>: the dummy space dropped
}

TEST(Special, AttributesAndEog) {
  TOK_SKIP_WITHOUT_SHARED();
  const Tokenizer& t3 = llama3();
  EXPECT_EQ(t3.attributes(9906), paca::kAttrNormal);
  EXPECT_EQ(t3.attributes(128000), paca::kAttrControl | paca::kAttrBos);
  EXPECT_EQ(t3.attributes(128009), paca::kAttrControl | paca::kAttrEog);  // tokenizer_config eos_token
  EXPECT_TRUE(t3.attributes(128001) & paca::kAttrEog);
  EXPECT_EQ(t3.bos_id(), 128000);
  EXPECT_EQ(t3.find_token("<|eot_id|>"), 128009);
  const Tokenizer& t2 = llama2();
  EXPECT_EQ(t2.attributes(0), paca::kAttrUnknown);
  EXPECT_EQ(t2.attributes(2), paca::kAttrControl | paca::kAttrEog);
  EXPECT_EQ(t2.attributes(13), paca::kAttrByte);
  EXPECT_THROW((void)t2.attributes(32000), paca::Error);
  EXPECT_THROW((void)t2.piece(-1, false), paca::Error);
  EXPECT_EQ(t2.piece(13, false), "\n");
  EXPECT_EQ(t2.piece(15043, false), " Hello");
}

TEST(Special, TokenizerConfigAddBos) {
  TOK_SKIP_WITHOUT_SHARED();
  auto t = paca::load_tokenizer_file(toktest::shared_dir() + "/tokenizers/llama2/tokenizer.model");
  paca::apply_tokenizer_config(*t, R"({"add_bos_token": false, "add_eos_token": true, "eos_token": {"content": "</s>"}})",
                               "config");
  EXPECT_EQ(t->encode("Hi", {.add_special = true}), (I{6324, 2}));
  EXPECT_THROW(paca::apply_tokenizer_config(*t, R"({"add_bos_token": "yes"})", "config"), paca::Error);
  EXPECT_THROW(paca::apply_tokenizer_config(*t, R"({"bos_token": "<nope>"})", "config"), paca::Error);
  EXPECT_THROW(paca::apply_tokenizer_config(*t, R"([1])", "config"), paca::Error);
}

// Streams ids one at a time; checks that no piece ends inside a character
// and that the pieces add up to decode().
std::string stream_all(const Tokenizer& t, const I& ids, DecodeOptions opt = {}) {
  paca::TextStream s(t, opt);
  std::string all, piece;
  for (int32_t id : ids) {
    piece.clear();
    s.push(id, piece);
    EXPECT_TRUE(paca::utf8_valid(piece)) << "piece of id " << id;
    all += piece;
  }
  piece.clear();
  s.flush(piece);
  all += piece;
  EXPECT_EQ(all, t.decode(ids, opt));
  return all;
}

TEST(Detokenizer, ByteFallbackCharactersSplitAcrossTokens) {
  TOK_SKIP_WITHOUT_SHARED();
  const Tokenizer& t = llama2();
  const std::string text = "a \xF0\x9D\x94\x98 \xE2\x82\xAC\xF0\x9F\xA6\x99!";  // 𝔘 and 🦙 are byte-fallback in Llama 2
  I ids = t.encode(text, {});
  int bytes = 0;
  for (int32_t id : ids) bytes += t.attributes(id) == paca::kAttrByte;
  EXPECT_GE(bytes, 8);
  // one id at a time: the character comes out only with its last byte
  paca::TextStream s(t, {});
  std::string out, piece;
  for (int32_t id : ids) {
    piece.clear();
    s.push(id, piece);
    EXPECT_TRUE(paca::utf8_valid(piece));
    out += piece;
  }
  EXPECT_EQ(out, text);
  EXPECT_EQ(stream_all(t, ids), text);
}

TEST(Detokenizer, InvalidBytesBecomeReplacementCharacters) {
  TOK_SKIP_WITHOUT_SHARED();
  const Tokenizer& t = llama2();
  auto byte = [](int b) { return 3 + b; };
  EXPECT_EQ(stream_all(t, I{byte(0xFF), byte('A')}), R + "A");
  EXPECT_EQ(stream_all(t, I{byte(0xE4), byte(0xBD), 15043}), R + " Hello");  // unfinished, then text
  EXPECT_EQ(stream_all(t, I{15043, byte(0xE4), byte(0xBD)}), "Hello" + R);    // unfinished at the end
  EXPECT_EQ(stream_all(t, I{byte(0xED), byte(0xA0), byte(0x80)}), R + R + R);  // surrogate bytes
  EXPECT_EQ(stream_all(t, I{byte(0xC3), 2, byte(0xA9)}, {.render_special = true}), R + "</s>" + R);
}

TEST(Detokenizer, Llama3SplitsEmojiAcrossTokens) {
  TOK_SKIP_WITHOUT_SHARED();
  const Tokenizer& t = llama3();
  const std::string text = "\xF0\x9F\xA6\x99\xF0\x9F\xA6\x99 llama \xE0\xB8\xAA\xE0\xB8\xA7\xE0\xB8\xB1\xE0\xB8\xAA";
  I ids = t.encode(text, {});
  size_t partial = 0;
  for (int32_t id : ids) partial += !paca::utf8_valid(t.piece(id, false));
  EXPECT_GT(partial, 0u) << "expected some tokens that hold part of a character";
  EXPECT_EQ(stream_all(t, ids), text);
  EXPECT_EQ(stream_all(t, I{128000, 9906, 128009}, {.render_special = true}), "<|begin_of_text|>Hello<|eot_id|>");
}

TEST(Detokenizer, FlushStartsANewText) {
  TOK_SKIP_WITHOUT_SHARED();
  const Tokenizer& t = llama2();
  paca::TextStream s(t, {});
  std::string out;
  s.push(15043, out);
  s.flush(out);
  s.push(15043, out);  // a new text: its dummy space is dropped again
  EXPECT_EQ(out, "HelloHello");
  EXPECT_THROW(s.push(99999, out), paca::Error);
  EXPECT_EQ(out, "HelloHello");
}

TEST(Encode, InvalidUtf8IsReplacedFirst) {
  TOK_SKIP_WITHOUT_SHARED();
  for (const Tokenizer* t : {&llama3(), &llama2()}) {
    EXPECT_EQ(t->encode("a\xFF" "b\xF0\x9F", {}), t->encode("a" + R + "b" + R, {}));
    EXPECT_EQ(t->encode("\xED\xA0\x80", {}), t->encode(R + R + R, {}));
  }
}

TEST(Encode, LongRunsAreFast) {
  TOK_SKIP_WITHOUT_SHARED();
  // One pre-token of 200k spaces / digits / letters: the heap merge keeps it O(n log n).
  for (const std::string& s : {std::string(200000, ' '), std::string(200000, 'a'), std::string(50000, '7'),
                               std::string(60000, '\n') + "x"}) {
    I ids = llama3().encode(s, {});
    EXPECT_EQ(llama3().decode(ids, {}), s);
    I ids2 = llama2().encode(s, {});
    EXPECT_EQ(llama2().decode(ids2, {}), s);
  }
}

}  // namespace
