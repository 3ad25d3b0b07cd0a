// serve_api_test.cpp - the protocol functions of `paca serve` (request
// parsing, response and stream bodies, the metrics page), without a server
// or a model. Expected values are written from OpenAI's API reference and
// the Prometheus text format, not from the code's output.
#include "serve_api.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <string>

namespace {

using paca_serve::Endpoint;
using paca_serve::ojson;

paca_serve::Parsed completions(const std::string& body, paca_serve::Limits lim = {}) {
  return paca_serve::parse_request(Endpoint::completions, body, lim);
}
paca_serve::Parsed chat(const std::string& body, paca_serve::Limits lim = {}) {
  return paca_serve::parse_request(Endpoint::chat, body, lim);
}

// The request parsed without error (the test fails with the message otherwise).
paca_serve::Request ok(const paca_serve::Parsed& p) {
  EXPECT_FALSE(p.error.has_value()) << (p.error ? p.error->message : "");
  return p.request;
}

// The error of a refused request: 400 and the param it names.
void refused(const paca_serve::Parsed& p, const std::string& param) {
  ASSERT_TRUE(p.error.has_value()) << "accepted, expected a 400 naming '" << param << "'";
  EXPECT_EQ(p.error->http_status, 400);
  EXPECT_EQ(p.error->type, "invalid_request_error");
  EXPECT_EQ(p.error->param, param) << p.error->message;
  EXPECT_FALSE(p.error->message.empty());
}

const char* kUser = R"("messages": [{"role": "user", "content": "Hi"}])";

// ---- requests ----------------------------------------------------------------

TEST(ServeParse, CompletionDefaults) {
  const paca_serve::Request r = ok(completions(R"({"model": "m", "prompt": "Once upon a time"})"));
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0], "Once upon a time");
  EXPECT_TRUE(r.prompt_tokens.empty());
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_FLOAT_EQ(r.temperature, 1.0f);  // OpenAI's default
  EXPECT_FLOAT_EQ(r.top_p, 1.0f);
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.logprobs);
  EXPECT_TRUE(r.json_schema.empty());
}

TEST(ServeParse, PromptForms) {
  paca_serve::Limits lim;
  lim.n_vocab = 512;
  paca_serve::Request r = ok(completions(R"({"prompt": ["a", "b"]})", lim));
  EXPECT_EQ(r.prompts, (std::vector<std::string>{"a", "b"}));
  r = ok(completions(R"({"prompt": [1, 403, 511]})", lim));
  ASSERT_EQ(r.prompt_tokens.size(), 1u);
  EXPECT_EQ(r.prompt_tokens[0], (std::vector<int32_t>{1, 403, 511}));
  r = ok(completions(R"({"prompt": [[1, 2], [3]]})", lim));
  ASSERT_EQ(r.prompt_tokens.size(), 2u);
  EXPECT_EQ(r.prompt_tokens[1], (std::vector<int32_t>{3}));

  refused(completions(R"({"prompt": [1, 512]})", lim), "prompt[1]");  // outside the vocabulary
  refused(completions(R"({"prompt": [1, -1]})", lim), "prompt[1]");
  refused(completions(R"({"prompt": [1, 2.5]})", lim), "prompt[1]");
  refused(completions(R"({"prompt": ["a", 3]})", lim), "prompt[1]");
  refused(completions(R"({"prompt": [[1], []]})", lim), "prompt[1]");
  refused(completions(R"({"prompt": []})", lim), "prompt");
  refused(completions(R"({"prompt": {"text": "a"}})", lim), "prompt");
  refused(completions(R"({"prompt": 7})", lim), "prompt");
  refused(completions(R"({"model": "m"})", lim), "prompt");
  refused(completions(R"({"prompt": null})", lim), "prompt");
}

TEST(ServeParse, MalformedBodies) {
  for (const char* body : {"", "{", "{\"prompt\": \"a\"", "not json", "{\"prompt\": \"a\",}", "{\"prompt\": 'a'}"}) {
    const paca_serve::Parsed p = completions(body);
    ASSERT_TRUE(p.error.has_value()) << body;
    EXPECT_EQ(p.error->http_status, 400);
    EXPECT_EQ(p.error->code, "invalid_json") << body;
  }
  refused(completions(R"(["prompt"])"), "");
  refused(completions("\"prompt\""), "");
  // invalid UTF-8 inside a string is not JSON
  const paca_serve::Parsed p = completions(std::string("{\"prompt\": \"a\xff\"}"));
  ASSERT_TRUE(p.error.has_value());
  EXPECT_EQ(p.error->code, "invalid_json");
}

TEST(ServeParse, FieldTypesAndRanges) {
  refused(completions(R"({"prompt": "a", "max_tokens": "16"})"), "max_tokens");
  refused(completions(R"({"prompt": "a", "max_tokens": 0})"), "max_tokens");
  refused(completions(R"({"prompt": "a", "max_tokens": 1.5})"), "max_tokens");
  refused(completions(R"({"prompt": "a", "max_tokens": 4294967296})"), "max_tokens");
  refused(completions(R"({"prompt": "a", "max_tokens": 18446744073709551615})"), "max_tokens");
  refused(completions(R"({"prompt": "a", "temperature": 2.5})"), "temperature");
  refused(completions(R"({"prompt": "a", "temperature": -0.1})"), "temperature");
  refused(completions(R"({"prompt": "a", "temperature": "hot"})"), "temperature");
  refused(completions(R"({"prompt": "a", "top_p": 0})"), "top_p");
  refused(completions(R"({"prompt": "a", "top_p": 1.01})"), "top_p");
  refused(completions(R"({"prompt": "a", "n": 0})"), "n");
  refused(completions(R"({"prompt": "a", "n": 17})"), "n");
  refused(completions(R"({"prompt": "a", "seed": 1.5})"), "seed");
  refused(completions(R"({"prompt": "a", "seed": "1"})"), "seed");
  refused(completions(R"({"prompt": "a", "stream": "yes"})"), "stream");
  refused(completions(R"({"prompt": "a", "stream_options": true})"), "stream_options");
  refused(completions(R"({"prompt": "a", "model": 3})"), "model");
  refused(completions(R"({"prompt": "a", "frequency_penalty": 2.5})"), "frequency_penalty");

  const paca_serve::Request r = ok(completions(
      R"({"prompt": "a", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "n": 3, "seed": 42, "stream": true,
          "stream_options": {"include_usage": true}, "top_k": 40, "min_p": 0.05, "presence_penalty": -1})"));
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.top_p, 0.5f);
  EXPECT_EQ(r.n, 3);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.top_k, 40);
  EXPECT_FLOAT_EQ(r.min_p, 0.05f);
  EXPECT_FLOAT_EQ(r.presence_penalty, -1.0f);
  // a negative seed wraps to its two's-complement value
  EXPECT_EQ(ok(completions(R"({"prompt": "a", "seed": -1})")).seed, UINT64_MAX);
}

TEST(ServeParse, NullMeansAbsent) {
  const paca_serve::Request r = ok(completions(
      R"({"prompt": "a", "max_tokens": null, "stop": null, "seed": null, "temperature": null, "n": null,
          "logprobs": null, "response_format": null, "user": null, "stream_options": null})"));
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_FLOAT_EQ(r.temperature, 1.0f);
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.logprobs);
}

TEST(ServeParse, Stop) {
  EXPECT_EQ(ok(completions(R"({"prompt": "a", "stop": "\n"})")).stop, (std::vector<std::string>{"\n"}));
  EXPECT_EQ(ok(completions(R"({"prompt": "a", "stop": ["x", "yz"]})")).stop, (std::vector<std::string>{"x", "yz"}));
  refused(completions(R"({"prompt": "a", "stop": ["x", 1]})"), "stop");
  refused(completions(R"({"prompt": "a", "stop": ""})"), "stop");
  refused(completions(R"({"prompt": "a", "stop": 5})"), "stop");
  paca_serve::Limits lim;
  lim.max_stop = 2;
  lim.max_stop_bytes = 3;
  refused(completions(R"({"prompt": "a", "stop": ["a", "b", "c"]})", lim), "stop");
  refused(completions(R"({"prompt": "a", "stop": "abcd"})", lim), "stop");
  EXPECT_EQ(ok(completions(R"({"prompt": "a", "stop": "abc"})", lim)).stop.size(), 1u);
}

TEST(ServeParse, ChoicesAreBounded) {
  paca_serve::Limits lim;
  lim.max_choices = 4;
  EXPECT_EQ(ok(completions(R"({"prompt": ["a", "b"], "n": 2})", lim)).n, 2);
  refused(completions(R"({"prompt": ["a", "b", "c"], "n": 2})", lim), "n");
  refused(completions(R"({"prompt": "a", "n": 5})", lim), "n");
}

TEST(ServeParse, Logprobs) {
  EXPECT_TRUE(ok(completions(R"({"prompt": "a", "logprobs": 0})")).logprobs);
  refused(completions(R"({"prompt": "a", "logprobs": 2})"), "logprobs");  // alternatives are not available
  refused(completions(R"({"prompt": "a", "logprobs": 6})"), "logprobs");
  refused(completions(R"({"prompt": "a", "logprobs": true})"), "logprobs");
  EXPECT_TRUE(ok(chat(std::string("{") + kUser + R"(, "logprobs": true})")).logprobs);
  EXPECT_TRUE(ok(chat(std::string("{") + kUser + R"(, "logprobs": true, "top_logprobs": 0})")).logprobs);
  refused(chat(std::string("{") + kUser + R"(, "logprobs": true, "top_logprobs": 3})"), "top_logprobs");
  refused(chat(std::string("{") + kUser + R"(, "logprobs": 1})"), "logprobs");
}

TEST(ServeParse, Messages) {
  const paca_serve::Request r = ok(chat(R"({"messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]},
      {"role": "assistant", "content": null, "tool_calls": [
          {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}],
      "max_tokens": 3, "max_completion_tokens": 9})"));
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[0]["content"], "Be brief.");
  EXPECT_EQ(r.messages[1]["content"], "Hello, world");
  const ojson& call = r.messages[2]["tool_calls"][0];
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(call["function"]["arguments"], ojson::parse(R"({"city": "Paris"})"));  // paca takes an object
  EXPECT_EQ(r.messages[2]["content"], "");
  EXPECT_EQ(r.messages[3]["role"], "tool");
  EXPECT_EQ(r.messages[3]["tool_call_id"], "call_1");
  EXPECT_EQ(r.max_tokens, 9);  // max_completion_tokens wins

  refused(chat(R"({"messages": []})"), "messages");
  refused(chat(R"({"messages": "hi"})"), "messages");
  refused(chat(R"({})"), "messages");
  refused(chat(R"({"messages": [3]})"), "messages[0]");
  refused(chat(R"({"messages": [{"content": "x"}]})"), "messages[0].role");
  refused(chat(R"({"messages": [{"role": "wizard", "content": "x"}]})"), "messages[0].role");
  refused(chat(R"({"messages": [{"role": "user"}]})"), "messages[0].content");
  refused(chat(R"({"messages": [{"role": "user", "content": 5}]})"), "messages[0].content");
  refused(chat(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
              {"type": "image_url", "image_url": {"url": "x"}}]}]})"), "messages[0].content[1].type");
  refused(chat(R"({"messages": [{"role": "assistant", "tool_calls": [{"type": "function",
              "function": {"name": "f", "arguments": "{not json"}}]}]})"), "messages[0].tool_calls[0].function.arguments");
  refused(chat(R"({"messages": [{"role": "assistant", "tool_calls": [{"type": "function",
              "function": {"name": "f", "arguments": "[1]"}}]}]})"), "messages[0].tool_calls[0].function.arguments");
  refused(chat(R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]})"),
          "messages[0].tool_calls[0].function.name");
}

const char* kTools = R"("tools": [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time"}}])";

TEST(ServeParse, ToolsAndToolChoice) {
  paca_serve::Request r = ok(chat(std::string("{") + kUser + ", " + kTools + "}"));
  ASSERT_EQ(r.tools.size(), 2u);
  EXPECT_EQ(r.tool_choice.kind, paca_serve::ToolChoice::Kind::auto_);
  EXPECT_TRUE(r.json_schema.empty());  // "auto" constrains nothing

  r = ok(chat(std::string("{") + kUser + ", " + kTools + R"(, "tool_choice": "none"})"));
  EXPECT_TRUE(r.tools.empty());

  // a named function: the reply must be {"name": "get_weather", "parameters": <its schema>}
  r = ok(chat(std::string("{") + kUser + ", " + kTools +
              R"(, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})"));
  const ojson s = ojson::parse(r.json_schema);
  EXPECT_EQ(s["properties"]["name"]["const"], "get_weather");
  EXPECT_EQ(s["properties"]["parameters"], r.tools[0]["function"]["parameters"]);
  EXPECT_EQ(s["required"], ojson::parse(R"(["name", "parameters"])"));

  // "required": one of the tools; a tool without parameters takes any object
  r = ok(chat(std::string("{") + kUser + ", " + kTools + R"(, "tool_choice": "required"})"));
  const ojson any = ojson::parse(r.json_schema);
  ASSERT_EQ(any["anyOf"].size(), 2u);
  EXPECT_EQ(any["anyOf"][1]["properties"]["name"]["const"], "get_time");
  EXPECT_EQ(any["anyOf"][1]["properties"]["parameters"]["type"], "object");

  refused(chat(std::string("{") + kUser + R"(, "tool_choice": "required"})"), "tool_choice");
  refused(chat(std::string("{") + kUser + ", " + kTools + R"(, "tool_choice": "sometimes"})"), "tool_choice");
  refused(chat(std::string("{") + kUser + ", " + kTools +
               R"(, "tool_choice": {"type": "function", "function": {"name": "nope"}}})"), "tool_choice");
  refused(chat(std::string("{") + kUser + ", " + kTools +
               R"(, "tool_choice": "required", "response_format": {"type": "json_object"}})"), "response_format");
  refused(chat(std::string("{") + kUser + R"(, "tools": {}})"), "tools");
  refused(chat(std::string("{") + kUser + R"(, "tools": [{"type": "retrieval"}]})"), "tools[0].type");
  refused(chat(std::string("{") + kUser + R"(, "tools": [{"type": "function", "function": {"name": "a b"}}]})"),
          "tools[0].function.name");
  refused(chat(std::string("{") + kUser + R"(, "tools": [{"type": "function", "function": {"name": ""}}]})"),
          "tools[0].function.name");
  refused(chat(std::string("{") + kUser +
               R"(, "tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]})"),
          "tools[0].function.parameters");
  paca_serve::Limits lim;
  lim.max_tools = 1;
  refused(chat(std::string("{") + kUser + ", " + kTools + "}", lim), "tools");
}

TEST(ServeParse, ResponseFormat) {
  const std::string base = std::string("{") + kUser;
  EXPECT_TRUE(ok(chat(base + R"(, "response_format": {"type": "text"}})")).json_schema.empty());
  EXPECT_EQ(ojson::parse(ok(chat(base + R"(, "response_format": {"type": "json_object"}})")).json_schema),
            ojson::parse(R"({"type": "object"})"));
  const char* schema = R"({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})";
  const paca_serve::Request r = ok(chat(base + R"(, "response_format": {"type": "json_schema", "json_schema":
                                        {"name": "x", "strict": true, "schema": )" + schema + "}}}"));
  EXPECT_EQ(ojson::parse(r.json_schema), ojson::parse(schema));
  // the completions endpoint takes it too (an extension)
  EXPECT_FALSE(ok(completions(R"({"prompt": "a", "response_format": {"type": "json_object"}})")).json_schema.empty());
  refused(chat(base + R"(, "response_format": {"type": "yaml"}})"), "response_format.type");
  refused(chat(base + R"(, "response_format": "json"})"), "response_format");
  refused(chat(base + R"(, "response_format": {"type": "json_schema"}})"), "response_format.json_schema");
  refused(chat(base + R"(, "response_format": {"type": "json_schema", "json_schema": {"schema": 3}}})"),
          "response_format.json_schema.schema");
  refused(chat(base + R"(, "response_format": {"type": "json_object"}, "ignore_eos": true})"), "ignore_eos");
}

TEST(ServeParse, LogitBiasIsReadAsTokenIdsAndBiases) {
  const paca_serve::Request r = ok(completions(R"({"prompt": "a", "logit_bias": {"50256": -100, "7": 2.5, "0": 100}})"));
  ASSERT_EQ(r.logit_bias.size(), 3u);
  std::map<int32_t, float> got(r.logit_bias.begin(), r.logit_bias.end());
  EXPECT_EQ(got, (std::map<int32_t, float>{{0, 100.0f}, {7, 2.5f}, {50256, -100.0f}}));
  EXPECT_TRUE(ok(completions(R"({"prompt": "a", "logit_bias": {}})")).logit_bias.empty());
  EXPECT_TRUE(ok(completions(R"({"prompt": "a", "logit_bias": null})")).logit_bias.empty());
  EXPECT_EQ(ok(chat(std::string("{") + kUser + R"(, "logit_bias": {"12": -1}})")).logit_bias.size(), 1u);
  for (const char* bad : {R"("logit_bias": [1, 2])", R"("logit_bias": {"x": 1})", R"("logit_bias": {"-3": 1})",
                          R"("logit_bias": {"1.5": 1})", R"("logit_bias": {"": 1})", R"("logit_bias": {"12345678901": 1})",
                          R"("logit_bias": {"5": 101})", R"("logit_bias": {"5": -100.5})", R"("logit_bias": {"5": "1"})",
                          R"("logit_bias": {"5": null})", R"("logit_bias": 3)"})
    refused(completions(std::string(R"({"prompt": "a", )") + bad + "}"), "logit_bias");
  paca_serve::Limits lim;
  lim.n_vocab = 512;
  EXPECT_FALSE(paca_serve::parse_request(paca_serve::Endpoint::completions,
                                         R"({"prompt": "a", "logit_bias": {"511": 1}})", lim).error.has_value());
  refused(paca_serve::parse_request(paca_serve::Endpoint::completions, R"({"prompt": "a", "logit_bias": {"512": 1}})",
                                    lim),
          "logit_bias");
  std::string many = R"({"prompt": "a", "logit_bias": {)";
  for (int i = 0; i < 1025; ++i) many += (i ? ", \"" : "\"") + std::to_string(i) + "\": 1";
  refused(completions(many + "}}"), "logit_bias");
}

TEST(ServeParse, UnsupportedFieldsAreRefused) {
  refused(completions(R"({"prompt": "a", "echo": true})"), "echo");
  refused(completions(R"({"prompt": "a", "suffix": "end"})"), "suffix");
  refused(completions(R"({"prompt": "a", "best_of": 3})"), "best_of");
  EXPECT_FALSE(completions(R"({"prompt": "a", "best_of": 2, "n": 2})").error.has_value());
  refused(chat(std::string("{") + kUser + R"(, "functions": [{"name": "f"}]})"), "functions");
  // unknown fields are ignored, as OpenAI clients send fields of newer API versions
  EXPECT_FALSE(completions(R"({"prompt": "a", "metadata": {"x": 1}, "service_tier": "auto"})").error.has_value());
}

TEST(ServeParse, NestingDepthIsBounded) {
  paca_serve::Limits lim;
  lim.max_depth = 8;
  auto nested = [](int levels) {
    return R"({"prompt": "a", "metadata": )" + std::string(levels, '[') + std::string(levels, ']') + "}";
  };
  EXPECT_FALSE(completions(nested(7), lim).error.has_value());  // 7 arrays inside the body's object: depth 8
  refused(completions(nested(8), lim), "");
  EXPECT_TRUE(paca_serve::json_too_deep(std::string(100000, '['), 64));
  EXPECT_FALSE(paca_serve::json_too_deep("[[]]", 2));
  EXPECT_TRUE(paca_serve::json_too_deep("[[[]]]", 2));
  EXPECT_FALSE(paca_serve::json_too_deep(R"(["[[[[", "{{{{"])", 1));  // brackets inside strings
  EXPECT_FALSE(paca_serve::json_too_deep(R"(["\"[[[", 1])", 1));     // an escaped quote does not end the string
  EXPECT_TRUE(paca_serve::json_too_deep(R"(["\\", [1]])", 1));        // an escaped backslash does
  EXPECT_FALSE(paca_serve::json_too_deep("]]]]][", 1));                // stray closers do not go below 0
}

// ---- responses ---------------------------------------------------------------

TEST(ServeFormat, ErrorBody) {
  paca_serve::ApiError e{400, "bad \"n\"", "invalid_request_error", "n", ""};
  const ojson j = ojson::parse(paca_serve::error_body(e));
  EXPECT_EQ(j["error"]["message"], "bad \"n\"");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_TRUE(j["error"]["code"].is_null());
  e.param = "";
  e.code = "queue_full";
  const ojson k = ojson::parse(paca_serve::error_body(e));
  EXPECT_TRUE(k["error"]["param"].is_null());
  EXPECT_EQ(k["error"]["code"], "queue_full");
}

TEST(ServeFormat, StatusMapping) {
  EXPECT_EQ(paca_serve::error_for_status(PACA_ERR_BUSY, "full").http_status, 429);
  EXPECT_EQ(paca_serve::error_for_status(PACA_ERR_INVALID_ARGUMENT, "x").http_status, 400);
  const paca_serve::ApiError ctx = paca_serve::error_for_status(PACA_ERR_CONTEXT_FULL, "too long");
  EXPECT_EQ(ctx.http_status, 400);
  EXPECT_EQ(ctx.code, "context_length_exceeded");
  EXPECT_EQ(ctx.message, "too long");
  EXPECT_EQ(paca_serve::error_for_status(PACA_ERR_OUT_OF_MEMORY, "x").http_status, 503);
  EXPECT_EQ(paca_serve::error_for_status(PACA_ERR_INTERNAL, "x").http_status, 500);
  EXPECT_EQ(paca_serve::error_for_status(PACA_ERR_IO, "x").type, "server_error");
  // without the library's detail the message is still there
  EXPECT_FALSE(paca_serve::error_for_status(PACA_ERR_BUSY, "").message.empty());
  EXPECT_FALSE(paca_serve::error_for_status(PACA_ERR_INTERNAL, "").message.empty());
  EXPECT_STREQ(paca_serve::finish_reason(PACA_STOP_MAX_TOKENS), "length");
  EXPECT_STREQ(paca_serve::finish_reason(PACA_STOP_CONTEXT_FULL), "length");
  EXPECT_STREQ(paca_serve::finish_reason(PACA_STOP_EOS), "stop");
  EXPECT_STREQ(paca_serve::finish_reason(PACA_STOP_STRING), "stop");
  EXPECT_STREQ(paca_serve::finish_reason(PACA_STOP_TOKEN), "stop");
}

paca_serve::Origin origin() { return {"cmpl-7", 1700000000, "stories260K"}; }

TEST(ServeFormat, CompletionBody) {
  paca_serve::Choice c0, c1;
  c0.index = 0;
  c0.text = ", there was";
  c0.finish_reason = "length";
  c0.has_logprobs = true;
  c0.logprobs = {{",", -0.5f, 0}, {" there", -1.25f, 1}, {" was", -0.125f, 7}};
  c1.index = 1;
  c1.text = "!";
  c1.finish_reason = "stop";
  const ojson j = ojson::parse(paca_serve::completion_body(origin(), {c0, c1}, {5, 4, 2}));
  EXPECT_EQ(j["id"], "cmpl-7");
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "stories260K");
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][0]["text"], ", there was");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["choices"][0]["logprobs"]["tokens"], ojson::parse(R"([",", " there", " was"])"));
  EXPECT_EQ(j["choices"][0]["logprobs"]["token_logprobs"], ojson::parse("[-0.5, -1.25, -0.125]"));
  EXPECT_EQ(j["choices"][0]["logprobs"]["text_offset"], ojson::parse("[0, 1, 7]"));
  EXPECT_TRUE(j["choices"][0]["logprobs"]["top_logprobs"].is_null());
  EXPECT_EQ(j["choices"][1]["index"], 1);
  EXPECT_TRUE(j["choices"][1]["logprobs"].is_null());
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
  EXPECT_EQ(j["usage"]["total_tokens"], 9);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

TEST(ServeFormat, ChatBody) {
  paca_serve::Choice text, call;
  text.text = "Hello";
  text.finish_reason = "stop";
  text.has_logprobs = true;
  text.logprobs = {{"\xE2\x82", -0.25f, 0}};  // a piece that ends inside a character
  call.index = 1;
  call.finish_reason = "tool_calls";
  call.tool_calls = ojson::parse(R"([{"id": "c_0", "type": "function", "function": {"name": "f", "arguments": "{}"}}])");
  const std::string body = paca_serve::chat_body(origin(), {text, call}, {3, 2, 0});
  const ojson j = ojson::parse(body);  // valid JSON although a piece is not valid UTF-8
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello");
  EXPECT_FALSE(j["choices"][0]["message"].contains("tool_calls"));
  const ojson& lp = j["choices"][0]["logprobs"]["content"][0];
  EXPECT_EQ(lp["bytes"], ojson::parse("[226, 130]"));  // the exact bytes
  EXPECT_FLOAT_EQ(lp["logprob"].get<float>(), -0.25f);
  EXPECT_TRUE(lp["top_logprobs"].is_array());
  EXPECT_TRUE(j["choices"][1]["message"]["content"].is_null());  // only calls: content is null
  EXPECT_EQ(j["choices"][1]["message"]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(j["choices"][1]["finish_reason"], "tool_calls");
}

TEST(ServeFormat, StreamChunks) {
  paca_serve::ChatDelta first;
  first.role = true;
  first.content = "";
  ojson j = ojson::parse(paca_serve::chat_chunk(origin(), 2, first));
  EXPECT_EQ(j["object"], "chat.completion.chunk");
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 2);
  EXPECT_EQ(j["choices"][0]["delta"], ojson::parse(R"({"role": "assistant", "content": ""})"));
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());

  paca_serve::ChatDelta last;
  last.finish_reason = "length";
  j = ojson::parse(paca_serve::chat_chunk(origin(), 0, last));
  EXPECT_EQ(j["choices"][0]["delta"], ojson::object());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");

  j = ojson::parse(paca_serve::completion_chunk(origin(), 1, " there", {}, false, ""));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], " there");
  EXPECT_EQ(j["choices"][0]["index"], 1);
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());

  j = ojson::parse(paca_serve::usage_chunk(origin(), true, {4, 6, 0}));
  EXPECT_EQ(j["choices"], ojson::array());
  EXPECT_EQ(j["usage"]["total_tokens"], 10);

  EXPECT_EQ(paca_serve::sse_event("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(std::string(paca_serve::kSseDone), "data: [DONE]\n\n");
}

TEST(ServeFormat, ToolCallsFromParsedReply) {
  // paca_chat_parse_tool_calls' documented shape (paca.h)
  const std::string parsed = R"({"content": "", "tool_calls": [
      {"type": "function", "name": "get_weather", "arguments": {"city": "Paris", "days": 2}},
      {"type": "builtin", "name": "brave_search", "arguments": {"query": "paca"}}],
      "python_tag": false, "malformed": false, "end": "eot", "awaiting_tool_result": true})";
  const paca_serve::Reply r = paca_serve::reply_from_parsed(parsed, "raw text", "call_9");
  EXPECT_EQ(r.content, "");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0]["id"], "call_9_0");
  EXPECT_EQ(r.tool_calls[1]["id"], "call_9_1");
  EXPECT_EQ(r.tool_calls[0]["type"], "function");
  EXPECT_EQ(r.tool_calls[0]["function"]["name"], "get_weather");
  // OpenAI's arguments are JSON text
  ASSERT_TRUE(r.tool_calls[0]["function"]["arguments"].is_string());
  EXPECT_EQ(ojson::parse(r.tool_calls[0]["function"]["arguments"].get<std::string>()),
            ojson::parse(R"({"city": "Paris", "days": 2})"));
  EXPECT_EQ(r.tool_calls[1]["function"]["name"], "brave_search");

  const paca_serve::Reply plain = paca_serve::reply_from_parsed(
      R"({"content": "Hi there", "tool_calls": [], "malformed": false})", "Hi there", "c");
  EXPECT_EQ(plain.content, "Hi there");
  EXPECT_TRUE(plain.tool_calls.empty());
  const paca_serve::Reply junk = paca_serve::reply_from_parsed("not json", "as generated", "c");
  EXPECT_EQ(junk.content, "as generated");
  EXPECT_TRUE(junk.tool_calls.empty());
}

TEST(ServeFormat, Models) {
  const ojson j = ojson::parse(paca_serve::models_body("tiny-llama3", 5));
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "tiny-llama3");
  EXPECT_EQ(j["data"][0]["object"], "model");
}

// ---- metrics -----------------------------------------------------------------

TEST(ServeMetrics, HistogramBuckets) {
  paca_serve::Histogram h({0.1, 1.0, 0.5});  // bounds are sorted
  ASSERT_EQ(h.bounds(), (std::vector<double>{0.1, 0.5, 1.0}));
  for (double v : {0.05, 0.1, 0.3, 0.5, 0.7, 2.0, 9.0}) h.observe(v);
  // a value equal to a bound lies in that bucket (Prometheus' "le")
  EXPECT_EQ(h.counts(), (std::vector<uint64_t>{2, 2, 1, 2}));
  EXPECT_EQ(h.count(), 7u);
  EXPECT_DOUBLE_EQ(h.sum(), 0.05 + 0.1 + 0.3 + 0.5 + 0.7 + 2.0 + 9.0);
}

TEST(ServeMetrics, RateWindow) {
  paca_serve::RateWindow w(10);
  EXPECT_EQ(w.rate(), 0);
  w.add(0, 0);
  EXPECT_EQ(w.rate(), 0);  // one sample: no rate yet
  w.add(5, 50);
  w.add(10, 100);
  EXPECT_DOUBLE_EQ(w.rate(), 10);
  w.add(12, 130);  // the window reaches back to t = 2: the sample of t = 0 anchors it
  EXPECT_DOUBLE_EQ(w.rate(), (130.0 - 0) / 12);
  w.add(30, 130);  // idle for longer than the window
  EXPECT_DOUBLE_EQ(w.rate(), 0);
}

TEST(ServeMetrics, PrometheusText) {
  paca_serve::Histogram ttft({0.01, 0.1, 1});
  ttft.observe(0.005);
  ttft.observe(0.05);
  ttft.observe(5);
  paca_serve::Metrics m;
  m.requests = {{{"/v1/completions", 200}, 3}, {{"/v1/chat/completions", 429}, 1}, {{"a\"b\\c\nd", 404}, 2}};
  m.cancelled_disconnect = 1;
  m.engine.n_queued = 4;
  m.engine.n_running = 2;
  m.engine.n_prefill_tokens = 100;
  m.engine.n_generated_tokens = 50;
  m.engine.kv_blocks_used = 7;
  m.engine.kv_blocks_total = 64;
  m.engine.kv_blocks_cached = 3;
  m.engine.kv_block_tokens = 16;
  m.generated_tokens_per_s = 12.5;
  m.ttft = &ttft;
  const std::string text = paca_serve::metrics_text(m);

  // every line is a comment or `name{labels} value` (text format 0.0.4)
  const std::regex sample(R"re([a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*")*\})? (\+Inf|-Inf|NaN|-?[0-9.eE+-]+))re");
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "the last line lacks its newline";
    const std::string line = text.substr(start, end - start);
    if (line.rfind("# HELP ", 0) != 0 && line.rfind("# TYPE ", 0) != 0) {
      EXPECT_TRUE(std::regex_match(line, sample)) << line;
    }
    start = end + 1;
  }
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("paca_requests_total{route=\"/v1/completions\",status=\"200\"} 3"));
  EXPECT_TRUE(has("paca_requests_total{route=\"/v1/chat/completions\",status=\"429\"} 1"));
  EXPECT_TRUE(has("paca_requests_total{route=\"a\\\"b\\\\c\\nd\",status=\"404\"} 2"));
  EXPECT_TRUE(has("paca_requests_cancelled_total{reason=\"client_disconnected\"} 1"));
  EXPECT_TRUE(has("paca_engine_queue_depth 4"));
  EXPECT_TRUE(has("paca_engine_running 2"));
  EXPECT_TRUE(has("paca_tokens_prefilled_total 100"));
  EXPECT_TRUE(has("paca_tokens_generated_total 50"));
  EXPECT_TRUE(has("paca_tokens_per_second{kind=\"generated\"} 12.5"));
  EXPECT_TRUE(has("paca_kv_blocks_used 7"));
  EXPECT_TRUE(has("paca_kv_blocks_total 64"));
  EXPECT_TRUE(has("paca_prefix_cache_tokens 48"));  // 3 blocks of 16
  // cumulative buckets, +Inf = count
  EXPECT_TRUE(has("paca_time_to_first_token_seconds_bucket{le=\"0.01\"} 1"));
  EXPECT_TRUE(has("paca_time_to_first_token_seconds_bucket{le=\"0.1\"} 2"));
  EXPECT_TRUE(has("paca_time_to_first_token_seconds_bucket{le=\"1\"} 2"));
  EXPECT_TRUE(has("paca_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE(has("paca_time_to_first_token_seconds_count 3"));
  EXPECT_TRUE(has("# TYPE paca_time_to_first_token_seconds histogram"));
  EXPECT_TRUE(has("# TYPE paca_requests_total counter"));
}

TEST(ServeMetrics, RouteLabels) {
  EXPECT_EQ(paca_serve::route_label("/v1/chat/completions"), "/v1/chat/completions");
  EXPECT_EQ(paca_serve::route_label("/metrics"), "/metrics");
  EXPECT_EQ(paca_serve::route_label("/v1/chat/completions/"), "other");
  EXPECT_EQ(paca_serve::route_label("/admin?x=1"), "other");
  EXPECT_EQ(paca_serve::route_label(""), "other");
}

}  // namespace
