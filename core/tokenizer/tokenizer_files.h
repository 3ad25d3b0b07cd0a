// tokenizer_files.h - loaders of every tokenizer file paca reads. Each treats
// its input as hostile: malformed input throws Error(format) naming the file
// and the problem; a well-formed tokenizer paca cannot run (a Unigram model,
// a GPT-2 pre-tokenizer) throws Error(unsupported).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

namespace paca {

// Hugging Face tokenizer.json: byte-level BPE with the Llama 3 split pattern,
// or Llama 2 style BPE over characters with byte fallback ("▁" spaces).
std::unique_ptr<Tokenizer> load_hf_tokenizer(std::string_view tokenizer_json, const std::string& what);

// Applies tokenizer_config.json (add_bos_token, add_eos_token, bos_token,
// eos_token) to a loaded tokenizer.
void apply_tokenizer_config(Tokenizer& tok, std::string_view tokenizer_config_json, const std::string& what);

// Meta's Llama 3 tokenizer.model: "base64(bytes) rank" lines, rank = id, plus
// the 256 special tokens of Meta's tokenizer.py (Llama 3.1 names) after them.
std::unique_ptr<Tokenizer> load_tiktoken_tokenizer(std::span<const uint8_t> file, const std::string& what);

// SentencePiece tokenizer.model (protobuf ModelProto, BPE type).
std::unique_ptr<Tokenizer> load_spm_tokenizer(std::span<const uint8_t> file, const std::string& what);

// The tokenizer.ggml.* keys of a parsed GGUF file (model "llama" or "gpt2");
// file is the GGUF's bytes (arrays are read in place). Returns null when the
// file has no tokenizer (no tokenizer.ggml.model, or "none"/"no_vocab").
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& gguf, std::span<const uint8_t> file,
                                               const std::string& what);

// llama2.c tokenizer.bin: u32 max_token_length, then per token f32 score,
// i32 length, bytes. n_vocab tokens are read (the file holds no count); with
// n_vocab 0 the tokens run to the end of the file.
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(std::span<const uint8_t> file, int32_t n_vocab,
                                                  const std::string& what);

// Which loader a file needs, judged from its first bytes.
enum class TokenizerFileKind { hf_json, spm_model, tiktoken, gguf, llama2c };
TokenizerFileKind detect_tokenizer_file(std::span<const uint8_t> head);

// Loads any tokenizer file by content (a tokenizer.json, tokenizer.model of
// either kind, a GGUF with a vocabulary, a llama2.c tokenizer .bin);
// tokenizer_config.json next to a tokenizer.json/tokenizer.model is applied.
std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path);

}  // namespace paca
