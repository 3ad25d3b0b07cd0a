// tokenizer.cpp - see tokenizer.h. Decoding lives in detokenizer.cpp.
#include "tokenizer/tokenizer.h"

#include "tokenizer/detokenizer.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/spm.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace paca {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size() + s.size() / 2);
  size_t i = 0;
  for (size_t j; (j = s.find(from, i)) != std::string_view::npos; i = j + from.size()) {
    out.append(s.substr(i, j - i));
    out.append(to);
  }
  out.append(s.substr(i));
  return out;
}

}  // namespace

Tokenizer::Tokenizer(Vocab vocab, PairTable pairs, const TokenizerOptions& options, std::string source)
    : vocab_(std::move(vocab)), pairs_(std::move(pairs)), opt_(options), source_(std::move(source)) {
  vocab_.finalize(source_);
  const bool spaces_escaped = !opt_.byte_level;
  for (Token& t : vocab_.tokens) {
    if (t.type == TokenType::byte) continue;  // finalize() set the byte
    t.piece = spaces_escaped && (t.type == TokenType::normal || t.type == TokenType::user_defined)
                  ? replace_all(t.text, kSpmSpace, " ")
                  : t.text;
  }
  std::fill(std::begin(byte_symbol_), std::end(byte_symbol_), -1);
  if (opt_.byte_level) {
    for (int b = 0; b < 256; ++b) {
      byte_symbol_[b] = vocab_.find_normal(std::string_view(reinterpret_cast<const char*>(&b), 1));
      check(byte_symbol_[b] >= 0, Status::format, "{}: the byte-level vocabulary has no token for byte 0x{:02X}",
            source_, b);
    }
  }
  for (int32_t id : vocab_.specials())
    if (utf8_valid(vocab_.at(id).text))  // a match then always ends on a character boundary
      specials_by_byte_[static_cast<uint8_t>(vocab_.at(id).text[0])].push_back(id);  // stays longest first
  for (int32_t id : {vocab_.eos, vocab_.eot, vocab_.eom}) add_eog(id);
  for (std::string_view text : {"<|end_of_text|>", "<|eot_id|>", "<|eom_id|>"}) {
    int32_t id = vocab_.find_text(text);
    if (id >= 0 && vocab_.at(id).type == TokenType::control) add_eog(id);
  }
}

void Tokenizer::add_eog(int32_t id) {
  if (id >= 0 && std::find(eog_.begin(), eog_.end(), id) == eog_.end()) eog_.push_back(id);
}

void Tokenizer::set_bos(int32_t id) {
  check(vocab_.valid(id), Status::format, "{}: BOS id {} is outside the vocabulary", source_, id);
  vocab_.bos = id;
}

void Tokenizer::set_eos(int32_t id) {
  check(vocab_.valid(id), Status::format, "{}: EOS id {} is outside the vocabulary", source_, id);
  vocab_.eos = id;
  add_eog(id);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& opt) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode(text, opt, out);
  return out;
}

void Tokenizer::encode(std::string_view input, const EncodeOptions& opt, std::vector<int32_t>& out) const {
  if (opt.add_special && opt_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
  bool after_special = true;  // the text's start counts as "after a special token" for the dummy prefix
  encode_run(input, opt.parse_special, after_special, out);
  if (opt.add_special && opt_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
}

void Tokenizer::encode_pieces(std::span<const TextPiece> pieces, std::vector<int32_t>& out) const {
  bool after_special = true;
  for (const TextPiece& p : pieces) {
    if (!p.control) {
      encode_run(p.text, false, after_special, out);
      continue;
    }
    const int32_t id = vocab_.find_text(p.text);
    if (id < 0) fail(Status::invalid_argument, "'{}' is not the text of a token", p.text);
    out.push_back(id);
    after_special = opt_.space_prefix_after_special;
  }
}

void Tokenizer::encode_run(std::string_view input, bool parse_special, bool& after_special,
                           std::vector<int32_t>& out) const {
  std::string clean;
  std::string_view text = input;
  if (!utf8_valid(input)) {
    clean = utf8_sanitize(input);
    text = clean;
  }
  size_t start = 0, i = 0;
  while (i < text.size()) {
    const auto b = static_cast<uint8_t>(text[i]);
    int32_t match = -1;
    for (int32_t id : specials_by_byte_[b]) {
      const Token& t = vocab_.at(id);
      if (t.type != TokenType::user_defined && !parse_special) continue;
      if (text.compare(i, t.text.size(), t.text) == 0) {
        match = id;
        break;
      }
    }
    if (match < 0) {
      uint32_t cp;
      i += utf8_next(text, i, &cp);  // specials start only at character boundaries
      continue;
    }
    encode_fragment(text.substr(start, i - start), after_special, out);
    out.push_back(match);
    i += vocab_.at(match).text.size();
    start = i;
    after_special = opt_.space_prefix_after_special;
  }
  if (start < text.size()) {
    encode_fragment(text.substr(start), after_special, out);
    after_special = false;
  }
}

void Tokenizer::encode_fragment(std::string_view text, bool after_special, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  if (opt_.byte_level) {
    encode_byte_level(text, out);
    return;
  }
  std::string escaped;
  escaped.reserve(text.size() + 16);
  if (opt_.add_space_prefix && after_special) escaped.append(kSpmSpace);
  escaped.append(replace_all(text, " ", kSpmSpace));
  if (opt_.kind == TokenizerKind::spm) spm_encode(vocab_, escaped, out);
  else encode_chars(escaped, out);
}

// HF BPE over characters (Llama 2 tokenizer.json): each character is a token
// or falls back to its bytes; then merges by rank.
void Tokenizer::encode_chars(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<int32_t> symbols;
  symbols.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    size_t n = utf8_next(text, i, &cp);
    std::string_view ch = text.substr(i, n);
    i += n;
    int32_t id = vocab_.find_normal(ch);
    if (id >= 0) {
      symbols.push_back(id);
      continue;
    }
    bool have_bytes = true;
    for (char c : ch) have_bytes = have_bytes && vocab_.byte_token(static_cast<uint8_t>(c)) >= 0;
    if (have_bytes) {
      for (char c : ch) symbols.push_back(vocab_.byte_token(static_cast<uint8_t>(c)));
    } else if (vocab_.unk >= 0) {
      symbols.push_back(vocab_.unk);
    }
  }
  bpe_merge(pairs_, symbols, out);
}

void Tokenizer::encode_byte_level(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<int32_t> symbols;
  for (size_t i = 0; i < text.size();) {
    size_t n = llama3_piece_length(text, i);
    std::string_view piece = text.substr(i, n);
    i += n;
    if (opt_.ignore_merges) {
      int32_t id = vocab_.find_normal(piece);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
    }
    symbols.clear();
    for (char c : piece) symbols.push_back(byte_symbol_[static_cast<uint8_t>(c)]);
    bpe_merge(pairs_, symbols, out);
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids, const DecodeOptions& opt) const {
  std::string out;
  TextStream stream(*this, opt);
  for (int32_t id : ids) stream.push(id, out);
  stream.flush(out);
  return out;
}

std::string_view Tokenizer::piece(int32_t id, bool render_special) const {
  check(accepts(id), Status::invalid_argument, "token id {} is outside the vocabulary ({} tokens)", id,
        std::max(n_tokens(), padded_size_));
  if (id >= n_tokens()) return {};
  const Token& t = vocab_.at(id);
  if ((t.type == TokenType::control || t.type == TokenType::unknown) && !render_special) return {};
  return t.piece;
}

uint32_t Tokenizer::attributes(int32_t id) const {
  check(accepts(id), Status::invalid_argument, "token id {} is outside the vocabulary ({} tokens)", id,
        std::max(n_tokens(), padded_size_));
  uint32_t a = 0;
  if (id >= n_tokens()) {
    a = kAttrUnused;
  } else {
    switch (vocab_.at(id).type) {
      case TokenType::normal: a = kAttrNormal; break;
      case TokenType::unknown: a = kAttrUnknown; break;
      case TokenType::control: a = kAttrControl; break;
      case TokenType::user_defined: a = kAttrUserDefined; break;
      case TokenType::unused: a = kAttrUnused; break;
      case TokenType::byte: a = kAttrByte; break;
    }
  }
  if (id == vocab_.bos) a |= kAttrBos;
  if (std::find(eog_.begin(), eog_.end(), id) != eog_.end()) a |= kAttrEog;
  return a;
}

}  // namespace paca
