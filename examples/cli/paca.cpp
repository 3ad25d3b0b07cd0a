// paca - the command-line front end, written against paca.h only.
//
//   paca run  -m PATH [-p TEXT | --prompt-tokens 1,2,3] [-n N] [--threads N] [--ctx N] [--ignore-eos] [--json]
//             [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--frequency-penalty F]
//             [--presence-penalty P] [--repeat-last-n N] [--seed S] [--stop TEXT]... [--stop-token ID]... [--logprobs N]
//             [--prompt-cache FILE] [--grammar FILE | --json-schema FILE]
//   paca eval -m PATH (-p TEXT | --prompt-tokens 1,2,3) [--top K] [--logits-out FILE] [--json]
//   (run, eval, info) [--device D] [--kv-memory-fraction F]
//   (run, eval, info) [--tensor-parallel N] [--pipeline-parallel N] [--devices LIST] [--world-size N]
//                     [--rank R] [--rendezvous HOST:PORT] [--comm-timeout MS]
//   paca tokenize   -m PATH [--special] [--no-bos] [--json] [--] TEXT
//   paca detokenize -m PATH [--special] [--json] [--] 1,2,3
//   paca info -m PATH [--json]
//   paca bench [paca-bench options]   (runs paca-bench: throughput next to its bounds)
//   paca make-test-model DIR [--seed N] [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ffn N] [--vocab N]
//   paca serve -m PATH [--port N] ...   (serve.cpp: an OpenAI-compatible HTTP server; needs cpp-httplib)
#include <nlohmann/json.hpp>
#include "dev_env.h"
#include <paca/paca.h>
#include <paca/paca_experimental.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifdef PACA_WITH_SERVE
#include "serve.h"
#endif

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
               "  paca run  -m PATH [-p TEXT | --prompt-tokens 1,2,3] [-n N] [--threads N] [--ctx N] [--ignore-eos] [--json]\n"
               "            [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R]\n"
               "            [--frequency-penalty F] [--presence-penalty P] [--repeat-last-n N] [--seed S]\n"
               "            [--stop TEXT]... [--stop-token ID]... [--logprobs N] [--prompt-cache FILE]\n"
               "            [--grammar FILE | --json-schema FILE]\n"
               "            [--chat [--system TEXT] [--tools JSON|@FILE] [--builtin-tools a,b] [--date TEXT]]\n"
               "  paca eval -m PATH (-p TEXT | --prompt-tokens 1,2,3) [--chat ...] [--top K] [--logits-out FILE] [--threads N] [--json]\n"
               "  run, eval, info also take: [--device cpu|cuda|cuda:N] [--kv-memory-fraction F]\n"
               "            [--tensor-parallel N] [--pipeline-parallel N] [--devices LIST]\n"
               "            [--world-size N [--rank R] [--rendezvous HOST:PORT]] [--comm-timeout MS]\n"
               "  paca tokenize   -m PATH [--special] [--no-bos] [--json] [--] TEXT\n"
               "  paca detokenize -m PATH [--special] [--json] [--] 1,2,3\n"
               "  paca info -m PATH [--json]\n"
               "  paca chat-template -m PATH      (the model's chat format as JSON: origin, style, tokens, source)\n"
               "  paca plan --shape NAME [--tp N] [--pp N] [--weight-dtype bf16|fp8] [--fp8-attention]\n"
               "            [--kv-dtype bf16|f32|fp8] [--ctx N] [--batch N] [--device-memory GB] [--json]\n"
               "            (bytes per rank of a sharded layout; exit 3 when it does not fit)\n"
               "  paca bench [paca-bench options]   (runs paca-bench: throughput next to its bounds)\n"
               "  paca quantize IN.gguf OUT.gguf --type MIX [--threads N] [--json]\n"
               "            (MIX: q4_0 q4_1 q5_0 q5_1 q8_0 q4_k_s q4_k_m q5_k_s q5_k_m q6_k; see paca_quantize_gguf)\n"
               "  paca make-test-model DIR [--seed N] [--dim N] [--layers N] [--heads N] [--kv-heads N]\n"
               "                           [--ffn N] [--vocab N] [--ctx N] [--tied]\n"
               "  paca serve -m PATH [--port N] [options]   (an OpenAI-compatible HTTP server; paca serve --help)\n"
               "PATH is a Hugging Face model directory, a .gguf file or a llama2.c .bin checkpoint.\n"
               "Model options (run, eval, info): --weight-dtype fp8 quantizes the MLP weights to FP8 at load\n"
               "(Meta's recipe: first and last layer kept; --fp8-attention adds attention); --fp8-mode auto|w8a8|w8a16\n"
               "chooses activation rounding (w8a8) or weight-only FP8 (w8a16). The weights are read into huge-page\n"
               "memory when a file takes at most half the available memory (faster CPU decode), else mapped;\n"
               "--no-mmap always reads them, --mmap always maps them (quick load, pages shared with the page cache).\n"
               "--device D runs the model on \"cpu\" (the default), \"cuda\" (= cuda:0) or \"cuda:N\"; an unavailable device\n"
               "is an error that says why. --kv-memory-fraction F (0 < F <= 1) reserves that fraction of the device's\n"
               "free memory for the KV cache at load (default: blocks allocated as sessions grow).\n"
               "-p TEXT is tokenized with BOS; special-token text in it stays text unless --special.\n"
               "--chat makes -p the user's message in the model's chat format (with --system, tools and the date\n"
               "of Llama 3.1); run --json then adds \"reply\": the reply's content and tool calls.\n"
               "'--' ends the options, so a TEXT may start with '-'.\n"
               "Sampling (run): temperature 0 (the default) is greedy; --seed S makes sampled runs reproducible;\n"
               "--stop TEXT and --stop-token ID end the generation (repeatable); --logprobs N adds log-probabilities\n"
               "(and N alternatives, up to 20) to --json output.\n"
               "--grammar FILE (GBNF, start rule root) or --json-schema FILE constrains every token of run's output\n"
               "to the grammar; the end token comes only when the text is complete.\n"
               "Sharding: --tensor-parallel N splits every layer over N ranks, --pipeline-parallel N the layers\n"
               "into N stages; on the CPU the ranks are threads sharing --threads. With --world-size W (= TP x PP)\n"
               "this process is one rank of W processes: started by mpirun (MPI), or each given --rank and the\n"
               "--rendezvous HOST:PORT where rank 0 listens; only rank 0 prints. A lost peer is an error after\n"
               "--comm-timeout MS (default 60000).\n"
               "--prompt-cache FILE (run): reuse the longest prefix of the prompt that FILE holds (a session snapshot),\n"
               "prefill only the rest, then save the prompt's state to FILE.\n");
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

float parse_float(const std::string& s, const char* what) {
  char* end = nullptr;
  errno = 0;
  float v = std::strtof(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno != 0) {
    std::fprintf(stderr, "paca: %s: '%s' is not a number\n", what, s.c_str());
    std::exit(2);
  }
  return v;  // ranges are checked by paca_sampler_create, which names the field
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
  std::string prompt_cache;  // run --prompt-cache FILE
  std::vector<int32_t> prompt;
  bool have_prompt = false, json = false, ignore_eos = false, tied = false, progress = false;
  int load_mode = PACA_LOAD_AUTO;
  int32_t weight_dtype = PACA_WEIGHTS_AS_STORED, fp8_mode = PACA_FP8_AUTO, fp8_targets = 0;
  std::string text;                     // -p TEXT
  bool have_text = false, special = false, no_bos = false;
  std::vector<std::string> positional;  // operands (tokenize TEXT, detokenize ids, make-test-model DIR)
  long n_predict = 32, threads = 0, ctx = 0, top = 10;
  paca_sampler_params sp = [] {  // run: sampling (default greedy)
    paca_sampler_params p;
    paca_sampler_params_init(&p, sizeof p);
    return p;
  }();
  std::vector<int32_t> stop_ids;                           // --stop-token
  std::vector<std::string> stops;                          // --stop
  std::string grammar_file, schema_file;                   // --grammar FILE, --json-schema FILE
  long logprobs = -1;                                      // --logprobs N: -1 off, else N alternatives
  paca_test_model_params tm = [] {
    paca_test_model_params p;
    paca_test_model_params_init(&p, sizeof p);
    return p;
  }();
  bool chat = false;                    // --chat: -p is a user message in the model's chat format
  // plan: the request (see paca_plan_json)
  std::string shape;
  long tp = 1, pp = 1, batch = 1;
  double device_memory = 80;
  std::string kv_dtype = "bf16";
  std::string system, tools, builtin_tools, date;  // --system, --tools, --builtin-tools, --date
  // sharding (run, eval, info): --tensor-parallel/--tp and --pipeline-parallel/--pp above
  std::string devices, rendezvous;  // --devices LIST, --rendezvous HOST:PORT
  std::string device;               // --device D ("" = the library's default, cpu)
  float kv_memory_fraction = 0;     // --kv-memory-fraction F
  long rank = -1, world_size = 1, comm_timeout = 0;  // --rank, --world-size, --comm-timeout MS
  std::string quant_type;  // quantize --type MIX
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
    else if (k == "-p" || k == "--prompt") { a.text = val(); a.have_text = true; }
    else if (k == "--special") a.special = true;
    else if (k == "--chat") a.chat = true;
    else if (k == "--shape") a.shape = val();
    else if (k == "--tp" || k == "--tensor-parallel") a.tp = parse_long(val(), "--tp", 1, 4096);
    else if (k == "--pp" || k == "--pipeline-parallel") a.pp = parse_long(val(), "--pp", 1, 4096);
    else if (k == "--devices") a.devices = val();
    else if (k == "--device") a.device = val();
    else if (k == "--kv-memory-fraction") a.kv_memory_fraction = parse_float(val(), "--kv-memory-fraction");
    else if (k == "--rank") a.rank = parse_long(val(), "--rank", 0, 1023);
    else if (k == "--world-size") a.world_size = parse_long(val(), "--world-size", 1, 1024);
    else if (k == "--rendezvous") a.rendezvous = val();
    else if (k == "--comm-timeout") a.comm_timeout = parse_long(val(), "--comm-timeout", 1, 86400000);
    else if (k == "--batch") a.batch = parse_long(val(), "--batch", 1, 1 << 20);
    else if (k == "--device-memory") a.device_memory = parse_float(val(), "--device-memory");
    else if (k == "--kv-dtype") a.kv_dtype = val();
    else if (k == "--system") { a.system = val(); a.chat = true; }
    else if (k == "--tools") { a.tools = val(); a.chat = true; }
    else if (k == "--builtin-tools") { a.builtin_tools = val(); a.chat = true; }
    else if (k == "--date") { a.date = val(); a.chat = true; }
    else if (k == "--no-bos") a.no_bos = true;
    else if (k == "--") { while (i + 1 < argc) a.positional.push_back(argv[++i]); }
    else if (k == "-n" || k == "--n-predict") a.n_predict = parse_long(val(), "-n", 0, 1 << 24);
    else if (k == "--threads" || k == "-t") a.threads = parse_long(val(), "--threads", 0, 4096);
    else if (k == "--ctx") a.ctx = parse_long(val(), "--ctx", 0, 1 << 24);
    else if (k == "--top") a.top = parse_long(val(), "--top", 1, 1 << 21);
    else if (k == "--logits-out") a.logits_out = val();
    else if (k == "--prompt-cache") a.prompt_cache = val();
    else if (k == "--json") a.json = true;
    else if (k == "--ignore-eos") a.ignore_eos = true;
    else if (k == "--progress") a.progress = true;
    else if (k == "--no-mmap") a.load_mode = PACA_LOAD_READ;
    else if (k == "--mmap") a.load_mode = PACA_LOAD_MMAP;
    else if (k == "--weight-dtype") {
      std::string v = val();
      if (v == "fp8") a.weight_dtype = PACA_WEIGHTS_FP8;
      else if (v != "auto" && v != "stored" && v != "bf16") die("--weight-dtype: '%s' is not fp8, bf16 or auto", v.c_str());
    } else if (k == "--fp8-mode") {
      std::string v = val();
      if (v == "w8a8") a.fp8_mode = PACA_FP8_W8A8;
      else if (v == "w8a16") a.fp8_mode = PACA_FP8_W8A16;
      else if (v != "auto") die("--fp8-mode: '%s' is not auto, w8a8 or w8a16", v.c_str());
    } else if (k == "--fp8-attention") a.fp8_targets = PACA_FP8_MLP | PACA_FP8_ATTENTION | PACA_FP8_KEEP_FIRST_LAST;
    else if (k == "--seed") a.tm.seed = a.sp.seed = static_cast<uint64_t>(parse_long(val(), "--seed", 0, 1L << 62));
    else if (k == "--temperature" || k == "--temp") a.sp.temperature = parse_float(val(), "--temperature");
    else if (k == "--top-k") a.sp.top_k = static_cast<int32_t>(parse_long(val(), "--top-k", 0, INT32_MAX));
    else if (k == "--top-p") a.sp.top_p = parse_float(val(), "--top-p");
    else if (k == "--min-p") a.sp.min_p = parse_float(val(), "--min-p");
    else if (k == "--repeat-penalty") a.sp.repeat_penalty = parse_float(val(), "--repeat-penalty");
    else if (k == "--frequency-penalty") a.sp.frequency_penalty = parse_float(val(), "--frequency-penalty");
    else if (k == "--presence-penalty") a.sp.presence_penalty = parse_float(val(), "--presence-penalty");
    else if (k == "--repeat-last-n") a.sp.repeat_last_n = static_cast<int32_t>(parse_long(val(), "--repeat-last-n", -1, INT32_MAX));
    else if (k == "--stop-token") a.stop_ids.push_back(static_cast<int32_t>(parse_long(val(), "--stop-token", 0, INT32_MAX)));
    else if (k == "--stop") a.stops.push_back(val());
    else if (k == "--grammar") a.grammar_file = val();
    else if (k == "--json-schema") a.schema_file = val();
    else if (k == "--logprobs") a.logprobs = parse_long(val(), "--logprobs", 0, PACA_MAX_TOP_LOGPROBS);
    else if (k == "--dim") a.tm.dim = static_cast<int32_t>(parse_long(val(), "--dim", 1, 65536));
    else if (k == "--layers") a.tm.n_layers = static_cast<int32_t>(parse_long(val(), "--layers", 1, 1024));
    else if (k == "--heads") a.tm.n_heads = static_cast<int32_t>(parse_long(val(), "--heads", 1, 1024));
    else if (k == "--kv-heads") a.tm.n_kv_heads = static_cast<int32_t>(parse_long(val(), "--kv-heads", 1, 1024));
    else if (k == "--ffn") a.tm.ffn_dim = static_cast<int32_t>(parse_long(val(), "--ffn", 1, 1 << 20));
    else if (k == "--vocab") a.tm.n_vocab = static_cast<int32_t>(parse_long(val(), "--vocab", 1, 1 << 21));
    else if (k == "--tied") a.tm.tied_embeddings = 1;
    else if (k == "--type") a.quant_type = val();
    else if (k == "-h" || k == "--help") { usage(); std::exit(0); }
    else if (k.empty() || k[0] != '-') a.positional.push_back(k);
    else die("unknown argument '%s' (see paca --help)", k.c_str());
  }
  if (a.cmd == "make-test-model" && a.ctx > 0) a.tm.max_context = static_cast<int32_t>(a.ctx);
  if (a.cmd == "make-test-model" && !a.positional.empty()) a.dir = a.positional[0];
  if (a.have_text && a.have_prompt) die("give either -p TEXT or --prompt-tokens, not both");
  size_t max_operands = a.cmd == "tokenize" || a.cmd == "detokenize" || a.cmd == "make-test-model" ? 1
                        : a.cmd == "quantize"                                                     ? 2
                                                                                                  : 0;
  if (a.positional.size() > max_operands) die("unexpected argument '%s' (see paca --help)", a.positional.back().c_str());
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

// This process's rank in a multi-process group: --rank, else mpirun's.
long this_rank(const Args& a) {
  if (a.rank >= 0) return a.rank;
  const char* env = std::getenv("OMPI_COMM_WORLD_RANK");
  return env != nullptr ? std::strtol(env, nullptr, 10) : 0;
}

paca_model* load(const Args& a, double* load_ms) {
  if (a.model.empty()) die("-m PATH is required");
  paca_model_params mp;
  paca_model_params_init(&mp, sizeof mp);
  paca_cli::apply_developer_env(&mp);
  mp.n_threads = static_cast<int32_t>(a.threads);
  mp.weight_dtype = a.weight_dtype;
  mp.fp8_mode = a.fp8_mode;
  mp.fp8_targets = a.fp8_targets;
  mp.load_mode = a.load_mode;
  mp.tensor_parallel = static_cast<int32_t>(std::min<long>(a.tp, INT32_MAX));
  mp.pipeline_parallel = static_cast<int32_t>(std::min<long>(a.pp, INT32_MAX));
  mp.devices = a.devices.empty() ? nullptr : a.devices.c_str();
  mp.device = a.device.empty() ? nullptr : a.device.c_str();
  mp.kv_memory_fraction = a.kv_memory_fraction;  // range checked by paca_model_load
  mp.rank = static_cast<int32_t>(a.rank);
  mp.world_size = static_cast<int32_t>(a.world_size);
  mp.rendezvous = a.rendezvous.empty() ? nullptr : a.rendezvous.c_str();
  mp.comm_timeout_ms = static_cast<int32_t>(a.comm_timeout);
  if (a.world_size > 1 && this_rank(a) > 0) {
    // every rank of a multi-process group computes the same output: rank 0 prints it
    if (std::freopen("/dev/null", "w", stdout) == nullptr) die("cannot silence the output of rank %s", "> 0");
  }
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
  paca_session_params sp;
  paca_session_params_init(&sp, sizeof sp);
  sp.n_ctx = static_cast<int32_t>(ctx);
  paca_session* s = nullptr;
  paca_status st = paca_session_create(m, &sp, &s);
  if (st != PACA_OK) die_status("creating the session", st);
  return s;
}

void print_ids(const std::vector<int32_t>& v) {
  std::printf("[");
  for (size_t i = 0; i < v.size(); ++i) std::printf(i ? ",%d" : "%d", v[i]);
  std::printf("]");
}

// Prints s (valid UTF-8) as a JSON string.
void print_json_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      case '\b': o += "\\b"; break;
      case '\f': o += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char u[8];
          std::snprintf(u, sizeof u, "\\u%04x", c);
          o += u;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  o += '"';
  std::fwrite(o.data(), 1, o.size(), stdout);
}

std::vector<int32_t> tokenize_or_die(paca_model* m, const std::string& text, uint32_t flags) {
  size_t n = 0;
  paca_status st = paca_tokenize(m, text.data(), text.size(), flags, nullptr, 0, &n);
  if (st != PACA_OK && st != PACA_ERR_BUFFER_TOO_SMALL) die_status("tokenizing the text", st);
  std::vector<int32_t> ids(n);
  st = paca_tokenize(m, text.data(), text.size(), flags, ids.data(), ids.size(), &n);
  if (st != PACA_OK) die_status("tokenizing the text", st);
  return ids;
}

// The contents of a file named by an option (what: the option, for messages).
std::string read_text_file(const std::string& path, const char* what) {
  FILE* f = std::fopen(path.c_str(), "rb");
  const std::string where = std::string(what) + ": '" + path + "'";
  if (f == nullptr) die("%s: cannot open the file", where.c_str());
  std::string out;
  char chunk[4096];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof chunk, f)) > 0) out.append(chunk, got);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) die("%s: cannot read the file", where.c_str());
  if (out.find('\0') != std::string::npos) die("%s: the file holds a NUL byte", where.c_str());
  return out;
}

// --tools: a JSON array given inline, or @FILE.
std::string tools_json(const std::string& arg) {
  if (arg.empty() || arg[0] != '@') return arg;
  return read_text_file(arg.substr(1), "--tools");
}

// --builtin-tools a,b -> ["a","b"]
std::string builtin_tools_json(const std::string& list) {
  std::string out = "[";
  size_t i = 0;
  while (i <= list.size()) {
    size_t j = list.find(',', i);
    if (j == std::string::npos) j = list.size();
    std::string name = list.substr(i, j - i);
    for (char c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') die("--builtin-tools: '%s' is not a tool name", name.c_str());
    if (!name.empty()) out += (out.size() > 1 ? ",\"" : "\"") + name + "\"";
    i = j + 1;
  }
  return out + "]";
}

// The conversation of --chat: an optional system message and -p as the user's.
std::string chat_messages_json(const Args& a) {
  auto quoted = [](const std::string& v) {
    std::string o = "\"";
    for (unsigned char c : v) {
      if (c == '"' || c == '\\') o += '\\', o += static_cast<char>(c);
      else if (c < 0x20) {
        char b[8];
        std::snprintf(b, sizeof b, "\\u%04x", c);
        o += b;
      } else o += static_cast<char>(c);
    }
    return o + "\"";
  };
  std::string j = "[";
  if (!a.system.empty()) j += "{\"role\":\"system\",\"content\":" + quoted(a.system) + "},";
  return j + "{\"role\":\"user\",\"content\":" + quoted(a.text) + "}]";
}

std::vector<int32_t> chat_prompt(paca_model* m, const Args& a) {
  const std::string messages = chat_messages_json(a);
  const std::string tools = tools_json(a.tools), builtin = builtin_tools_json(a.builtin_tools);
  paca_chat_params cp;
  paca_chat_params_init(&cp, sizeof cp);
  if (!a.tools.empty()) cp.tools_json = tools.c_str();
  if (!a.builtin_tools.empty()) cp.builtin_tools_json = builtin.c_str();
  if (!a.date.empty()) cp.date = a.date.c_str();
  size_t n = 0;
  paca_status st = paca_chat_tokenize(m, messages.c_str(), &cp, nullptr, 0, &n);
  if (st != PACA_OK && st != PACA_ERR_BUFFER_TOO_SMALL) die_status("formatting the chat", st);
  std::vector<int32_t> ids(n);
  st = paca_chat_tokenize(m, messages.c_str(), &cp, ids.data(), ids.size(), &n);
  if (st != PACA_OK) die_status("formatting the chat", st);
  return ids;
}

std::vector<int32_t> prompt_of(paca_model* m, const Args& a) {
  if (a.chat && !a.have_text) die("--chat needs -p TEXT (the user's message)");
  if (!a.have_text) return a.prompt;
  if (a.chat) return chat_prompt(m, a);
  std::vector<int32_t> ids =
      tokenize_or_die(m, a.text, (a.no_bos ? 0u : uint32_t{PACA_TOKENIZE_ADD_BOS}) | (a.special ? uint32_t{PACA_TOKENIZE_SPECIAL} : 0u));
  if (ids.empty()) die("the prompt is empty");
  return ids;
}

// The tool calls in a chat reply (paca_chat_parse_tool_calls' JSON): the
// reply's ids rendered with special tokens as text, ended by `last` when it
// stopped generation.
std::string reply_tool_calls(paca_model* m, const std::vector<int32_t>& ids, bool stopped_on_eog) {
  std::vector<int32_t> body = ids;
  int32_t end = PACA_REPLY_END_NONE;
  if (stopped_on_eog && !body.empty()) {
    char piece[64];
    size_t need = 0;
    if (paca_token_to_piece(m, body.back(), PACA_DETOKENIZE_SPECIAL, piece, sizeof piece, &need) == PACA_OK) {
      const std::string t = piece;
      end = t == "<|eom_id|>" ? PACA_REPLY_END_EOM : t == "<|eot_id|>" ? PACA_REPLY_END_EOT : PACA_REPLY_END_EOS;
    }
    body.pop_back();
  }
  size_t n = 0;
  paca_status st = paca_detokenize(m, body.data(), body.size(), PACA_DETOKENIZE_SPECIAL, nullptr, 0, &n);
  if (st != PACA_OK && st != PACA_ERR_BUFFER_TOO_SMALL) die_status("detokenizing the reply", st);
  std::string text(n, '\0');
  st = paca_detokenize(m, body.data(), body.size(), PACA_DETOKENIZE_SPECIAL, text.data(), text.size(), &n);
  if (st != PACA_OK) die_status("detokenizing the reply", st);
  text.resize(n - 1);
  st = paca_chat_parse_tool_calls(text.data(), text.size(), end, nullptr, 0, &n);
  if (st != PACA_OK && st != PACA_ERR_BUFFER_TOO_SMALL) die_status("parsing tool calls", st);
  std::string out(n, '\0');
  st = paca_chat_parse_tool_calls(text.data(), text.size(), end, out.data(), out.size(), &n);
  if (st != PACA_OK) die_status("parsing tool calls", st);
  out.resize(n - 1);
  return out;
}

const char* stop_reason_name(paca_stop_reason r) {
  switch (r) {
    case PACA_STOP_EOS: return "eos";
    case PACA_STOP_TOKEN: return "stop_token";
    case PACA_STOP_STRING: return "stop_string";
    case PACA_STOP_CONTEXT_FULL: return "context_full";
    default: return "length";
  }
}

// The sampler and generator parameters of `paca run`, with the strings they
// point into (filled in place: the pointers stay valid while it lives).
struct RunParams {
  paca_sampler_params sp;
  paca_generator_params gp;
  std::string grammar, schema;
  std::vector<const char*> stop_ptrs;
  std::vector<size_t> stop_lens;

  RunParams(const Args& a) : sp(a.sp) {
    sp.ignore_eos = a.ignore_eos ? 1 : 0;
    sp.stop_ids = a.stop_ids.data();
    sp.n_stop_ids = static_cast<int32_t>(a.stop_ids.size());
    sp.n_top_logprobs = a.logprobs > 0 ? static_cast<int32_t>(a.logprobs) : 0;
    sp.max_new_tokens = static_cast<int32_t>(a.n_predict);
    if (!a.grammar_file.empty() && !a.schema_file.empty()) die("give --grammar or --json-schema, not both");
    if (!a.grammar_file.empty()) {
      grammar = read_text_file(a.grammar_file, "--grammar");
      sp.grammar = grammar.c_str();
    }
    if (!a.schema_file.empty()) {
      schema = read_text_file(a.schema_file, "--json-schema");
      sp.json_schema = schema.c_str();
    }
    for (const std::string& x : a.stops) {
      stop_ptrs.push_back(x.data());
      stop_lens.push_back(x.size());
    }
    paca_generator_params_init(&gp, sizeof gp);
    gp.stop_strings = stop_ptrs.data();
    gp.stop_lengths = stop_lens.data();
    gp.n_stop_strings = static_cast<int32_t>(stop_ptrs.size());
    gp.logprobs = a.logprobs >= 0 ? 1 : 0;
  }
  RunParams(const RunParams&) = delete;
  RunParams& operator=(const RunParams&) = delete;
};

// Prefills the prompt, through --prompt-cache when given (saving it when
// it did not hold the whole prompt); returns the prefill's milliseconds
// since t0 (the save not included).
double prefill_prompt(paca_session* s, const Args& a, const std::vector<int32_t>& prompt, Clock::time_point t0) {
  size_t cached = 0;  // prompt tokens restored from --prompt-cache
  paca_status st = a.prompt_cache.empty()
                       ? paca_session_prefill(s, prompt.data(), prompt.size())
                       : paca_session_prefill_cached(s, a.prompt_cache.c_str(), prompt.data(), prompt.size(), &cached);
  if (st != PACA_OK) die_status("prefill", st);
  const double prefill_ms = ms_since(t0);
  if (a.prompt_cache.empty()) return prefill_ms;
  if (cached < prompt.size()) st = paca_session_save(s, a.prompt_cache.c_str());
  if (st != PACA_OK) die_status("saving the prompt cache", st);
  std::fprintf(stderr, "paca: prompt cache %s: %zu of %zu prompt tokens reused\n", a.prompt_cache.c_str(), cached,
               prompt.size());
  return prefill_ms;
}

// What the generation loop of `paca run` produced.
struct RunOutput {
  std::vector<int32_t> tokens;
  std::vector<paca_token_logprobs> logprobs;  // --logprobs
  std::string text;
  double ttft_ms = 0;
};

// Runs the generator to its stop, printing each piece unless --json.
RunOutput generate_all(paca_generator* gen, const Args& a, bool has_tokenizer, Clock::time_point t0) {
  RunOutput r;
  while (a.n_predict > 0 && paca_generator_stop_reason(gen) == PACA_STOP_NONE) {
    int32_t tok = -1;
    const char* piece = nullptr;
    size_t len = 0;
    paca_status st = paca_generator_next(gen, &tok, &piece, &len);
    if (st != PACA_OK) die_status("generating", st);
    if (tok < 0) break;
    if (r.tokens.empty()) r.ttft_ms = ms_since(t0);
    r.tokens.push_back(tok);
    if (a.logprobs >= 0) {
      paca_token_logprobs lp;
      std::memset(&lp, 0, sizeof lp);
      lp.struct_size = sizeof lp;
      st = paca_generator_logprobs(gen, &lp);
      if (st != PACA_OK) die_status("reading log-probabilities", st);
      r.logprobs.push_back(lp);
    }
    r.text.append(piece, len);
    if (!a.json) {
      if (has_tokenizer) std::fwrite(piece, 1, len, stdout);
      else std::printf(r.tokens.size() > 1 ? " %d" : "%d", tok);
      std::fflush(stdout);
    }
  }
  return r;
}

// [{"token":id,"logprob":x,"top":[[id,lp],...]},...]
void print_logprobs(const std::vector<paca_token_logprobs>& lps) {
  std::printf("[");
  for (size_t k = 0; k < lps.size(); ++k) {
    std::printf("%s{\"token\":%d,\"logprob\":%.9g,\"top\":[", k ? "," : "", lps[k].token,
                static_cast<double>(lps[k].logprob));
    for (int32_t j = 0; j < lps[k].n_top; ++j)
      std::printf("%s[%d,%.9g]", j ? "," : "", lps[k].top_tokens[j], static_cast<double>(lps[k].top_logprobs[j]));
    std::printf("]}");
  }
  std::printf("]");
}

struct RunTimings {
  double load_ms, ttft_ms, prefill_tps, decode_tps;
};

// paca run --json: one object with the tokens, text, reply and timings.
void print_run_json(paca_model* m, const Args& a, bool has_tokenizer, const std::vector<int32_t>& prompt,
                    const RunOutput& r, const char* reason, const RunTimings& t) {
  std::printf("{\"prompt_tokens\":");
  print_ids(prompt);
  std::printf(",\"tokens\":");
  print_ids(r.tokens);
  if (a.logprobs >= 0) {
    std::printf(",\"logprobs\":");
    print_logprobs(r.logprobs);
  }
  if (has_tokenizer) {
    std::printf(",\"text\":");
    print_json_string(r.text);
  }
  if (a.chat && has_tokenizer)  // {"content":..., "tool_calls":[...], ...}
    std::printf(",\"reply\":%s", reply_tool_calls(m, r.tokens, std::strcmp(reason, "eos") == 0).c_str());
  std::printf(",\"stop_reason\":\"%s\",\"timings\":{\"load_ms\":%.3f,\"ttft_ms\":%.3f,"
              "\"prefill_tokens_per_s\":%.3f,\"decode_tokens_per_s\":%.3f}}\n",
              reason, t.load_ms, t.ttft_ms, t.prefill_tps, t.decode_tps);
}

// paca run: the generation loop is paca_generator's (the same tokens and text
// every binding gets); this prints it, with timings and --json.
int cmd_run(const Args& a) {
  double load_ms = 0;
  paca_model* m = load(a, &load_ms);
  paca_model_info info = info_of(m);
  std::vector<int32_t> prompt = prompt_of(m, a);
  if (!a.have_prompt && !a.have_text) {
    if (info.bos_id < 0) die("the model has no BOS token: give -p TEXT or --prompt-tokens");
    prompt = {info.bos_id};
  }
  uint32_t attrs = 0;
  const bool has_tokenizer = paca_token_attributes(m, 0, &attrs) == PACA_OK;
  if (!a.stops.empty() && !has_tokenizer) die("--stop needs a model with a tokenizer (--stop-token works without)");
  const RunParams rp(a);

  paca_session* s = new_session(m, a.ctx);
  const auto t0 = Clock::now();
  const double prefill_ms = prefill_prompt(s, a, prompt, t0);
  paca_generator* gen = nullptr;  // continues from the prompt's logits
  const paca_status st = paca_generator_create(s, nullptr, 0, &rp.sp, &rp.gp, &gen);
  if (st != PACA_OK) die_status("starting the generation", st);
  const auto t1 = Clock::now();
  const RunOutput r = generate_all(gen, a, has_tokenizer, t0);
  const char* reason = stop_reason_name(paca_generator_stop_reason(gen));
  const double decode_ms = ms_since(t1);
  // decode steps actually run: one per generated token after the first
  const double decode_steps = r.tokens.size() > 1 ? static_cast<double>(r.tokens.size() - 1) : 0.0;
  RunTimings t{load_ms, r.ttft_ms, 0, 0};
  t.prefill_tps = prefill_ms > 0 ? prompt.size() / (prefill_ms / 1000) : 0;
  t.decode_tps = decode_ms > 0 && decode_steps > 0 ? decode_steps / (decode_ms / 1000) : 0;
  if (a.json) {
    print_run_json(m, a, has_tokenizer, prompt, r, reason, t);
  } else {
    std::printf("\n");
    std::fflush(stdout);  // the text's end before the timings, also when both go to one pipe
  }
  std::fprintf(stderr, "paca: load %.1f ms, time to first token %.1f ms, prefill %.1f tok/s (%zu tokens), decode %.1f tok/s (%.0f steps), stop: %s\n",
               load_ms, r.ttft_ms, t.prefill_tps, prompt.size(), t.decode_tps, decode_steps, reason);
  paca_generator_free(gen);
  paca_session_free(s);
  paca_model_free(m);
  return 0;
}

int cmd_eval(const Args& a) {
  if (!a.have_prompt && !a.have_text) die("eval needs -p TEXT or --prompt-tokens");
  paca_model* m = load(a, nullptr);
  std::vector<int32_t> prompt = prompt_of(m, a);
  paca_session* s = new_session(m, a.ctx);
  paca_status st = paca_session_prefill(s, prompt.data(), prompt.size());
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

// paca plan: the per-rank memory of a sharded layout (paca_plan_json), as a table.
int cmd_plan(const Args& a) {
  if (a.shape.empty()) die("plan needs --shape NAME (llama3.1-8b, llama3.1-70b, llama3.1-405b, ...)");
  const long ctx = a.ctx > 0 ? a.ctx : 8192;
  nlohmann::json req = {{"shape", a.shape},
                        {"tp", a.tp},
                        {"pp", a.pp},
                        {"weights", a.weight_dtype == PACA_WEIGHTS_FP8 ? "fp8" : "bf16"},
                        {"fp8_attention", (a.fp8_targets & PACA_FP8_ATTENTION) != 0},
                        {"kv_dtype", a.kv_dtype},
                        {"context", ctx},
                        {"batch", a.batch},
                        {"device_memory_gb", a.device_memory}};
  const std::string rq = req.dump();
  size_t need = 0;
  paca_status st = paca_plan_json(rq.c_str(), nullptr, 0, &need);
  if (st != PACA_ERR_BUFFER_TOO_SMALL) die_status("planning", st);
  std::string buf(need, '\0');
  st = paca_plan_json(rq.c_str(), buf.data(), buf.size(), &need);
  if (st != PACA_OK) die_status("planning", st);
  buf.resize(need - 1);
  if (a.json) {
    std::printf("%s\n", buf.c_str());
    return 0;
  }
  const nlohmann::json p = nlohmann::json::parse(buf);
  const auto gb = [](const nlohmann::json& v) { return v.get<double>() / 1e9; };
  std::printf("%s: tp %ld x pp %ld, %s weights, %s KV, context %ld x batch %ld, %.0f GB devices\n", a.shape.c_str(), a.tp,
              a.pp, p["weights"].get<std::string>().c_str(), a.kv_dtype.c_str(), ctx, a.batch, a.device_memory);
  std::printf("kv heads per rank %d, KV %.1f KiB per token per rank\n", p["kv_heads_per_rank"].get<int>(),
              p["kv_bytes_per_token_per_rank"].get<double>() / 1024);
  std::printf("%-6s %-4s %-9s %12s %12s %12s %12s\n", "stage", "tp", "layers", "weights GB", "KV GB", "work GB", "total GB");
  int last_stage = -1;
  for (const auto& r : p["ranks"]) {
    const int stage = r["stage"].get<int>();
    if (stage == last_stage && r["tp_rank"].get<int>() != 0) continue;  // TP ranks of a stage hold the same
    last_stage = stage;
    char layers[32];
    std::snprintf(layers, sizeof layers, "%d-%d", r["layers"][0].get<int>(),
                  r["layers"][0].get<int>() + r["layers"][1].get<int>() - 1);
    std::printf("%-6d %-4s %-9s %12.2f %12.2f %12.2f %12.2f\n", stage, a.tp > 1 ? "each" : "0", layers,
                gb(r["weight_bytes"]), gb(r["kv_bytes"]), gb(r["workspace_bytes"]), gb(r["total_bytes"]));
  }
  std::printf("largest rank %.2f GB: %s a %.0f GB device (%.2f GB kept free)\n", gb(p["max_rank_bytes"]),
              p["fits"].get<bool>() ? "fits" : "does NOT fit", a.device_memory, gb(p["reserve_bytes"]));
  return p["fits"].get<bool>() ? 0 : 3;
}

int cmd_chat_template(const Args& a) {
  paca_model* m = load(a, nullptr);
  size_t need = 0;
  paca_status st = paca_chat_template_json(m, nullptr, 0, &need);
  if (st != PACA_ERR_BUFFER_TOO_SMALL) die_status("reading the chat template", st);
  std::string buf(need, '\0');
  st = paca_chat_template_json(m, buf.data(), buf.size(), &need);
  if (st != PACA_OK) die_status("reading the chat template", st);
  buf.resize(need - 1);
  std::printf("%s\n", buf.c_str());  // {"origin", "style", special tokens, "source"}
  paca_model_free(m);
  return 0;
}

int cmd_tokenize(const Args& a) {
  if (a.positional.empty()) die("tokenize needs a TEXT (use -- before a text that starts with '-')");
  paca_model* m = load(a, nullptr);
  uint32_t flags = (a.no_bos ? 0u : uint32_t{PACA_TOKENIZE_ADD_BOS}) | (a.special ? uint32_t{PACA_TOKENIZE_SPECIAL} : 0u);
  std::vector<int32_t> ids = tokenize_or_die(m, a.positional[0], flags);
  if (a.json) {
    std::printf("{\"ids\":");
    print_ids(ids);
    std::printf("}\n");
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? ",%d" : "%d", ids[i]);
    std::printf("\n");
  }
  paca_model_free(m);
  return 0;
}

int cmd_detokenize(const Args& a) {
  if (a.positional.empty()) die("detokenize needs token ids, e.g. 1,15043,3186");
  std::vector<int32_t> ids;
  std::string list = a.positional[0];
  for (char& c : list)
    if (c == ' ') c = ',';
  while (!list.empty() && list.back() == ',') list.pop_back();
  if (!list.empty()) ids = parse_tokens(list);
  paca_model* m = load(a, nullptr);
  uint32_t flags = a.special ? uint32_t{PACA_DETOKENIZE_SPECIAL} : 0u;
  size_t need = 0;
  paca_status st = paca_detokenize(m, ids.data(), ids.size(), flags, nullptr, 0, &need);
  if (st != PACA_OK && st != PACA_ERR_BUFFER_TOO_SMALL) die_status("detokenizing", st);
  std::string text(need, '\0');
  st = paca_detokenize(m, ids.data(), ids.size(), flags, text.data(), text.size(), &need);
  if (st != PACA_OK) die_status("detokenizing", st);
  text.resize(need - 1);
  if (a.json) {
    std::printf("{\"text\":");
    print_json_string(text);
    std::printf("}\n");
  } else {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::printf("\n");
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

int32_t quantize_progress(void*, float f) {
  const int w = 40, n = static_cast<int>(f * w + 0.5f);
  std::fprintf(stderr, "\rquantizing [%.*s%*s] %3d%%", n, "========================================", w - n, "",
               static_cast<int>(f * 100 + 0.5f));
  if (f >= 1.0f) std::fprintf(stderr, "\n");
  std::fflush(stderr);
  return 0;
}

int cmd_quantize(const Args& a) {
  if (a.positional.size() != 2) die("quantize needs IN.gguf and OUT.gguf");
  if (a.quant_type.empty()) die("quantize needs --type MIX (e.g. q4_k_m)");
  std::vector<char> buf(4096);
  size_t needed = 0;
  const paca_status st =
      paca_quantize_gguf(a.positional[0].c_str(), a.positional[1].c_str(), a.quant_type.c_str(),
                         static_cast<int32_t>(a.threads), a.json ? nullptr : quantize_progress, nullptr, buf.data(),
                         buf.size(), &needed);
  if (st != PACA_OK) die_status("quantize", st);
  if (a.json) {
    std::printf("%s\n", buf.data());
  } else {
    std::fprintf(stderr, "paca: wrote %s: %s\n", a.positional[1].c_str(), buf.data());
  }
  return 0;
}

}  // namespace

// `paca bench ARGS...` runs paca-bench with ARGS: the one beside this
// executable, found from its own path at run time (/proc/self/exe, so a
// symlink to paca or a moved install still finds its own), else the first on
// PATH. Installed, both live in bin/; in the build tree, paca-bench's build
// puts a link to it beside examples/cli/paca. Returns only on failure.
int cmd_bench(int argc, char** argv) {
  std::vector<char*> args;
  args.push_back(const_cast<char*>("paca-bench"));
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string beside(self);
    beside.resize(beside.rfind('/') + 1);
    beside += "paca-bench";
    if (::access(beside.c_str(), X_OK) == 0) {
      ::execv(beside.c_str(), args.data());
      std::fprintf(stderr, "paca bench: cannot run %s: %s\n", beside.c_str(), std::strerror(errno));
      return 1;
    }
  }
  ::execvp("paca-bench", args.data());
  std::fprintf(stderr,
               "paca bench: paca-bench was not found beside paca or on PATH (%s); build it with "
               "-DPACA_BUILD_BENCH=ON\n",
               std::strerror(errno));
  return 1;
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "bench") == 0) return cmd_bench(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) {
#ifdef PACA_WITH_SERVE
    return cmd_serve(argc, argv);
#else
    std::fprintf(stderr, "paca serve: this paca was built without cpp-httplib (Debian: apt install libcpp-httplib-dev)\n");
    return 1;
#endif
  }
  Args a = parse_args(argc, argv);
  if (a.cmd == "run") return cmd_run(a);
  if (a.cmd == "eval") return cmd_eval(a);
  if (a.cmd == "info") return cmd_info(a);
  if (a.cmd == "tokenize") return cmd_tokenize(a);
  if (a.cmd == "detokenize") return cmd_detokenize(a);
  if (a.cmd == "chat-template") return cmd_chat_template(a);
  if (a.cmd == "plan") return cmd_plan(a);
  if (a.cmd == "make-test-model") return cmd_make_test_model(a);
  if (a.cmd == "quantize") return cmd_quantize(a);
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
