// tokenizer_files.cpp - file-kind detection and load_tokenizer_file().
#include "tokenizer/tokenizer_files.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"
#include "util/file.h"
#include "util/mmap.h"

namespace paca {

TokenizerFileKind detect_tokenizer_file(std::span<const uint8_t> head) {
  auto at = [&](size_t i) { return i < head.size() ? head[i] : -1; };
  if (head.size() >= 4 && std::memcmp(head.data(), "GGUF", 4) == 0) return TokenizerFileKind::gguf;
  size_t i = 0;
  while (i < head.size() && (head[i] == ' ' || head[i] == '\t' || head[i] == '\n' || head[i] == '\r')) ++i;
  if (at(i) == '{') return TokenizerFileKind::hf_json;
  // tiktoken: "base64 digits\n" on the first line
  size_t j = 0;
  auto b64 = [](int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='; };
  while (b64(at(j))) ++j;
  if (j > 0 && at(j) == ' ') {
    size_t k = j + 1;
    while (at(k) >= '0' && at(k) <= '9') ++k;
    if (k > j + 1 && (at(k) == '\n' || at(k) == '\r')) return TokenizerFileKind::tiktoken;
  }
  // protobuf ModelProto: field 1 (pieces, length-delimited) holding field 1 (piece text)
  if (at(0) == 0x0A && at(1) > 0 && (at(2) == 0x0A || (at(1) >= 0x80 && at(3) == 0x0A))) return TokenizerFileKind::spm_model;
  return TokenizerFileKind::llama2c;
}

namespace {

std::string_view as_text(const MappedFile& f) { return {reinterpret_cast<const char*>(f.data()), f.size()}; }

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path) {
  MappedFile f(path);
  std::unique_ptr<Tokenizer> tok;
  switch (detect_tokenizer_file(f.bytes().first(std::min<size_t>(f.size(), 64)))) {
    case TokenizerFileKind::gguf: {
      GgufFile g = parse_gguf(f.bytes(), path);
      tok = load_gguf_tokenizer(g, f.bytes(), path);
      check(tok != nullptr, Status::format, "{}: this GGUF file has no tokenizer", path);
      return tok;
    }
    case TokenizerFileKind::llama2c: return load_llama2c_tokenizer(f.bytes(), 0, path);
    case TokenizerFileKind::hf_json: tok = load_hf_tokenizer(as_text(f), path); break;
    case TokenizerFileKind::tiktoken: tok = load_tiktoken_tokenizer(f.bytes(), path); break;
    case TokenizerFileKind::spm_model: tok = load_spm_tokenizer(f.bytes(), path); break;
  }
  std::string config = dir_of(path) + "/tokenizer_config.json";
  if (is_regular_file(config)) {
    MappedFile c(config);
    apply_tokenizer_config(*tok, as_text(c), config);
  }
  return tok;
}

}  // namespace paca
