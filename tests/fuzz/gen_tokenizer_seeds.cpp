// gen_tokenizer_seeds.cpp - the seed corpora of the tokenizer fuzz targets
// (called by gen_seeds.cpp's main): the built-in sample files of
// tokenizer_samples.h, each checked to load, plus texts for fuzz_tokenize.
//     OUT_DIR/tokenizer_json/*.json    fuzz_tokenizer_json (tokenizer.json NUL tokenizer_config.json)
//     OUT_DIR/spm_model/*.model        fuzz_spm_model
//     OUT_DIR/tiktoken/*.model         fuzz_tiktoken
//     OUT_DIR/gguf_vocab/*.gguf        fuzz_gguf_vocab
//     OUT_DIR/llama2c_tokenizer/*.bin  fuzz_llama2c_tokenizer
//     OUT_DIR/tokenize/*.txt           fuzz_tokenize (first byte picks the vocabulary)
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>

#include "format/gguf.h"
#include "tokenizer/tokenizer_files.h"
#include "tokenizer_samples.h"
#include "util/error.h"

namespace paca::fuzz {

namespace {

int write_seed(const std::string& dir, const std::string& name, const Bytes& data,
               const std::function<void(std::span<const uint8_t>)>& check) {
  ::mkdir(dir.c_str(), 0755);
  std::ofstream f(dir + "/" + name, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!f.good()) {
    std::fprintf(stderr, "paca_fuzz_seeds: cannot write %s/%s\n", dir.c_str(), name.c_str());
    return 1;
  }
  try {
    check(data);
  } catch (const Error& e) {
    std::fprintf(stderr, "paca_fuzz_seeds: seed %s/%s does not load: %s\n", dir.c_str(), name.c_str(), e.what());
    return 1;
  }
  return 0;
}

}  // namespace

// Returns the number of seeds that failed.
int tokenizer_seeds(const std::string& out) {
  int failures = 0;
  auto json = [](std::span<const uint8_t> b) {
    std::string_view all(reinterpret_cast<const char*>(b.data()), b.size());
    size_t nul = all.find('\0');
    auto t = load_hf_tokenizer(all.substr(0, nul), "seed.json");
    apply_tokenizer_config(*t, all.substr(nul + 1), "seed_config.json");
  };
  auto gguf = [](std::span<const uint8_t> b) {
    if (!load_gguf_tokenizer(parse_gguf(b, "seed.gguf"), b, "seed.gguf")) fail(Status::format, "no vocabulary");
  };
  failures += write_seed(out + "/tokenizer_json", "llama3.json", sample_tokenizer_json_llama3(), json);
  failures += write_seed(out + "/tokenizer_json", "llama2.json", sample_tokenizer_json_llama2(), json);
  failures += write_seed(out + "/spm_model", "sample.model", sample_spm_model(),
                         [](std::span<const uint8_t> b) { load_spm_tokenizer(b, "seed.model"); });
  failures += write_seed(out + "/tiktoken", "sample.model", sample_tiktoken(),
                         [](std::span<const uint8_t> b) { load_tiktoken_tokenizer(b, "seed.model"); });
  failures += write_seed(out + "/gguf_vocab", "spm.gguf", sample_gguf_spm(), gguf);
  failures += write_seed(out + "/gguf_vocab", "bpe.gguf", sample_gguf_bpe(), gguf);
  failures += write_seed(out + "/llama2c_tokenizer", "sample.bin", sample_llama2c(),
                         [](std::span<const uint8_t> b) { load_llama2c_tokenizer(b, 0, "seed.bin"); });
  const char* texts[] = {"Hello world", " I'm 12345 ok\n\n\nyes", "<s>hello</s> <|eot_id|>",
                         "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xF0\x9F\xA6\x99 \xFF\xFE", "   leading\t\ttabs  \r\n"};
  int k = 0;
  for (const char* t : texts)
    for (uint8_t pick = 0; pick < 9; ++pick) {
      Bytes b = {pick};
      b.insert(b.end(), t, t + std::char_traits<char>::length(t));
      failures += write_seed(out + "/tokenize", "t" + std::to_string(k++) + ".txt", b, [](std::span<const uint8_t>) {});
    }
  return failures;
}

}  // namespace paca::fuzz
