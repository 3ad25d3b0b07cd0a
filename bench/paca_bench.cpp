// paca-bench - load time, prefill and decode throughput, time to first token
// and peak memory of a model, each figure next to the bound this machine sets,
// measured in the same run: decode against bytes per token over the measured
// read bandwidth, prefill against flops per token over the measured FMA peak.
//
//   paca-bench [-m PATH | --shape NAME] [--threads N] [--prompt N[,N...]] [--tokens N]
//              [--depths N[,N...]] [--batch N[,N...]] [--repeats N] [--mmap | --no-mmap] [--device D] [--json]
//              [--weight-dtype as-stored|fp8] [--fp8-targets mlp|all] [--fp8-mode auto|w8a8|w8a16]
//
// --device cuda (or cuda:N) runs the model on a GPU: the decode bound then
// uses the device's copy bandwidth (a device-to-device copy, bytes read plus
// written) and the prefill bound is not measured (reported as 0).
// --shape (paca_test_model_params_for_shape: tiny, 110m, llama2-7b/13b/70b,
// llama3-8b/70b, llama3.1-8b/70b/405b, llama3.2-1b/3b) builds a model of that shape with seeded random BF16 weights in
// memory (paca_model_load_synthetic: nothing touches the disk); a shape whose
// weights do not fit in 3/4 of this machine's memory is reported and skipped.
// --prompt lists prefill lengths (default 128,512); --depths lists the context
// depths at which decode is measured (default: after the first prompt).
// --json prints one JSON object (fields documented in bench/README.md).
// --weight-dtype fp8 quantizes the linear weights to FP8 E4M3 at load (with
// --shape: the synthetic BF16 weights); --fp8-targets picks which (mlp:
// Meta's recipe, the MLP of all but the first and last layer, the default;
// all: every linear weight of every layer); --fp8-mode how their matmuls
// treat activations (paca_fp8_mode). The decode bound counts the weights'
// stored bytes, FP8 codes at one byte each.
#include "dev_env.h"
#include <paca/paca.h>
#include <paca/paca_experimental.h>
#include <sys/resource.h>
#if defined(PACA_BENCH_CUDA)
#include "device.h"  // paca::cuda::measure_copy_bandwidth_gbps, describe_device (cuda/, private)
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Stats {
  double median = 0, min = 0, max = 0;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  return {v[v.size() / 2], v.front(), v.back()};
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "paca-bench: %s\n", msg.c_str());
  std::exit(1);
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

// Peak f32 multiply-add rate: `threads` threads each run 12 independent chains
// of 8-wide fused multiply-adds (what an ideal matmul inner loop issues),
// best of several passes; flops counted as 2 per lane per FMA.
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) double fma_chains(long iters) {
  __m256 a[12];
  const __m256 m = _mm256_set1_ps(1.0000001f), c = _mm256_set1_ps(1e-7f);
  for (int k = 0; k < 12; ++k) a[k] = _mm256_set1_ps(1e-7f * static_cast<float>(k + 1));
  for (long i = 0; i < iters; ++i)
    for (int k = 0; k < 12; ++k) a[k] = _mm256_fmadd_ps(a[k], m, c);
  double s = 0;
  for (int k = 0; k < 12; ++k) s += _mm256_cvtss_f32(a[k]);
  return s;
}
#endif

double measure_fma_peak(int threads) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
  const long iters = 20'000'000;
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    std::vector<double> sink(static_cast<size_t>(threads));
    auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { sink[t] = fma_chains(iters); });
    for (auto& th : ts) th.join();
    double s = seconds_since(t0);
    best = std::max(best, threads * static_cast<double>(iters) * 12 * 8 * 2 / s);
  }
  return best;
#else
  (void)threads;
  return 0;
#endif
}

std::vector<int> parse_list(const std::string& s, const char* what) {
  std::vector<int> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    int v = std::atoi(s.substr(i, j - i).c_str());
    if (v < 0) die(std::string(what) + ": negative value");
    out.push_back(v);
    i = j + 1;
  }
  if (out.empty()) die(std::string(what) + " needs a value");
  return out;
}

// Peak resident memory since reset_peak_rss() (the probes' buffers excluded).
void reset_peak_rss() {
  if (FILE* f = std::fopen("/proc/self/clear_refs", "w")) {  // "5" resets VmHWM (Linux 4.0+)
    std::fputs("5", f);
    std::fclose(f);
  }
}

double peak_rss_mib() {
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, "VmHWM:", 6) == 0) {
        std::fclose(f);
        return std::atof(line + 6) / 1024.0;  // kB
      }
    std::fclose(f);
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

// Token ids for a prompt of n tokens (deterministic, spread over the vocabulary).
std::vector<int32_t> prompt_ids(int n, int vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ids[i] = (i * 7919 + 1) % vocab;
  return ids;
}

struct DecodeResult {
  int depth;
  Stats tps;
  double bytes_per_token, bound_tps;
};

}  // namespace

int main(int argc, char** argv) {
  std::string model, shape = "110m";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int tokens = 64, repeats = 3;
  std::vector<int> prompts = {128, 512}, depths, batches;
  bool json = false;
  int load_mode = PACA_LOAD_AUTO;
  std::string device = "cpu";
  int weight_dtype = PACA_WEIGHTS_AS_STORED, fp8_targets = 0, fp8_mode = PACA_FP8_AUTO;
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
    else if (a == "--prompt") prompts = parse_list(next(), "--prompt");
    else if (a == "--depths") depths = parse_list(next(), "--depths");
    else if (a == "--batch") batches = parse_list(next(), "--batch");
    else if (a == "--repeats") repeats = std::max(1, std::atoi(next().c_str()));
    else if (a == "--json") json = true;
    else if (a == "--no-mmap") load_mode = PACA_LOAD_READ;
    else if (a == "--mmap") load_mode = PACA_LOAD_MMAP;
    else if (a == "--device") device = next();
    else if (a == "--weight-dtype") {
      const std::string v = next();
      if (v == "fp8") weight_dtype = PACA_WEIGHTS_FP8;
      else if (v != "as-stored" && v != "bf16") die("--weight-dtype " + v + ": expected as-stored or fp8");
    } else if (a == "--fp8-targets") {
      const std::string v = next();
      if (v == "all") fp8_targets = PACA_FP8_MLP | PACA_FP8_ATTENTION;
      else if (v != "mlp") die("--fp8-targets " + v + ": expected mlp or all");
    } else if (a == "--fp8-mode") {
      const std::string v = next();
      if (v == "w8a8") fp8_mode = PACA_FP8_W8A8;
      else if (v == "w8a16") fp8_mode = PACA_FP8_W8A16;
      else if (v != "auto") die("--fp8-mode " + v + ": expected auto, w8a8 or w8a16");
    }
    else die("unknown argument " + a);
  }
  for (int& p : prompts) p = std::max(1, p);
  if (depths.empty()) depths = {prompts.front()};

  const bool on_gpu = device != "cpu";
  double bw = 0, peak = 0;
  std::string machine;
  if (!on_gpu) {
    bw = measure_read_bandwidth(threads, size_t{1} << 30);
    peak = measure_fma_peak(threads);
  } else {
#if defined(PACA_BENCH_CUDA)
    const int index = device == "cuda" ? 0 : std::atoi(device.c_str() + std::min<size_t>(device.size(), 5));
    std::string why;
    bw = paca::cuda::measure_copy_bandwidth_gbps(index, size_t{1} << 30, &why) * 1e9;
    if (bw <= 0) die("device " + device + ": " + why);
    machine = paca::cuda::describe_device(index);
#else
    die("--device " + device + ": this paca-bench was built without the CUDA backend");
#endif
  }
  reset_peak_rss();

  paca_model_params mp;

  paca_model_params_init(&mp, sizeof mp);
  paca_cli::apply_developer_env(&mp);
  mp.n_threads = threads;
  mp.device = device.c_str();
  mp.load_mode = load_mode;
  mp.weight_dtype = weight_dtype;
  mp.fp8_targets = fp8_targets;
  mp.fp8_mode = fp8_mode;
  paca_model* m = nullptr;
  auto tl = Clock::now();
  std::string label = model;
  if (model.empty()) {
    paca_test_model_params p;
    if (paca_test_model_params_for_shape(shape.c_str(), &p) != PACA_OK) die(paca_last_error());
    if (paca_model_load_synthetic(&p, &mp, &m) != PACA_OK) {
      std::fprintf(stderr, "paca-bench: shape %s skipped: %s\n", shape.c_str(), paca_last_error());
      if (json) std::printf("{\"model\":\"%s\",\"skipped\":true}\n", shape.c_str());
      return 0;
    }
    label = shape + " (synthetic)";
  } else if (paca_model_load(model.c_str(), &mp, &m) != PACA_OK) {
    die(paca_last_error());
  }
  const double load_s = seconds_since(tl);
  if (weight_dtype == PACA_WEIGHTS_FP8)
    label += std::string(", fp8 ") + (fp8_targets ? "all" : "mlp") +
             (fp8_mode == PACA_FP8_W8A8 ? " w8a8" : fp8_mode == PACA_FP8_W8A16 ? " w8a16" : "");
  paca_model_info info{};
  info.struct_size = sizeof info;
  paca_model_get_info(m, &info);

  // Bytes one decode step must read: every matrix once (the embedding table
  // only when it is also the LM head: otherwise one row), plus the KV cache.
  double matrix_bytes = static_cast<double>(info.weight_bytes);
  const double bytes_per_param = static_cast<double>(info.weight_bytes) / static_cast<double>(info.n_params);
  const double embed_params = static_cast<double>(info.n_vocab) * info.dim;
  if (!info.tied_embeddings) matrix_bytes -= embed_params * bytes_per_param;
  // Flops per prefill token: 2 per weight of every matrix used (the embedding
  // lookup is free; the LM head runs for the last position only, ignored here),
  // plus attention, 4 * layers * dim * (mean context), added per length below.
  const double matmul_params =
      static_cast<double>(info.n_params) - embed_params - (info.tied_embeddings ? 0 : embed_params);
  const int max_ctx = info.max_context;

  // prefill at each length: median of repeats, plus time to first token
  struct PrefillResult {
    int n;
    Stats tps, ttft_ms;
    double flops_per_token, bound_tps;
  };
  std::vector<PrefillResult> prefill;
  for (int n : prompts) {
    if (n + tokens > max_ctx) {
      std::fprintf(stderr, "paca-bench: prompt %d skipped (context %d)\n", n, max_ctx);
      continue;
    }
    std::vector<double> tps, ttft;
    const std::vector<int32_t> ids = prompt_ids(n, info.n_vocab);
    for (int r = 0; r < repeats; ++r) {
      paca_session* s = nullptr;
      if (paca_session_create(m, nullptr, &s) != PACA_OK) die(paca_last_error());
      auto t0 = Clock::now();
      if (paca_session_prefill(s, ids.data(), ids.size()) != PACA_OK) die(paca_last_error());
      const double sec = seconds_since(t0);  // the logits of the last position are ready: first token
      tps.push_back(n / sec);
      ttft.push_back(sec * 1000);
      paca_session_free(s);
    }
    const double flops = 2 * matmul_params + 4.0 * info.n_layers * info.n_heads * info.head_dim * (n / 2.0);
    prefill.push_back({n, stats(tps), stats(ttft), flops, peak > 0 ? peak / flops : 0});
  }

  // decode at each depth: tokens steps after prefilling `depth` tokens
  std::vector<DecodeResult> decode;
  for (int depth : depths) {
    if (depth + tokens > max_ctx) {
      std::fprintf(stderr, "paca-bench: depth %d skipped (context %d)\n", depth, max_ctx);
      continue;
    }
    std::vector<double> tps;
    const std::vector<int32_t> ids = prompt_ids(std::max(depth, 1), info.n_vocab);
    for (int r = 0; r < repeats; ++r) {
      paca_session* s = nullptr;
      if (paca_session_create(m, nullptr, &s) != PACA_OK) die(paca_last_error());
      if (paca_session_prefill(s, ids.data(), ids.size()) != PACA_OK) die(paca_last_error());
      auto t1 = Clock::now();
      for (int i = 0; i < tokens; ++i)
        if (paca_session_decode(s, (i * 31 + 5) % info.n_vocab) != PACA_OK) die(paca_last_error());
      tps.push_back(tokens / seconds_since(t1));
      paca_session_free(s);
    }
    const double kv = (std::max(depth, 1) + tokens / 2.0) * static_cast<double>(info.kv_bytes_per_token);
    decode.push_back({depth, stats(tps), matrix_bytes + kv, bw / (matrix_bytes + kv)});
  }
  // batched decode: B sequences (prompts of the first depth, each its own)
  // stepped together with paca_generator_next_batch; tokens/s counts all of
  // them. Bound per step: every matrix once plus B caches over the bandwidth,
  // or B tokens' flops over the FMA peak, whichever is slower.
  struct BatchResult {
    int batch;
    Stats tps;
    double bound_tps;
  };
  std::vector<BatchResult> batched;
  const int bdepth = std::max(depths.front(), 1);
  for (int B : batches) {
    if (B < 1 || bdepth + tokens + 1 > max_ctx) continue;
    std::vector<double> tps;
    for (int r = 0; r < repeats; ++r) {
      std::vector<paca_session*> ss(static_cast<size_t>(B), nullptr);
      std::vector<paca_generator*> gs(static_cast<size_t>(B), nullptr);
      paca_sampler_params sp;
      paca_sampler_params_init(&sp, sizeof sp);
      sp.ignore_eos = 1;
      sp.max_new_tokens = tokens + 1;
      for (int b = 0; b < B; ++b) {
        std::vector<int32_t> ids = prompt_ids(bdepth, info.n_vocab);
        ids[0] = (b * 104729 + 3) % info.n_vocab;  // a different sequence each
        if (paca_session_create(m, nullptr, &ss[b]) != PACA_OK) die(paca_last_error());
        if (paca_generator_create(ss[b], ids.data(), ids.size(), &sp, nullptr, &gs[b]) != PACA_OK) die(paca_last_error());
      }
      std::vector<int32_t> out(static_cast<size_t>(B));
      auto t1 = Clock::now();
      for (int i = 0; i < tokens; ++i)
        if (paca_generator_next_batch(gs.data(), gs.size(), out.data(), nullptr, nullptr) != PACA_OK) die(paca_last_error());
      tps.push_back(static_cast<double>(B) * tokens / seconds_since(t1));
      for (int b = 0; b < B; ++b) {
        paca_generator_free(gs[b]);
        paca_session_free(ss[b]);
      }
    }
    const double kv = (bdepth + tokens / 2.0) * static_cast<double>(info.kv_bytes_per_token);
    const double mem_steps = bw / (matrix_bytes + B * kv);
    const double flop_steps = peak > 0 ? peak / (B * 2 * matmul_params) : mem_steps;
    batched.push_back({B, stats(tps), B * std::min(mem_steps, flop_steps)});
  }
  const double rss = peak_rss_mib();

  const bool read = info.load_mode == PACA_LOAD_READ;
  const DecodeResult* d0 = decode.empty() ? nullptr : &decode.front();
  const PrefillResult* p0 = prefill.empty() ? nullptr : &prefill.front();
  if (json) {
    std::printf("{\"device\":\"%s\",\"device_name\":\"%s\",", device.c_str(), machine.c_str());
    if (weight_dtype == PACA_WEIGHTS_FP8)
      std::printf("\"fp8\":{\"targets\":\"%s\",\"mode\":\"%s\"},", fp8_targets ? "all" : "mlp",
                  fp8_mode == PACA_FP8_W8A8 ? "w8a8" : fp8_mode == PACA_FP8_W8A16 ? "w8a16" : "auto");
    std::printf("\"model\":\"%s\",\"threads\":%d,\"params\":%llu,\"weight_bytes\":%llu,\"load_s\":%.3f,"
                "\"load_mode\":\"%s\",\"read_bandwidth_GBps\":%.2f,\"fma_peak_GFLOPs\":%.1f,\"peak_rss_MiB\":%.1f",
                label.c_str(), threads, static_cast<unsigned long long>(info.n_params),
                static_cast<unsigned long long>(info.weight_bytes), load_s, read ? "read" : "mmap", bw / 1e9,
                peak / 1e9, rss);
    if (d0 != nullptr)
      std::printf(",\"decode_bytes_per_token\":%.0f,\"decode_tokens_per_s\":%.2f,\"decode_min\":%.2f,\"decode_max\":%.2f,"
                  "\"decode_bound_tokens_per_s\":%.2f,\"decode_fraction_of_bound\":%.3f",
                  d0->bytes_per_token, d0->tps.median, d0->tps.min, d0->tps.max, d0->bound_tps,
                  d0->tps.median / d0->bound_tps);
    if (p0 != nullptr)
      std::printf(",\"prefill_tokens\":%d,\"prefill_tokens_per_s\":%.2f,\"ttft_ms\":%.2f", p0->n, p0->tps.median,
                  p0->ttft_ms.median);
    std::printf(",\"prefill\":[");
    for (size_t i = 0; i < prefill.size(); ++i) {
      const auto& p = prefill[i];
      std::printf("%s{\"tokens\":%d,\"tokens_per_s\":%.2f,\"min\":%.2f,\"max\":%.2f,\"ttft_ms\":%.2f,"
                  "\"flops_per_token\":%.4g,\"bound_tokens_per_s\":%.2f,\"fraction_of_bound\":%.3f}",
                  i ? "," : "", p.n, p.tps.median, p.tps.min, p.tps.max, p.ttft_ms.median, p.flops_per_token, p.bound_tps,
                  p.bound_tps > 0 ? p.tps.median / p.bound_tps : 0.0);
    }
    std::printf("],\"decode\":[");
    for (size_t i = 0; i < decode.size(); ++i) {
      const auto& d = decode[i];
      std::printf("%s{\"depth\":%d,\"tokens\":%d,\"tokens_per_s\":%.2f,\"min\":%.2f,\"max\":%.2f,"
                  "\"bytes_per_token\":%.0f,\"bound_tokens_per_s\":%.2f,\"fraction_of_bound\":%.3f}",
                  i ? "," : "", d.depth, tokens, d.tps.median, d.tps.min, d.tps.max, d.bytes_per_token, d.bound_tps,
                  d.tps.median / d.bound_tps);
    }
    std::printf("],\"batch\":[");
    for (size_t i = 0; i < batched.size(); ++i) {
      const auto& b = batched[i];
      std::printf("%s{\"batch\":%d,\"depth\":%d,\"tokens_per_s\":%.2f,\"min\":%.2f,\"max\":%.2f,"
                  "\"bound_tokens_per_s\":%.2f,\"fraction_of_bound\":%.3f}",
                  i ? "," : "", b.batch, bdepth, b.tps.median, b.tps.min, b.tps.max, b.bound_tps, b.tps.median / b.bound_tps);
    }
    std::printf("]}\n");
  } else {
    std::printf("model            %s (%.1fM params, %.1f MiB weights, %s), %d threads, load %.2f s\n", label.c_str(),
                info.n_params / 1e6, info.weight_bytes / 1048576.0, read ? "read into memory" : "mapped", threads,
                load_s);
    if (on_gpu)
      std::printf("machine          %s %s: copy bandwidth %.2f GB/s (read + write, 1 GiB); prefill bound not measured\n",
                  device.c_str(), machine.c_str(), bw / 1e9);
    else
      std::printf("machine          read bandwidth %.2f GB/s (1 GiB buffer), FMA peak %.1f GFLOP/s (%d threads)\n",
                  bw / 1e9, peak / 1e9, threads);
    for (const auto& p : prefill)
      std::printf("prefill %5d    %8.2f tok/s (min %.2f, max %.2f), first token %.1f ms; bound %.1f tok/s "
                  "(%.2f GFLOP/token) -> %.0f%%\n",
                  p.n, p.tps.median, p.tps.min, p.tps.max, p.ttft_ms.median, p.bound_tps, p.flops_per_token / 1e9,
                  p.bound_tps > 0 ? 100 * p.tps.median / p.bound_tps : 0.0);
    for (const auto& d : decode)
      std::printf("decode @%-6d   %8.2f tok/s (min %.2f, max %.2f) over %d tokens; bound %.1f tok/s "
                  "(%.1f MB/token) -> %.0f%%\n",
                  d.depth, d.tps.median, d.tps.min, d.tps.max, tokens, d.bound_tps, d.bytes_per_token / 1e6,
                  100 * d.tps.median / d.bound_tps);
    for (const auto& b : batched)
      std::printf("batch %-3d @%-5d %8.2f tok/s in all (min %.2f, max %.2f); bound %.1f tok/s -> %.0f%%\n", b.batch,
                  bdepth, b.tps.median, b.tps.min, b.tps.max, b.bound_tps, 100 * b.tps.median / b.bound_tps);
    std::printf("peak RSS         %.1f MiB (medians of %d repeats)\n", rss, repeats);
  }
  paca_model_free(m);
  return 0;
}
