// chat_capi.cpp - the C ABI of chat formatting and tool-call parsing
// (paca.h, "chat formats and tool calls"): argument checks, JSON in and out,
// and the mapping to core/chat/chat.h and tool_call.h.
#include <cstring>
#include <string>
#include <vector>

#include "capi_internal.h"
#include "chat/chat.h"
#include "chat/tool_call.h"
#include "model/llama_model.h"

using namespace paca::capi;
using ojson = nlohmann::ordered_json;

namespace {

ojson parse_json_arg(const char* text, const char* what, bool (ojson::*kind)() const noexcept, const char* kind_name) {
  ojson j = ojson::parse(text, nullptr, false);
  if (j.is_discarded()) paca::fail(paca::Status::invalid_argument, "{} is not valid JSON", what);
  if (!(j.*kind)()) paca::fail(paca::Status::invalid_argument, "{} must be a JSON {}", what, kind_name);
  return j;
}

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

// The template a call uses: params->chat_template (Jinja source or
// "builtin:<style>"), else the model's own.
paca::ChatTemplate template_for(const paca_model* model, const paca_chat_params& p) {
  paca::ChatTokens tokens;
  bool tokens_given = false;
  if (p.special_tokens_json != nullptr) {
    const ojson t = parse_json_arg(p.special_tokens_json, "special_tokens_json", &ojson::is_object, "object");
    for (auto [key, slot] : {std::pair{"bos_token", &tokens.bos}, std::pair{"eos_token", &tokens.eos},
                             std::pair{"unk_token", &tokens.unk}, std::pair{"pad_token", &tokens.pad}}) {
      auto it = t.find(key);
      if (it == t.end() || it->is_null()) continue;
      if (!it->is_string()) paca::fail(paca::Status::invalid_argument, "special_tokens_json: \"{}\" must be a string", key);
      *slot = it->get<std::string>();
    }
    tokens_given = true;
  }
  if (p.chat_template != nullptr) {
    const std::string src = p.chat_template;
    for (paca::ChatStyle s : {paca::ChatStyle::llama2, paca::ChatStyle::llama3, paca::ChatStyle::llama31}) {
      if (src == std::string("builtin:") + paca::chat_style_name(s)) {
        return paca::ChatTemplate::from_source(paca::builtin_chat_template(s), tokens_given ? tokens : paca::builtin_chat_tokens(s), src);
      }
    }
    if (!tokens_given && model != nullptr) tokens = paca::ChatTemplate::for_checkpoint(model->model->checkpoint()).tokens();
    return paca::ChatTemplate::from_source(src, tokens, "chat_template parameter");
  }
  paca::ChatTemplate t = paca::ChatTemplate::for_checkpoint(model->model->checkpoint());
  if (!tokens_given) return t;
  return paca::ChatTemplate::from_source(t.source(), tokens, t.origin());
}

paca::ChatRequest request_of(const char* messages_json, const paca_chat_params& p) {
  paca::ChatRequest r;
  r.messages = parse_json_arg(messages_json, "messages_json", &ojson::is_array, "array");
  if (p.tools_json != nullptr) {
    r.tools = ojson::parse(p.tools_json, nullptr, false);
    if (r.tools.is_discarded() || !(r.tools.is_array() || r.tools.is_null()))
      paca::fail(paca::Status::invalid_argument, "tools_json must be a JSON array (or null)");
  }
  if (p.builtin_tools_json != nullptr) {
    const ojson b = parse_json_arg(p.builtin_tools_json, "builtin_tools_json", &ojson::is_array, "array");
    std::vector<std::string> names;
    for (const auto& n : b) {
      if (!n.is_string()) paca::fail(paca::Status::invalid_argument, "builtin_tools_json must be an array of strings");
      names.push_back(n.get<std::string>());
    }
    r.builtin_tools = std::move(names);
  }
  if (p.date != nullptr) r.date = p.date;
  if (p.extra_json != nullptr) r.extra = parse_json_arg(p.extra_json, "extra_json", &ojson::is_object, "object");
  r.add_generation_prompt = p.add_generation_prompt != 0;
  if (p.now != 0) r.now = p.now;
  return r;
}

paca_status format(const paca_model* model, const char* messages_json, const paca_chat_params* params, char* buf,
                   size_t cap, size_t* out_needed, bool as_json, const char* fn) {
  if (out_needed != nullptr) *out_needed = 0;
  PACA_REQUIRE(messages_json != nullptr, std::string(fn) + ": messages_json is NULL");
  paca_chat_params p = paca::capi::default_chat_params();
  if (!read_params(params, p, fn)) return PACA_ERR_INVALID_ARGUMENT;
  PACA_REQUIRE(model != nullptr || p.chat_template != nullptr,
               std::string(fn) + ": model is NULL and params->chat_template is not set");
  std::string out;
  const paca_status st = guarded([&] {
    const paca::ChatTemplate t = template_for(model, p);
    paca::RenderedChat r = t.render(request_of(messages_json, p));
    if (!as_json) {
      out = std::move(r.text);
      return;
    }
    ojson j = ojson::object();
    j["text"] = r.text;
    ojson segs = ojson::array();
    for (const paca::ChatSegment& s : r.segments) segs.push_back({{"offset", s.offset}, {"length", s.length}, {"user", s.user}});
    j["segments"] = std::move(segs);
    j["template"] = t.origin();
    out = dump(j);
  });
  if (st != PACA_OK) return st;
  return write_string(out, buf, cap, out_needed, fn);
}

}  // namespace

namespace paca::capi {

paca_chat_params default_chat_params() {
  auto p = zeroed_params<paca_chat_params>();
  p.add_generation_prompt = 1;
  return p;
}

}  // namespace paca::capi

PACA_API paca_status paca_chat_params_init(paca_chat_params* p, size_t size) {
  return paca::capi::init_params(p, size, paca::capi::default_chat_params(), "paca_chat_params_init");
}

PACA_API paca_status paca_chat_format(const paca_model* model, const char* messages_json, const paca_chat_params* params,
                                      char* buf, size_t cap, size_t* out_needed) {
  return format(model, messages_json, params, buf, cap, out_needed, false, "paca_chat_format");
}

PACA_API paca_status paca_chat_format_json(const paca_model* model, const char* messages_json,
                                           const paca_chat_params* params, char* buf, size_t cap, size_t* out_needed) {
  return format(model, messages_json, params, buf, cap, out_needed, true, "paca_chat_format_json");
}

PACA_API paca_status paca_chat_tokenize(const paca_model* model, const char* messages_json,
                                        const paca_chat_params* params, int32_t* buf, size_t cap, size_t* out_needed) {
  if (out_needed != nullptr) *out_needed = 0;
  PACA_REQUIRE(model != nullptr, "paca_chat_tokenize: model is NULL");
  PACA_REQUIRE(messages_json != nullptr, "paca_chat_tokenize: messages_json is NULL");
  PACA_REQUIRE(buf != nullptr || cap == 0, "paca_chat_tokenize: buf is NULL but cap is not 0");
  paca_chat_params p = paca::capi::default_chat_params();
  if (!read_params(params, p, "paca_chat_tokenize")) return PACA_ERR_INVALID_ARGUMENT;
  const auto& ck = model->model->checkpoint();
  if (!ck.tokenizer)
    return set_error(PACA_ERR_STATE, "paca_chat_tokenize: the model has no tokenizer (" +
                                         (ck.tokenizer_note.empty() ? std::string("none found") : ck.tokenizer_note) + ")");
  std::vector<int32_t> ids;
  const paca_status st = guarded([&] {
    const paca::ChatTemplate t = template_for(model, p);
    ids = paca::encode_chat(*ck.tokenizer, t.render(request_of(messages_json, p)));
  });
  if (st != PACA_OK) return st;
  return write_ids(ids, buf, cap, out_needed, "paca_chat_tokenize");
}

PACA_API paca_status paca_chat_template_json(const paca_model* model, char* buf, size_t cap, size_t* out_needed) {
  if (out_needed != nullptr) *out_needed = 0;
  PACA_REQUIRE(model != nullptr, "paca_chat_template_json: model is NULL");
  std::string out;
  const paca_status st = guarded([&] {
    const paca::ChatTemplate t = paca::ChatTemplate::for_checkpoint(model->model->checkpoint());
    ojson j = ojson::object();
    j["origin"] = t.origin();
    j["style"] = paca::chat_style_name(paca::detect_chat_style(model->model->config()));
    const paca::ChatTokens& k = t.tokens();
    for (auto [key, v] : {std::pair{"bos_token", &k.bos}, std::pair{"eos_token", &k.eos}, std::pair{"unk_token", &k.unk},
                          std::pair{"pad_token", &k.pad}})
      j[key] = v->has_value() ? ojson(**v) : ojson(nullptr);
    j["source"] = t.source();
    out = dump(j);
  });
  if (st != PACA_OK) return st;
  return write_string(out, buf, cap, out_needed, "paca_chat_template_json");
}

PACA_API paca_status paca_chat_parse_tool_calls(const char* text, size_t len, int32_t stop, char* buf, size_t cap,
                                                size_t* out_needed) {
  if (out_needed != nullptr) *out_needed = 0;
  PACA_REQUIRE(text != nullptr || len == 0, "paca_chat_parse_tool_calls: text is NULL");
  PACA_REQUIRE(stop >= PACA_REPLY_END_NONE && stop <= PACA_REPLY_END_EOS, "paca_chat_parse_tool_calls: stop is not a paca_reply_end");
  std::string out;
  const paca_status st = guarded([&] {
    paca::ToolParseOptions o;
    o.stop = static_cast<paca::ReplyEnd>(stop);
    out = dump(paca::reply_to_json(paca::parse_tool_calls(std::string_view(text ? text : "", len), o)));
  });
  if (st != PACA_OK) return st;
  return write_string(out, buf, cap, out_needed, "paca_chat_parse_tool_calls");
}
