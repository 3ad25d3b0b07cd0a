// vocab.cpp - see vocab.h.
#include "tokenizer/vocab.h"

#include <algorithm>
#include <cstring>

#include "format/config.h"
#include "util/error.h"

namespace paca {

uint64_t hash_bytes(std::string_view s) {
  // 8 bytes at a time, multiply-xorshift mixing; good enough for vocabulary texts.
  const uint64_t k = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0xCBF29CE484222325ull ^ (s.size() * k);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t v;
    std::memcpy(&v, s.data() + i, 8);
    h = (h ^ v) * k;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  if (i < s.size()) std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * k;
  h ^= h >> 32;
  return h;
}

void TokenMap::build(const std::vector<Token>& tokens, bool (*keep)(const Token&)) {
  size_t n = 0;
  for (const Token& t : tokens) n += keep(t) ? 1 : 0;
  size_t cap = 16;
  while (cap < n * 2) cap *= 2;
  slots_.assign(cap, Slot{});
  mask_ = static_cast<uint32_t>(cap - 1);
  keys_.assign(tokens.size(), std::string_view());
  count_ = 0;
  for (size_t id = 0; id < tokens.size(); ++id) {
    if (!keep(tokens[id])) continue;
    keys_[id] = tokens[id].text;
    insert(tokens[id].text, static_cast<int32_t>(id));
  }
}

void TokenMap::insert(std::string_view key, int32_t id) {
  uint32_t h = static_cast<uint32_t>(hash_bytes(key));
  for (uint32_t i = h & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.id < 0) {
      s.hash = h;
      s.id = id;
      ++count_;
      return;
    }
    if (s.hash == h && keys_[static_cast<size_t>(s.id)] == key) return;  // duplicate: keep the lower id
  }
}

int32_t TokenMap::find(std::string_view key) const {
  if (slots_.empty()) return -1;
  uint32_t h = static_cast<uint32_t>(hash_bytes(key));
  for (uint32_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.hash == h && keys_[static_cast<size_t>(s.id)] == key) return s.id;
  }
}

int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

void Vocab::finalize(const std::string& what) {
  check(!tokens.empty(), Status::format, "{}: the vocabulary is empty", what);
  check(tokens.size() <= static_cast<size_t>(ConfigLimits::max_vocab), Status::format,
        "{}: the vocabulary has {} tokens (at most {})", what, tokens.size(), ConfigLimits::max_vocab);
  for (int32_t* id : {&bos, &eos, &unk, &pad, &eot, &eom})
    if (*id >= 0 && !valid(*id)) *id = -1;  // an id past the vocabulary names no token
  std::fill(std::begin(byte_tokens_), std::end(byte_tokens_), -1);
  for (size_t id = 0; id < tokens.size(); ++id) {
    Token& t = tokens[id];
    check(t.text.size() <= 65536, Status::format, "{}: token {} is {} bytes long", what, id, t.text.size());
    if (t.type == TokenType::byte) {
      int b = parse_byte_token(t.text);
      check(b >= 0, Status::format, "{}: byte token {} has text '{}', expected <0xNN>", what, id, t.text);
      t.piece.assign(1, static_cast<char>(b));
      if (byte_tokens_[b] < 0) byte_tokens_[b] = static_cast<int32_t>(id);
    }
  }
  normal_.build(tokens, [](const Token& t) { return t.type == TokenType::normal && !t.text.empty(); });
  all_.build(tokens, [](const Token& t) { return !t.text.empty(); });
  specials_.clear();
  std::fill(std::begin(special_first_), std::end(special_first_), false);
  for (size_t id = 0; id < tokens.size(); ++id) {
    const Token& t = tokens[id];
    bool special = t.type == TokenType::control || t.type == TokenType::unknown || t.type == TokenType::user_defined;
    if (!special || t.text.empty()) continue;
    specials_.push_back(static_cast<int32_t>(id));
    special_first_[static_cast<uint8_t>(t.text[0])] = true;
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [&](int32_t a, int32_t b) { return at(a).text.size() > at(b).text.size(); });
}

}  // namespace paca
