// tokenizer_samples.cpp - see tokenizer_samples.h.
#include "tokenizer_samples.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"

namespace paca::fuzz {

namespace {

const char* const kPieces[] = {"he", "ll", "llo", "hello", " w", "or", " wor", "ld", " world", "  ", "    ",
                               "12", "123", "\xE4\xBD\xA0", "\xE4\xBD\xA0\xE5\xA5\xBD", " the", "'s", "in", "ing"};

std::string b64(const std::string& s) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    uint32_t w = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
    o += t[w >> 18];
    o += t[(w >> 12) & 63];
    o += t[(w >> 6) & 63];
    o += t[w & 63];
  }
  if (s.size() - i == 1) {
    uint32_t w = uint8_t(s[i]) << 16;
    o += t[w >> 18];
    o += t[(w >> 12) & 63];
    o += "==";
  } else if (s.size() - i == 2) {
    uint32_t w = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8);
    o += t[w >> 18];
    o += t[(w >> 12) & 63];
    o += t[(w >> 6) & 63];
    o += '=';
  }
  return o;
}

// Byte-level vocabulary: 256 bytes, then the pieces whose halves exist.
std::vector<std::string> bpe_tokens() {
  std::vector<std::string> v;
  for (int b = 0; b < 256; ++b) v.push_back(std::string(1, static_cast<char>(b)));
  for (const char* p : kPieces) v.push_back(p);
  return v;
}

// Merges (as byte strings) that build each multi-byte token from two tokens.
std::vector<std::pair<std::string, std::string>> bpe_merges(const std::vector<std::string>& tokens) {
  std::vector<std::pair<std::string, std::string>> m;
  auto has = [&](const std::string& s) {
    for (const auto& t : tokens)
      if (t == s) return true;
    return false;
  };
  for (const auto& t : tokens)
    for (size_t k = 1; k < t.size(); ++k)
      if (has(t.substr(0, k)) && has(t.substr(k))) {
        m.emplace_back(t.substr(0, k), t.substr(k));
        break;
      }
  return m;
}

// SentencePiece-style vocabulary: texts with U+2581, scores, types.
struct SpmPiece {
  std::string text;
  float score;
  int type;
};

std::vector<SpmPiece> spm_pieces() {
  std::vector<SpmPiece> v = {{"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}};
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    v.push_back({buf, 0, 6});
  }
  float score = 0;
  for (const char* p : {"\xE2\x96\x81", "e", "h", "l", "o", "w", "r", "d", "t", "he", "ll", "llo", "\xE2\x96\x81h",
                        "\xE2\x96\x81hello", "\xE2\x96\x81w", "or", "\xE2\x96\x81world", "\xE2\x96\x81t",
                        "\xE2\x96\x81the", "\xE4\xBD\xA0"})
    v.push_back({p, score -= 1, 1});
  return v;
}

void put_u32(Bytes& b, uint32_t v) { b.insert(b.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 4); }
void put_u64(Bytes& b, uint64_t v) { b.insert(b.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + 8); }
void put_str(Bytes& b, const std::string& s) {
  put_u64(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}
void put_varint(Bytes& b, uint64_t v) {
  while (v >= 0x80) {
    b.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  b.push_back(static_cast<uint8_t>(v));
}
void put_field(Bytes& b, uint32_t field, const Bytes& msg) {
  put_varint(b, field << 3 | 2);
  put_varint(b, msg.size());
  b.insert(b.end(), msg.begin(), msg.end());
}

Bytes with_config(const std::string& json, const std::string& config) {
  Bytes b(json.begin(), json.end());
  b.push_back(0);
  b.insert(b.end(), config.begin(), config.end());
  return b;
}

}  // namespace

Bytes sample_tiktoken() {
  std::string s;
  auto tokens = bpe_tokens();
  for (size_t i = 0; i < tokens.size(); ++i) s += b64(tokens[i]) + " " + std::to_string(i) + "\n";
  return Bytes(s.begin(), s.end());
}

Bytes sample_llama2c() {
  Bytes b;
  put_u32(b, 16);
  for (const auto& p : spm_pieces()) {
    std::string t = p.text;
    if (t == "<s>") t = "\n<s>\n";
    if (t == "</s>") t = "\n</s>\n";
    std::string out;
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
        out += ' ';
        i += 3;
      } else {
        out += t[i++];
      }
    }
    float score = p.score;
    b.insert(b.end(), reinterpret_cast<uint8_t*>(&score), reinterpret_cast<uint8_t*>(&score) + 4);
    put_u32(b, static_cast<uint32_t>(out.size()));
    b.insert(b.end(), out.begin(), out.end());
  }
  return b;
}

Bytes sample_spm_model() {
  Bytes model;
  for (const auto& p : spm_pieces()) {
    Bytes piece;
    put_field(piece, 1, Bytes(p.text.begin(), p.text.end()));
    piece.push_back(2 << 3 | 5);
    float score = p.score;
    piece.insert(piece.end(), reinterpret_cast<uint8_t*>(&score), reinterpret_cast<uint8_t*>(&score) + 4);
    piece.push_back(3 << 3 | 0);
    put_varint(piece, static_cast<uint64_t>(p.type));
    put_field(model, 1, piece);
  }
  Bytes trainer;
  trainer.push_back(3 << 3 | 0);
  trainer.push_back(2);  // BPE
  put_varint(trainer, 35 << 3 | 0);
  trainer.push_back(1);  // byte_fallback
  put_field(model, 2, trainer);
  Bytes norm;
  put_field(norm, 1, Bytes{'i', 'd', 'e', 'n', 't', 'i', 't', 'y'});
  put_field(model, 3, norm);
  return model;
}

Bytes sample_tokenizer_json_llama3() {
  using nlohmann::json;
  auto tokens = bpe_tokens();
  json vocab = json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[byte_level_encode(tokens[i])] = i;
  json merges = json::array();
  for (const auto& [a, b] : bpe_merges(tokens)) merges.push_back(byte_level_encode(a) + " " + byte_level_encode(b));
  json j;
  j["added_tokens"] = json::array({{{"id", tokens.size()}, {"content", "<|begin_of_text|>"}, {"special", true}},
                                   {{"id", tokens.size() + 1}, {"content", "<|eot_id|>"}, {"special", true}}});
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"},
                     {"pattern",
                      {{"Regex",
                        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
                     {"behavior", "Isolated"}},
                    {{"type", "ByteLevel"}, {"use_regex", false}}})}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["model"] = {{"type", "BPE"}, {"ignore_merges", true}, {"vocab", vocab}, {"merges", merges}};
  return with_config(j.dump(), R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})");
}

Bytes sample_tokenizer_json_llama2() {
  using nlohmann::json;
  json vocab = json::object();
  auto pieces = spm_pieces();
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i].text] = i;
  json merges = json::array();
  for (const auto& p : pieces) {
    if (p.type != 1) continue;
    for (size_t k = 1; k < p.text.size(); ++k)
      if (vocab.contains(p.text.substr(0, k)) && vocab.contains(p.text.substr(k))) {
        merges.push_back(json::array({p.text.substr(0, k), p.text.substr(k)}));
        break;
      }
  }
  json j;
  j["added_tokens"] = json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                   {{"id", 1}, {"content", "<s>"}, {"special", true}},
                                   {{"id", 2}, {"content", "</s>"}, {"special", true}}});
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                  {{"type", "Replace"}, {"pattern", {{"String", " "}}},
                                                   {"content", "\xE2\x96\x81"}}})}};
  j["model"] = {{"type", "BPE"}, {"byte_fallback", true}, {"unk_token", "<unk>"}, {"vocab", vocab}, {"merges", merges}};
  return with_config(j.dump(), R"({"add_bos_token": true, "bos_token": {"content": "<s>"}, "eos_token": "</s>"})");
}

namespace {

struct GgufOut {
  Bytes body;
  uint64_t n = 0;
  void key(const std::string& k, uint32_t type) {
    ++n;
    put_str(body, k);
    put_u32(body, type);
  }
  Bytes done() const {
    Bytes b = {'G', 'G', 'U', 'F'};
    put_u32(b, 3);
    put_u64(b, 0);
    put_u64(b, n);
    b.insert(b.end(), body.begin(), body.end());
    return b;
  }
};

}  // namespace

Bytes sample_gguf_spm() {
  GgufOut g;
  auto pieces = spm_pieces();
  g.key("tokenizer.ggml.model", 8);
  put_str(g.body, "llama");
  g.key("tokenizer.ggml.tokens", 9);
  put_u32(g.body, 8);
  put_u64(g.body, pieces.size());
  for (const auto& p : pieces) put_str(g.body, p.text);
  g.key("tokenizer.ggml.scores", 9);
  put_u32(g.body, 6);
  put_u64(g.body, pieces.size());
  for (const auto& p : pieces) {
    float s = p.score;
    g.body.insert(g.body.end(), reinterpret_cast<uint8_t*>(&s), reinterpret_cast<uint8_t*>(&s) + 4);
  }
  g.key("tokenizer.ggml.token_type", 9);
  put_u32(g.body, 5);
  put_u64(g.body, pieces.size());
  for (const auto& p : pieces) put_u32(g.body, static_cast<uint32_t>(p.type));
  g.key("tokenizer.ggml.bos_token_id", 4);
  put_u32(g.body, 1);
  g.key("tokenizer.ggml.add_bos_token", 7);
  g.body.push_back(1);
  return g.done();
}

Bytes sample_gguf_bpe() {
  GgufOut g;
  auto tokens = bpe_tokens();
  g.key("tokenizer.ggml.model", 8);
  put_str(g.body, "gpt2");
  g.key("tokenizer.ggml.pre", 8);
  put_str(g.body, "llama-bpe");
  g.key("tokenizer.ggml.tokens", 9);
  put_u32(g.body, 8);
  put_u64(g.body, tokens.size() + 1);
  for (const auto& t : tokens) put_str(g.body, byte_level_encode(t));
  put_str(g.body, "<|eot_id|>");
  g.key("tokenizer.ggml.token_type", 9);
  put_u32(g.body, 5);
  put_u64(g.body, tokens.size() + 1);
  for (size_t i = 0; i < tokens.size(); ++i) put_u32(g.body, 1);
  put_u32(g.body, 3);
  auto merges = bpe_merges(tokens);
  g.key("tokenizer.ggml.merges", 9);
  put_u32(g.body, 8);
  put_u64(g.body, merges.size());
  for (const auto& [a, b] : merges) put_str(g.body, byte_level_encode(a) + " " + byte_level_encode(b));
  g.key("tokenizer.ggml.eos_token_id", 4);
  put_u32(g.body, static_cast<uint32_t>(tokens.size()));
  return g.done();
}

}  // namespace paca::fuzz
