// serve_api.h - the OpenAI-compatible protocol of `paca serve`, as pure
// functions: request bodies in (parsed and checked, nothing trusted), response
// bodies, stream chunks, errors and the Prometheus page out. Nothing here
// touches the network or the engine, so the unit tests and the fuzzer link it
// alone (libpaca is not needed: paca.h is included for its enums only).
//
// The wire format is OpenAI's (https://platform.openai.com/docs/api-reference):
// /v1/completions and /v1/chat/completions bodies, their responses and
// "chat.completion.chunk" / "text_completion" stream chunks sent as
// server-sent events ("data: {...}\n\n", ended by "data: [DONE]\n\n"), and the
// error body {"error": {"message", "type", "param", "code"}}.
#pragma once

#include <paca/paca.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paca_serve {

using ojson = nlohmann::ordered_json;

// ---- errors -----------------------------------------------------------------

// A failure the client sees: the HTTP status and OpenAI's error fields
// (param and code may be empty, then they are null in the body).
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;
  std::string code;
};

// {"error": {"message": ..., "type": ..., "param": ... | null, "code": ... | null}}
std::string error_body(const ApiError& e);

// The HTTP answer to an engine or library failure: PACA_ERR_BUSY 429,
// PACA_ERR_INVALID_ARGUMENT and PACA_ERR_CONTEXT_FULL 400, PACA_ERR_CANCELLED
// 503 (the server is stopping), PACA_ERR_OUT_OF_MEMORY and PACA_ERR_DEVICE
// 503, everything else 500. detail is the library's message ("": a generic
// one).
ApiError error_for_status(paca_status status, const std::string& detail);

// ---- requests ---------------------------------------------------------------

enum class Endpoint { completions, chat };

// Bounds the parser enforces (a request beyond them is a 400 naming the field).
struct Limits {
  int max_choices = 16;          // n x number of prompts
  int max_stop = 16;             // stop strings
  size_t max_stop_bytes = 512;   // bytes of one stop string
  int max_tools = 128;
  int max_depth = 64;            // JSON nesting of the body
  int32_t n_vocab = 0;           // token prompts must lie in [0, n_vocab); 0: not checked
};

// tool_choice: "none", "auto" (the default), "required" or one named function.
struct ToolChoice {
  enum class Kind { none, auto_, required, function } kind = Kind::auto_;
  std::string name;  // Kind::function
};

// A parsed request. Absent and null fields keep these defaults.
struct Request {
  Endpoint endpoint = Endpoint::completions;
  std::string model;                              // "" when absent
  // /v1/completions: the prompts, as text or as token ids (one of the two)
  std::vector<std::string> prompts;
  std::vector<std::vector<int32_t>> prompt_tokens;
  // /v1/chat/completions: the messages in paca's chat JSON (paca.h, "chat
  // formats and tool calls"), and the tools (OpenAI's shape is paca's)
  ojson messages = ojson::array();
  ojson tools = ojson::array();                   // empty: none
  ToolChoice tool_choice;
  int n = 1;                                      // choices per prompt
  std::optional<int32_t> max_tokens;              // max_tokens / max_completion_tokens
  float temperature = 1.0f;                       // OpenAI's default
  float top_p = 1.0f;
  int32_t top_k = 0;                              // extension (0: off)
  float min_p = 0.0f;                             // extension (0: off)
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  std::optional<uint64_t> seed;                   // a negative seed is taken modulo 2^64
  std::vector<std::string> stop;
  bool logprobs = false;                          // the chosen tokens' log-probabilities
  bool stream = false;
  bool include_usage = false;                     // stream_options.include_usage
  bool ignore_eos = false;                        // extension
  std::string json_schema;                        // response_format (or a forced tool call): "" none
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, bias in [-100, 100]), in the body's order
  std::string user;
};

// The outcome of parse_request: a request, or the error to send.
struct Parsed {
  Request request;
  std::optional<ApiError> error;
};

// Parses and checks a request body (bytes from the network, any content).
// Unknown fields are ignored; known fields of the wrong type or out of range
// are errors naming them (param). Never throws.
Parsed parse_request(Endpoint endpoint, std::string_view body, const Limits& limits);

// Whether text, read as JSON, nests arrays/objects deeper than max_depth
// (strings are skipped, so brackets inside them do not count). Checked before
// parsing so that no recursive code ever meets a hostile depth.
bool json_too_deep(std::string_view text, int max_depth);

// The JSON Schema a tool_choice of "required" or a named function imposes on
// the reply: a JSON call {"name": <a tool's name>, "parameters": <its
// parameters>} that paca's tool-call parser recognises. "" for none/auto.
std::string tool_call_schema(const Request& r);

// ---- responses --------------------------------------------------------------

// One generated token's log-probability, for logprobs.
struct TokenLogprob {
  std::string piece;   // the token's bytes (may be part of a UTF-8 character)
  float logprob = 0;
  size_t text_offset = 0;  // where the token's text starts in the choice's text
};

// One finished choice.
struct Choice {
  int index = 0;
  std::string text;                      // completion text, or the reply's content
  std::vector<TokenLogprob> logprobs;
  bool has_logprobs = false;
  std::string finish_reason;             // "stop", "length", "tool_calls"
  ojson tool_calls = ojson::array();     // OpenAI's shape (chat only)
};

struct Usage {
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  uint64_t cached_tokens = 0;            // prompt tokens served from the prefix cache
};

// Who made a response: its id ("cmpl-..." / "chatcmpl-..."), creation time
// (seconds since the epoch) and the model id.
struct Origin {
  std::string id;
  int64_t created = 0;
  std::string model;
};

// OpenAI's finish_reason for a stop reason: "length" for max tokens and a
// full context, "stop" for the rest.
const char* finish_reason(paca_stop_reason reason);

// The non-streamed bodies: "text_completion" and "chat.completion".
std::string completion_body(const Origin& o, const std::vector<Choice>& choices, const Usage& usage);
std::string chat_body(const Origin& o, const std::vector<Choice>& choices, const Usage& usage);

// What one chat stream chunk carries for one choice.
struct ChatDelta {
  bool role = false;                     // "role": "assistant" (the first chunk)
  std::optional<std::string> content;
  ojson tool_calls;                      // null: none; else the array, each entry with its "index"
  std::vector<TokenLogprob> logprobs;
  bool has_logprobs = false;
  std::string finish_reason;             // "": null
};

// Stream chunks (JSON only; frame them with sse_event). text_offset of
// logprobs is relative to the choice's whole text.
std::string completion_chunk(const Origin& o, int index, const std::string& text,
                             const std::vector<TokenLogprob>& logprobs, bool has_logprobs,
                             const std::string& finish_reason);
std::string chat_chunk(const Origin& o, int index, const ChatDelta& d);
// The last chunk of stream_options.include_usage: no choices, the usage.
std::string usage_chunk(const Origin& o, bool chat, const Usage& usage);

// "data: <json>\n\n", and the stream's end.
std::string sse_event(const std::string& json);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// paca_chat_parse_tool_calls' JSON -> the reply's content and OpenAI's
// tool_calls array ({"id": "<id_prefix>_<i>", "type": "function",
// "function": {"name", "arguments": "<JSON text>"}}). A reply without calls
// (or that does not parse) keeps its text as content and gets no calls.
struct Reply {
  std::string content;
  ojson tool_calls = ojson::array();
};
Reply reply_from_parsed(const std::string& parsed_json, const std::string& fallback_text, const std::string& id_prefix);

// GET /v1/models: the one model served.
std::string models_body(const std::string& model_id, int64_t created);

// ---- metrics ----------------------------------------------------------------

// Cumulative histogram with fixed upper bounds (Prometheus' layout).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  const std::vector<uint64_t>& counts() const { return counts_; }  // per bucket, not cumulative; last: +Inf
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

// The rate of a growing counter over a trailing window: feed it (time in
// seconds, counter value) samples; rate() is the increase per second between
// the oldest sample inside the window and the newest.
class RateWindow {
 public:
  explicit RateWindow(double window_s) : window_s_(window_s) {}
  void add(double t, uint64_t value);
  double rate() const;

 private:
  double window_s_;
  std::vector<std::pair<double, uint64_t>> samples_;  // oldest first
};

// What /metrics shows.
struct Metrics {
  // HTTP requests answered, by route ("/v1/completions", ..., "other") and status
  std::vector<std::pair<std::pair<std::string, int>, uint64_t>> requests;
  uint64_t cancelled_disconnect = 0;   // engine requests cancelled because their client went away
  uint64_t http_in_flight = 0;
  paca_engine_stats engine{};          // the engine's counters
  double prefill_tokens_per_s = 0;     // over the rate window
  double generated_tokens_per_s = 0;
  const Histogram* ttft = nullptr;     // seconds from submit to first token
};

// The Prometheus text exposition (version 0.0.4) of m.
std::string metrics_text(const Metrics& m);

// The label text of an HTTP route: the known routes as they are, anything
// else "other" (a hostile client must not grow the label set).
std::string route_label(std::string_view path);

}  // namespace paca_serve
