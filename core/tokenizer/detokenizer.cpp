// detokenizer.cpp - see detokenizer.h.
#include "tokenizer/detokenizer.h"

namespace paca {

namespace {

bool strips_prefix(const Tokenizer& tok, const DecodeOptions& opt) {
  return !tok.options().byte_level && tok.options().add_space_prefix && !opt.keep_leading_space;
}

}  // namespace

TextStream::TextStream(const Tokenizer& tok, const DecodeOptions& opt)
    : tok_(tok), opt_(opt), strip_space_(strips_prefix(tok, opt)) {}

void TextStream::push(int32_t id, std::string& out) {
  std::string_view p = tok_.piece(id, opt_.render_special);
  if (p.empty()) return;
  if (strip_space_) {
    // Only a text token carries the dummy prefix; a byte token's space is real.
    const TokenType type = id < tok_.n_tokens() ? tok_.vocab().at(id).type : TokenType::unused;
    if ((type == TokenType::normal || type == TokenType::user_defined) && p[0] == ' ') p.remove_prefix(1);
    strip_space_ = false;
  }
  utf8_.push(p, out);
}

void TextStream::flush(std::string& out) {
  utf8_.flush(out);
  strip_space_ = strips_prefix(tok_, opt_);
}

}  // namespace paca
