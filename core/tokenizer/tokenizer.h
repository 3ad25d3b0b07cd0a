// tokenizer.h - a model's tokenizer: text -> ids and ids -> text for the
// Llama 2 SentencePiece BPE and the Llama 3 byte-level BPE, whatever file the
// vocabulary came from (see tokenizer_files.h for the loaders).
//
// Encoding: invalid UTF-8 is first replaced by U+FFFD (see utf8.h); the text
// is cut at special tokens (user-defined tokens always, control tokens only
// when parse_special is set, longest match first); each plain fragment is
// encoded by the vocabulary's algorithm; BOS (and EOS where the tokenizer's
// config asks for it) are added when add_special is set.
//
// Decoding: each id gives bytes (see piece()); the bytes are decoded as UTF-8
// with U+FFFD for ill-formed sequences; for SentencePiece vocabularies the one
// space of the dummy prefix is dropped from the first text token unless
// keep_leading_space is set.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/vocab.h"

namespace paca {

enum class TokenizerKind : int {
  spm = 0,  // SentencePiece BPE by piece score (tokenizer.model, GGUF "llama", llama2.c)
  bpe = 1,  // merge-rank BPE (tokenizer.json, tiktoken tokenizer.model, GGUF "gpt2")
};

struct TokenizerOptions {
  TokenizerKind kind = TokenizerKind::spm;
  bool byte_level = false;      // bpe: symbols are bytes and the Llama 3 pre-tokenizer splits the text;
                                //      otherwise symbols are characters with byte fallback (HF Llama 2)
  bool ignore_merges = false;   // bpe: a pre-token that is itself a vocabulary entry becomes that id
  bool add_space_prefix = true;            // non-byte-level: a space before the text (SentencePiece's dummy prefix)
  bool space_prefix_after_special = true;  // ... and before the text after each special token
  bool add_bos = true;          // add_special adds BOS
  bool add_eos = false;         // add_special adds EOS
};

struct EncodeOptions {
  bool add_special = false;    // BOS (and EOS when the tokenizer's config says so)
  bool parse_special = false;  // control-token text ("<|eot_id|>") in the input becomes the control token
};

struct DecodeOptions {
  bool render_special = false;      // control and unknown tokens render as their text (else as nothing)
  bool keep_leading_space = false;  // do not drop the dummy-prefix space (the ids continue a text)
};

// Token attribute bits (the values of paca_token_attr in paca.h).
enum TokenAttr : uint32_t {
  kAttrNormal = 1u << 0,
  kAttrUnknown = 1u << 1,
  kAttrControl = 1u << 2,
  kAttrUserDefined = 1u << 3,
  kAttrUnused = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrBos = 1u << 6,
  kAttrEog = 1u << 7,  // ends generation (EOS, EOT, EOM, ...)
};

// A piece of text for Tokenizer::encode_pieces: control pieces are exactly
// one special token's text; plain pieces are encoded with special tokens off.
struct TextPiece {
  std::string_view text;
  bool control = false;
};

class Tokenizer {
 public:
  // Finalizes vocab (see Vocab::finalize). `source` says where it came from
  // ("tokenizer.json", "GGUF", ...), for messages and describe().
  Tokenizer(Vocab vocab, PairTable pairs, const TokenizerOptions& options, std::string source);

  const Vocab& vocab() const { return vocab_; }
  const TokenizerOptions& options() const { return opt_; }
  const std::string& source() const { return source_; }
  int32_t n_tokens() const { return static_cast<int32_t>(vocab_.size()); }
  int32_t bos_id() const { return vocab_.bos; }
  int32_t eos_id() const { return vocab_.eos; }
  // Ids that end generation: EOS, EOT, EOM and the model's own stop ids.
  const std::vector<int32_t>& eog_ids() const { return eog_; }
  // Id of the token whose text is exactly `text` (any type), or -1.
  int32_t find_token(std::string_view text) const { return vocab_.find_text(text); }

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opt) const;
  void encode(std::string_view text, const EncodeOptions& opt, std::vector<int32_t>& out) const;
  std::string decode(std::span<const int32_t> ids, const DecodeOptions& opt) const;
  // Encodes text already split into pieces (a rendered chat, see chat.h):
  // a control piece is exactly one token's text and becomes that id (throws
  // Error(invalid_argument) when no token has that text); a plain piece is
  // encoded with special-token recognition off. The dummy-prefix rules are
  // those of encode() over the concatenated text, so a text without user
  // data gives the ids of encode(text, {.parse_special = true}). No BOS/EOS.
  void encode_pieces(std::span<const TextPiece> pieces, std::vector<int32_t>& out) const;

  // The raw bytes of one token (possibly part of a UTF-8 character): byte
  // tokens their byte, SentencePiece pieces with U+2581 as ' ', control and
  // unknown tokens their text when render_special is set and nothing
  // otherwise. Ids from n_tokens() up to the padded size (the model's
  // vocabulary) are empty. Throws Error(invalid_argument) for other ids.
  std::string_view piece(int32_t id, bool render_special) const;
  // TokenAttr bits of id (kAttrUnused for padding ids); throws like piece().
  uint32_t attributes(int32_t id) const;
  // True when id is a valid argument of piece() and attributes().
  bool accepts(int32_t id) const { return id >= 0 && id < std::max(n_tokens(), padded_size_); }

  // Set while the model is loaded: the model's vocabulary size (>= n_tokens()),
  // and the model's stop ids, which join eog_ids().
  void set_padded_size(int32_t n) { padded_size_ = n; }
  void add_eog(int32_t id);
  // Load-time settings from tokenizer_config.json / GGUF keys.
  void set_add_bos(bool v) { opt_.add_bos = v; }
  void set_add_eos(bool v) { opt_.add_eos = v; }
  void set_bos(int32_t id);
  void set_eos(int32_t id);

 private:
  // Encodes text (specials matched when parse_special; user-defined tokens
  // always); after_special carries the dummy-prefix state across calls.
  void encode_run(std::string_view text, bool parse_special, bool& after_special, std::vector<int32_t>& out) const;
  void encode_fragment(std::string_view text, bool after_special, std::vector<int32_t>& out) const;
  void encode_chars(std::string_view text, std::vector<int32_t>& out) const;
  void encode_byte_level(std::string_view text, std::vector<int32_t>& out) const;

  Vocab vocab_;
  PairTable pairs_;
  TokenizerOptions opt_;
  std::string source_;
  std::vector<int32_t> eog_;
  int32_t padded_size_ = 0;
  int32_t byte_symbol_[256] = {};                     // byte-level: the token of each single byte
  std::vector<int32_t> specials_by_byte_[256];     // matchable specials by first byte, longest first
};

}  // namespace paca
