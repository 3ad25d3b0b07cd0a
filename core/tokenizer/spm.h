// spm.h - SentencePiece BPE encoding (Llama 2, llama2.c vocabularies): split
// the text into characters, repeatedly merge the adjacent pair whose
// concatenation is a vocabulary piece with the highest score (leftmost on
// ties), then emit each symbol's id, or its UTF-8 bytes as byte-fallback
// tokens <0xNN> when the symbol is not a piece (the unknown token when the
// vocabulary has no byte tokens).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace paca {

// text: well-formed UTF-8, spaces already escaped to U+2581 and the dummy
// prefix already added. Appends the ids to out.
void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);

}  // namespace paca
