// serve.cpp - `paca serve`: an OpenAI-compatible HTTP server over paca's
// engine (paca.h, "engine"), written against paca.h, cpp-httplib and the
// protocol functions of serve_api.h.
//
//   paca serve -m PATH [--host H] [--port N] [--alias ID] [--threads N] [--ctx N]
//              [--parallel N] [--queue N] [--step-tokens N] [--no-prefix-cache]
//              [--device D] [--kv-memory-fraction F] [--http-threads N] [--max-body BYTES]
//              [--max-choices N]
//
// Routes: POST /v1/completions, POST /v1/chat/completions, GET /v1/models,
// GET /v1/models/{id}, GET /health, GET /metrics (Prometheus text).
//
// Threads: cpp-httplib's pool answers connections (--http-threads; every
// HTTP request in flight holds one, a stream until it ends). Each HTTP
// request submits one engine request per choice, with a callback that copies
// the engine's events into the request's Mailbox; the handler (or, for a
// stream, the content provider) takes them from there. One thread samples the
// engine's counters for the token rates, one waits for SIGINT/SIGTERM.
//
// A stream whose client has gone is noticed when a write fails (a token, or
// the keep-alive comment sent every second while nothing comes); its engine
// requests are then cancelled. A non-streamed request runs to its end.
#include "serve.h"

// cpp-httplib listens with a backlog of 5: when more clients than that
// connect at once (a burst of 16 did), the kernel's accept queue overflows and
// some connections are reset. The server is meant for many clients.
#define CPPHTTPLIB_LISTEN_BACKLOG 1024
#include <httplib.h>
#include "dev_env.h"
#include <paca/paca.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "serve_api.h"

namespace {

namespace api = paca_serve;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// A body larger than --max-body is still read (and dropped) up to this many times the bound.
constexpr uint64_t kDrainFactor = 4;

// ---- options -------------------------------------------------------------------

struct Options {
  std::string model, host = "127.0.0.1", alias, device;
  long port = 8080, threads = 0, ctx = 0, parallel = 8, queue = 64, step_tokens = 512;
  long http_threads = 0;  // 0: parallel + queue + 8, so that a full queue is reachable (429)
  long max_body = 4L << 20, max_choices = 16;
  bool prefix_cache = true;
  float kv_memory_fraction = 0;
};

void serve_usage() {
  std::fprintf(stderr,
               "usage: paca serve -m PATH [--host H] [--port N] [--alias ID] [--threads N] [--ctx N]\n"
               "                  [--parallel N] [--queue N] [--step-tokens N] [--no-prefix-cache]\n"
               "                  [--device D] [--kv-memory-fraction F] [--http-threads N] [--max-body BYTES]\n"
               "                  [--max-choices N]\n"
               "An OpenAI-compatible HTTP server: POST /v1/completions, /v1/chat/completions (stream: true for\n"
               "server-sent events), GET /v1/models, /health, /metrics (Prometheus). --host defaults to 127.0.0.1,\n"
               "--port to 8080 (0: any free port; the chosen one is printed). The model's id is --alias, else the\n"
               "file or directory name without .gguf/.bin; a request naming another model gets 404.\n"
               "--parallel N requests run together (continuous batching), --queue N more may wait (beyond: 429);\n"
               "--ctx N is each request's context (default: the model's). --http-threads N connections are served\n"
               "at once (default: parallel + queue + 8); bodies above --max-body bytes (default 4 MiB) get 413; a request may ask for\n"
               "at most --max-choices choices (n x prompts, default 16).\n");
}

[[noreturn]] void serve_fail(const std::string& msg) {
  std::fprintf(stderr, "paca serve: %s\n", msg.c_str());
  std::exit(2);
}

long option_long(const std::string& name, const char* v, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || x < lo || x > hi)
    serve_fail(name + ": '" + v + "' is not an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) serve_fail(k + " needs a value");
      return argv[++i];
    };
    if (k == "-m" || k == "--model") o.model = val();
    else if (k == "--host") o.host = val();
    else if (k == "--port") o.port = option_long(k, val(), 0, 65535);
    else if (k == "--alias") o.alias = val();
    else if (k == "--threads" || k == "-t") o.threads = option_long(k, val(), 0, 4096);
    else if (k == "--ctx") o.ctx = option_long(k, val(), 0, 1 << 24);
    else if (k == "--parallel") o.parallel = option_long(k, val(), 1, 4096);
    else if (k == "--queue") o.queue = option_long(k, val(), 0, 1 << 20);
    else if (k == "--step-tokens") o.step_tokens = option_long(k, val(), 1, 1 << 20);
    else if (k == "--no-prefix-cache") o.prefix_cache = false;
    else if (k == "--device") o.device = val();
    else if (k == "--kv-memory-fraction") o.kv_memory_fraction = std::strtof(val(), nullptr);  // checked by the load
    else if (k == "--http-threads") o.http_threads = option_long(k, val(), 1, 1 << 16);
    else if (k == "--max-body") o.max_body = option_long(k, val(), 1024, 1L << 30);
    else if (k == "--max-choices") o.max_choices = option_long(k, val(), 1, 1024);
    else if (k == "-h" || k == "--help") {
      serve_usage();
      std::exit(0);
    } else serve_fail("unknown argument '" + k + "' (see paca serve --help)");
  }
  if (o.model.empty()) serve_fail("-m PATH is required");
  if (o.http_threads == 0) o.http_threads = o.parallel + o.queue + 8;
  return o;
}

// The model's id: its file or directory name without a .gguf / .bin suffix.
std::string model_id_of(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  for (const char* ext : {".gguf", ".bin"}) {
    const size_t n = std::strlen(ext);
    if (name.size() > n && name.compare(name.size() - n, n, ext) == 0) name.resize(name.size() - n);
  }
  return name;
}

// ---- engine events --------------------------------------------------------------

// One engine event, copied out of the callback.
struct Event {
  int choice = 0;
  int32_t token = -1;
  std::string text;
  float logprob = 0;
  paca_stop_reason stop = PACA_STOP_NONE;
  paca_status status = PACA_OK;
  std::string error;
  uint32_t n_prompt = 0, n_cached = 0, n_generated = 0;
  bool end() const { return stop != PACA_STOP_NONE || status != PACA_OK; }
};

// The events of one HTTP request's engine requests, from the engine's thread
// to the thread answering the request.
class Mailbox {
 public:
  void push(Event e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(std::move(e));
    }
    cv_.notify_one();
  }
  // The next event, or nothing after waiting `wait`.
  std::optional<Event> pop(std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, wait, [&] { return !events_.empty(); })) return std::nullopt;
    Event e = std::move(events_.front());
    events_.pop_front();
    return e;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
};

class Server;

// The user_data of one engine request; the callback frees it after the end
// event (which every submitted request gets, paca_engine_free included).
struct Sink {
  Server* server;
  std::shared_ptr<Mailbox> box;
  int choice;
};

// What one choice has produced so far.
struct ChoiceState {
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<api::TokenLogprob> logprobs;
  bool ended = false;
  Event last;  // the end event
};

// One generation request (all its choices), shared by the handler, the
// stream provider and its releaser.
struct Generation {
  api::Request req;
  api::Origin origin;
  std::shared_ptr<Mailbox> box = std::make_shared<Mailbox>();
  std::vector<std::vector<int32_t>> prompts;
  std::vector<paca_request_id> ids;  // per choice (index = prompt * n + j)
  std::vector<ChoiceState> choices;
  size_t n_ended = 0;
  bool cancel_sent = false;
  bool stream_started = false, stream_over = false;
};

// ---- the server -------------------------------------------------------------------

class Server {
 public:
  Server(const Options& o, paca_model* model, paca_engine* engine) : opt_(o), model_(model), engine_(engine) {
    info_.struct_size = sizeof info_;
    paca_model_get_info(model, &info_);
    uint32_t attrs = 0;
    has_tokenizer_ = paca_token_attributes(model, 0, &attrs) == PACA_OK;
    model_id_ = o.alias.empty() ? model_id_of(o.model) : o.alias;
    created_ = static_cast<int64_t>(std::time(nullptr));
    limits_.max_choices = static_cast<int>(o.max_choices);
    limits_.n_vocab = info_.n_vocab;
    std::random_device rd;
    id_base_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }

  const std::string& model_id() const { return model_id_; }

  void install(httplib::Server& http);
  void on_event(const paca_request_event* ev, Sink* sink);
  void sample_rates();
  void stop() { stopping_ = true; }

 private:
  void generate(api::Endpoint ep, const httplib::Request& req, httplib::Response& res,
                const httplib::ContentReader& reader);
  std::optional<api::ApiError> build_prompts(Generation& g);
  std::optional<api::ApiError> submit(Generation& g);
  void cancel(Generation& g);
  bool apply(Generation& g, Event e);
  bool stream_step(Generation& g, httplib::DataSink& sink);
  void stream_end(Generation& g, bool success);
  std::string piece(int32_t token) const;
  api::Reply tool_reply(const Generation& g, const ChoiceState& c, int index) const;
  std::string finish_of(const Generation& g, const ChoiceState& c, int index, api::Reply* reply) const;
  api::Usage usage_of(const Generation& g) const;
  void reply_error(httplib::Response& res, const api::ApiError& e) const;
  void count(const std::string& route, int status);
  std::string metrics();

  Options opt_;
  paca_model* model_;
  paca_engine* engine_;
  paca_model_info info_{};
  bool has_tokenizer_ = false;
  std::string model_id_;
  int64_t created_ = 0;
  api::Limits limits_;
  uint64_t id_base_ = 0;
  std::atomic<uint64_t> next_id_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> cancelled_{0};

  std::mutex metrics_mu_;  // guards the members below
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  api::Histogram ttft_{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  api::RateWindow prefill_rate_{10}, generated_rate_{10};
  Clock::time_point t0_ = Clock::now();
};

void request_callback(const paca_request_event* ev, void* user) {
  auto* sink = static_cast<Sink*>(user);
  sink->server->on_event(ev, sink);
}

void Server::on_event(const paca_request_event* ev, Sink* sink) {
  Event e;
  e.choice = sink->choice;
  e.token = ev->token;
  if (ev->text != nullptr) e.text.assign(ev->text, ev->text_len);
  e.logprob = ev->logprob;
  e.stop = ev->stop_reason;
  e.status = ev->status;
  if (ev->error != nullptr) e.error = ev->error;
  e.n_prompt = ev->n_prompt;
  e.n_cached = ev->n_cached;
  e.n_generated = ev->n_generated;
  const bool end = e.end();
  if (end && ev->status == PACA_OK && ev->n_generated > 0) {
    std::lock_guard<std::mutex> lock(metrics_mu_);
    ttft_.observe(ev->first_token_ms / 1000.0);
  }
  sink->box->push(std::move(e));
  if (end) delete sink;
}

// Every second: the engine's counters into the rate windows.
void Server::sample_rates() {
  paca_engine_stats s{};
  s.struct_size = sizeof s;
  if (paca_engine_get_stats(engine_, &s) != PACA_OK) return;
  const double t = std::chrono::duration<double>(Clock::now() - t0_).count();
  std::lock_guard<std::mutex> lock(metrics_mu_);
  prefill_rate_.add(t, s.n_prefill_tokens);
  generated_rate_.add(t, s.n_generated_tokens);
}

void Server::count(const std::string& route, int status) {
  std::lock_guard<std::mutex> lock(metrics_mu_);
  ++requests_[{route, status}];
}

std::string Server::metrics() {
  api::Metrics m;
  m.engine.struct_size = sizeof m.engine;
  paca_engine_get_stats(engine_, &m.engine);
  m.cancelled_disconnect = cancelled_;
  m.http_in_flight = in_flight_;
  std::lock_guard<std::mutex> lock(metrics_mu_);
  for (const auto& [k, n] : requests_) m.requests.push_back({k, n});
  m.prefill_tokens_per_s = prefill_rate_.rate();
  m.generated_tokens_per_s = generated_rate_.rate();
  m.ttft = &ttft_;
  return api::metrics_text(m);
}

void Server::reply_error(httplib::Response& res, const api::ApiError& e) const {
  res.status = e.http_status;
  res.set_content(api::error_body(e), "application/json");
}

// Calls fill(buf, cap, &needed) to learn the size, then to fill buf: the
// two-call protocol of paca.h's buffer functions.
template <typename T, typename F>
paca_status two_calls(std::vector<T>& out, F fill) {
  size_t n = 0;
  paca_status st = fill(nullptr, 0, &n);
  if (st != PACA_OK && st != PACA_ERR_BUFFER_TOO_SMALL) return st;
  out.assign(n, T{});
  st = fill(out.data(), out.size(), &n);
  return st;
}

std::string text_of(const std::vector<char>& buf) {
  return buf.empty() ? std::string() : std::string(buf.data(), buf.size() - 1);  // without the NUL
}

std::optional<api::ApiError> Server::build_prompts(Generation& g) {
  const api::Request& r = g.req;
  auto failed = [](paca_status st, const std::string& what) {
    api::ApiError e = api::error_for_status(st, what + ": " + paca_last_error());
    if (st == PACA_ERR_INVALID_ARGUMENT) e.param = "messages";
    return e;
  };
  if (r.endpoint == api::Endpoint::completions) {
    g.prompts = r.prompt_tokens;
    if (!r.prompts.empty() && !has_tokenizer_)
      return api::ApiError{400, "the model has no tokenizer: give the prompt as token ids", "invalid_request_error",
                           "prompt", ""};
    for (const std::string& text : r.prompts) {
      std::vector<int32_t> ids;
      const paca_status st = two_calls(ids, [&](int32_t* buf, size_t cap, size_t* need) {
        return paca_tokenize(model_, text.data(), text.size(), PACA_TOKENIZE_ADD_BOS, buf, cap, need);
      });
      if (st != PACA_OK) return failed(st, "tokenizing the prompt");
      g.prompts.push_back(std::move(ids));
    }
  } else {
    if (!has_tokenizer_)
      return api::ApiError{400, "the model has no tokenizer, so no chat format", "invalid_request_error", "messages", ""};
    const std::string messages = r.messages.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const std::string tools = r.tools.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    paca_chat_params cp;
    paca_chat_params_init(&cp, sizeof cp);
    if (!r.tools.empty()) cp.tools_json = tools.c_str();
    std::vector<int32_t> ids;
    const paca_status st = two_calls(ids, [&](int32_t* buf, size_t cap, size_t* need) {
      return paca_chat_tokenize(model_, messages.c_str(), &cp, buf, cap, need);
    });
    if (st != PACA_OK) return failed(st, "formatting the chat");
    g.prompts.push_back(std::move(ids));
  }
  for (const auto& p : g.prompts)
    if (p.empty())
      return api::ApiError{400, "the prompt is empty (the model has no BOS token)", "invalid_request_error", "prompt", ""};
  return std::nullopt;
}

std::optional<api::ApiError> Server::submit(Generation& g) {
  const api::Request& r = g.req;
  paca_sampler_params sp;
  paca_sampler_params_init(&sp, sizeof sp);
  sp.temperature = r.temperature;
  sp.top_p = r.top_p;
  sp.top_k = r.top_k;
  sp.min_p = r.min_p;
  sp.frequency_penalty = r.frequency_penalty;
  sp.presence_penalty = r.presence_penalty;
  sp.ignore_eos = r.ignore_eos ? 1 : 0;
  sp.max_new_tokens = r.max_tokens ? *r.max_tokens : r.endpoint == api::Endpoint::completions ? 16 : 0;
  if (!r.json_schema.empty()) sp.json_schema = r.json_schema.c_str();
  uint64_t seed = 0;
  if (r.seed) {
    seed = *r.seed;
  } else {
    std::random_device rd;
    seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  std::vector<const char*> stops;
  std::vector<size_t> stop_lengths;
  for (const std::string& s : r.stop) {
    stops.push_back(s.data());
    stop_lengths.push_back(s.size());
  }
  paca_request_params rp;
  paca_request_params_init(&rp, sizeof rp);
  rp.stop_strings = stops.data();
  rp.stop_lengths = stop_lengths.data();
  rp.n_stop_strings = static_cast<int32_t>(stops.size());
  rp.logprobs = r.logprobs ? 1 : 0;
  rp.callback = request_callback;
  std::vector<int32_t> bias_ids;
  std::vector<float> bias_values;
  for (const auto& [id, bias] : r.logit_bias) {
    bias_ids.push_back(id);
    bias_values.push_back(bias);
  }
  rp.logit_bias_tokens = bias_ids.data();
  rp.logit_bias_values = bias_values.data();
  rp.n_logit_bias = static_cast<int32_t>(bias_ids.size());

  g.choices.resize(g.prompts.size() * static_cast<size_t>(r.n));
  for (size_t p = 0; p < g.prompts.size(); ++p) {
    for (int j = 0; j < r.n; ++j) {
      const int index = static_cast<int>(p) * r.n + j;
      sp.seed = seed + static_cast<uint64_t>(j);  // choice j of every prompt: seed + j
      auto* sink = new Sink{this, g.box, index};
      rp.user_data = sink;
      paca_request_id id = 0;
      const paca_status st = paca_engine_submit(engine_, g.prompts[p].data(), g.prompts[p].size(), &sp, &rp, &id);
      if (st != PACA_OK) {
        delete sink;  // a refused request gets no events
        const api::ApiError e = api::error_for_status(st, paca_last_error());
        cancel(g);    // the choices submitted already end with a cancelled event, into g.box
        return e;
      }
      g.ids.push_back(id);
    }
  }
  return std::nullopt;
}

void Server::cancel(Generation& g) {
  for (size_t i = 0; i < g.ids.size(); ++i)
    if (i >= g.choices.size() || !g.choices[i].ended) paca_engine_cancel(engine_, g.ids[i]);
  g.cancel_sent = true;
}

// The bytes of one token (flags 0: control tokens have none).
std::string Server::piece(int32_t token) const {
  std::vector<char> buf;
  if (two_calls(buf, [&](char* b, size_t cap, size_t* need) { return paca_token_to_piece(model_, token, 0, b, cap, need); }) !=
      PACA_OK)
    return "";
  return text_of(buf);
}

// Adds an event to its choice; true when it added a log-probability.
bool Server::apply(Generation& g, Event e) {
  if (e.choice < 0 || static_cast<size_t>(e.choice) >= g.choices.size()) return false;
  ChoiceState& c = g.choices[static_cast<size_t>(e.choice)];
  if (c.ended) return false;
  bool added = false;
  if (e.token >= 0) {
    c.tokens.push_back(e.token);
    const bool end_token = e.end() && e.stop == PACA_STOP_EOS;  // the model's end token is not part of the text
    if (g.req.logprobs && !end_token) {
      c.logprobs.push_back({piece(e.token), e.logprob, c.text.size()});
      added = true;
    }
  }
  c.text += e.text;
  if (e.end()) {
    c.ended = true;
    ++g.n_ended;
    c.last = std::move(e);
  }
  return added;
}

// The reply's tool calls (chat requests with tools): the tokens rendered with
// special tokens as text, as paca_chat_parse_tool_calls wants them.
api::Reply Server::tool_reply(const Generation& g, const ChoiceState& c, int index) const {
  const std::string id_prefix = "call_" + g.origin.id.substr(g.origin.id.find('-') + 1) + "_" + std::to_string(index);
  std::vector<int32_t> body = c.tokens;
  int32_t end = PACA_REPLY_END_NONE;
  std::string text = c.text;  // a stop string cut the text: parse what was shown
  if (c.last.stop != PACA_STOP_STRING) {
    if (c.last.stop == PACA_STOP_EOS && !body.empty()) {
      std::vector<char> buf;
      const int32_t last = body.back();
      if (two_calls(buf, [&](char* b, size_t cap, size_t* need) {
            return paca_token_to_piece(model_, last, PACA_DETOKENIZE_SPECIAL, b, cap, need);
          }) == PACA_OK) {
        const std::string t = text_of(buf);
        end = t == "<|eom_id|>" ? PACA_REPLY_END_EOM : t == "<|eot_id|>" ? PACA_REPLY_END_EOT : PACA_REPLY_END_EOS;
      }
      body.pop_back();
    }
    std::vector<char> buf;
    if (two_calls(buf, [&](char* b, size_t cap, size_t* need) {
          return paca_detokenize(model_, body.data(), body.size(), PACA_DETOKENIZE_SPECIAL, b, cap, need);
        }) == PACA_OK)
      text = text_of(buf);
  }
  std::vector<char> parsed;
  if (two_calls(parsed, [&](char* b, size_t cap, size_t* need) {
        return paca_chat_parse_tool_calls(text.data(), text.size(), end, b, cap, need);
      }) != PACA_OK)
    return api::reply_from_parsed("", c.text, id_prefix);
  return api::reply_from_parsed(text_of(parsed), c.text, id_prefix);
}

// The choice's finish_reason; for a chat request with tools, *reply gets its
// content and calls.
std::string Server::finish_of(const Generation& g, const ChoiceState& c, int index, api::Reply* reply) const {
  const std::string reason = api::finish_reason(c.last.stop);
  if (g.req.endpoint != api::Endpoint::chat || g.req.tools.empty() || reply == nullptr) return reason;
  *reply = tool_reply(g, c, index);
  return reply->tool_calls.empty() ? reason : "tool_calls";
}

api::Usage Server::usage_of(const Generation& g) const {
  api::Usage u;
  for (size_t p = 0; p < g.prompts.size(); ++p) {
    u.prompt_tokens += g.prompts[p].size();
    u.cached_tokens += g.choices[p * static_cast<size_t>(g.req.n)].last.n_cached;
  }
  for (const ChoiceState& c : g.choices) u.completion_tokens += c.last.n_generated;
  return u;
}

// The first failed choice's error, if any.
std::optional<api::ApiError> failure_of(const Generation& g, bool stopping) {
  for (const ChoiceState& c : g.choices) {
    if (c.last.status == PACA_OK) continue;
    if (c.last.status == PACA_ERR_CANCELLED && stopping)
      return api::ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"};
    return api::error_for_status(c.last.status, c.last.error);
  }
  return std::nullopt;
}

void Server::generate(api::Endpoint ep, const httplib::Request&, httplib::Response& res,
                      const httplib::ContentReader& reader) {
  // A body past the bound is read on and dropped (up to kDrainFactor times the
  // bound), so that the client, still sending, gets the 413 rather than a reset.
  std::string body;
  bool too_large = false;
  uint64_t seen = 0;
  reader([&](const char* data, size_t len) {
    seen += len;
    if (!too_large && body.size() + len <= static_cast<size_t>(opt_.max_body)) {
      body.append(data, len);
      return true;
    }
    too_large = true;
    body.clear();
    return seen <= static_cast<uint64_t>(opt_.max_body) * kDrainFactor;
  });
  if (too_large)
    return reply_error(res, {413, "the body is larger than " + std::to_string(opt_.max_body) + " bytes",
                             "invalid_request_error", "", "body_too_large"});
  if (stopping_) return reply_error(res, {503, "the server is shutting down", "server_error", "", "shutting_down"});

  api::Parsed parsed = api::parse_request(ep, body, limits_);
  if (parsed.error) return reply_error(res, *parsed.error);
  auto g = std::make_shared<Generation>();
  g->req = std::move(parsed.request);
  if (!g->req.model.empty() && g->req.model != model_id_)
    return reply_error(res, {404, "the model '" + g->req.model + "' does not exist; this server has '" + model_id_ + "'",
                             "invalid_request_error", "model", "model_not_found"});
  const bool chat = ep == api::Endpoint::chat;
  char id[40];
  std::snprintf(id, sizeof id, "%s-%016llx%08llx", chat ? "chatcmpl" : "cmpl", static_cast<unsigned long long>(id_base_),
                static_cast<unsigned long long>(next_id_++));
  g->origin = {id, static_cast<int64_t>(std::time(nullptr)), model_id_};
  if (std::optional<api::ApiError> e = build_prompts(*g)) return reply_error(res, *e);
  if (std::optional<api::ApiError> e = submit(*g)) return reply_error(res, *e);
  ++in_flight_;

  if (g->req.stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, g](size_t, httplib::DataSink& sink) {
          try {
            return stream_step(*g, sink);
          } catch (const std::exception&) {  // out of memory: end the stream (the releaser cancels)
            return false;
          }
        },
        [this, g](bool success) { stream_end(*g, success); });
    return;
  }
  while (g->n_ended < g->choices.size()) {
    std::optional<Event> e = g->box->pop(1000ms);
    if (e) apply(*g, std::move(*e));
    else if (stopping_ && !g->cancel_sent) cancel(*g);
  }
  --in_flight_;
  if (std::optional<api::ApiError> e = failure_of(*g, stopping_)) return reply_error(res, *e);
  std::vector<api::Choice> out;
  for (size_t i = 0; i < g->choices.size(); ++i) {
    const ChoiceState& c = g->choices[i];
    api::Choice o;
    o.index = static_cast<int>(i);
    o.text = c.text;
    o.has_logprobs = g->req.logprobs;
    o.logprobs = c.logprobs;
    api::Reply reply;
    o.finish_reason = finish_of(*g, c, o.index, &reply);
    if (!reply.tool_calls.empty()) {
      o.text = reply.content;
      o.tool_calls = reply.tool_calls;
    }
    out.push_back(std::move(o));
  }
  const api::Usage usage = usage_of(*g);
  res.set_content(chat ? api::chat_body(g->origin, out, usage) : api::completion_body(g->origin, out, usage),
                  "application/json");
}

// One call of the stream's content provider: waits up to a second for an
// event and writes its chunk (or a keep-alive comment); false when a write
// failed (the client is gone).
bool Server::stream_step(Generation& g, httplib::DataSink& sink) {
  const bool chat = g.req.endpoint == api::Endpoint::chat;
  const bool buffered = chat && !g.req.tools.empty();  // a reply with tools is sent whole, once parsed
  auto send = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
  if (g.stream_over) {
    sink.done();
    return true;
  }
  if (!g.stream_started) {
    g.stream_started = true;
    if (chat) {
      api::ChatDelta d;
      d.role = true;
      d.content = "";
      for (size_t i = 0; i < g.choices.size(); ++i)
        if (!send(api::sse_event(api::chat_chunk(g.origin, static_cast<int>(i), d)))) return false;
    }
  }
  std::optional<Event> e = g.box->pop(1000ms);
  if (!e) {
    if (stopping_ && !g.cancel_sent) cancel(g);
    return send(": keep-alive\n\n");
  }
  const int index = e->choice;
  const bool end = e->end();
  const bool failed = end && e->status != PACA_OK;
  const std::string text = e->text;
  const bool added = apply(g, std::move(*e));
  if (index < 0 || static_cast<size_t>(index) >= g.choices.size()) return true;
  const ChoiceState& c = g.choices[static_cast<size_t>(index)];
  std::vector<api::TokenLogprob> lp;  // this token's
  if (added) lp.push_back(c.logprobs.back());
  if (failed) {  // the stream ends with the error as an event
    cancel(g);
    const std::optional<api::ApiError> err = failure_of(g, stopping_);
    g.stream_over = true;
    const bool ok = send(api::sse_event(api::error_body(*err))) && send(std::string(api::kSseDone));
    sink.done();
    return ok;
  }
  bool ok = true;
  if (!buffered) {
    const std::string finish = end ? finish_of(g, c, index, nullptr) : "";
    if (!text.empty() || !lp.empty() || end) {
      if (chat) {
        api::ChatDelta d;
        if (!text.empty()) d.content = text;
        d.logprobs = lp;
        d.has_logprobs = g.req.logprobs && !lp.empty();
        d.finish_reason = finish;
        ok = send(api::sse_event(api::chat_chunk(g.origin, index, d)));
      } else {
        ok = send(api::sse_event(api::completion_chunk(g.origin, index, text, lp, g.req.logprobs, finish)));
      }
    }
  } else if (end) {  // the whole reply: content, calls, finish
    api::Reply reply;
    const std::string finish = finish_of(g, c, index, &reply);
    const std::string content = reply.tool_calls.empty() ? c.text : reply.content;
    if (!content.empty() || g.req.logprobs) {
      api::ChatDelta d;
      d.content = content;
      d.logprobs = c.logprobs;
      d.has_logprobs = g.req.logprobs;
      ok = ok && send(api::sse_event(api::chat_chunk(g.origin, index, d)));
    }
    if (!reply.tool_calls.empty()) {
      api::ChatDelta d;
      d.tool_calls = api::ojson::array();
      for (size_t k = 0; k < reply.tool_calls.size(); ++k) {
        api::ojson call = reply.tool_calls[k];
        call["index"] = k;
        d.tool_calls.push_back(std::move(call));
      }
      ok = ok && send(api::sse_event(api::chat_chunk(g.origin, index, d)));
    }
    api::ChatDelta last;
    last.finish_reason = finish;
    ok = ok && send(api::sse_event(api::chat_chunk(g.origin, index, last)));
  }
  if (ok && g.n_ended == g.choices.size()) {
    if (g.req.include_usage) ok = send(api::sse_event(api::usage_chunk(g.origin, chat, usage_of(g))));
    ok = ok && send(std::string(api::kSseDone));
    g.stream_over = true;
    sink.done();
  }
  return ok;
}

// The stream is over: sent whole (success), or its client is gone.
void Server::stream_end(Generation& g, bool success) {
  if (!success && g.n_ended < g.choices.size()) {
    if (!stopping_) cancelled_ += g.choices.size() - g.n_ended;
    cancel(g);
  }
  --in_flight_;
}

void Server::install(httplib::Server& http) {
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& r) {
    generate(api::Endpoint::completions, req, res, r);
  });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& r) {
              generate(api::Endpoint::chat, req, res, r);
            });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(api::models_body(model_id_, created_), "application/json");
  });
  http.Get("/v1/models/(.+)", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (id != model_id_)
      return reply_error(res, {404, "the model '" + id + "' does not exist", "invalid_request_error", "model",
                               "model_not_found"});
    const api::ojson list = api::ojson::parse(api::models_body(model_id_, created_));
    res.set_content(list["data"][0].dump(), "application/json");
  });
  http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4");
  });
  // Answers with no body of their own (unknown routes, methods, httplib's 4xx) get an OpenAI error body.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    api::ApiError e{res.status, "HTTP " + std::to_string(res.status),
                    res.status >= 500 ? "server_error" : "invalid_request_error", "", ""};
    if (res.status == 404) {
      e.message = "not found: " + req.method + " " + req.path.substr(0, 200);
      e.code = "not_found";
    } else if (res.status == 413) {
      e.message = "the body is larger than " + std::to_string(opt_.max_body) + " bytes";
      e.code = "body_too_large";
    }
    res.set_content(api::error_body(e), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
    }
    reply_error(res, {500, "internal error: " + what, "server_error", "", ""});
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) { count(api::route_label(req.path), res.status); });
}

}  // namespace

int cmd_serve(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  // SIGINT/SIGTERM are taken by one thread (sigwait); every thread started
  // from here on inherits the mask. A client gone mid-write must not kill us.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  paca_model_params mp;

  paca_model_params_init(&mp, sizeof mp);
  paca_cli::apply_developer_env(&mp);
  mp.n_threads = static_cast<int32_t>(o.threads);
  mp.device = o.device.empty() ? nullptr : o.device.c_str();
  mp.kv_memory_fraction = o.kv_memory_fraction;
  paca_model* model = nullptr;
  paca_status st = paca_model_load(o.model.c_str(), &mp, &model);
  if (st != PACA_OK) {
    std::fprintf(stderr, "paca serve: loading %s failed: %s: %s\n", o.model.c_str(), paca_status_name(st), paca_last_error());
    return 1;
  }
  paca_engine_params ep;
  paca_engine_params_init(&ep, sizeof ep);
  ep.max_running = static_cast<int32_t>(o.parallel);
  ep.max_queued = static_cast<int32_t>(o.queue);
  ep.max_step_tokens = static_cast<int32_t>(o.step_tokens);
  ep.n_ctx = static_cast<int32_t>(o.ctx);
  ep.prefix_cache = o.prefix_cache ? 1 : 0;
  paca_engine* engine = nullptr;
  st = paca_engine_create(model, &ep, &engine);
  if (st != PACA_OK) {
    std::fprintf(stderr, "paca serve: starting the engine failed: %s: %s\n", paca_status_name(st), paca_last_error());
    paca_model_free(model);
    return 1;
  }

  int rc = 0;
  {
    Server server(o, model, engine);
    httplib::Server http;
    const size_t pool = static_cast<size_t>(o.http_threads);
    http.new_task_queue = [pool] { return new httplib::ThreadPool(pool); };
    // generate() refuses a body past --max-body; past kDrainFactor times that, httplib does
    http.set_payload_max_length(static_cast<size_t>(o.max_body) * kDrainFactor);
    http.set_read_timeout(10, 0);
    http.set_write_timeout(30, 0);
    // an idle keep-alive connection holds a worker; 10 s outlives the usual client-side
    // idle timeouts (4-5 s), so a client never sends on a connection the server is closing
    http.set_keep_alive_timeout(10);
    http.set_keep_alive_max_count(100);
    server.install(http);
    int port = static_cast<int>(o.port);
    const bool bound = port == 0 ? (port = http.bind_to_any_port(o.host)) > 0 : http.bind_to_port(o.host, port);
    if (!bound) {
      std::fprintf(stderr, "paca serve: cannot listen on %s:%ld: %s\n", o.host.c_str(), o.port, std::strerror(errno));
      rc = 1;
    } else {
      std::atomic<bool> exiting{false};
      std::thread signals([&] {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        if (!exiting) std::fprintf(stderr, "paca serve: signal %d, stopping\n", sig);
        server.stop();
        http.stop();
      });
      std::mutex rates_mu;
      std::condition_variable rates_cv;
      bool rates_done = false;
      std::thread rates([&] {
        std::unique_lock<std::mutex> lock(rates_mu);
        while (!rates_cv.wait_for(lock, 1s, [&] { return rates_done; })) server.sample_rates();
      });
      std::printf("paca serve: listening on http://%s:%d (model %s)\n", o.host.c_str(), port, server.model_id().c_str());
      std::fflush(stdout);
      if (!http.listen_after_bind()) rc = 1;
      {
        std::lock_guard<std::mutex> lock(rates_mu);
        rates_done = true;
      }
      rates_cv.notify_one();
      rates.join();
      exiting = true;
      pthread_kill(signals.native_handle(), SIGTERM);  // wakes the signal thread's sigwait
      signals.join();
    }
  }
  paca_engine_free(engine);  // cancels what is left; the callbacks free their sinks
  paca_model_free(model);
  return rc;
}
