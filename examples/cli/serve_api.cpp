// serve_api.cpp - request parsing and response formatting of `paca serve`
// (see serve_api.h). Parsing reports the first problem as a 400 naming the
// field; internally it throws, and parse_request catches everything.
#include "serve_api.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>

namespace paca_serve {

namespace {

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

ojson null_or(const std::string& s) { return s.empty() ? ojson(nullptr) : ojson(s); }

// ---- the parser's building blocks --------------------------------------------

struct Refused {
  ApiError error;
};

[[noreturn]] void refuse(const std::string& param, const std::string& message, const std::string& code = "") {
  throw Refused{ApiError{400, message, "invalid_request_error", param, code}};
}

// A field of an object, or nullptr when absent or null (clients send null for "not given").
const ojson* field(const ojson& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string join(const std::string& path, const char* key) { return path.empty() ? key : path + "." + key; }

bool read_bool(const ojson& obj, const char* key, const std::string& path, bool dflt) {
  const ojson* v = field(obj, key);
  if (v == nullptr) return dflt;
  if (!v->is_boolean()) refuse(join(path, key), "'" + join(path, key) + "' must be a boolean");
  return v->get<bool>();
}

int64_t read_integer(const ojson& v, const std::string& name, int64_t lo, int64_t hi) {
  const std::string range = " in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!v.is_number_integer()) refuse(name, "'" + name + "' must be an integer" + range);
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    refuse(name, "'" + name + "' must be an integer" + range);
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) refuse(name, "'" + name + "' must be an integer" + range);
  return x;
}

std::optional<int64_t> read_int(const ojson& obj, const char* key, const std::string& path, int64_t lo, int64_t hi) {
  const ojson* v = field(obj, key);
  if (v == nullptr) return std::nullopt;
  return read_integer(*v, join(path, key), lo, hi);
}

// A number in [lo, hi] (lo_open: lo itself excluded).
std::optional<float> read_number(const ojson& obj, const char* key, double lo, double hi, bool lo_open = false) {
  const ojson* v = field(obj, key);
  if (v == nullptr) return std::nullopt;
  char range[96];
  std::snprintf(range, sizeof range, " in %s%g, %g]", lo_open ? "(" : "[", lo, hi);
  if (!v->is_number()) refuse(key, std::string("'") + key + "' must be a number" + range);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
    refuse(key, std::string("'") + key + "' must be a number" + range);
  return static_cast<float>(x);
}

std::optional<std::string> read_string(const ojson& obj, const char* key, const std::string& path) {
  const ojson* v = field(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) refuse(join(path, key), "'" + join(path, key) + "' must be a string");
  return v->get<std::string>();
}

// ---- fields ------------------------------------------------------------------

std::vector<int32_t> read_token_list(const ojson& a, const std::string& name, const Limits& lim) {
  if (a.empty()) refuse(name, "'" + name + "' is an empty list of tokens");
  const int64_t hi = lim.n_vocab > 0 ? lim.n_vocab - 1 : std::numeric_limits<int32_t>::max();
  std::vector<int32_t> ids;
  ids.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i)
    ids.push_back(static_cast<int32_t>(read_integer(a[i], name + "[" + std::to_string(i) + "]", 0, hi)));
  return ids;
}

// prompt: a string, a list of strings, a list of token ids or a list of such lists.
void read_prompt(const ojson& body, const Limits& lim, Request& r) {
  const ojson* p = field(body, "prompt");
  if (p == nullptr) refuse("prompt", "'prompt' is required");
  if (p->is_string()) {
    r.prompts.push_back(p->get<std::string>());
    return;
  }
  const char* shape = "'prompt' must be a string, a list of strings, a list of token ids or a list of lists of token ids";
  if (!p->is_array() || p->empty()) refuse("prompt", shape);
  const ojson& first = (*p)[0];
  if (first.is_number()) {
    r.prompt_tokens.push_back(read_token_list(*p, "prompt", lim));
    return;
  }
  for (size_t i = 0; i < p->size(); ++i) {
    const ojson& e = (*p)[i];
    const std::string name = "prompt[" + std::to_string(i) + "]";
    if (first.is_string() && e.is_string()) r.prompts.push_back(e.get<std::string>());
    else if (first.is_array() && e.is_array()) r.prompt_tokens.push_back(read_token_list(e, name, lim));
    else refuse(name, shape);
  }
}

// Message content: a string, null, or a list of text parts (concatenated).
std::string read_content(const ojson& m, const std::string& path, bool may_be_absent) {
  const ojson* c = field(m, "content");
  if (c == nullptr) {
    if (!may_be_absent) refuse(path + ".content", "'" + path + ".content' is required");
    return "";
  }
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) refuse(path + ".content", "'" + path + ".content' must be a string or a list of text parts");
  std::string out;
  for (size_t i = 0; i < c->size(); ++i) {
    const ojson& part = (*c)[i];
    const std::string pp = path + ".content[" + std::to_string(i) + "]";
    if (!part.is_object()) refuse(pp, "'" + pp + "' must be an object");
    const std::optional<std::string> type = read_string(part, "type", pp);
    if (type != "text") refuse(pp + ".type", "only text content parts are supported ('" + pp + ".type' must be \"text\")");
    const std::optional<std::string> text = read_string(part, "text", pp);
    if (!text) refuse(pp + ".text", "'" + pp + ".text' is required");
    out += *text;
  }
  return out;
}

// An assistant turn's tool calls, to paca's shape (arguments as an object).
ojson read_tool_calls(const ojson& calls, const std::string& path, const Limits& lim) {
  if (!calls.is_array()) refuse(path, "'" + path + "' must be a list");
  ojson out = ojson::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const ojson& c = calls[i];
    const std::string cp = path + "[" + std::to_string(i) + "]";
    if (!c.is_object()) refuse(cp, "'" + cp + "' must be an object");
    const std::optional<std::string> type = read_string(c, "type", cp);
    if (type && *type != "function") refuse(cp + ".type", "'" + cp + ".type' must be \"function\"");
    const ojson* fn = field(c, "function");
    if (fn == nullptr || !fn->is_object()) refuse(cp + ".function", "'" + cp + ".function' must be an object");
    const std::optional<std::string> name = read_string(*fn, "name", cp + ".function");
    if (!name || name->empty()) refuse(cp + ".function.name", "'" + cp + ".function.name' is required");
    ojson args = ojson::object();
    if (const ojson* a = field(*fn, "arguments")) {
      if (a->is_object()) {
        args = *a;
      } else if (a->is_string()) {
        const std::string text = a->get<std::string>();
        if (json_too_deep(text, lim.max_depth))
          refuse(cp + ".function.arguments", "'" + cp + ".function.arguments' nests too deep");
        args = ojson::parse(text, nullptr, false);
        if (args.is_discarded() || !args.is_object())
          refuse(cp + ".function.arguments", "'" + cp + ".function.arguments' must be a JSON object (as text)");
      } else {
        refuse(cp + ".function.arguments", "'" + cp + ".function.arguments' must be a string");
      }
    }
    ojson e = {{"type", "function"}, {"function", {{"name", *name}, {"arguments", std::move(args)}}}};
    if (const std::optional<std::string> id = read_string(c, "id", cp)) e["id"] = *id;
    out.push_back(std::move(e));
  }
  return out;
}

void read_messages(const ojson& body, const Limits& lim, Request& r) {
  const ojson* ms = field(body, "messages");
  if (ms == nullptr) refuse("messages", "'messages' is required");
  if (!ms->is_array() || ms->empty()) refuse("messages", "'messages' must be a non-empty list");
  for (size_t i = 0; i < ms->size(); ++i) {
    const ojson& m = (*ms)[i];
    const std::string path = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) refuse(path, "'" + path + "' must be an object");
    std::optional<std::string> role = read_string(m, "role", path);
    if (!role) refuse(path + ".role", "'" + path + ".role' is required");
    if (*role == "developer") role = "system";  // OpenAI's newer name for the system turn
    if (*role != "system" && *role != "user" && *role != "assistant" && *role != "tool" && *role != "ipython")
      refuse(path + ".role", "'" + path + ".role' must be one of system, developer, user, assistant, tool, ipython");
    ojson out = ojson::object();
    out["role"] = *role;
    const ojson* calls = *role == "assistant" ? field(m, "tool_calls") : nullptr;
    out["content"] = read_content(m, path, *role == "assistant" && calls != nullptr);
    if (calls != nullptr) out["tool_calls"] = read_tool_calls(*calls, path + ".tool_calls", lim);
    if (*role == "tool") {
      if (const std::optional<std::string> id = read_string(m, "tool_call_id", path)) out["tool_call_id"] = *id;
    }
    if (const std::optional<std::string> name = read_string(m, "name", path)) out["name"] = *name;
    r.messages.push_back(std::move(out));
  }
}

bool valid_function_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

void read_tools(const ojson& body, const Limits& lim, Request& r) {
  if (const ojson* ts = field(body, "tools")) {
    if (!ts->is_array()) refuse("tools", "'tools' must be a list");
    if (ts->size() > static_cast<size_t>(lim.max_tools))
      refuse("tools", "'tools' holds more than " + std::to_string(lim.max_tools) + " tools");
    for (size_t i = 0; i < ts->size(); ++i) {
      const ojson& t = (*ts)[i];
      const std::string path = "tools[" + std::to_string(i) + "]";
      if (!t.is_object()) refuse(path, "'" + path + "' must be an object");
      if (read_string(t, "type", path) != "function") refuse(path + ".type", "'" + path + ".type' must be \"function\"");
      const ojson* fn = field(t, "function");
      if (fn == nullptr || !fn->is_object()) refuse(path + ".function", "'" + path + ".function' must be an object");
      const std::optional<std::string> name = read_string(*fn, "name", path + ".function");
      if (!name || !valid_function_name(*name))
        refuse(path + ".function.name", "'" + path + ".function.name' must be 1 to 64 letters, digits, '_' or '-'");
      read_string(*fn, "description", path + ".function");
      const ojson* params = field(*fn, "parameters");
      if (params != nullptr && !params->is_object())
        refuse(path + ".function.parameters", "'" + path + ".function.parameters' must be a JSON Schema object");
      read_bool(*fn, "strict", path + ".function", false);
      r.tools.push_back(t);
    }
  }
  if (const ojson* tc = field(body, "tool_choice")) {
    if (tc->is_string()) {
      const std::string s = tc->get<std::string>();
      if (s == "none") r.tool_choice.kind = ToolChoice::Kind::none;
      else if (s == "auto") r.tool_choice.kind = ToolChoice::Kind::auto_;
      else if (s == "required") r.tool_choice.kind = ToolChoice::Kind::required;
      else refuse("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or a function");
    } else if (tc->is_object()) {
      const ojson* fn = field(*tc, "function");
      const std::optional<std::string> name =
          fn != nullptr && fn->is_object() ? read_string(*fn, "name", "tool_choice.function") : std::nullopt;
      if (read_string(*tc, "type", "tool_choice") != "function" || !name)
        refuse("tool_choice", "'tool_choice' must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
      r.tool_choice.kind = ToolChoice::Kind::function;
      r.tool_choice.name = *name;
    } else {
      refuse("tool_choice", "'tool_choice' must be a string or an object");
    }
  }
  const ToolChoice::Kind k = r.tool_choice.kind;
  if ((k == ToolChoice::Kind::required || k == ToolChoice::Kind::function) && r.tools.empty())
    refuse("tool_choice", "'tool_choice' asks for a tool call but 'tools' is empty");
  if (k == ToolChoice::Kind::function) {
    const bool known = std::any_of(r.tools.begin(), r.tools.end(), [&](const ojson& t) {
      return t.at("function").at("name").get<std::string>() == r.tool_choice.name;  // checked above
    });
    if (!known) refuse("tool_choice", "'tool_choice' names '" + r.tool_choice.name + "', which is not in 'tools'");
  }
  if (k == ToolChoice::Kind::none) r.tools = ojson::array();  // not shown to the model, not parsed
}

void read_stop(const ojson& body, const Limits& lim, Request& r) {
  const ojson* s = field(body, "stop");
  if (s == nullptr) return;
  const char* shape = "'stop' must be a string or a list of strings";
  if (s->is_string()) {
    r.stop.push_back(s->get<std::string>());
  } else if (s->is_array()) {
    for (const ojson& e : *s) {
      if (!e.is_string()) refuse("stop", shape);
      r.stop.push_back(e.get<std::string>());
    }
  } else {
    refuse("stop", shape);
  }
  if (r.stop.size() > static_cast<size_t>(lim.max_stop))
    refuse("stop", "'stop' holds more than " + std::to_string(lim.max_stop) + " strings");
  for (const std::string& x : r.stop) {
    if (x.empty()) refuse("stop", "'stop' strings must not be empty");
    if (x.size() > lim.max_stop_bytes)
      refuse("stop", "'stop' strings must be at most " + std::to_string(lim.max_stop_bytes) + " bytes");
  }
}

void read_response_format(const ojson& body, Request& r) {
  const ojson* f = field(body, "response_format");
  if (f == nullptr) return;
  if (!f->is_object()) refuse("response_format", "'response_format' must be an object");
  const std::optional<std::string> type = read_string(*f, "type", "response_format");
  if (!type || *type == "text") return;
  if (*type == "json_object") {
    r.json_schema = R"({"type":"object"})";
  } else if (*type == "json_schema") {
    const ojson* js = field(*f, "json_schema");
    if (js == nullptr || !js->is_object())
      refuse("response_format.json_schema", "'response_format.json_schema' must be an object");
    read_string(*js, "name", "response_format.json_schema");
    read_bool(*js, "strict", "response_format.json_schema", false);
    const ojson* schema = field(*js, "schema");
    if (schema != nullptr && !schema->is_object() && !schema->is_boolean())
      refuse("response_format.json_schema.schema", "'response_format.json_schema.schema' must be a JSON Schema");
    r.json_schema = schema != nullptr ? dump(*schema) : "{}";
  } else {
    refuse("response_format.type", "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"");
  }
}

// logit_bias: {"<token id>": bias, ...} as OpenAI's API has it, each bias in
// [-100, 100] added to the token's logit before sampling (-100 all but bans
// it, 100 all but forces it); ids in [0, n_vocab) when the limits know the
// vocabulary. At most kMaxLogitBias entries.
constexpr size_t kMaxLogitBias = 1024;

void read_logit_bias(const ojson& body, const Limits& lim, Request& r) {
  const ojson* b = field(body, "logit_bias");
  if (b == nullptr) return;
  if (!b->is_object()) refuse("logit_bias", "'logit_bias' must be an object of token ids and biases");
  if (b->size() > kMaxLogitBias)
    refuse("logit_bias", "'logit_bias' has " + std::to_string(b->size()) + " entries; at most " +
                             std::to_string(kMaxLogitBias) + " are allowed");
  for (auto it = b->begin(); it != b->end(); ++it) {
    const std::string& key = it.key();
    int64_t id = -1;
    const bool digits = !key.empty() && key.size() <= 9 &&
                        std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) id = std::stoll(key);
    if (!digits) refuse("logit_bias", "'logit_bias' keys must be token ids (decimal integers), got \"" +
                                          key.substr(0, 32) + "\"");
    if (lim.n_vocab > 0 && id >= lim.n_vocab)
      refuse("logit_bias", "'logit_bias' names token " + key + ", outside the vocabulary [0, " +
                               std::to_string(lim.n_vocab) + ")");
    const ojson& v = it.value();
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < -100 || v.get<double>() > 100)
      refuse("logit_bias", "'logit_bias' of token " + key + " must be a number in [-100, 100]");
    r.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(v.get<double>()));
  }
}

// Fields of OpenAI's API this server does not implement: refused rather than
// silently ignored, since they change what the client gets.
void refuse_unsupported(const ojson& body, Endpoint ep, const Request& r) {
  if (ep == Endpoint::completions) {
    if (read_bool(body, "echo", "", false)) refuse("echo", "'echo' is not supported by this server");
    if (const std::optional<std::string> s = read_string(body, "suffix", ""); s && !s->empty())
      refuse("suffix", "'suffix' is not supported by this server");
    if (const std::optional<int64_t> b = read_int(body, "best_of", "", 1, 1 << 20); b && *b != r.n)
      refuse("best_of", "'best_of' must equal 'n' (this server returns every choice it generates)");
  } else {
    if (field(body, "functions") != nullptr || field(body, "function_call") != nullptr)
      refuse("functions", "'functions' and 'function_call' are not supported; use 'tools' and 'tool_choice'");
  }
}

Request parse_checked(Endpoint ep, std::string_view text, const Limits& lim) {
  if (json_too_deep(text, lim.max_depth))
    refuse("", "the body nests deeper than " + std::to_string(lim.max_depth) + " levels");
  const ojson body = ojson::parse(text, nullptr, false);
  if (body.is_discarded()) refuse("", "the body is not valid JSON", "invalid_json");
  if (!body.is_object()) refuse("", "the body must be a JSON object");

  Request r;
  r.endpoint = ep;
  r.model = read_string(body, "model", "").value_or("");
  r.n = static_cast<int>(read_int(body, "n", "", 1, lim.max_choices).value_or(1));
  if (ep == Endpoint::completions) {
    read_prompt(body, lim, r);
    const size_t prompts = r.prompts.size() + r.prompt_tokens.size();
    if (prompts * static_cast<size_t>(r.n) > static_cast<size_t>(lim.max_choices))
      refuse("n", "n x the number of prompts must be at most " + std::to_string(lim.max_choices));
    if (const std::optional<int64_t> lp = read_int(body, "logprobs", "", 0, 5)) {
      if (*lp > 0)
        refuse("logprobs", "'logprobs' must be 0: this server reports the chosen tokens' log-probabilities, not alternatives");
      r.logprobs = true;
    }
  } else {
    read_messages(body, lim, r);
    read_tools(body, lim, r);
    r.logprobs = read_bool(body, "logprobs", "", false);
    if (const std::optional<int64_t> top = read_int(body, "top_logprobs", "", 0, 20); top && *top > 0)
      refuse("top_logprobs", "'top_logprobs' must be 0: this server reports the chosen tokens' log-probabilities only");
    read_bool(body, "parallel_tool_calls", "", true);
  }
  std::optional<int64_t> mt = read_int(body, "max_tokens", "", 1, std::numeric_limits<int32_t>::max());
  if (ep == Endpoint::chat) {
    if (std::optional<int64_t> mct = read_int(body, "max_completion_tokens", "", 1, std::numeric_limits<int32_t>::max()))
      mt = mct;
  }
  if (mt) r.max_tokens = static_cast<int32_t>(*mt);
  r.temperature = read_number(body, "temperature", 0, 2).value_or(1.0f);
  r.top_p = read_number(body, "top_p", 0, 1, true).value_or(1.0f);
  r.top_k = static_cast<int32_t>(read_int(body, "top_k", "", 0, std::numeric_limits<int32_t>::max()).value_or(0));
  r.min_p = read_number(body, "min_p", 0, 1).value_or(0.0f);
  r.frequency_penalty = read_number(body, "frequency_penalty", -2, 2).value_or(0.0f);
  r.presence_penalty = read_number(body, "presence_penalty", -2, 2).value_or(0.0f);
  if (const ojson* s = field(body, "seed")) {
    if (!s->is_number_integer()) refuse("seed", "'seed' must be an integer");
    r.seed = s->is_number_unsigned() ? s->get<uint64_t>() : static_cast<uint64_t>(s->get<int64_t>());
  }
  read_stop(body, lim, r);
  r.stream = read_bool(body, "stream", "", false);
  if (const ojson* so = field(body, "stream_options")) {
    if (!so->is_object()) refuse("stream_options", "'stream_options' must be an object");
    r.include_usage = read_bool(*so, "include_usage", "stream_options", false);
  }
  r.ignore_eos = read_bool(body, "ignore_eos", "", false);
  read_response_format(body, r);
  r.user = read_string(body, "user", "").value_or("");
  read_logit_bias(body, lim, r);
  refuse_unsupported(body, ep, r);
  const std::string forced = tool_call_schema(r);
  if (!forced.empty()) {
    if (!r.json_schema.empty())
      refuse("response_format", "'response_format' cannot be combined with a 'tool_choice' that forces a call");
    r.json_schema = forced;
  }
  if (!r.json_schema.empty() && r.ignore_eos)
    refuse("ignore_eos", "'ignore_eos' cannot be combined with a JSON response format");
  return r;
}

ojson usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

ojson completion_logprobs(const std::vector<TokenLogprob>& lps) {
  ojson tokens = ojson::array(), values = ojson::array(), offsets = ojson::array();
  for (const TokenLogprob& t : lps) {
    tokens.push_back(t.piece);
    values.push_back(t.logprob);
    offsets.push_back(t.text_offset);
  }
  return {{"tokens", std::move(tokens)}, {"token_logprobs", std::move(values)}, {"top_logprobs", nullptr},
          {"text_offset", std::move(offsets)}};
}

ojson chat_logprobs(const std::vector<TokenLogprob>& lps) {
  ojson content = ojson::array();
  for (const TokenLogprob& t : lps) {
    ojson bytes = ojson::array();
    for (unsigned char c : t.piece) bytes.push_back(c);
    content.push_back({{"token", t.piece}, {"logprob", t.logprob}, {"bytes", std::move(bytes)}, {"top_logprobs", ojson::array()}});
  }
  return {{"content", std::move(content)}, {"refusal", nullptr}};
}

ojson head(const Origin& o, const char* object) {
  return {{"id", o.id}, {"object", object}, {"created", o.created}, {"model", o.model}};
}

// Prometheus label values escape backslash, quote and newline.
std::string label_escape(std::string_view s) {
  std::string o;
  for (char c : s) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string number_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char b[64];
  const auto r = std::to_chars(b, b + sizeof b, v);  // the shortest text that reads back as v
  return std::string(b, r.ptr);
}

}  // namespace

// ---- errors -----------------------------------------------------------------

std::string error_body(const ApiError& e) {
  const ojson j = {{"error", {{"message", e.message}, {"type", e.type}, {"param", null_or(e.param)}, {"code", null_or(e.code)}}}};
  return dump(j);
}

ApiError error_for_status(paca_status status, const std::string& detail) {
  const std::string message = !detail.empty()                ? detail
                              : status == PACA_ERR_BUSY       ? "the server's queue is full; try again later"
                                                              : "the engine failed (paca_status " + std::to_string(status) + ")";
  switch (status) {
    case PACA_ERR_INVALID_ARGUMENT: return {400, message, "invalid_request_error", "", ""};
    case PACA_ERR_CONTEXT_FULL: return {400, message, "invalid_request_error", "", "context_length_exceeded"};
    case PACA_ERR_BUSY: return {429, message, "rate_limit_error", "", "queue_full"};
    case PACA_ERR_OUT_OF_MEMORY: return {503, message, "server_error", "", "out_of_memory"};
    case PACA_ERR_DEVICE: return {503, message, "server_error", "", "device_error"};
    case PACA_ERR_CANCELLED: return {503, message, "server_error", "", "cancelled"};
    default: return {500, message, "server_error", "", ""};
  }
}

// ---- requests ---------------------------------------------------------------

bool json_too_deep(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character, whatever it is
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

Parsed parse_request(Endpoint endpoint, std::string_view body, const Limits& limits) {
  Parsed p;
  try {
    p.request = parse_checked(endpoint, body, limits);
  } catch (const Refused& r) {
    p.error = r.error;
  } catch (const std::exception& e) {  // nlohmann type errors the checks above did not foresee
    p.error = ApiError{400, std::string("the request could not be read: ") + e.what(), "invalid_request_error", "", ""};
  }
  return p;
}

std::string tool_call_schema(const Request& r) {
  const ToolChoice::Kind k = r.tool_choice.kind;
  if (k != ToolChoice::Kind::required && k != ToolChoice::Kind::function) return "";
  ojson alternatives = ojson::array();
  for (const ojson& t : r.tools) {
    const auto f = t.is_object() ? t.find("function") : t.end();
    if (f == t.end() || !f->is_object()) continue;
    const ojson& fn = *f;
    const auto n = fn.find("name");
    if (n == fn.end() || !n->is_string()) continue;
    const std::string name = n->get<std::string>();
    if (k == ToolChoice::Kind::function && name != r.tool_choice.name) continue;
    auto it = fn.find("parameters");
    const ojson params = it != fn.end() && it->is_object() ? *it : ojson{{"type", "object"}};
    alternatives.push_back({{"type", "object"},
                            {"properties", {{"name", {{"const", name}}}, {"parameters", params}}},
                            {"required", {"name", "parameters"}}});
  }
  if (alternatives.empty()) return "";
  if (alternatives.size() == 1) return dump(alternatives[0]);
  return dump(ojson{{"anyOf", std::move(alternatives)}});
}

// ---- responses --------------------------------------------------------------

const char* finish_reason(paca_stop_reason reason) {
  return reason == PACA_STOP_MAX_TOKENS || reason == PACA_STOP_CONTEXT_FULL ? "length" : "stop";
}

std::string completion_body(const Origin& o, const std::vector<Choice>& choices, const Usage& usage) {
  ojson j = head(o, "text_completion");
  ojson cs = ojson::array();
  for (const Choice& c : choices)
    cs.push_back({{"text", c.text},
                  {"index", c.index},
                  {"logprobs", c.has_logprobs ? completion_logprobs(c.logprobs) : ojson(nullptr)},
                  {"finish_reason", c.finish_reason}});
  j["choices"] = std::move(cs);
  j["usage"] = usage_json(usage);
  return dump(j);
}

std::string chat_body(const Origin& o, const std::vector<Choice>& choices, const Usage& usage) {
  ojson j = head(o, "chat.completion");
  ojson cs = ojson::array();
  for (const Choice& c : choices) {
    ojson msg = {{"role", "assistant"}};
    msg["content"] = c.text.empty() && !c.tool_calls.empty() ? ojson(nullptr) : ojson(c.text);
    if (!c.tool_calls.empty()) msg["tool_calls"] = c.tool_calls;
    cs.push_back({{"index", c.index},
                  {"message", std::move(msg)},
                  {"logprobs", c.has_logprobs ? chat_logprobs(c.logprobs) : ojson(nullptr)},
                  {"finish_reason", c.finish_reason}});
  }
  j["choices"] = std::move(cs);
  j["usage"] = usage_json(usage);
  return dump(j);
}

std::string completion_chunk(const Origin& o, int index, const std::string& text, const std::vector<TokenLogprob>& logprobs,
                             bool has_logprobs, const std::string& finish) {
  ojson j = head(o, "text_completion");
  j["choices"] = ojson::array({{{"text", text},
                                {"index", index},
                                {"logprobs", has_logprobs ? completion_logprobs(logprobs) : ojson(nullptr)},
                                {"finish_reason", null_or(finish)}}});
  return dump(j);
}

std::string chat_chunk(const Origin& o, int index, const ChatDelta& d) {
  ojson j = head(o, "chat.completion.chunk");
  ojson delta = ojson::object();
  if (d.role) delta["role"] = "assistant";
  if (d.content) delta["content"] = *d.content;
  if (!d.tool_calls.is_null()) delta["tool_calls"] = d.tool_calls;
  j["choices"] = ojson::array({{{"index", index},
                                {"delta", std::move(delta)},
                                {"logprobs", d.has_logprobs ? chat_logprobs(d.logprobs) : ojson(nullptr)},
                                {"finish_reason", null_or(d.finish_reason)}}});
  return dump(j);
}

std::string usage_chunk(const Origin& o, bool chat, const Usage& usage) {
  ojson j = head(o, chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = ojson::array();
  j["usage"] = usage_json(usage);
  return dump(j);
}

std::string sse_event(const std::string& json) { return "data: " + json + "\n\n"; }

Reply reply_from_parsed(const std::string& parsed_json, const std::string& fallback_text, const std::string& id_prefix) {
  Reply out;
  out.content = fallback_text;
  const ojson p = ojson::parse(parsed_json, nullptr, false);
  if (p.is_discarded() || !p.is_object()) return out;
  const auto calls = p.find("tool_calls");
  const auto content = p.find("content");
  if (calls == p.end() || !calls->is_array() || calls->empty()) return out;
  out.content = content != p.end() && content->is_string() ? content->get<std::string>() : "";
  size_t i = 0;
  for (const ojson& c : *calls) {
    const auto name = c.find("name");
    const auto args = c.find("arguments");
    if (name == c.end() || !name->is_string()) continue;
    const std::string arguments = args == c.end() ? "{}" : args->is_string() ? args->get<std::string>() : dump(*args);
    out.tool_calls.push_back({{"id", id_prefix + "_" + std::to_string(i++)},
                              {"type", "function"},
                              {"function", {{"name", name->get<std::string>()}, {"arguments", arguments}}}});
  }
  return out;
}

std::string models_body(const std::string& model_id, int64_t created) {
  const ojson j = {{"object", "list"},
                   {"data", ojson::array({{{"id", model_id}, {"object", "model"}, {"created", created}, {"owned_by", "paca"}}})}};
  return dump(j);
}

// ---- metrics ----------------------------------------------------------------

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;
  const size_t b = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  ++counts_[b];
  ++count_;
  sum_ += v;
}

void RateWindow::add(double t, uint64_t value) {
  samples_.emplace_back(t, value);
  // keep the newest sample older than the window too: it anchors the rate at the window's start
  while (samples_.size() > 2 && samples_[1].first <= t - window_s_) samples_.erase(samples_.begin());
}

double RateWindow::rate() const {
  if (samples_.size() < 2) return 0;
  const auto& [t0, v0] = samples_.front();
  const auto& [t1, v1] = samples_.back();
  if (t1 <= t0 || v1 < v0) return 0;
  return static_cast<double>(v1 - v0) / (t1 - t0);
}

std::string route_label(std::string_view path) {
  for (std::string_view known : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics"})
    if (path == known) return std::string(known);
  return "other";
}

std::string metrics_text(const Metrics& m) {
  std::string o;
  auto family = [&](const char* name, const char* type, const char* help) {
    o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto sample = [&](const std::string& name, double v) { o += name + " " + number_text(v) + "\n"; };
  const paca_engine_stats& e = m.engine;

  family("paca_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const auto& [key, n] : m.requests)
    sample("paca_requests_total{route=\"" + label_escape(key.first) + "\",status=\"" + std::to_string(key.second) + "\"}",
           static_cast<double>(n));
  family("paca_requests_cancelled_total", "counter", "Generations cancelled because their client disconnected.");
  sample("paca_requests_cancelled_total{reason=\"client_disconnected\"}", static_cast<double>(m.cancelled_disconnect));
  family("paca_tokens_per_second", "gauge", "Tokens per second over the last 10 seconds.");
  sample("paca_tokens_per_second{kind=\"prefill\"}", m.prefill_tokens_per_s);
  sample("paca_tokens_per_second{kind=\"generated\"}", m.generated_tokens_per_s);
  // the families of one unlabelled sample
  const struct {
    const char* name;
    const char* type;
    const char* help;
    double value;
  } single[] = {
      {"paca_http_requests_in_flight", "gauge", "HTTP requests being answered now.", static_cast<double>(m.http_in_flight)},
      {"paca_engine_queue_depth", "gauge", "Engine requests waiting to start.", static_cast<double>(e.n_queued)},
      {"paca_engine_running", "gauge", "Engine requests in the running batch.", static_cast<double>(e.n_running)},
      {"paca_engine_requests_submitted_total", "counter", "Engine requests submitted.", static_cast<double>(e.n_submitted)},
      {"paca_engine_requests_finished_total", "counter", "Engine requests ended for any reason.",
       static_cast<double>(e.n_finished)},
      {"paca_engine_steps_total", "counter", "Batched forward passes.", static_cast<double>(e.n_steps)},
      {"paca_engine_preemptions_total", "counter", "Requests preempted (recomputed later).",
       static_cast<double>(e.n_preemptions)},
      {"paca_tokens_prefilled_total", "counter", "Prompt tokens run through the model (recomputation included).",
       static_cast<double>(e.n_prefill_tokens)},
      {"paca_tokens_generated_total", "counter", "Tokens generated.", static_cast<double>(e.n_generated_tokens)},
      {"paca_prefix_cache_tokens_total", "counter", "Prompt tokens whose KV came from the prefix cache.",
       static_cast<double>(e.n_cached_tokens)},
      {"paca_prefix_cache_tokens", "gauge", "Token positions the prefix cache holds now.",
       static_cast<double>(e.kv_blocks_cached) * e.kv_block_tokens},
      {"paca_kv_blocks_used", "gauge", "KV-cache blocks holding K/V (the prefix cache's included).",
       static_cast<double>(e.kv_blocks_used)},
      {"paca_kv_blocks_total", "gauge", "KV-cache blocks in the pool (0: unbounded).", static_cast<double>(e.kv_blocks_total)},
      {"paca_kv_block_tokens", "gauge", "Token positions per KV-cache block.", static_cast<double>(e.kv_block_tokens)},
  };
  for (const auto& f : single) {
    family(f.name, f.type, f.help);
    sample(f.name, f.value);
  }
  if (m.ttft != nullptr) {
    const Histogram& h = *m.ttft;
    family("paca_time_to_first_token_seconds", "histogram", "Time from submission to the first generated token.");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.counts().size(); ++i) {
      cumulative += h.counts()[i];
      const std::string le = i < h.bounds().size() ? number_text(h.bounds()[i]) : "+Inf";
      sample("paca_time_to_first_token_seconds_bucket{le=\"" + le + "\"}", static_cast<double>(cumulative));
    }
    sample("paca_time_to_first_token_seconds_sum", h.sum());
    sample("paca_time_to_first_token_seconds_count", static_cast<double>(h.count()));
  }
  return o;
}

}  // namespace paca_serve
