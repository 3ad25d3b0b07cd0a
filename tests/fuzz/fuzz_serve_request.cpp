// fuzz_serve_request.cpp - libFuzzer target for the request parser of
// `paca serve` (examples/cli/serve_api.h): the input is an HTTP body, parsed
// as a completions and as a chat request. parse_request never throws; a
// refusal is a 400 with a message whose error body is JSON; an accepted
// request keeps every documented bound; what the server would send back
// about it (chunks, bodies) is always valid JSON. The input also goes through
// reply_from_parsed, whose input is the library's tool-call JSON.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "serve_api.h"

namespace {

void require(bool cond) {
  if (!cond) __builtin_trap();
}

bool is_json(const std::string& s) { return !paca_serve::ojson::parse(s, nullptr, false).is_discarded(); }

void check_request(const paca_serve::Request& r, paca_serve::Endpoint ep, const paca_serve::Limits& lim) {
  require(r.n >= 1 && r.n <= lim.max_choices);
  if (ep == paca_serve::Endpoint::completions) {
    const size_t prompts = r.prompts.size() + r.prompt_tokens.size();
    require(prompts >= 1 && (r.prompts.empty() || r.prompt_tokens.empty()));
    require(prompts * static_cast<size_t>(r.n) <= static_cast<size_t>(lim.max_choices));
    for (const auto& ids : r.prompt_tokens) {
      require(!ids.empty());
      for (int32_t id : ids) require(id >= 0 && id < lim.n_vocab);
    }
  } else {
    require(r.messages.is_array() && !r.messages.empty());
    for (const auto& m : r.messages) require(m.at("role").is_string() && m.at("content").is_string());
    require(r.tools.is_array() && r.tools.size() <= static_cast<size_t>(lim.max_tools));
  }
  require(!r.max_tokens || *r.max_tokens >= 1);
  require(r.temperature >= 0 && r.temperature <= 2);
  require(r.top_p > 0 && r.top_p <= 1);
  require(r.stop.size() <= static_cast<size_t>(lim.max_stop));
  for (const std::string& s : r.stop) require(!s.empty() && s.size() <= lim.max_stop_bytes);
  if (!r.json_schema.empty()) require(is_json(r.json_schema));

  // what the server answers about this request is JSON
  const paca_serve::Origin o{"id", 0, r.model};
  paca_serve::Choice c;
  c.text = ep == paca_serve::Endpoint::completions ? (r.prompts.empty() ? "" : r.prompts[0])
                                                   : r.messages[0]["content"].get<std::string>();
  c.has_logprobs = r.logprobs;
  c.logprobs.push_back({c.text, -1.0f, 0});
  c.finish_reason = "stop";
  require(is_json(paca_serve::completion_body(o, {c}, {})));
  require(is_json(paca_serve::chat_body(o, {c}, {})));
  paca_serve::ChatDelta d;
  d.content = c.text;
  d.logprobs = c.logprobs;
  d.has_logprobs = r.logprobs;
  require(is_json(paca_serve::chat_chunk(o, 0, d)));
  require(is_json(paca_serve::completion_chunk(o, 0, c.text, c.logprobs, r.logprobs, "")));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  paca_serve::Limits lim;
  lim.n_vocab = 512;
  lim.max_depth = 32;
  for (paca_serve::Endpoint ep : {paca_serve::Endpoint::completions, paca_serve::Endpoint::chat}) {
    const paca_serve::Parsed p = paca_serve::parse_request(ep, body, lim);
    if (p.error) {
      require(p.error->http_status == 400 && !p.error->message.empty());
      require(is_json(paca_serve::error_body(*p.error)));
    } else {
      require(!paca_serve::json_too_deep(body, lim.max_depth));
      check_request(p.request, ep, lim);
    }
  }
  const paca_serve::Reply r = paca_serve::reply_from_parsed(std::string(body), "fallback", "call");
  for (const auto& c : r.tool_calls) require(c.at("function").at("arguments").is_string());
  return 0;
}
