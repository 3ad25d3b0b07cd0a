// byte_level.h - GPT-2's byte <-> character mapping, in which byte-level BPE
// vocabularies (HF tokenizer.json, GGUF "gpt2") write their tokens: the
// printable Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for
// themselves, the other 68 bytes for U+0100 + n in byte order (space = U+0120
// 'Ġ', '\n' = U+010A 'Ċ').
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace paca {

// The code point that stands for byte b.
uint32_t byte_to_char(uint8_t b);

// Decodes a token written in the mapping back into its bytes. Returns false
// when s holds a character outside the mapping (or is not UTF-8); out is then
// unspecified.
bool byte_level_decode(std::string_view s, std::string& out);

// Writes bytes in the mapping (the inverse of byte_level_decode).
std::string byte_level_encode(std::string_view bytes);

}  // namespace paca
