// fuzz_tokenize.cpp - libFuzzer target for encoding and decoding. The
// vocabularies are the built-in samples (tokenizer_samples.h: byte-level BPE
// from tiktoken, tokenizer.json and GGUF; SentencePiece from llama2.c,
// protobuf and GGUF; BPE with byte fallback from tokenizer.json) plus, when
// $PACA_SHARED_DIR is set, the real Llama 2 and Llama 3 tokenizers. The first
// input byte picks the vocabulary; the rest is the text to encode, and is
// also read as a list of ids to decode.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "tokenizer/tokenizer_files.h"
#include "tokenizer_fuzz_common.h"
#include "tokenizer_samples.h"
#include "util/error.h"

namespace {

std::vector<std::unique_ptr<paca::Tokenizer>> load_all() {
  using namespace paca::fuzz;
  std::vector<std::unique_ptr<paca::Tokenizer>> v;
  auto json = [](const Bytes& b) {
    std::string_view all(reinterpret_cast<const char*>(b.data()), b.size());
    size_t nul = all.find('\0');
    auto t = paca::load_hf_tokenizer(all.substr(0, nul), "sample.json");
    paca::apply_tokenizer_config(*t, all.substr(nul + 1), "sample_config.json");
    return t;
  };
  auto gguf = [](const Bytes& b) { return paca::load_gguf_tokenizer(paca::parse_gguf(b, "s.gguf"), b, "s.gguf"); };
  v.push_back(paca::load_tiktoken_tokenizer(sample_tiktoken(), "sample.tiktoken"));
  v.push_back(paca::load_llama2c_tokenizer(sample_llama2c(), 0, "sample.bin"));
  v.push_back(paca::load_spm_tokenizer(sample_spm_model(), "sample.model"));
  v.push_back(json(sample_tokenizer_json_llama3()));
  v.push_back(json(sample_tokenizer_json_llama2()));
  v.push_back(gguf(sample_gguf_spm()));
  v.push_back(gguf(sample_gguf_bpe()));
  if (const char* dir = std::getenv("PACA_SHARED_DIR"); dir && *dir) {
    for (const char* f : {"/tokenizers/llama2/tokenizer.model", "/tokenizers/llama3/tokenizer.json"}) {
      try {
        v.push_back(paca::load_tokenizer_file(std::string(dir) + f));
      } catch (const paca::Error&) {
      }
    }
  }
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokenizers = load_all();
  if (size == 0) return 0;
  const paca::Tokenizer& t = *tokenizers[data[0] % tokenizers.size()];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  paca::fuzz::exercise(t, text);
  // the same bytes as ids (little-endian u16), all in range
  std::vector<int32_t> ids;
  for (size_t i = 1; i + 1 < size; i += 2) ids.push_back((data[i] | (data[i + 1] << 8)) % t.n_tokens());
  for (bool special : {false, true}) {
    std::string s = t.decode(ids, {.render_special = special});
    paca::fuzz::require(paca::utf8_valid(s));
  }
  return 0;
}
