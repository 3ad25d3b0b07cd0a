// detokenizer.h - streaming detokenization: token ids go in one at a time,
// text comes out as soon as it is complete. Output never ends inside a UTF-8
// character (bytes of byte-fallback or byte-level tokens are held back until
// their character is whole), ill-formed byte sequences come out as U+FFFD,
// and for SentencePiece vocabularies the dummy-prefix space of the first text
// token is dropped unless DecodeOptions::keep_leading_space is set.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace paca {

class TextStream {
 public:
  // tok must outlive the stream.
  TextStream(const Tokenizer& tok, const DecodeOptions& opt);

  // Appends to out the text that id completes (possibly nothing). Throws
  // Error(invalid_argument) for an id the tokenizer does not accept; the
  // stream is then unchanged.
  void push(int32_t id, std::string& out);
  // Ends the text: bytes of an unfinished character come out as U+FFFD, and
  // the stream starts over (the next push begins a new text).
  void flush(std::string& out);

 private:
  const Tokenizer& tok_;
  DecodeOptions opt_;
  Utf8Stream utf8_;
  bool strip_space_ = false;  // the next text token's leading space is the dummy prefix
};

}  // namespace paca
