// tokenizer-bench: Llama 3 encode throughput (MB/s on one core) on a
// generated multilingual corpus of a few MB, side by side in one run with the
// reference tiktoken (npm package, Rust core compiled to wasm) loaded with
// Llama 3's ranks and split pattern; also Llama 2 (SentencePiece) encode and
// Llama 3 decode throughput.
//
//   tokenizer-bench [--mb N] [--shared DIR]
//
// tiktoken runs when $PACA_TOKENIZER_REFERENCE_DIR holds node_modules with
// tiktoken (scripts/tokenizer_reference.sh installs it); both encode the
// same documents, and the token counts are compared.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace {

using Clock = std::chrono::steady_clock;

const char* const kText[] = {
    // English, German, French, Italian, Portuguese, Hindi, Spanish, Thai, CJK, code
    "The quick brown fox jumps over the lazy dog. It's 2024 and we'll see 12,345 more tokens; don't worry.",
    "Die Größe des Mädchens überraschte alle, als sie über die Straße lief und schöne Brötchen kaufte.",
    "L'été dernier, le garçon français a déjà visité où l'œuvre naïve était exposée à Noël, c'est très beau.",
    "Perché la città è così bella? L'amico ha bevuto più caffè, però andrò giù al mare domani.",
    "A ação do coração não está no órgão; você comeu pão e maçã, obrigado pelas informações.",
    "नमस्ते दुनिया, भारत एक सुंदर देश है और मैं हिन्दी में किताब पढ़ता हूँ, धन्यवाद।",
    "¿Qué tal? ¡Hola! Mañana el niño y el señor hablarán español con el pingüino del corazón.",
    "สวัสดีครับ ภาษาไทยเป็นภาษาที่สวยงาม ขอบคุณมากที่อยู่ในประเทศไทย กรุงเทพมหานคร",
    "你好，世界。中文和日本語のテキスト、こんにちは。한국어 안녕하세요 漢字 🦙👍🏽",
    "int main(int argc, char** argv) {\n    for (int i = 0; i < argc; ++i) printf(\"%s\\n\", argv[i]);\n    return 0;\n}",
};

std::vector<std::string> make_corpus(size_t bytes) {
  std::mt19937 rng(7);
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < bytes) {
    std::string d;
    while (d.size() < 2048) {
      d += kText[rng() % std::size(kText)];
      d += rng() % 4 == 0 ? "\n\n" : " ";
    }
    total += d.size();
    docs.push_back(std::move(d));
  }
  return docs;
}

template <typename Fn>
double best_seconds(int reps, Fn fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

struct TiktokenResult {
  double mb_s = 0;
  size_t tokens = 0;
};

TiktokenResult run_tiktoken(const std::vector<std::string>& docs, const std::string& ranks) {
  const char* dir = std::getenv("PACA_TOKENIZER_REFERENCE_DIR");
  if (!dir || !*dir) return {};
  std::string in = std::string(dir) + "/bench_docs.txt", script = std::string(dir) + "/bench_tiktoken.mjs";
  {
    std::ofstream f(in, std::ios::binary);
    for (const auto& d : docs) f << d << '\x1e';  // record separator
  }
  std::ofstream(script) << R"JS(
import fs from "fs";
import { createRequire } from "module";
const require = createRequire(process.cwd() + "/package.json");
const { Tiktoken } = require("tiktoken/lite");
const pat = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const enc = new Tiktoken(fs.readFileSync(process.argv[2], "utf8"), {}, pat);
const raw = fs.readFileSync(process.argv[3]);
const docs = raw.toString("utf8").split("\x1e").filter((d) => d.length > 0);
let best = 1e30, tokens = 0;
for (let r = 0; r < 3; ++r) {
  const t0 = process.hrtime.bigint();
  let n = 0;
  for (const d of docs) n += enc.encode(d, [], []).length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (s < best) best = s;
  tokens = n;
}
console.log(JSON.stringify({ mb_s: raw.length / 1e6 / best, tokens }));
)JS";
  std::string cmd = "cd '" + std::string(dir) + "' && node bench_tiktoken.mjs '" + ranks + "' bench_docs.txt";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {};
  char buf[256] = {};
  std::string out;
  while (fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  TiktokenResult r;
  if (std::sscanf(out.c_str(), "{\"mb_s\":%lf,\"tokens\":%zu}", &r.mb_s, &r.tokens) != 2) return {};
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  double mb = 4;
  std::string shared = "../shared";
  if (const char* e = std::getenv("PACA_SHARED_DIR")) shared = e;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--mb") mb = std::atof(argv[i + 1]);
    else if (k == "--shared") shared = argv[i + 1];
  }
  try {
    auto llama3 = paca::load_tokenizer_file(shared + "/tokenizers/llama3/tokenizer.json");
    auto llama2 = paca::load_tokenizer_file(shared + "/tokenizers/llama2/tokenizer.model");
    auto docs = make_corpus(static_cast<size_t>(mb * 1e6));
    size_t bytes = 0;
    for (const auto& d : docs) bytes += d.size();
    size_t tokens3 = 0, tokens2 = 0;
    std::vector<int32_t> ids;
    double s3 = best_seconds(3, [&] {
      tokens3 = 0;
      for (const auto& d : docs) {
        ids.clear();
        llama3->encode(d, {}, ids);
        tokens3 += ids.size();
      }
    });
    double s2 = best_seconds(3, [&] {
      tokens2 = 0;
      for (const auto& d : docs) {
        ids.clear();
        llama2->encode(d, {}, ids);
        tokens2 += ids.size();
      }
    });
    std::vector<std::vector<int32_t>> encoded;
    for (const auto& d : docs) encoded.push_back(llama3->encode(d, {}));
    double sd = best_seconds(3, [&] {
      for (const auto& e : encoded) (void)llama3->decode(e, {});
    });
    std::printf("corpus: %zu documents, %.2f MB (8 languages, CJK, emoji, code)\n", docs.size(), bytes / 1e6);
    std::printf("%-34s %10s %12s\n", "", "MB/s/core", "tokens");
    std::printf("%-34s %10.2f %12zu\n", "paca Llama 3 encode", bytes / 1e6 / s3, tokens3);
    TiktokenResult tt = run_tiktoken(docs, shared + "/tokenizers/llama3/tokenizer.model");
    if (tt.mb_s > 0) {
      std::printf("%-34s %10.2f %12zu%s\n", "tiktoken (npm, wasm) Llama 3 encode", tt.mb_s, tt.tokens,
                  tt.tokens == tokens3 ? "" : "  (token counts differ!)");
      std::printf("paca / tiktoken: %.2fx\n", bytes / 1e6 / s3 / tt.mb_s);
    } else {
      std::printf("%-34s %10s   (set PACA_TOKENIZER_REFERENCE_DIR; scripts/tokenizer_reference.sh)\n",
                  "tiktoken (npm, wasm) Llama 3 encode", "-");
    }
    std::printf("%-34s %10.2f %12zu\n", "paca Llama 2 encode", bytes / 1e6 / s2, tokens2);
    std::printf("%-34s %10.2f\n", "paca Llama 3 decode (output MB/s)", bytes / 1e6 / sd);
  } catch (const paca::Error& e) {
    std::fprintf(stderr, "tokenizer-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
