// bad_files_test.cpp - hostile tokenizer files: truncated and corrupted
// tokenizer.model (SentencePiece and tiktoken), tokenizer.json with wrong
// types, GGUF vocabularies with arrays of wrong types and lengths, broken
// llama2.c tokenizers. Each must give a paca::Error with a clear message,
// never a crash or another exception.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "tok_test_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace {

using Bytes = std::vector<uint8_t>;

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

// Runs load on input; passes when it loads or throws paca::Error.
template <typename Load>
void survives(const Bytes& input, Load load) {
  try {
    auto tok = load(std::span<const uint8_t>(input));
    if (tok) (void)tok->encode("Hello world, \xF0\x9F\xA6\x99 <s>", {.add_special = true, .parse_special = true});
  } catch (const paca::Error&) {
  }
}

template <typename Load>
std::string error_of(const Bytes& input, Load load) {
  try {
    (void)load(std::span<const uint8_t>(input));
  } catch (const paca::Error& e) {
    return e.what();
  }
  return "";
}

auto spm = [](std::span<const uint8_t> b) { return paca::load_spm_tokenizer(b, "tokenizer.model"); };
auto tiktoken = [](std::span<const uint8_t> b) { return paca::load_tiktoken_tokenizer(b, "tokenizer.model"); };
auto llama2c = [](std::span<const uint8_t> b) { return paca::load_llama2c_tokenizer(b, 0, "tok.bin"); };
auto hf = [](std::span<const uint8_t> b) {
  return paca::load_hf_tokenizer(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), "tokenizer.json");
};

TEST(BadFiles, TruncatedSentencePieceModel) {
  TOK_SKIP_WITHOUT_SHARED();
  std::string full = toktest::read_file(toktest::shared_dir() + "/models/stories260K/tok512.model");
  ASSERT_GT(full.size(), 1000u);
  for (size_t n = 0; n < full.size(); n += (n < 200 ? 1 : 37)) survives(Bytes(full.begin(), full.begin() + n), spm);
  EXPECT_NE(error_of(Bytes(full.begin(), full.begin() + 100), spm).find("tokenizer.model"), std::string::npos);
  EXPECT_NE(error_of(Bytes(), spm).find("no pieces"), std::string::npos);
}

TEST(BadFiles, CorruptedSentencePieceModel) {
  TOK_SKIP_WITHOUT_SHARED();
  std::string full = toktest::read_file(toktest::shared_dir() + "/models/stories260K/tok512.model");
  std::mt19937 rng(11);
  std::uniform_int_distribution<size_t> pos(0, full.size() - 1);
  std::uniform_int_distribution<int> val(0, 255);
  for (int i = 0; i < 400; ++i) {
    Bytes b(full.begin(), full.end());
    for (int k = 0; k < 1 + i % 4; ++k) b[pos(rng)] = static_cast<uint8_t>(val(rng));
    survives(b, spm);
  }
  // a varint that never ends, a length past the end, a bad wire type
  EXPECT_NE(error_of(Bytes{0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, spm), "");
  EXPECT_NE(error_of(Bytes{0x0A, 0x7F, 0x0A}, spm).find("past the end"), std::string::npos);
  EXPECT_NE(error_of(Bytes{0x0B}, spm).find("wire type"), std::string::npos);
  EXPECT_NE(error_of(Bytes{0x0A, 0x02, 0x18, 0x01}, spm).find("no text"), std::string::npos);
  EXPECT_NE(error_of(Bytes{0x0A, 0x02, 0x10, 0x01}, spm).find("wire type"), std::string::npos);
  // a well-formed Unigram model is unsupported, not malformed
  Bytes unigram = {0x0A, 0x03, 0x0A, 0x01, 'a', 0x12, 0x02, 0x18, 0x01};
  try {
    spm(unigram);
    ADD_FAILURE() << "a Unigram model loaded";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::unsupported) << e.what();
  }
}

TEST(BadFiles, TiktokenModel) {
  EXPECT_NE(error_of(bytes_of("IQ== 0\nIg== 2\n"), tiktoken).find("rank 1 is missing"), std::string::npos);
  EXPECT_NE(error_of(bytes_of("IQ== 0\nIQ== 0\n"), tiktoken).find("appears twice"), std::string::npos);
  EXPECT_NE(error_of(bytes_of("I*== 0\n"), tiktoken).find("base64"), std::string::npos);
  EXPECT_NE(error_of(bytes_of("IQ== x\n"), tiktoken).find("rank"), std::string::npos);
  EXPECT_NE(error_of(bytes_of("IQ==\n"), tiktoken).find("base64 rank"), std::string::npos);
  EXPECT_NE(error_of(bytes_of("IQ== 99999999\n"), tiktoken), "");
  EXPECT_NE(error_of(bytes_of(""), tiktoken), "");
  // a tiny valid one lacks most single bytes: a byte-level vocabulary must have all 256
  EXPECT_NE(error_of(bytes_of("IQ== 0\nIg== 1\n"), tiktoken).find("byte 0x"), std::string::npos);
}

TEST(BadFiles, TruncatedTiktokenModel) {
  TOK_SKIP_WITHOUT_SHARED();
  std::string full = toktest::read_file(toktest::shared_dir() + "/tokenizers/llama3/tokenizer.model");
  for (size_t n : {size_t{0}, size_t{1}, size_t{5}, size_t{17}, size_t{3000}, full.size() / 2 + 3})
    survives(Bytes(full.begin(), full.begin() + static_cast<long>(n)), tiktoken);
}

TEST(BadFiles, TokenizerJsonWrongTypes) {
  const std::string ok_head = R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": )";
  const std::string norm = R"(, "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "x"})";
  struct {
    std::string json;
    const char* expect;
  } cases[] = {
      {"[1, 2]", "not a JSON object"},
      {"{", "not valid JSON"},
      {R"({"model": 3})", "model"},
      {R"({"model": {"type": "Unigram", "vocab": []}})", "Unigram"},
      {ok_head + R"([["a", 0]], "merges": []})" + norm + "}", "model.vocab must be an object"},
      {ok_head + R"({"a": "0"}, "merges": []})" + norm + "}", "must be an integer id"},
      {ok_head + R"({"a": -4}, "merges": []})" + norm + "}", "not a valid id"},
      {ok_head + R"({"a": 99999999}, "merges": []})" + norm + "}", "not a valid id"},
      {ok_head + R"({"a": 0, "b": 0}, "merges": []})" + norm + "}", "appears twice"},
      {ok_head + R"({"a": 0}, "merges": {}})" + norm + "}", "merges must be an array"},
      {ok_head + R"({"a": 0}, "merges": [7]})" + norm + "}", "merge #0"},
      {ok_head + R"({"a": 0}, "merges": ["a"]})" + norm + "}", "merge #0"},
      {ok_head + R"({"a": 0}, "merges": ["a b"]})" + norm + "}", "not in the vocabulary"},
      {ok_head + R"({"a": 0}, "merges": [["a", 1]]})" + norm + "}", "merge #0"},
      {ok_head + R"({"a": 0}, "merges": [], "unk_token": 5})" + norm + "}", "unk_token must be a string"},
      {ok_head + R"({"a": 0}, "merges": [], "byte_fallback": "yes"})" + norm + "}", "byte_fallback"},
      {ok_head + R"({"a": 0}, "merges": []}, "added_tokens": {})" + norm + "}", "added_tokens must be an array"},
      {ok_head + R"({"a": 0}, "merges": []}, "added_tokens": [{"id": "1", "content": "x"}])" + norm + "}",
       "must be an integer id"},
      {ok_head + R"({"a": 0}, "merges": []}, "added_tokens": [{"id": 1, "content": 5}])" + norm + "}",
       "content must be a string"},
      {ok_head + R"({"a": 0}, "merges": []}, "added_tokens": [{"id": 1}])" + norm + "}", "no content"},
      {ok_head + R"({"<0xZZ>": 0}, "merges": []})" + norm + "}", ""},  // not a byte token: a normal one
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})",
       "Llama 3's split pattern"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})", "not supported"},
      {R"({"model": {"type": "BPE", "vocab": {"\u4f60": 0}, "merges": []}, "decoder": {"type": "ByteLevel"},
          "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": 1}}]}})",
       "split pattern"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Sequence"}})",
       "Sequence"},
  };
  for (const auto& c : cases) {
    std::string err = error_of(bytes_of(c.json), hf);
    if (std::string(c.expect).empty()) {
      survives(bytes_of(c.json), hf);
      continue;
    }
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.json << "\n  error: " << err;
  }
}

TEST(BadFiles, TokenizerJsonMutations) {
  TOK_SKIP_WITHOUT_SHARED();
  // Mutations of a real file cost a full parse each: a few structural ones.
  std::string full = toktest::read_file(toktest::shared_dir() + "/tokenizers/llama3/tokenizer.json");
  for (size_t n : {size_t{0}, size_t{100}, full.size() / 3, full.size() - 2})
    survives(Bytes(full.begin(), full.begin() + static_cast<long>(n)), hf);
  std::string s = full;
  size_t at = s.find("\"ignore_merges\": true");
  if (at != std::string::npos) {
    s.replace(at, 21, "\"ignore_merges\": 1   ");
    EXPECT_NE(error_of(bytes_of(s), hf).find("ignore_merges"), std::string::npos);
  }
}

// --- GGUF ---------------------------------------------------------------

// Writes a GGUF v3 file with no tensors and the given key/values.
class GgufWriter {
 public:
  void str(const std::string& key, const std::string& v) {
    kv(key, 8);
    s(v);
  }
  void u32(const std::string& key, uint32_t v) {
    kv(key, 4);
    put(v);
  }
  void boolean(const std::string& key, bool v) {
    kv(key, 7);
    put(static_cast<uint8_t>(v));
  }
  void str_array(const std::string& key, const std::vector<std::string>& v) {
    kv(key, 9);
    put(uint32_t{8});
    put(uint64_t{v.size()});
    for (const auto& x : v) s(x);
  }
  template <typename T>
  void array(const std::string& key, uint32_t type, const std::vector<T>& v) {
    kv(key, 9);
    put(type);
    put(uint64_t{v.size()});
    for (const auto& x : v) put(x);
  }
  Bytes bytes() const {
    Bytes out;
    auto app = [&](const void* p, size_t n) { out.insert(out.end(), (const uint8_t*)p, (const uint8_t*)p + n); };
    app("GGUF", 4);
    uint32_t version = 3;
    uint64_t n_tensors = 0;
    app(&version, 4);
    app(&n_tensors, 8);
    app(&n_kv_, 8);
    out.insert(out.end(), body_.begin(), body_.end());
    return out;
  }

 private:
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    body_.insert(body_.end(), p, p + sizeof v);
  }
  void s(const std::string& v) {
    put(uint64_t{v.size()});
    body_.insert(body_.end(), v.begin(), v.end());
  }
  void kv(const std::string& key, uint32_t type) {
    ++n_kv_;
    s(key);
    put(type);
  }
  Bytes body_;
  uint64_t n_kv_ = 0;
};

std::string load_gguf_error(const GgufWriter& w) {
  Bytes b = w.bytes();
  try {
    paca::GgufFile g = paca::parse_gguf(b, "vocab.gguf");
    auto tok = paca::load_gguf_tokenizer(g, b, "vocab.gguf");
    if (tok) (void)tok->encode("Hello world", {.add_special = true});
  } catch (const paca::Error& e) {
    return e.what();
  }
  return "";
}

GgufWriter spm_vocab(int n_scores, int n_types, uint32_t types_elem = 5) {
  GgufWriter w;
  w.str("tokenizer.ggml.model", "llama");
  w.str_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81H", "i"});
  w.array("tokenizer.ggml.scores", 6, std::vector<float>(static_cast<size_t>(n_scores), -1.0f));
  if (types_elem == 5) w.array("tokenizer.ggml.token_type", 5, std::vector<int32_t>(static_cast<size_t>(n_types), 1));
  else w.array("tokenizer.ggml.token_type", types_elem, std::vector<float>(static_cast<size_t>(n_types), 1.0f));
  return w;
}

TEST(BadFiles, GgufVocabulary) {
  EXPECT_EQ(load_gguf_error(spm_vocab(5, 5)), "");
  EXPECT_NE(load_gguf_error(spm_vocab(4, 5)).find("tokenizer.ggml.scores has 4 entries, expected 5"), std::string::npos);
  EXPECT_NE(load_gguf_error(spm_vocab(5, 6)).find("tokenizer.ggml.token_type has 6 entries"), std::string::npos);
  EXPECT_NE(load_gguf_error(spm_vocab(5, 5, 6)).find("token_type must be an array of type"), std::string::npos);
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama");
    w.array("tokenizer.ggml.tokens", 5, std::vector<int32_t>{1, 2, 3});
    EXPECT_NE(load_gguf_error(w).find("tokenizer.ggml.tokens must be an array of type"), std::string::npos);
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama");
    w.u32("tokenizer.ggml.tokens", 3);
    EXPECT_NE(load_gguf_error(w).find("must be an array"), std::string::npos);
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama");
    EXPECT_NE(load_gguf_error(w).find("tokenizer.ggml.tokens is missing"), std::string::npos);
  }
  {
    GgufWriter w;
    w.u32("tokenizer.ggml.model", 1);
    EXPECT_NE(load_gguf_error(w).find("tokenizer.ggml.model must be a string"), std::string::npos);
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "bert");
    w.str_array("tokenizer.ggml.tokens", {"a"});
    EXPECT_NE(load_gguf_error(w).find("not supported"), std::string::npos);
  }
  {
    GgufWriter w = spm_vocab(5, 5);
    w.str("tokenizer.ggml.bos_token_id", "one");
    EXPECT_NE(load_gguf_error(w).find("bos_token_id must be an integer"), std::string::npos);
  }
  {
    GgufWriter w = spm_vocab(5, 5);
    w.u32("tokenizer.ggml.add_bos_token", 1);
    EXPECT_NE(load_gguf_error(w).find("add_bos_token must be a bool"), std::string::npos);
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama");
    w.str_array("tokenizer.ggml.tokens", {"<unk>", "<0xZZ>"});
    w.array("tokenizer.ggml.token_type", 5, std::vector<int32_t>{2, 6});
    EXPECT_NE(load_gguf_error(w).find("expected <0xNN>"), std::string::npos);
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "llama");
    w.str_array("tokenizer.ggml.tokens", {"<unk>", "a"});
    w.array("tokenizer.ggml.token_type", 5, std::vector<int32_t>{2, 9});
    EXPECT_NE(load_gguf_error(w).find("unknown token_type 9"), std::string::npos);
  }
  {  // gpt2: merges of wrong type, naming unknown tokens, without a space
    auto gpt2 = [](const std::vector<std::string>& merges) {
      GgufWriter w;
      w.str("tokenizer.ggml.model", "gpt2");
      w.str("tokenizer.ggml.pre", "llama-bpe");
      std::vector<std::string> tokens;
      for (int b = 0; b < 256; ++b) tokens.push_back(paca::byte_level_encode(std::string(1, static_cast<char>(b))));
      tokens.push_back("ab");
      w.str_array("tokenizer.ggml.tokens", tokens);
      w.str_array("tokenizer.ggml.merges", merges);
      return w;
    };
    EXPECT_EQ(load_gguf_error(gpt2({"a b"})), "");
    EXPECT_NE(load_gguf_error(gpt2({"a c"})).find("not in the vocabulary"), std::string::npos);
    EXPECT_NE(load_gguf_error(gpt2({"ab"})).find("two tokens"), std::string::npos);
    GgufWriter w = gpt2({});
    w.str("tokenizer.ggml.pre", "qwen2");  // (a second key of the same name is a GGUF error)
    EXPECT_NE(load_gguf_error(w), "");
  }
}

TEST(BadFiles, GgufTruncatedVocabularies) {
  TOK_SKIP_WITHOUT_SHARED();
  std::string full = toktest::read_file(toktest::shared_dir() + "/tokenizers/vectors/ggml-vocab-llama-spm.gguf");
  for (size_t n = 0; n < full.size(); n += 4099) {
    Bytes b(full.begin(), full.begin() + static_cast<long>(n));
    try {
      paca::GgufFile g = paca::parse_gguf(b, "vocab.gguf");
      auto tok = paca::load_gguf_tokenizer(g, b, "vocab.gguf");
    } catch (const paca::Error&) {
    }
  }
}

TEST(BadFiles, Llama2cTokenizer) {
  auto entry = [](Bytes& b, float score, const std::string& s) {
    int32_t len = static_cast<int32_t>(s.size());
    b.insert(b.end(), reinterpret_cast<uint8_t*>(&score), reinterpret_cast<uint8_t*>(&score) + 4);
    b.insert(b.end(), reinterpret_cast<uint8_t*>(&len), reinterpret_cast<uint8_t*>(&len) + 4);
    b.insert(b.end(), s.begin(), s.end());
  };
  Bytes b = {8, 0, 0, 0};
  entry(b, 0, "<unk>");
  entry(b, 0, "\n<s>\n");
  entry(b, 0, "\n</s>\n");
  entry(b, 0, "<0x41>");
  entry(b, -1, " a");
  auto tok = llama2c(b);
  EXPECT_EQ(tok->n_tokens(), 5);
  EXPECT_EQ(tok->find_token("<s>"), 1);
  EXPECT_EQ(tok->encode("a", {.add_special = true}), (std::vector<int32_t>{1, 4}));
  EXPECT_NE(error_of(Bytes(b.begin(), b.end() - 1), llama2c).find("token 4 has length"), std::string::npos);
  EXPECT_NE(error_of(Bytes(b.begin(), b.begin() + 6), llama2c).find("truncated"), std::string::npos);
  EXPECT_NE(error_of(Bytes{0, 0, 0, 0}, llama2c).find("max_token_length"), std::string::npos);
  Bytes neg = {8, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF};
  EXPECT_NE(error_of(neg, llama2c).find("length -1"), std::string::npos);
  // the model's vocabulary size must match
  EXPECT_NE(error_of(b, [](std::span<const uint8_t> x) { return paca::load_llama2c_tokenizer(x, 4, "t"); })
                .find("more than"),
            std::string::npos);
  EXPECT_NE(error_of(b, [](std::span<const uint8_t> x) { return paca::load_llama2c_tokenizer(x, 6, "t"); })
                .find("holds 5 tokens"),
            std::string::npos);
  for (size_t n = 0; n < b.size(); ++n) survives(Bytes(b.begin(), b.begin() + static_cast<long>(n)), llama2c);
}

TEST(BadFiles, DetectsFileKinds) {
  using K = paca::TokenizerFileKind;
  EXPECT_EQ(paca::detect_tokenizer_file(bytes_of("GGUF\x03")), K::gguf);
  EXPECT_EQ(paca::detect_tokenizer_file(bytes_of("  {\"version\"")), K::hf_json);
  EXPECT_EQ(paca::detect_tokenizer_file(bytes_of("IQ== 0\nIg== 1\n")), K::tiktoken);
  EXPECT_EQ(paca::detect_tokenizer_file(Bytes{0x0A, 0x0E, 0x0A, 0x05, '<'}), K::spm_model);
  EXPECT_EQ(paca::detect_tokenizer_file(Bytes{0x0A, 0x00, 0x00, 0x00, 0x00}), K::llama2c);  // max_token_length 10
  EXPECT_EQ(paca::detect_tokenizer_file(Bytes{0x07, 0x00, 0x00, 0x00}), K::llama2c);
}

}  // namespace
