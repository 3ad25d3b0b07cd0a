// paca - the command-line front end, written against paca.h only.
//
//   paca run  -m PATH [--prompt-tokens 1,2,3] [-n N] [--threads N] [--ctx N] [--ignore-eos] [--json]
//   paca eval -m PATH --prompt-tokens 1,2,3 [--top K] [--logits-out FILE] [--json]
//   paca info -m PATH [--json]
//   paca make-test-model DIR [--seed N] [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ffn N] [--vocab N]
#include <paca/paca.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

[[noreturn]] void die(const char* fmt, const char* arg = "") {
  std::fprintf(stderr, "paca: ");
  std::fprintf(stderr, fmt, arg);
  std::fprintf(stderr, "\n");
  std::exit(2);
}

void die_status(const char* what, paca_status s) {
  std::fprintf(stderr, "paca: %s failed: %s: %s\n", what, paca_status_name(s), paca_last_error());
  std::exit(1);
}

void usage() {
  std::fprintf(stderr,
               "usage:\n"
               "  paca run  -m PATH [--prompt-tokens 1,2,3] [-n N] [--threads N] [--ctx N] [--ignore-eos] [--json]\n"
               "  paca eval -m PATH --prompt-tokens 1,2,3 [--top K] [--logits-out FILE] [--threads N] [--json]\n"
               "  paca info -m PATH [--json]\n"
               "  paca make-test-model DIR [--seed N] [--dim N] [--layers N] [--heads N] [--kv-heads N]\n"
               "                           [--ffn N] [--vocab N] [--ctx N] [--tied]\n"
               "PATH is a Hugging Face model directory, a .gguf file or a llama2.c .bin checkpoint.\n");
}

long parse_long(const std::string& s, const char* what, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v < lo || v > hi) {
    std::fprintf(stderr, "paca: %s: '%s' is not an integer in [%ld, %ld]\n", what, s.c_str(), lo, hi);
    std::exit(2);
  }
  return v;
}

std::vector<int32_t> parse_tokens(const std::string& s) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    out.push_back(static_cast<int32_t>(parse_long(s.substr(i, j - i), "--prompt-tokens", INT32_MIN, INT32_MAX)));
    i = j + 1;
  }
  return out;
}

struct Args {
  std::string cmd, model, dir, logits_out;
  std::vector<int32_t> prompt;
  bool have_prompt = false, json = false, ignore_eos = false, tied = false, progress = false;
  long n_predict = 32, threads = 0, ctx = 0, top = 10;
  paca_test_model_params tm = paca_test_model_params_default();
};

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc < 2) {
    usage();
    std::exit(2);
  }
  a.cmd = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die("%s needs a value", k.c_str());
      return argv[++i];
    };
    if (k == "-m" || k == "--model") a.model = val();
    else if (k == "--prompt-tokens") { a.prompt = parse_tokens(val()); a.have_prompt = true; }
    else if (k == "-n" || k == "--n-predict") a.n_predict = parse_long(val(), "-n", 0, 1 << 24);
    else if (k == "--threads" || k == "-t") a.threads = parse_long(val(), "--threads", 0, 4096);
    else if (k == "--ctx") a.ctx = parse_long(val(), "--ctx", 0, 1 << 24);
    else if (k == "--top") a.top = parse_long(val(), "--top", 1, 1 << 21);
    else if (k == "--logits-out") a.logits_out = val();
    else if (k == "--json") a.json = true;
    else if (k == "--ignore-eos") a.ignore_eos = true;
    else if (k == "--progress") a.progress = true;
    else if (k == "--seed") a.tm.seed = static_cast<uint64_t>(parse_long(val(), "--seed", 0, 1L << 62));
    else if (k == "--dim") a.tm.dim = static_cast<int32_t>(parse_long(val(), "--dim", 1, 65536));
    else if (k == "--layers") a.tm.n_layers = static_cast<int32_t>(parse_long(val(), "--layers", 1, 1024));
    else if (k == "--heads") a.tm.n_heads = static_cast<int32_t>(parse_long(val(), "--heads", 1, 1024));
    else if (k == "--kv-heads") a.tm.n_kv_heads = static_cast<int32_t>(parse_long(val(), "--kv-heads", 1, 1024));
    else if (k == "--ffn") a.tm.ffn_dim = static_cast<int32_t>(parse_long(val(), "--ffn", 1, 1 << 20));
    else if (k == "--vocab") a.tm.n_vocab = static_cast<int32_t>(parse_long(val(), "--vocab", 1, 1 << 21));
    else if (k == "--tied") a.tm.tied_embeddings = 1;
    else if (k == "-h" || k == "--help") { usage(); std::exit(0); }
    else if (a.cmd == "make-test-model" && a.dir.empty() && k[0] != '-') a.dir = k;
    else die("unknown argument '%s' (see paca --help)", k.c_str());
  }
  if (a.cmd == "make-test-model" && a.ctx > 0) a.tm.max_context = static_cast<int32_t>(a.ctx);
  return a;
}

int32_t progress_bar(void*, float f) {
  int w = 40, n = static_cast<int>(f * w + 0.5f);
  std::fprintf(stderr, "\rloading [%.*s%*s] %3d%%", n, "========================================", w - n, "",
               static_cast<int>(f * 100 + 0.5f));
  if (f >= 1.0f) std::fprintf(stderr, "\n");
  std::fflush(stderr);
  return 0;
}

paca_model* load(const Args& a, double* load_ms) {
  if (a.model.empty()) die("-m PATH is required");
  paca_model_params mp = paca_model_params_default();
  mp.n_threads = static_cast<int32_t>(a.threads);
  if (a.progress || isatty(2)) mp.progress = progress_bar;
  paca_model* m = nullptr;
  auto t0 = Clock::now();
  paca_status s = paca_model_load(a.model.c_str(), &mp, &m);
  if (s != PACA_OK) die_status("loading the model", s);
  if (load_ms) *load_ms = ms_since(t0);
  return m;
}

paca_model_info info_of(paca_model* m) {
  paca_model_info info{};
  info.struct_size = sizeof info;
  paca_status s = paca_model_get_info(m, &info);
  if (s != PACA_OK) die_status("paca_model_get_info", s);
  return info;
}

paca_session* new_session(paca_model* m, long ctx) {
  paca_session_params sp = paca_session_params_default();
  sp.n_ctx = static_cast<int32_t>(ctx);
  paca_session* s = nullptr;
  paca_status st = paca_session_create(m, &sp, &s);
  if (st != PACA_OK) die_status("creating the session", st);
  return s;
}

int32_t argmax(const float* v, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<int32_t>(best);
}

void print_ids(const std::vector<int32_t>& v) {
  std::printf("[");
  for (size_t i = 0; i < v.size(); ++i) std::printf(i ? ",%d" : "%d", v[i]);
  std::printf("]");
}

int cmd_run(const Args& a) {
  double load_ms = 0;
  paca_model* m = load(a, &load_ms);
  paca_model_info info = info_of(m);
  std::vector<int32_t> prompt = a.prompt;
  if (!a.have_prompt) {
    if (info.bos_id < 0) die("the model has no BOS token: give --prompt-tokens");
    prompt = {info.bos_id};
  }
  paca_session* s = new_session(m, a.ctx);
  auto t0 = Clock::now();
  paca_status st = paca_session_prefill(s, prompt.data(), prompt.size());
  if (st != PACA_OK) die_status("prefill", st);
  double prefill_ms = ms_since(t0);
  std::vector<int32_t> out;
  const char* reason = "length";
  auto t1 = Clock::now();
  double ttft_ms = 0;
  for (long i = 0; i < a.n_predict; ++i) {
    const float* logits = nullptr;
    size_t nv = 0;
    st = paca_session_logits(s, &logits, &nv);
    if (st != PACA_OK) die_status("reading logits", st);
    int32_t tok = argmax(logits, nv);
    out.push_back(tok);
    if (i == 0) ttft_ms = ms_since(t0);
    if (!a.json) {
      std::printf(i ? " %d" : "%d", tok);
      std::fflush(stdout);
    }
    bool eos = std::find(info.eos_ids, info.eos_ids + info.n_eos_ids, tok) != info.eos_ids + info.n_eos_ids;
    if (eos && !a.ignore_eos) {
      reason = "eos";
      break;
    }
    if (i + 1 == a.n_predict) break;
    if (paca_session_length(s) >= paca_session_context_size(s)) {
      reason = "context_full";
      break;
    }
    st = paca_session_decode(s, tok);
    if (st != PACA_OK) die_status("decode", st);
  }
  double decode_ms = ms_since(t1);
  // decode steps actually run: one per generated token after the first
  double decode_steps = out.size() > 1 ? static_cast<double>(out.size() - 1) : 0.0;
  double prefill_tps = prefill_ms > 0 ? prompt.size() / (prefill_ms / 1000) : 0;
  double decode_tps = decode_ms > 0 && decode_steps > 0 ? decode_steps / (decode_ms / 1000) : 0;
  if (a.json) {
    std::printf("{\"prompt_tokens\":");
    print_ids(prompt);
    std::printf(",\"tokens\":");
    print_ids(out);
    std::printf(",\"stop_reason\":\"%s\",\"timings\":{\"load_ms\":%.3f,\"ttft_ms\":%.3f,"
                "\"prefill_tokens_per_s\":%.3f,\"decode_tokens_per_s\":%.3f}}\n",
                reason, load_ms, ttft_ms, prefill_tps, decode_tps);
  } else {
    std::printf("\n");
  }
  std::fprintf(stderr, "paca: load %.1f ms, time to first token %.1f ms, prefill %.1f tok/s (%zu tokens), decode %.1f tok/s (%.0f steps), stop: %s\n",
               load_ms, ttft_ms, prefill_tps, prompt.size(), decode_tps, decode_steps, reason);
  paca_session_free(s);
  paca_model_free(m);
  return 0;
}

int cmd_eval(const Args& a) {
  if (!a.have_prompt) die("eval needs --prompt-tokens");
  paca_model* m = load(a, nullptr);
  paca_session* s = new_session(m, a.ctx);
  paca_status st = paca_session_prefill(s, a.prompt.data(), a.prompt.size());
  if (st != PACA_OK) die_status("prefill", st);
  const float* logits = nullptr;
  size_t nv = 0;
  st = paca_session_logits(s, &logits, &nv);
  if (st != PACA_OK) die_status("reading logits", st);
  std::vector<int32_t> idx(nv);
  for (size_t i = 0; i < nv; ++i) idx[i] = static_cast<int32_t>(i);
  size_t k = std::min<size_t>(static_cast<size_t>(a.top), nv);
  std::partial_sort(idx.begin(), idx.begin() + static_cast<long>(k), idx.end(),
                    [&](int32_t x, int32_t y) { return logits[x] > logits[y] || (logits[x] == logits[y] && x < y); });
  if (!a.logits_out.empty()) {
    FILE* f = std::fopen(a.logits_out.c_str(), "wb");
    if (!f || std::fwrite(logits, sizeof(float), nv, f) != nv || std::fclose(f) != 0)
      die("cannot write '%s'", a.logits_out.c_str());
  }
  std::printf(a.json ? "{\"top\":[" : "");
  for (size_t i = 0; i < k; ++i) {
    if (a.json) std::printf(i ? ",[%d,%.9g]" : "[%d,%.9g]", idx[i], logits[idx[i]]);
    else std::printf("%d\t%.6f\n", idx[i], logits[idx[i]]);
  }
  if (a.json) std::printf("]}\n");
  paca_session_free(s);
  paca_model_free(m);
  return 0;
}

int cmd_info(const Args& a) {
  paca_model* m = load(a, nullptr);
  size_t need = 0;
  paca_model_describe_json(m, nullptr, 0, &need);
  std::string buf(need, '\0');
  paca_status st = paca_model_describe_json(m, buf.data(), buf.size(), &need);
  if (st != PACA_OK) die_status("describing the model", st);
  buf.resize(need - 1);
  if (a.json) {
    std::printf("%s\n", buf.c_str());
  } else {
    paca_model_info i = info_of(m);
    const char* fmt[] = {"hf-safetensors", "gguf", "llama2c"};
    std::printf("format       %s\n", i.format >= 0 && i.format < 3 ? fmt[i.format] : "?");
    std::printf("architecture llama: dim %d, %d layers, %d heads (%d kv, head dim %d), ffn %d\n", i.dim, i.n_layers,
                i.n_heads, i.n_kv_heads, i.head_dim, i.ffn_dim);
    std::printf("vocabulary   %d (bos %d, eos", i.n_vocab, i.bos_id);
    for (int k = 0; k < i.n_eos_ids; ++k) std::printf(" %d", i.eos_ids[k]);
    std::printf(")\ncontext      %d, rope theta %g%s (factor %g)\n", i.max_context, i.rope_theta,
                i.rope_scaling == PACA_ROPE_SCALING_LLAMA3 ? ", llama3 scaling" : "", i.rope_factor);
    std::printf("parameters   %llu (%.1f MiB of weights)%s\n", static_cast<unsigned long long>(i.n_params),
                i.weight_bytes / 1048576.0, i.tied_embeddings ? ", tied embeddings" : "");
    std::printf("memory       %.1f MiB + %.1f KiB of KV cache per token (%.1f MiB at full context)\n",
                i.weight_bytes / 1048576.0, i.kv_bytes_per_token / 1024.0,
                (i.weight_bytes + static_cast<double>(i.kv_bytes_per_token) * i.max_context) / 1048576.0);
    std::printf("details      %s\n", buf.c_str());
  }
  paca_model_free(m);
  return 0;
}

int cmd_make_test_model(const Args& a) {
  if (a.dir.empty()) die("make-test-model needs a directory");
  paca_status st = paca_make_test_model(a.dir.c_str(), &a.tm);
  if (st != PACA_OK) die_status("make-test-model", st);
  std::fprintf(stderr, "paca: wrote a seeded-random Llama checkpoint (seed %llu) to %s\n",
               static_cast<unsigned long long>(a.tm.seed), a.dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse_args(argc, argv);
  if (a.cmd == "run") return cmd_run(a);
  if (a.cmd == "eval") return cmd_eval(a);
  if (a.cmd == "info") return cmd_info(a);
  if (a.cmd == "make-test-model") return cmd_make_test_model(a);
  if (a.cmd == "--version" || a.cmd == "version") {
    std::printf("paca %s (ABI %u)\n", paca_version(), paca_abi_version());
    return 0;
  }
  if (a.cmd == "-h" || a.cmd == "--help" || a.cmd == "help") {
    usage();
    return 0;
  }
  usage();
  return 2;
}
