// llama2c_tokenizer.cpp - llama2.c's tokenizer .bin (tok512.bin,
// tokenizer.bin): u32 max_token_length, then per token f32 score, i32 byte
// length, the bytes. Spaces are stored as ' ' (not U+2581) and BOS/EOS as
// "\n<s>\n" / "\n</s>\n"; types are not stored. Loaded as a SentencePiece
// vocabulary: id 0 unknown, 1 BOS and 2 EOS control ("<s>", "</s>"), <0xNN>
// byte tokens, the rest normal with ' ' written back as U+2581.
#include <cstring>

#include "format/config.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace paca {

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(std::span<const uint8_t> file, int32_t n_vocab,
                                                  const std::string& what) {
  check(n_vocab >= 0 && n_vocab <= ConfigLimits::max_vocab, Status::invalid_argument, "{}: bad vocabulary size {}",
        what, n_vocab);
  check(file.size() >= 4, Status::format, "{}: too short for a llama2.c tokenizer", what);
  uint32_t max_len;
  std::memcpy(&max_len, file.data(), 4);
  check(max_len >= 1 && max_len <= 65536, Status::format, "{}: max_token_length {} is not plausible", what, max_len);
  Vocab v;
  size_t pos = 4;
  while (pos < file.size() && (n_vocab == 0 || v.tokens.size() < static_cast<size_t>(n_vocab))) {
    check(v.tokens.size() < static_cast<size_t>(ConfigLimits::max_vocab), Status::format, "{}: too many tokens", what);
    check(file.size() - pos >= 8, Status::format, "{}: truncated at token {}", what, v.tokens.size());
    Token t;
    int32_t len;
    std::memcpy(&t.score, file.data() + pos, 4);
    std::memcpy(&len, file.data() + pos + 4, 4);
    pos += 8;
    check(len >= 0 && static_cast<uint32_t>(len) <= max_len && static_cast<size_t>(len) <= file.size() - pos,
          Status::format, "{}: token {} has length {} (max_token_length {}, {} bytes left)", what, v.tokens.size(), len,
          max_len, file.size() - pos);
    t.text.assign(reinterpret_cast<const char*>(file.data() + pos), static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    v.tokens.push_back(std::move(t));
  }
  if (n_vocab > 0) {
    check(v.tokens.size() == static_cast<size_t>(n_vocab), Status::format,
          "{}: holds {} tokens, the model's vocabulary has {}", what, v.tokens.size(), n_vocab);
    check(pos == file.size(), Status::format, "{}: holds more than the model's {} tokens", what, n_vocab);
  }
  check(v.tokens.size() >= 3, Status::format, "{}: holds {} tokens (a llama2.c vocabulary starts with <unk>, <s>, </s>)",
        what, v.tokens.size());
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    Token& t = v.tokens[id];
    if (id == 0) {
      t.type = TokenType::unknown;
    } else if (id <= 2) {
      t.type = TokenType::control;
      if (t.text == "\n<s>\n") t.text = "<s>";
      if (t.text == "\n</s>\n") t.text = "</s>";
    } else if (parse_byte_token(t.text) >= 0) {
      t.type = TokenType::byte;
    } else {
      std::string s;
      for (char c : t.text) s += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
      t.text = std::move(s);
    }
  }
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  TokenizerOptions opt;
  opt.kind = TokenizerKind::spm;
  return std::make_unique<Tokenizer>(std::move(v), PairTable(), opt, what + " (llama2.c SentencePiece BPE)");
}

}  // namespace paca
