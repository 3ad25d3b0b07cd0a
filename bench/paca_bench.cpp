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

struct Options {
  std::string model, shape = "110m";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int tokens = 64, repeats = 3;
  std::vector<int> prompts = {128, 512}, depths, batches;
  bool json = false;
  int load_mode = PACA_LOAD_AUTO;
  std::string device = "cpu";
  int weight_dtype = PACA_WEIGHTS_AS_STORED, fp8_targets = 0, fp8_mode = PACA_FP8_AUTO;
};

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "-m") o.model = next();
    else if (a == "--shape") o.shape = next();
    else if (a == "--threads") o.threads = std::max(1, std::atoi(next().c_str()));
    else if (a == "--tokens") o.tokens = std::max(2, std::atoi(next().c_str()));
    else if (a == "--prompt") o.prompts = parse_list(next(), "--prompt");
    else if (a == "--depths") o.depths = parse_list(next(), "--depths");
    else if (a == "--batch") o.batches = parse_list(next(), "--batch");
    else if (a == "--repeats") o.repeats = std::max(1, std::atoi(next().c_str()));
    else if (a == "--json") o.json = true;
    else if (a == "--no-mmap") o.load_mode = PACA_LOAD_READ;
    else if (a == "--mmap") o.load_mode = PACA_LOAD_MMAP;
    else if (a == "--device") o.device = next();
    else if (a == "--weight-dtype") {
      const std::string v = next();
      if (v == "fp8") o.weight_dtype = PACA_WEIGHTS_FP8;
      else if (v != "as-stored" && v != "bf16") die("--weight-dtype " + v + ": expected as-stored or fp8");
    } else if (a == "--fp8-targets") {
      const std::string v = next();
      if (v == "all") o.fp8_targets = PACA_FP8_MLP | PACA_FP8_ATTENTION;
      else if (v != "mlp") die("--fp8-targets " + v + ": expected mlp or all");
    } else if (a == "--fp8-mode") {
      const std::string v = next();
      if (v == "w8a8") o.fp8_mode = PACA_FP8_W8A8;
      else if (v == "w8a16") o.fp8_mode = PACA_FP8_W8A16;
      else if (v != "auto") die("--fp8-mode " + v + ": expected auto, w8a8 or w8a16");
    }
    else die("unknown argument " + a);
  }
  for (int& p : o.prompts) p = std::max(1, p);
  if (o.depths.empty()) o.depths = {o.prompts.front()};
  return o;
}

// What this machine allows: read (CPU) or copy (GPU) bandwidth in bytes/s,
// the f32 FMA peak in flops/s (CPU only), and the device's name (GPU).
struct Machine {
  double bw = 0, peak = 0;
  std::string name;
};

Machine measure_machine(const Options& o) {
  Machine mc;
  if (o.device == "cpu") {
    mc.bw = measure_read_bandwidth(o.threads, size_t{1} << 30);
    mc.peak = measure_fma_peak(o.threads);
    return mc;
  }
#if defined(PACA_BENCH_CUDA)
  const int index = o.device == "cuda" ? 0 : std::atoi(o.device.c_str() + std::min<size_t>(o.device.size(), 5));
  std::string why;
  mc.bw = paca::cuda::measure_copy_bandwidth_gbps(index, size_t{1} << 30, &why) * 1e9;
  if (mc.bw <= 0) die("device " + o.device + ": " + why);
  mc.name = paca::cuda::describe_device(index);
#else
  die("--device " + o.device + ": this paca-bench was built without the CUDA backend");
#endif
  return mc;
}

// The model of -m or --shape (nullptr when the shape does not fit this
// machine: reported and skipped), its label and load time.
paca_model* load_model(const Options& o, std::string* label, double* load_s) {
  paca_model_params mp;
  paca_model_params_init(&mp, sizeof mp);
  paca_cli::apply_developer_env(&mp);
  mp.n_threads = o.threads;
  mp.device = o.device.c_str();
  mp.load_mode = o.load_mode;
  mp.weight_dtype = o.weight_dtype;
  mp.fp8_targets = o.fp8_targets;
  mp.fp8_mode = o.fp8_mode;
  paca_model* m = nullptr;
  auto tl = Clock::now();
  *label = o.model;
  if (o.model.empty()) {
    paca_test_model_params p;
    if (paca_test_model_params_for_shape(o.shape.c_str(), &p) != PACA_OK) die(paca_last_error());
    if (paca_model_load_synthetic(&p, &mp, &m) != PACA_OK) {
      std::fprintf(stderr, "paca-bench: shape %s skipped: %s\n", o.shape.c_str(), paca_last_error());
      return nullptr;
    }
    *label = o.shape + " (synthetic)";
  } else if (paca_model_load(o.model.c_str(), &mp, &m) != PACA_OK) {
    die(paca_last_error());
  }
  *load_s = seconds_since(tl);
  if (o.weight_dtype == PACA_WEIGHTS_FP8)
    *label += std::string(", fp8 ") + (o.fp8_targets ? "all" : "mlp") +
              (o.fp8_mode == PACA_FP8_W8A8 ? " w8a8" : o.fp8_mode == PACA_FP8_W8A16 ? " w8a16" : "");
  return m;
}

// What a token costs the model: the bytes one decode step must read (every
// matrix once; the embedding table only when it is also the LM head,
// otherwise one row; the KV cache is added per depth) and the weights every
// prefill token multiplies (2 flops each: the embedding lookup is free, the
// LM head runs for the last position only, ignored here; attention is added
// per length).
struct ModelCost {
  double matrix_bytes = 0, matmul_params = 0;
};

ModelCost model_cost(const paca_model_info& info) {
  ModelCost c;
  c.matrix_bytes = static_cast<double>(info.weight_bytes);
  const double bytes_per_param = static_cast<double>(info.weight_bytes) / static_cast<double>(info.n_params);
  const double embed_params = static_cast<double>(info.n_vocab) * info.dim;
  if (!info.tied_embeddings) c.matrix_bytes -= embed_params * bytes_per_param;
  c.matmul_params = static_cast<double>(info.n_params) - embed_params - (info.tied_embeddings ? 0 : embed_params);
  return c;
}

struct PrefillResult {
  int n;
  Stats tps, ttft_ms;
  double flops_per_token, bound_tps;
};

// Prefill at each length: median of repeats, plus time to first token.
std::vector<PrefillResult> run_prefill(paca_model* m, const Options& o, const paca_model_info& info,
                                       const ModelCost& cost, double peak) {
  std::vector<PrefillResult> prefill;
  for (int n : o.prompts) {
    if (n + o.tokens > info.max_context) {
      std::fprintf(stderr, "paca-bench: prompt %d skipped (context %d)\n", n, info.max_context);
      continue;
    }
    std::vector<double> tps, ttft;
    const std::vector<int32_t> ids = prompt_ids(n, info.n_vocab);
    for (int r = 0; r < o.repeats; ++r) {
      paca_session* s = nullptr;
      if (paca_session_create(m, nullptr, &s) != PACA_OK) die(paca_last_error());
      auto t0 = Clock::now();
      if (paca_session_prefill(s, ids.data(), ids.size()) != PACA_OK) die(paca_last_error());
      const double sec = seconds_since(t0);  // the logits of the last position are ready: first token
      tps.push_back(n / sec);
      ttft.push_back(sec * 1000);
      paca_session_free(s);
    }
    const double flops = 2 * cost.matmul_params + 4.0 * info.n_layers * info.n_heads * info.head_dim * (n / 2.0);
    prefill.push_back({n, stats(tps), stats(ttft), flops, peak > 0 ? peak / flops : 0});
  }
  return prefill;
}

struct DecodeResult {
  int depth;
  Stats tps;
  double bytes_per_token, bound_tps;
};

// Decode at each depth: o.tokens steps after prefilling `depth` tokens.
std::vector<DecodeResult> run_decode(paca_model* m, const Options& o, const paca_model_info& info,
                                     const ModelCost& cost, double bw) {
  std::vector<DecodeResult> decode;
  for (int depth : o.depths) {
    if (depth + o.tokens > info.max_context) {
      std::fprintf(stderr, "paca-bench: depth %d skipped (context %d)\n", depth, info.max_context);
      continue;
    }
    std::vector<double> tps;
    const std::vector<int32_t> ids = prompt_ids(std::max(depth, 1), info.n_vocab);
    for (int r = 0; r < o.repeats; ++r) {
      paca_session* s = nullptr;
      if (paca_session_create(m, nullptr, &s) != PACA_OK) die(paca_last_error());
      if (paca_session_prefill(s, ids.data(), ids.size()) != PACA_OK) die(paca_last_error());
      auto t1 = Clock::now();
      for (int i = 0; i < o.tokens; ++i)
        if (paca_session_decode(s, (i * 31 + 5) % info.n_vocab) != PACA_OK) die(paca_last_error());
      tps.push_back(o.tokens / seconds_since(t1));
      paca_session_free(s);
    }
    const double kv = (std::max(depth, 1) + o.tokens / 2.0) * static_cast<double>(info.kv_bytes_per_token);
    decode.push_back({depth, stats(tps), cost.matrix_bytes + kv, bw / (cost.matrix_bytes + kv)});
  }
  return decode;
}

struct BatchResult {
  int batch;
  Stats tps;
  double bound_tps;
};

// Batched decode: B sequences (prompts of `depth` tokens, each its own)
// stepped together with paca_generator_next_batch; tokens/s counts all of
// them. Bound per step: every matrix once plus B caches over the bandwidth,
// or B tokens' flops over the FMA peak, whichever is slower.
std::vector<BatchResult> run_batched(paca_model* m, const Options& o, const paca_model_info& info,
                                     const ModelCost& cost, const Machine& mc, int depth) {
  std::vector<BatchResult> batched;
  for (int B : o.batches) {
    if (B < 1 || depth + o.tokens + 1 > info.max_context) continue;
    std::vector<double> tps;
    for (int r = 0; r < o.repeats; ++r) {
      std::vector<paca_session*> ss(static_cast<size_t>(B), nullptr);
      std::vector<paca_generator*> gs(static_cast<size_t>(B), nullptr);
      paca_sampler_params sp;
      paca_sampler_params_init(&sp, sizeof sp);
      sp.ignore_eos = 1;
      sp.max_new_tokens = o.tokens + 1;
      for (int b = 0; b < B; ++b) {
        std::vector<int32_t> ids = prompt_ids(depth, info.n_vocab);
        ids[0] = (b * 104729 + 3) % info.n_vocab;  // a different sequence each
        if (paca_session_create(m, nullptr, &ss[b]) != PACA_OK) die(paca_last_error());
        if (paca_generator_create(ss[b], ids.data(), ids.size(), &sp, nullptr, &gs[b]) != PACA_OK) die(paca_last_error());
      }
      std::vector<int32_t> out(static_cast<size_t>(B));
      auto t1 = Clock::now();
      for (int i = 0; i < o.tokens; ++i)
        if (paca_generator_next_batch(gs.data(), gs.size(), out.data(), nullptr, nullptr) != PACA_OK) die(paca_last_error());
      tps.push_back(static_cast<double>(B) * o.tokens / seconds_since(t1));
      for (int b = 0; b < B; ++b) {
        paca_generator_free(gs[b]);
        paca_session_free(ss[b]);
      }
    }
    const double kv = (depth + o.tokens / 2.0) * static_cast<double>(info.kv_bytes_per_token);
    const double mem_steps = mc.bw / (cost.matrix_bytes + B * kv);
    const double flop_steps = mc.peak > 0 ? mc.peak / (B * 2 * cost.matmul_params) : mem_steps;
    batched.push_back({B, stats(tps), B * std::min(mem_steps, flop_steps)});
  }
  return batched;
}

// Everything one run measured.
struct Report {
  std::string label;
  double load_s = 0, rss = 0;
  int batch_depth = 1;
  paca_model_info info{};
  Machine mc;
  std::vector<PrefillResult> prefill;
  std::vector<DecodeResult> decode;
  std::vector<BatchResult> batched;
};

void print_json(const Options& o, const Report& r) {
  const bool read = r.info.load_mode == PACA_LOAD_READ;
  const DecodeResult* d0 = r.decode.empty() ? nullptr : &r.decode.front();
  const PrefillResult* p0 = r.prefill.empty() ? nullptr : &r.prefill.front();
  std::printf("{\"device\":\"%s\",\"device_name\":\"%s\",", o.device.c_str(), r.mc.name.c_str());
  if (o.weight_dtype == PACA_WEIGHTS_FP8)
    std::printf("\"fp8\":{\"targets\":\"%s\",\"mode\":\"%s\"},", o.fp8_targets ? "all" : "mlp",
                o.fp8_mode == PACA_FP8_W8A8 ? "w8a8" : o.fp8_mode == PACA_FP8_W8A16 ? "w8a16" : "auto");
  std::printf("\"model\":\"%s\",\"threads\":%d,\"params\":%llu,\"weight_bytes\":%llu,\"load_s\":%.3f,"
              "\"load_mode\":\"%s\",\"read_bandwidth_GBps\":%.2f,\"fma_peak_GFLOPs\":%.1f,\"peak_rss_MiB\":%.1f",
              r.label.c_str(), o.threads, static_cast<unsigned long long>(r.info.n_params),
              static_cast<unsigned long long>(r.info.weight_bytes), r.load_s, read ? "read" : "mmap", r.mc.bw / 1e9,
              r.mc.peak / 1e9, r.rss);
  if (d0 != nullptr)
    std::printf(",\"decode_bytes_per_token\":%.0f,\"decode_tokens_per_s\":%.2f,\"decode_min\":%.2f,\"decode_max\":%.2f,"
                "\"decode_bound_tokens_per_s\":%.2f,\"decode_fraction_of_bound\":%.3f",
                d0->bytes_per_token, d0->tps.median, d0->tps.min, d0->tps.max, d0->bound_tps,
                d0->tps.median / d0->bound_tps);
  if (p0 != nullptr)
    std::printf(",\"prefill_tokens\":%d,\"prefill_tokens_per_s\":%.2f,\"ttft_ms\":%.2f", p0->n, p0->tps.median,
                p0->ttft_ms.median);
  std::printf(",\"prefill\":[");
  for (size_t i = 0; i < r.prefill.size(); ++i) {
    const auto& p = r.prefill[i];
    std::printf("%s{\"tokens\":%d,\"tokens_per_s\":%.2f,\"min\":%.2f,\"max\":%.2f,\"ttft_ms\":%.2f,"
                "\"flops_per_token\":%.4g,\"bound_tokens_per_s\":%.2f,\"fraction_of_bound\":%.3f}",
                i ? "," : "", p.n, p.tps.median, p.tps.min, p.tps.max, p.ttft_ms.median, p.flops_per_token, p.bound_tps,
                p.bound_tps > 0 ? p.tps.median / p.bound_tps : 0.0);
  }
  std::printf("],\"decode\":[");
  for (size_t i = 0; i < r.decode.size(); ++i) {
    const auto& d = r.decode[i];
    std::printf("%s{\"depth\":%d,\"tokens\":%d,\"tokens_per_s\":%.2f,\"min\":%.2f,\"max\":%.2f,"
                "\"bytes_per_token\":%.0f,\"bound_tokens_per_s\":%.2f,\"fraction_of_bound\":%.3f}",
                i ? "," : "", d.depth, o.tokens, d.tps.median, d.tps.min, d.tps.max, d.bytes_per_token, d.bound_tps,
                d.tps.median / d.bound_tps);
  }
  std::printf("],\"batch\":[");
  for (size_t i = 0; i < r.batched.size(); ++i) {
    const auto& b = r.batched[i];
    std::printf("%s{\"batch\":%d,\"depth\":%d,\"tokens_per_s\":%.2f,\"min\":%.2f,\"max\":%.2f,"
                "\"bound_tokens_per_s\":%.2f,\"fraction_of_bound\":%.3f}",
                i ? "," : "", b.batch, r.batch_depth, b.tps.median, b.tps.min, b.tps.max, b.bound_tps,
                b.tps.median / b.bound_tps);
  }
  std::printf("]}\n");
}

void print_text(const Options& o, const Report& r) {
  const bool read = r.info.load_mode == PACA_LOAD_READ;
  std::printf("model            %s (%.1fM params, %.1f MiB weights, %s), %d threads, load %.2f s\n", r.label.c_str(),
              r.info.n_params / 1e6, r.info.weight_bytes / 1048576.0, read ? "read into memory" : "mapped", o.threads,
              r.load_s);
  if (o.device != "cpu")
    std::printf("machine          %s %s: copy bandwidth %.2f GB/s (read + write, 1 GiB); prefill bound not measured\n",
                o.device.c_str(), r.mc.name.c_str(), r.mc.bw / 1e9);
  else
    std::printf("machine          read bandwidth %.2f GB/s (1 GiB buffer), FMA peak %.1f GFLOP/s (%d threads)\n",
                r.mc.bw / 1e9, r.mc.peak / 1e9, o.threads);
  for (const auto& p : r.prefill)
    std::printf("prefill %5d    %8.2f tok/s (min %.2f, max %.2f), first token %.1f ms; bound %.1f tok/s "
                "(%.2f GFLOP/token) -> %.0f%%\n",
                p.n, p.tps.median, p.tps.min, p.tps.max, p.ttft_ms.median, p.bound_tps, p.flops_per_token / 1e9,
                p.bound_tps > 0 ? 100 * p.tps.median / p.bound_tps : 0.0);
  for (const auto& d : r.decode)
    std::printf("decode @%-6d   %8.2f tok/s (min %.2f, max %.2f) over %d tokens; bound %.1f tok/s "
                "(%.1f MB/token) -> %.0f%%\n",
                d.depth, d.tps.median, d.tps.min, d.tps.max, o.tokens, d.bound_tps, d.bytes_per_token / 1e6,
                100 * d.tps.median / d.bound_tps);
  for (const auto& b : r.batched)
    std::printf("batch %-3d @%-5d %8.2f tok/s in all (min %.2f, max %.2f); bound %.1f tok/s -> %.0f%%\n", b.batch,
                r.batch_depth, b.tps.median, b.tps.min, b.tps.max, b.bound_tps, 100 * b.tps.median / b.bound_tps);
  std::printf("peak RSS         %.1f MiB (medians of %d repeats)\n", r.rss, o.repeats);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  Report r;
  r.mc = measure_machine(o);
  reset_peak_rss();
  paca_model* m = load_model(o, &r.label, &r.load_s);
  if (m == nullptr) {
    if (o.json) std::printf("{\"model\":\"%s\",\"skipped\":true}\n", o.shape.c_str());
    return 0;
  }
  r.info.struct_size = sizeof r.info;
  paca_model_get_info(m, &r.info);
  const ModelCost cost = model_cost(r.info);
  r.prefill = run_prefill(m, o, r.info, cost, r.mc.peak);
  r.decode = run_decode(m, o, r.info, cost, r.mc.bw);
  r.batch_depth = std::max(o.depths.front(), 1);
  r.batched = run_batched(m, o, r.info, cost, r.mc, r.batch_depth);
  r.rss = peak_rss_mib();
  if (o.json) print_json(o, r);
  else print_text(o, r);
  paca_model_free(m);
  return 0;
}
