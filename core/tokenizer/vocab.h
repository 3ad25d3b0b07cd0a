// vocab.h - a tokenizer's vocabulary: per id its text, the bytes it decodes
// to, its score and type, the special ids (BOS, EOS, ...), and hash lookups
// from text to id. Every loader (tokenizer.json, tokenizer.model, GGUF,
// llama2.c) fills one of these; the encoders only read it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace paca {

// Token types, numbered as GGUF tokenizer.ggml.token_type and SentencePiece.
enum class TokenType : uint8_t {
  normal = 1,
  unknown = 2,
  control = 3,       // BOS, EOS, <|eot_id|>, ...: only from ids, or from text when special parsing is allowed
  user_defined = 4,  // always matched as a whole in text
  unused = 5,
  byte = 6,          // SentencePiece byte fallback <0xNN>
};

struct Token {
  std::string text;   // what encoders match: raw bytes (byte-level BPE), the piece with U+2581 (SentencePiece),
                      // the literal text of control and user-defined tokens
  std::string piece;  // the bytes the token decodes to (U+2581 -> ' ', <0xNN> -> the byte)
  float score = 0;
  TokenType type = TokenType::normal;
};

// Open-addressing map from a string (viewed, not owned) to an id.
class TokenMap {
 public:
  // Maps the text of every token for which keep(token) is true to its id; on
  // duplicate texts the lowest id wins. The token strings must outlive the map.
  void build(const std::vector<Token>& tokens, bool (*keep)(const Token&));
  int32_t find(std::string_view key) const;  // -1 when absent
  size_t size() const { return count_; }

 private:
  struct Slot {
    uint32_t hash = 0;
    int32_t id = -1;
  };
  void insert(std::string_view key, int32_t id);
  std::vector<Slot> slots_;
  std::vector<std::string_view> keys_;  // by id
  size_t count_ = 0;
  uint32_t mask_ = 0;
};

uint64_t hash_bytes(std::string_view s);

class Vocab {
 public:
  std::vector<Token> tokens;
  int32_t bos = -1, eos = -1, unk = -1, pad = -1, eot = -1, eom = -1;

  // Validates (ids in range, byte tokens well formed, size limits) and builds
  // the lookups. Call once after filling tokens and the special ids. Throws
  // Error(format) naming `what`.
  void finalize(const std::string& what);

  size_t size() const { return tokens.size(); }
  bool valid(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < tokens.size(); }
  const Token& at(int32_t id) const { return tokens[static_cast<size_t>(id)]; }
  // Normal tokens by text: what BPE merges and SentencePiece pieces may become.
  int32_t find_normal(std::string_view text) const { return normal_.find(text); }
  // Any token by its exact text (control tokens included); -1 when absent.
  int32_t find_text(std::string_view text) const { return all_.find(text); }
  // The byte-fallback token <0xNN> of byte b, or -1.
  int32_t byte_token(uint8_t b) const { return byte_tokens_[b]; }
  // Ids of the tokens matched as a whole in text (control, unknown and
  // user-defined), longest text first.
  const std::vector<int32_t>& specials() const { return specials_; }
  // True when some special's text starts with byte b (a fast pre-filter).
  bool special_starts_with(uint8_t b) const { return special_first_[b]; }

 private:
  TokenMap normal_, all_;
  int32_t byte_tokens_[256] = {};
  std::vector<int32_t> specials_;
  bool special_first_[256] = {};
};

// "<0x41>" -> 0x41; -1 when text is not of that form.
int parse_byte_token(std::string_view text);

}  // namespace paca
