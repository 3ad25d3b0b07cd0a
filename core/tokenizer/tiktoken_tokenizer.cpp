// tiktoken_tokenizer.cpp - Meta's Llama 3 tokenizer.model (tiktoken format):
// one "base64(token bytes) rank" line per token, ranks 0..n-1, rank = id. The
// merge table is derived from the ranks: every split of a token into two
// tokens merges at the whole token's rank, which is exactly tiktoken's rule
// (merge the adjacent pair whose concatenation has the lowest rank).
#include <array>

#include "format/config.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace paca {

namespace {

int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict base64 (padding required to a multiple of 4); false when malformed.
bool b64_decode(std::string_view s, std::string& out) {
  out.clear();
  if (s.empty() || s.size() % 4 != 0) return false;
  for (size_t i = 0; i < s.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if (c == '=' && i + 4 == s.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else {
        if (pad > 0) return false;  // data after '='
        v[k] = b64_value(c);
        if (v[k] < 0) return false;
      }
    }
    uint32_t w = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                 (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out += static_cast<char>(w >> 16);
    if (pad < 2) out += static_cast<char>((w >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(w & 0xFF);
  }
  return true;
}

// Meta's llama-models models/llama3/tokenizer.py (Llama 3.1 and later).
std::vector<std::string> meta_special_tokens() {
  std::vector<std::string> s = {"<|begin_of_text|>",       "<|end_of_text|>", "<|reserved_special_token_0|>",
                                "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
                                "<|start_header_id|>",     "<|end_header_id|>", "<|eom_id|>",
                                "<|eot_id|>",              "<|python_tag|>",  "<|image|>"};
  for (int i = 0; s.size() < 256; ++i) s.push_back("<|reserved_special_token_" + std::to_string(2 + i) + "|>");
  return s;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tiktoken_tokenizer(std::span<const uint8_t> file, const std::string& what) {
  std::string_view text(reinterpret_cast<const char*>(file.data()), file.size());
  Vocab v;
  std::vector<bool> seen;
  size_t line_no = 0;
  std::string bytes;
  for (size_t pos = 0; pos < text.size();) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    check(sp != std::string_view::npos && sp > 0, Status::format, "{}: line {} is not 'base64 rank'", what, line_no);
    check(b64_decode(line.substr(0, sp), bytes), Status::format, "{}: line {} has invalid base64", what, line_no);
    std::string_view rank_s = line.substr(sp + 1);
    check(!rank_s.empty() && rank_s.size() <= 9, Status::format, "{}: line {} has no valid rank", what, line_no);
    int64_t rank = 0;
    for (char c : rank_s) {
      check(c >= '0' && c <= '9', Status::format, "{}: line {} has no valid rank", what, line_no);
      rank = rank * 10 + (c - '0');
    }
    check(rank < ConfigLimits::max_vocab - 256, Status::format, "{}: line {}: rank {} is too large", what, line_no, rank);
    if (static_cast<size_t>(rank) >= v.tokens.size()) {
      v.tokens.resize(static_cast<size_t>(rank) + 1);
      seen.resize(static_cast<size_t>(rank) + 1, false);
    }
    check(!seen[static_cast<size_t>(rank)], Status::format, "{}: line {}: rank {} appears twice", what, line_no, rank);
    seen[static_cast<size_t>(rank)] = true;
    v.tokens[static_cast<size_t>(rank)].text = bytes;
  }
  check(!v.tokens.empty(), Status::format, "{}: no tokens", what);
  for (size_t r = 0; r < seen.size(); ++r)
    check(seen[r], Status::format, "{}: ranks must be 0..{} without gaps; rank {} is missing", what, seen.size() - 1, r);
  for (size_t id = 0; id < v.tokens.size(); ++id) v.tokens[id].score = -static_cast<float>(id);
  const auto n_base = static_cast<int32_t>(v.tokens.size());

  // Merge table: pair (a, b) -> a+b at rank(a+b), for every split of every token.
  TokenMap map;
  map.build(v.tokens, [](const Token& t) { return !t.text.empty(); });
  PairTable pairs;
  pairs.reserve(v.tokens.size() * 4);
  for (int32_t id = 0; id < n_base; ++id) {
    std::string_view t = v.tokens[static_cast<size_t>(id)].text;
    if (map.find(t) != id) continue;  // a duplicate text: the lower id is the token
    for (size_t k = 1; k < t.size(); ++k) {
      int32_t a = map.find(t.substr(0, k)), b = map.find(t.substr(k));
      if (a >= 0 && b >= 0) pairs.add(a, b, id, id);
    }
  }

  for (const std::string& name : meta_special_tokens()) {
    Token t;
    t.text = name;
    t.type = TokenType::control;
    v.tokens.push_back(std::move(t));
  }
  auto special = [&](int k) { return n_base + k; };
  v.bos = special(0);
  v.eos = special(1);
  v.pad = special(4);
  v.eom = special(8);
  v.eot = special(9);
  TokenizerOptions opt;
  opt.kind = TokenizerKind::bpe;
  opt.byte_level = true;
  opt.ignore_merges = true;
  return std::make_unique<Tokenizer>(std::move(v), std::move(pairs), opt, what + " (tiktoken byte-level BPE)");
}

}  // namespace paca
