// tokenizer_samples.h - small valid tokenizer files built in memory, in every
// format the tokenizer loaders read. They seed the tokenizer fuzzers
// (gen_tokenizer_seeds.cpp) and give fuzz_tokenize its vocabularies without
// any file from ../shared.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace paca::fuzz {

using Bytes = std::vector<uint8_t>;

// Meta tiktoken format: the 256 single bytes plus some merged tokens.
Bytes sample_tiktoken();
// llama2.c tokenizer .bin: <unk>, <s>, </s>, <0x00>..<0xFF>, some pieces.
Bytes sample_llama2c();
// SentencePiece ModelProto (BPE): the same vocabulary as sample_llama2c().
Bytes sample_spm_model();
// tokenizer.json: Llama 3 style (byte-level, split pattern) and Llama 2 style
// (byte fallback, Prepend/Replace normalizer); each followed by a NUL and a
// tokenizer_config.json (the input format of fuzz_tokenizer_json).
Bytes sample_tokenizer_json_llama3();
Bytes sample_tokenizer_json_llama2();
// GGUF v3 vocabulary-only files: model "llama" and model "gpt2".
Bytes sample_gguf_spm();
Bytes sample_gguf_bpe();

}  // namespace paca::fuzz
