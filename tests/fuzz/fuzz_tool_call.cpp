// fuzz_tool_call.cpp - libFuzzer target for tool-call parsing: the input is a
// generated reply. parse_tool_calls never throws; a malformed reply comes back
// as its own text with no calls; every call's arguments are an object; the
// JSON form always serialises.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "chat/tool_call.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  paca::ToolParseOptions o;
  o.stop = size > 0 && (data[0] & 1) ? paca::ReplyEnd::eom : paca::ReplyEnd::none;
  const paca::ParsedReply r = paca::parse_tool_calls(text, o);
  if (r.malformed) paca::fuzz::require(r.tool_calls.empty() && !r.error.empty() && r.content.size() <= size);
  for (const paca::ToolCall& c : r.tool_calls) paca::fuzz::require(c.arguments.is_object() && !c.type.empty());
  const std::string json = paca::reply_to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  paca::fuzz::require(!json.empty());
  return 0;
}
