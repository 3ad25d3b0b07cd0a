// tool_call_test.cpp - tool-call parsing (core/chat/tool_call.cpp):
// built-in calls, code_interpreter, JSON calls (parameters / arguments,
// lists), <function=...>, pythonic lists, stop-token semantics, and malformed
// input that must come back as plain text with a flag.
#include <gtest/gtest.h>

#include <random>

#include "chat/tool_call.h"

using namespace paca;
using ojson = nlohmann::ordered_json;

TEST(ToolCall, BuiltinCall) {
  ParsedReply r = parse_tool_calls("<|python_tag|>brave_search.call(query=\"current weather in Menlo Park, California\")<|eom_id|>");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].type, "builtin");
  EXPECT_EQ(r.tool_calls[0].name, "brave_search");
  EXPECT_EQ(r.tool_calls[0].arguments, ojson({{"query", "current weather in Menlo Park, California"}}));
  EXPECT_TRUE(r.python_tag);
  EXPECT_FALSE(r.malformed);
  EXPECT_EQ(r.end, ReplyEnd::eom);
  EXPECT_TRUE(r.awaiting_tool_result());
  EXPECT_EQ(r.content, "");

  r = parse_tool_calls("<|python_tag|>wolfram_alpha.call(query='solve x^2 + 2x = 3', units=\"metric\", n=2)");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "wolfram_alpha");
  EXPECT_EQ(r.tool_calls[0].arguments, ojson({{"query", "solve x^2 + 2x = 3"}, {"units", "metric"}, {"n", 2}}));
  EXPECT_EQ(r.end, ReplyEnd::none);

  // Unescaped quotes inside the value (Meta's parser takes the text between the quotes).
  r = parse_tool_calls("<|python_tag|>brave_search.call(query=\"the \"best\" pizza\")<|eom_id|>");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments["query"], "the \"best\" pizza");
}

TEST(ToolCall, CodeInterpreter) {
  ParsedReply r = parse_tool_calls("<|python_tag|>import math\nprint(math.sqrt(2))\n<|eom_id|>");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].type, "code_interpreter");
  EXPECT_EQ(r.tool_calls[0].name, "code_interpreter");
  EXPECT_EQ(r.tool_calls[0].arguments["code"], "import math\nprint(math.sqrt(2))");
  EXPECT_EQ(r.end, ReplyEnd::eom);
  // Text before the tag stays content.
  r = parse_tool_calls("Let me compute that.<|python_tag|>x = 1 + 1");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.content, "Let me compute that.");
}

TEST(ToolCall, JsonCalls) {
  ParsedReply r = parse_tool_calls(R"({"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}<|eot_id|>)");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].type, "function");
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments.dump(), R"({"city":"Paris","days":3})");  // key order kept
  EXPECT_EQ(r.end, ReplyEnd::eot);
  EXPECT_TRUE(r.awaiting_tool_result());  // a call, even though the turn ended
  EXPECT_FALSE(r.python_tag);

  r = parse_tool_calls(R"(<|python_tag|>{"type": "function", "name": "f", "arguments": "{\"a\": [1, 2]}"}<|eom_id|>)");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments, ojson::parse(R"({"a": [1, 2]})"));

  r = parse_tool_calls(R"([{"name": "a", "parameters": {}}, {"name": "b", "arguments": {"x": true}}])");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[1].name, "b");

  r = parse_tool_calls("<function=spotify_trending_songs>{\"n\": \"5\"}</function>");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "spotify_trending_songs");
  EXPECT_EQ(r.tool_calls[0].arguments, ojson({{"n", "5"}}));
}

TEST(ToolCall, PythonicCalls) {
  ParsedReply r = parse_tool_calls("[get_weather(city='San Francisco', metric=\"celsius\"), get_time(tz=None, dst=True, offset=-1.5, tags=['a', 'b'])]<|eot_id|>");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, ojson({{"city", "San Francisco"}, {"metric", "celsius"}}));
  EXPECT_EQ(r.tool_calls[1].arguments, ojson::parse(R"({"tz": null, "dst": true, "offset": -1.5, "tags": ["a", "b"]})"));
}

TEST(ToolCall, PlainText) {
  for (const char* text : {"The answer is 42.", "", "[citation needed]", "{\"answer\": 42}", "Call foo.call(x) later.",
                           "Use brave_search.call(query=\"x\") to search"}) {
    SCOPED_TRACE(text);
    ParsedReply r = parse_tool_calls(std::string(text) + "<|eot_id|>");
    EXPECT_TRUE(r.tool_calls.empty());
    EXPECT_FALSE(r.malformed);
    EXPECT_EQ(r.content, text);
    EXPECT_EQ(r.end, ReplyEnd::eot);
    EXPECT_FALSE(r.awaiting_tool_result());
  }
  ToolParseOptions eom;
  eom.stop = ReplyEnd::eom;
  EXPECT_TRUE(parse_tool_calls("thinking", eom).awaiting_tool_result());
}

TEST(ToolCall, MalformedCallsComeBackAsText) {
  const char* bad[] = {
      "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Par",         // truncated
      "<|python_tag|>{\"name\": \"f\", \"parameters\": {'a': 1}}",          // not JSON
      "{\"name\": \"f\", \"parameters\": 42}",                              // arguments not an object
      "{\"name\": \"f\", \"arguments\": \"{not json\"}",
      "<|python_tag|>brave_search.call(query=)",                           // bad built-in arguments
      "<|python_tag|>",                                                    // nothing after the tag
      "<function=f>{\"a\": </function>",
      "[{\"name\": \"a\", \"parameters\": {}}, 3]",
  };
  for (const char* text : bad) {
    SCOPED_TRACE(text);
    ParsedReply r = parse_tool_calls(std::string(text) + "<|eom_id|>");
    EXPECT_TRUE(r.malformed);
    EXPECT_FALSE(r.error.empty());
    EXPECT_TRUE(r.tool_calls.empty());
    EXPECT_EQ(r.content, text);
    EXPECT_EQ(r.end, ReplyEnd::eom);
    const ojson j = reply_to_json(r);
    EXPECT_TRUE(j["malformed"].get<bool>());
    EXPECT_EQ(j["content"], text);
  }
}

TEST(ToolCall, JsonOutput) {
  const ojson j = reply_to_json(parse_tool_calls("<|python_tag|>brave_search.call(query=\"x\")<|eom_id|>"));
  EXPECT_EQ(j.dump(), R"({"content":"","tool_calls":[{"type":"builtin","name":"brave_search","arguments":{"query":"x"}}],)"
                      R"("python_tag":true,"malformed":false,"end":"eom","awaiting_tool_result":true})");
}

TEST(ToolCall, NeverThrowsOnGarbage) {
  std::mt19937 rng(123);
  const std::string alphabet = "{}[]()\"'\\:,.=_ abcxyz019<|>python_tag/eomid\n\xff\xc3";
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    const int n = static_cast<int>(rng() % 60);
    if (rng() % 3 == 0) s = "<|python_tag|>";
    for (int k = 0; k < n; ++k) s += alphabet[rng() % alphabet.size()];
    ParsedReply r;
    ASSERT_NO_THROW(r = parse_tool_calls(s));
    ASSERT_NO_THROW((void)reply_to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  // Absurd nesting is refused, not recursed into.
  const std::string deep = "{\"name\": \"f\", \"parameters\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  ParsedReply r = parse_tool_calls(deep);
  EXPECT_TRUE(r.tool_calls.empty());
  const std::string deep_py = "[f(a=" + std::string(100000, '[') + ")]";
  EXPECT_TRUE(parse_tool_calls(deep_py).tool_calls.empty());
}
