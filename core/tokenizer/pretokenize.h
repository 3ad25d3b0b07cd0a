// pretokenize.h - the Llama 3 pre-tokenizer: splits text into the pieces that
// the split regex of Meta's tokenizer.py and the HF tokenizer.json matches,
//
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//    ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// written by hand (leftmost-first alternation with the backtracking results
// worked out per alternative) over the generated Unicode tables. \s is the
// Unicode White_Space property, as in the Rust regex engines of tiktoken and
// tokenizers.
#pragma once

#include <cstddef>
#include <string_view>

namespace paca {

// The exact pattern string, as tokenizer.json stores it.
extern const std::string_view kLlama3SplitPattern;

// Length in bytes of the piece that starts at text[pos] (pos < text.size());
// text must be well-formed UTF-8. Every position starts a piece, so calling it
// repeatedly from 0 partitions the text.
size_t llama3_piece_length(std::string_view text, size_t pos);

}  // namespace paca
