// tool_call.h - recovers tool calls from the text a Llama 3.x model generated.
//
// Input: the assistant's reply as text, with special tokens rendered as their
// text (<|python_tag|>, and possibly the <|eom_id|> / <|eot_id|> that stopped
// generation at the end). Recognised forms:
//   <|python_tag|>brave_search.call(query="...")     built-in tool (any name;
//                                                    keyword arguments with
//                                                    string/number/bool values)
//   <|python_tag|>print(1 + 1)                       code_interpreter: any other
//                                                    body after the tag is code
//   {"name": "f", "parameters": {...}}               custom (JSON) tool, with or
//   {"name": "f", "arguments": {...} or "{...}"}     without the tag; also a JSON
//                                                    array of such objects
//   <function=f>{"a": 1}</function>                  Llama 3.1 function tag form
//   [f(a=1, b='x'), g()]                             Llama 3.2 "pythonic" calls
// A reply without any of these is plain content.
//
// Stop semantics: a reply that ends with <|eom_id|> (end of message) pauses
// the turn: the model waits for the tool's result, which the caller sends as
// an {"role": "ipython"} (or "tool") message before generating again. A reply
// that ends with <|eot_id|> ends the turn; if it still holds tool calls (JSON
// calls without "Environment: ipython" end this way), the caller runs them
// and continues the same way. awaiting_tool_result() says whether to do so.
//
// Malformed calls (a python_tag body or a JSON object that starts like a call
// but does not parse: truncated output, bad quoting, missing fields) come back
// as plain content with malformed = true and a reason in `error`; nothing in
// here throws on any input.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace paca {

enum class ReplyEnd { none, eot, eom, eos };
const char* reply_end_name(ReplyEnd e);  // "none", "eot", "eom", "eos"

struct ToolCall {
  std::string type;                  // "builtin", "code_interpreter" or "function"
  std::string name;                  // tool name ("code_interpreter" for code)
  nlohmann::ordered_json arguments;  // always an object: builtin {"query": ...}, code {"code": ...}
};

struct ParsedReply {
  std::string content;             // text that is not a tool call (all of it when malformed)
  std::vector<ToolCall> tool_calls;
  bool python_tag = false;         // <|python_tag|> was present
  bool malformed = false;          // looked like a tool call but did not parse
  std::string error;               // why, when malformed
  ReplyEnd end = ReplyEnd::none;   // how the reply ended (text suffix, else the option)

  // True when the caller should run tools and send their results before the
  // model continues: the reply ended with <|eom_id|> or holds tool calls.
  bool awaiting_tool_result() const { return end == ReplyEnd::eom || !tool_calls.empty(); }
};

struct ToolParseOptions {
  ReplyEnd stop = ReplyEnd::none;  // the stop token, when the text does not end with its text
};

ParsedReply parse_tool_calls(std::string_view text, const ToolParseOptions& opt = {});

// {"content": "...", "tool_calls": [{"type", "name", "arguments"}], "python_tag": bool,
//  "malformed": bool, "error": "..." (only when malformed), "end": "eot"|"eom"|"eos"|"none",
//  "awaiting_tool_result": bool}
nlohmann::ordered_json reply_to_json(const ParsedReply& r);

}  // namespace paca
