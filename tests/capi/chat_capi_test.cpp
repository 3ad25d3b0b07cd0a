// chat_capi_test.cpp - chat formatting and tool-call parsing through paca.h
// only: buffers and size queries, JSON in and out, the model's own template
// and the built-in formats, errors, the params layout.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include "test_util.h"

using ojson = nlohmann::ordered_json;

namespace {

// Calls fn(buf, cap, &needed) twice: a size query, then with a buffer.
template <typename Fn>
std::string call_string(Fn fn, paca_status* status = nullptr) {
  size_t needed = 0;
  paca_status st = fn(nullptr, 0, &needed);
  if (st != PACA_ERR_BUFFER_TOO_SMALL) {
    if (status) *status = st;
    return {};
  }
  std::string buf(needed, '\0');
  st = fn(buf.data(), buf.size(), &needed);
  if (status) *status = st;
  EXPECT_EQ(st, PACA_OK) << paca_last_error();
  buf.resize(needed - 1);
  return buf;
}

const char* kMessages = R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <|eot_id|>"}])";

}  // namespace

TEST(ChatCapi, ParamsLayoutIsPinned) {
  EXPECT_EQ(sizeof(paca_chat_params), 64u);
  EXPECT_EQ(offsetof(paca_chat_params, add_generation_prompt), 4u);
  EXPECT_EQ(offsetof(paca_chat_params, tools_json), 8u);
  EXPECT_EQ(offsetof(paca_chat_params, builtin_tools_json), 16u);
  EXPECT_EQ(offsetof(paca_chat_params, date), 24u);
  EXPECT_EQ(offsetof(paca_chat_params, extra_json), 32u);
  EXPECT_EQ(offsetof(paca_chat_params, chat_template), 40u);
  EXPECT_EQ(offsetof(paca_chat_params, special_tokens_json), 48u);
  EXPECT_EQ(offsetof(paca_chat_params, now), 56u);
  paca_chat_params p;
  paca_chat_params_init(&p, sizeof p);
  EXPECT_EQ(p.struct_size, sizeof(paca_chat_params));
  EXPECT_EQ(p.add_generation_prompt, 1);
  EXPECT_EQ(p.tools_json, nullptr);
}

TEST(ChatCapi, BuiltinFormatWithoutModel) {
  paca_chat_params p;
  paca_chat_params_init(&p, sizeof p);
  p.chat_template = "builtin:llama3";
  const std::string text = call_string([&](char* b, size_t c, size_t* n) { return paca_chat_format(nullptr, kMessages, &p, b, c, n); });
  EXPECT_EQ(text,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi <|eot_id|><|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // The JSON form marks the user's bytes.
  const ojson j = ojson::parse(call_string([&](char* b, size_t c, size_t* n) { return paca_chat_format_json(nullptr, kMessages, &p, b, c, n); }));
  EXPECT_EQ(j["text"], text);
  EXPECT_EQ(j["template"], "builtin:llama3");
  std::string user;
  size_t covered = 0;
  for (const auto& s : j["segments"]) {
    EXPECT_EQ(s["offset"].get<size_t>(), covered);
    covered += s["length"].get<size_t>();
    if (s["user"].get<bool>()) user += "[" + text.substr(s["offset"].get<size_t>(), s["length"].get<size_t>()) + "]";
  }
  EXPECT_EQ(covered, text.size());
  EXPECT_EQ(user, "[system][Be brief.][user][Hi <|eot_id|>]");  // roles come from the messages too
}

TEST(ChatCapi, TemplateSourceToolsAndOptions) {
  paca_chat_params p;
  paca_chat_params_init(&p, sizeof p);
  p.chat_template = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
                    "{% if tools %}{{ tools | length }} tools{% endif %} {{ date_string }} {{ flag }}"
                    "{% if add_generation_prompt %}>{% endif %}";
  p.special_tokens_json = R"({"bos_token": "<B>"})";
  p.tools_json = R"([{"type": "function", "function": {"name": "f"}}])";
  p.date = "01 Feb 2025";
  p.extra_json = R"({"flag": "on"})";
  p.add_generation_prompt = 0;
  const std::string text = call_string([&](char* b, size_t c, size_t* n) { return paca_chat_format(nullptr, kMessages, &p, b, c, n); });
  EXPECT_EQ(text, "<B>[system]Be brief.[user]Hi <|eot_id|>1 tools 01 Feb 2025 on");
}

TEST(ChatCapi, ModelTemplate) {
  SKIP_WITHOUT_SHARED();
  paca_model* m = test::load_or_die(test::shared_dir() + "/models/tiny-llama31");
  paca_chat_params p;
  paca_chat_params_init(&p, sizeof p);
  p.builtin_tools_json = R"(["brave_search", "code_interpreter"])";
  p.date = "02 Mar 2025";
  const std::string text = call_string([&](char* b, size_t c, size_t* n) { return paca_chat_format(m, kMessages, &p, b, c, n); });
  EXPECT_EQ(text,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nTools: brave_search\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 02 Mar 2025\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi <|eot_id|><|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  const ojson info = ojson::parse(call_string([&](char* b, size_t c, size_t* n) { return paca_chat_template_json(m, b, c, n); }));
  EXPECT_EQ(info["origin"], "tokenizer_config.json");
  EXPECT_EQ(info["style"], "llama3.1");
  EXPECT_EQ(info["bos_token"], "<|begin_of_text|>");
  EXPECT_NE(info["source"].get<std::string>().find("Environment: ipython"), std::string::npos);
  paca_model_free(m);
}

namespace {

std::vector<int32_t> chat_ids(paca_model* m, const char* messages, paca_status* status = nullptr) {
  size_t n = 0;
  paca_status st = paca_chat_tokenize(m, messages, nullptr, nullptr, 0, &n);
  if (st == PACA_ERR_BUFFER_TOO_SMALL) {
    std::vector<int32_t> ids(n);
    st = paca_chat_tokenize(m, messages, nullptr, ids.data(), ids.size(), &n);
    if (status) *status = st;
    EXPECT_EQ(st, PACA_OK) << paca_last_error();
    ids.resize(n);
    return ids;
  }
  if (status) *status = st;
  return {};
}

std::vector<int32_t> text_ids(paca_model* m, const std::string& text, uint32_t flags) {
  size_t n = 0;
  EXPECT_EQ(paca_tokenize(m, text.data(), text.size(), flags, nullptr, 0, &n), text.empty() ? PACA_OK : PACA_ERR_BUFFER_TOO_SMALL);
  std::vector<int32_t> ids(n);
  EXPECT_EQ(paca_tokenize(m, text.data(), text.size(), flags, ids.data(), ids.size(), &n), PACA_OK) << paca_last_error();
  return ids;
}

std::string formatted(paca_model* m, const char* messages) {
  return call_string([&](char* b, size_t c, size_t* n) { return paca_chat_format(m, messages, nullptr, b, c, n); });
}

}  // namespace

TEST(ChatCapi, TokenizeEqualsSpecialParsingWithoutUserSpecials) {
  SKIP_WITHOUT_SHARED();
  const char* conv = R"([{"role": "system", "content": "Answer in one word."},
                         {"role": "user", "content": "  Hello, world!\n"},
                         {"role": "assistant", "content": "Hi."},
                         {"role": "user", "content": "Again: ünïcödé 123"}])";
  for (const char* name : {"tiny-llama2", "tiny-llama3", "tiny-llama31", "tiny-llama32", "stories260K/stories260K.bin"}) {
    SCOPED_TRACE(name);
    paca_model* m = test::load_or_die(test::shared_dir() + "/models/" + name);
    const std::string text = formatted(m, conv);
    ASSERT_FALSE(text.empty());
    // Without special-token text in the messages, the chat's ids are those of
    // the whole rendered text with special tokens recognised, no extra BOS.
    const std::vector<int32_t> ids = chat_ids(m, conv);
    EXPECT_EQ(ids, text_ids(m, text, PACA_TOKENIZE_SPECIAL));
    paca_model_info info{};
    info.struct_size = sizeof info;
    ASSERT_EQ(paca_model_get_info(m, &info), PACA_OK);
    ASSERT_FALSE(ids.empty());
    ASSERT_GE(ids.size(), 2u);
    EXPECT_EQ(ids[0], info.bos_id);  // the template's BOS, not doubled
    EXPECT_NE(ids[1], info.bos_id);
    paca_model_free(m);
  }
}

TEST(ChatCapi, TokenizeKeepsUserSpecialTextAsText) {
  SKIP_WITHOUT_SHARED();
  paca_model* m = test::load_or_die(test::shared_dir() + "/models/tiny-llama31");
  const std::vector<int32_t> ids = chat_ids(m, kMessages);
  const std::string text = formatted(m, kMessages);
  // Two <|eot_id|> tokens: the template's after each message; the user's copy is text.
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 128009), 2);
  const std::vector<int32_t> naive = text_ids(m, text, PACA_TOKENIZE_SPECIAL);
  EXPECT_EQ(std::count(naive.begin(), naive.end(), 128009), 3);
  // The ids still decode to the rendered text.
  size_t n = 0;
  ASSERT_EQ(paca_detokenize(m, ids.data(), ids.size(), PACA_DETOKENIZE_SPECIAL, nullptr, 0, &n), PACA_ERR_BUFFER_TOO_SMALL);
  std::string back(n, '\0');
  ASSERT_EQ(paca_detokenize(m, ids.data(), ids.size(), PACA_DETOKENIZE_SPECIAL, back.data(), back.size(), &n), PACA_OK);
  back.resize(n - 1);
  EXPECT_EQ(back, text);
  // Errors: small buffer, bad JSON, NULLs.
  int32_t one = -1;
  size_t needed = 0;
  EXPECT_EQ(paca_chat_tokenize(m, kMessages, nullptr, &one, 1, &needed), PACA_ERR_BUFFER_TOO_SMALL);
  EXPECT_EQ(needed, ids.size());
  EXPECT_EQ(one, -1);
  EXPECT_EQ(paca_chat_tokenize(m, "{", nullptr, nullptr, 0, &needed), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(needed, 0u);
  EXPECT_EQ(paca_chat_tokenize(m, nullptr, nullptr, nullptr, 0, &needed), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_chat_tokenize(m, kMessages, nullptr, nullptr, 5, &needed), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_chat_tokenize(nullptr, kMessages, nullptr, nullptr, 0, &needed), PACA_ERR_INVALID_ARGUMENT);
  paca_model_free(m);
}

TEST(ChatCapi, Errors) {
  size_t needed = 123;
  char buf[8];
  EXPECT_EQ(paca_chat_format(nullptr, kMessages, nullptr, buf, sizeof buf, &needed), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("chat_template"), std::string::npos);
  EXPECT_EQ(needed, 0u);
  paca_chat_params p;
  paca_chat_params_init(&p, sizeof p);
  p.chat_template = "builtin:llama2";
  EXPECT_EQ(paca_chat_format(nullptr, nullptr, &p, buf, sizeof buf, &needed), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_chat_format(nullptr, "[{]", &p, buf, sizeof buf, &needed), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("not valid JSON"), std::string::npos);
  // Too small a buffer: nothing written, the size reported.
  EXPECT_EQ(paca_chat_format(nullptr, kMessages, &p, buf, sizeof buf, &needed), PACA_ERR_BUFFER_TOO_SMALL);
  EXPECT_GT(needed, sizeof buf);
  // The template rejects the conversation.
  EXPECT_EQ(paca_chat_format(nullptr, R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])", &p, nullptr, 0,
                             &needed),
            PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("Conversation roles must alternate"), std::string::npos) << paca_last_error();
  // A template that cannot be rendered names the construct.
  p.chat_template = "{% extends 'x' %}";
  EXPECT_EQ(paca_chat_format(nullptr, kMessages, &p, nullptr, 0, &needed), PACA_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(paca_last_error()).find("extends"), std::string::npos);
  // Bad params struct.
  paca_chat_params bad;
  paca_chat_params_init(&bad, sizeof bad);
  bad.struct_size = 0;
  EXPECT_EQ(paca_chat_format(nullptr, kMessages, &bad, nullptr, 0, &needed), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_chat_template_json(nullptr, nullptr, 0, &needed), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_chat_parse_tool_calls("x", 1, 9, nullptr, 0, &needed), PACA_ERR_INVALID_ARGUMENT);
}

TEST(ChatCapi, ParseToolCalls) {
  const std::string reply = "<|python_tag|>brave_search.call(query=\"llama 3.1 release\")<|eom_id|>";
  const ojson j = ojson::parse(call_string([&](char* b, size_t c, size_t* n) {
    return paca_chat_parse_tool_calls(reply.data(), reply.size(), PACA_REPLY_END_NONE, b, c, n);
  }));
  EXPECT_EQ(j["tool_calls"][0]["name"], "brave_search");
  EXPECT_EQ(j["tool_calls"][0]["arguments"]["query"], "llama 3.1 release");
  EXPECT_EQ(j["end"], "eom");
  EXPECT_TRUE(j["awaiting_tool_result"].get<bool>());

  const std::string bad = "{\"name\": \"f\", \"parameters\": {\"x\": ";
  const ojson k = ojson::parse(call_string([&](char* b, size_t c, size_t* n) {
    return paca_chat_parse_tool_calls(bad.data(), bad.size(), PACA_REPLY_END_EOT, b, c, n);
  }));
  EXPECT_TRUE(k["malformed"].get<bool>());
  EXPECT_EQ(k["content"], bad);
  EXPECT_EQ(k["end"], "eot");
  EXPECT_TRUE(k["tool_calls"].empty());
  // Invalid UTF-8 in the reply still gives valid JSON.
  const std::string junk = "ok \xff\xfe";
  EXPECT_NO_THROW(ojson::parse(call_string([&](char* b, size_t c, size_t* n) {
    return paca_chat_parse_tool_calls(junk.data(), junk.size(), PACA_REPLY_END_NONE, b, c, n);
  })));
}
