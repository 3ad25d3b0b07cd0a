// snapshot-bench - session snapshot sizes and times, and what a prompt-cache
// hit saves: prefills a session of a synthetic model, then saves it with and
// without the byte-plane split of the KV values at two zstd levels, loads
// each file back (checking it equals the session) and restores it as a
// prompt cache, next to the time the prefill took.
//
//   snapshot-bench [--shape 110m|tiny] [--tokens N] [--threads N] [--kv f32|bf16|both]
//
// Shapes as paca-bench's (seeded random BF16 weights, written to a temporary
// directory). Prints one markdown table row per (KV dtype, split, level).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "model/test_model.h"
#include "runtime/load.h"
#include "runtime/snapshot.h"
#include "util/error.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "snapshot-bench: %s\n", msg.c_str());
  std::exit(1);
}

void run(const std::string& model_dir, paca::DType kv_dtype, int threads, int n_tokens, const fs::path& dir) {
  paca::LoadOptions opt;
  opt.model.n_threads = threads;
  opt.model.kv_dtype = kv_dtype;
  auto model = paca::load_model(model_dir, opt);
  paca::BlockPool pool(model->backend(), model->kv_layout());
  const paca::ModelConfig& c = model->config();
  std::vector<int32_t> ids(static_cast<size_t>(n_tokens));
  for (int i = 0; i < n_tokens; ++i) ids[static_cast<size_t>(i)] = (i * 7919 + 1) % c.n_vocab;

  paca::Session s(*model, pool, n_tokens + 64);
  auto t0 = Clock::now();
  s.prefill(ids);
  const double prefill_s = seconds_since(t0);
  const paca::KvLayout& L = model->kv_layout();
  const double kv_raw = static_cast<double>(L.n_layers) * 2 * n_tokens * L.kv_dim * L.elem_bytes();
  const double raw = kv_raw + 4.0 * n_tokens + 4.0 * c.n_vocab;
  std::printf("\nKV %s, %d tokens: prefill %.2f s (%.1f tok/s); raw snapshot %.1f MiB (KV %.1f MiB)\n\n",
              paca::dtype_name(kv_dtype), n_tokens, prefill_s, n_tokens / prefill_s, raw / 1048576.0,
              kv_raw / 1048576.0);
  std::printf("| KV | byte split | zstd level | file | ratio | save | load | prompt-cache hit (restore) |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (bool split : {false, true})
    for (int level : {1, 3}) {
      const std::string path = (dir / "bench.snap").string();
      paca::SnapshotOptions so;
      so.byte_split = split;
      so.zstd_level = level;
      auto ts = Clock::now();
      paca::save_snapshot(s, nullptr, path, so);
      const double save_s = seconds_since(ts);
      const double size = static_cast<double>(fs::file_size(path));
      auto tl = Clock::now();
      paca::LoadedSnapshot l = paca::load_snapshot(*model, pool, path);
      const double load_s = seconds_since(tl);
      if (l.session->tokens() != s.tokens() || l.session->logits() != s.logits()) die("the loaded session differs");
      l.session.reset();
      paca::Session cached(*model, pool, n_tokens + 64);
      auto tr = Clock::now();
      const size_t reused = paca::restore_prefix(cached, path, ids);
      const double restore_s = seconds_since(tr);
      if (reused != ids.size() || cached.logits() != s.logits()) die("the prompt cache did not restore everything");
      std::printf("| %s | %s | %d | %.2f MiB | %.3f | %.3f s | %.3f s | %.3f s (prefill %.2f s: %.0fx) |\n",
                  paca::dtype_name(kv_dtype), split ? "yes" : "no", level, size / 1048576.0, size / raw, save_s,
                  load_s, restore_s, prefill_s, prefill_s / restore_s);
      std::fflush(stdout);
    }
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "110m", kv = "both";
  int threads = 2, n_tokens = 2048;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--shape") shape = next();
    else if (a == "--tokens") n_tokens = std::max(1, std::atoi(next().c_str()));
    else if (a == "--threads") threads = std::max(1, std::atoi(next().c_str()));
    else if (a == "--kv") kv = next();
    else die("unknown argument " + a);
  }
  paca::TestModelSpec spec;  // the tiny shape
  if (shape == "110m") {
    spec.dim = 768;
    spec.n_layers = 12;
    spec.n_heads = 12;
    spec.n_kv_heads = 12;
    spec.ffn_dim = 2048;
    spec.n_vocab = 32000;
  } else if (shape != "tiny") {
    die("unknown shape " + shape + " (tiny, 110m)");
  }
  spec.max_context = std::max(spec.max_context, n_tokens + 64);
  const fs::path dir = fs::temp_directory_path() / ("paca-snapshot-bench-" + std::to_string(::getpid()));
  try {
    fs::create_directories(dir);
    paca::write_test_model((dir / "model").string(), spec);
    std::printf("snapshot-bench: shape %s (dim %d, %d layers, kv dim %d, vocab %d), %d threads\n", shape.c_str(),
                spec.dim, spec.n_layers, spec.dim / spec.n_heads * spec.n_kv_heads, spec.n_vocab, threads);
    if (kv == "f32" || kv == "both") run((dir / "model").string(), paca::DType::f32, threads, n_tokens, dir);
    if (kv == "bf16" || kv == "both") run((dir / "model").string(), paca::DType::bf16, threads, n_tokens, dir);
  } catch (const paca::Error& e) {
    fs::remove_all(dir);
    die(e.what());
  }
  fs::remove_all(dir);
  return 0;
}
