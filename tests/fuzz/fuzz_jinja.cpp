// fuzz_jinja.cpp - libFuzzer target for the Jinja engine (parser and
// interpreter): the input is a template, rendered against a fixed chat-like
// context under small limits. paca::Error is the expected answer to bad or
// runaway templates; anything else (a crash, a sanitizer report, another
// exception, a hang) is a finding. Also checks that the user ranges of the
// output are sorted, disjoint and inside the text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "chat/jinja/jinja.h"
#include "fuzz_common.h"
#include "util/error.h"

namespace {

const paca::jinja::Value& context() {
  static const paca::jinja::Value messages = paca::jinja::Value::from_json(nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": " Be brief. "},
    {"role": "user", "content": "Hi <|eot_id|> é 😀"},
    {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"q": "x", "n": 1.5}}}]},
    {"role": "tool", "content": {"ok": true, "list": [1, null, "s"]}}
  ])"), true);
  return messages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace paca::jinja;
  const std::string_view src(reinterpret_cast<const char*>(data), size);
  try {
    const Template t = Template::parse(src, "fuzz");
    std::vector<std::pair<std::string, Value>> vars;
    vars.emplace_back("messages", context());
    vars.emplace_back("bos_token", Value::string("<s>"));
    vars.emplace_back("tools", Value::none());
    vars.emplace_back("add_generation_prompt", Value::boolean(true));
    RenderOptions o;
    o.now = 1700000000;
    o.limits.max_output = 1 << 20;
    o.limits.max_string = 1 << 20;
    o.limits.max_items = 1 << 16;
    o.limits.max_alloc = 64u << 20;
    o.limits.max_steps = 200000;
    const Rendered r = t.render(vars, o);
    size_t prev = 0;
    for (const Span& s : r.user) {
      paca::fuzz::require(s.begin >= prev && s.begin < s.end && s.end <= r.text.size());
      prev = s.end;
    }
  } catch (const paca::Error&) {
  }
  return 0;
}
