// paca-bench - decode and prefill throughput of a model next to the bound
// set by this machine's memory bandwidth, measured in the same run.
//
//   paca-bench [-m PATH | --shape NAME] [--threads N] [--tokens N] [--prompt N] [--repeats N] [--no-mmap] [--json]
//
// Shapes (seeded random weights, written once to a temporary directory):
//   tiny   dim 128, 4 layers, vocab 4096
//   110m   the llama2.c 110M shape: dim 768, 12 layers, 12 heads, ffn 2048, vocab 32000
//   llama3.2-1b  dim 2048, 16 layers, 32/8 heads, ffn 8192, vocab 128256 (tied)
#include <paca/paca.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Read bandwidth: `threads` threads each sum their slice of a buffer much
// larger than the caches; best of several passes.
double measure_read_bandwidth(int threads, size_t bytes) {
  size_t n = bytes / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9e3779b97f4a7c15ull;
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    std::vector<uint64_t> sums(static_cast<size_t>(threads));
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        size_t b = n * t / threads, e = n * (t + 1) / threads;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = b; i + 4 <= e; i += 4) {
          s0 += buf[i];
          s1 += buf[i + 1];
          s2 += buf[i + 2];
          s3 += buf[i + 3];
        }
        sums[t] = s0 + s1 + s2 + s3;
      });
    for (auto& th : ts) th.join();
    double s = seconds_since(t0);
    volatile uint64_t sink = 0;
    for (auto v : sums) sink = sink + v;
    best = std::max(best, static_cast<double>(bytes) / s);
  }
  return best;
}

struct Shape {
  const char* name;
  int dim, layers, heads, kv_heads, ffn, vocab, ctx;
  int tied;
};

const Shape kShapes[] = {
    {"tiny", 128, 4, 4, 2, 384, 4096, 2048, 0},
    {"110m", 768, 12, 12, 12, 2048, 32000, 1024, 0},
    {"llama3.2-1b", 2048, 16, 32, 8, 8192, 128256, 8192, 1},
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "paca-bench: %s\n", msg.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, shape = "110m";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int tokens = 64, prompt = 128, repeats = 3;
  bool json = false, no_mmap = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "-m") model = next();
    else if (a == "--shape") shape = next();
    else if (a == "--threads") threads = std::max(1, std::atoi(next().c_str()));
    else if (a == "--tokens") tokens = std::max(2, std::atoi(next().c_str()));
    else if (a == "--prompt") prompt = std::max(1, std::atoi(next().c_str()));
    else if (a == "--repeats") repeats = std::max(1, std::atoi(next().c_str()));
    else if (a == "--json") json = true;
    else if (a == "--no-mmap") no_mmap = true;
    else die("unknown argument " + a);
  }
  std::string tmp;
  if (model.empty()) {
    const Shape* s = nullptr;
    for (const auto& k : kShapes)
      if (shape == k.name) s = &k;
    if (s == nullptr) die("unknown shape " + shape + " (tiny, 110m, llama3.2-1b)");
    tmp = (std::filesystem::temp_directory_path() / ("paca-bench-" + shape)).string();
    paca_test_model_params p = paca_test_model_params_default();
    p.dim = s->dim;
    p.n_layers = s->layers;
    p.n_heads = s->heads;
    p.n_kv_heads = s->kv_heads;
    p.ffn_dim = s->ffn;
    p.n_vocab = s->vocab;
    p.max_context = s->ctx;
    p.tied_embeddings = s->tied;
    if (paca_make_test_model(tmp.c_str(), &p) != PACA_OK) die(paca_last_error());
    model = tmp;
  }

  double bw = measure_read_bandwidth(threads, size_t{1} << 30);

  paca_model_params mp = paca_model_params_default();
  mp.n_threads = threads;
  mp.load_mode = no_mmap ? PACA_LOAD_READ : PACA_LOAD_MMAP;
  paca_model* m = nullptr;
  auto tl = Clock::now();
  if (paca_model_load(model.c_str(), &mp, &m) != PACA_OK) die(paca_last_error());
  double load_s = seconds_since(tl);
  paca_model_info info{};
  info.struct_size = sizeof info;
  paca_model_get_info(m, &info);

  // bytes one decode step must read: every matrix once (the embedding table
  // only when it is also the LM head), plus the KV cache so far
  double matrix_bytes = static_cast<double>(info.weight_bytes);
  // weight_bytes counts the embedding table; an untied model reads one row of it per token
  double embed_bytes = static_cast<double>(info.n_vocab) * info.dim *
                       (static_cast<double>(info.weight_bytes) / static_cast<double>(info.n_params));
  if (!info.tied_embeddings) matrix_bytes -= embed_bytes;

  std::vector<double> decode_tps, prefill_tps;
  double ctx_mid = prompt + tokens / 2.0;
  for (int r = 0; r < repeats; ++r) {
    paca_session* s = nullptr;
    if (paca_session_create(m, nullptr, &s) != PACA_OK) die(paca_last_error());
    std::vector<int32_t> ids(static_cast<size_t>(prompt));
    for (int i = 0; i < prompt; ++i) ids[i] = (i * 7919 + 1) % info.n_vocab;
    auto t0 = Clock::now();
    if (paca_session_prefill(s, ids.data(), ids.size()) != PACA_OK) die(paca_last_error());
    prefill_tps.push_back(prompt / seconds_since(t0));
    auto t1 = Clock::now();
    for (int i = 0; i < tokens; ++i)
      if (paca_session_decode(s, (i * 31 + 5) % info.n_vocab) != PACA_OK) die(paca_last_error());
    decode_tps.push_back(tokens / seconds_since(t1));
    paca_session_free(s);
  }
  double kv_bytes = ctx_mid * static_cast<double>(info.kv_bytes_per_token);
  double bytes_per_token = matrix_bytes + kv_bytes;
  double bound_tps = bw / bytes_per_token;
  double dec = median(decode_tps), pre = median(prefill_tps);
  std::sort(decode_tps.begin(), decode_tps.end());
  if (json) {
    std::printf(
        "{\"model\":\"%s\",\"threads\":%d,\"params\":%llu,\"weight_bytes\":%llu,\"load_s\":%.3f,"
        "\"read_bandwidth_GBps\":%.2f,\"decode_bytes_per_token\":%.0f,\"decode_tokens_per_s\":%.2f,"
        "\"decode_min\":%.2f,\"decode_max\":%.2f,\"decode_bound_tokens_per_s\":%.2f,\"decode_fraction_of_bound\":%.3f,"
        "\"prefill_tokens\":%d,\"prefill_tokens_per_s\":%.2f}\n",
        shape.c_str(), threads, static_cast<unsigned long long>(info.n_params),
        static_cast<unsigned long long>(info.weight_bytes), load_s, bw / 1e9, bytes_per_token, dec, decode_tps.front(),
        decode_tps.back(), bound_tps, dec / bound_tps, prompt, pre);
  } else {
    std::printf("model            %s (%.1fM params, %.1f MiB weights), %d threads\n", model.c_str(),
                info.n_params / 1e6, info.weight_bytes / 1048576.0, threads);
    std::printf("read bandwidth   %.2f GB/s (measured, %d threads, 1 GiB buffer)\n", bw / 1e9, threads);
    std::printf("decode           %.2f tok/s median of %d (min %.2f, max %.2f), %d tokens after a %d-token prompt\n",
                dec, repeats, decode_tps.front(), decode_tps.back(), tokens, prompt);
    std::printf("decode bound     %.2f tok/s = %.1f MB/token (weights %.1f + KV %.1f) / bandwidth -> %.0f%% of bound\n",
                bound_tps, bytes_per_token / 1e6, matrix_bytes / 1e6, kv_bytes / 1e6, 100 * dec / bound_tps);
    std::printf("prefill          %.2f tok/s (%d tokens)\n", pre, prompt);
  }
  paca_model_free(m);
  if (!tmp.empty()) std::filesystem::remove_all(tmp);
  return 0;
}
