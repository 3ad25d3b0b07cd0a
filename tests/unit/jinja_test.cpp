// jinja_test.cpp - the Jinja engine (core/chat/jinja/*.cpp): the table of
// template snippets in tests/chat/jinja_cases.json (expected outputs produced
// by Python jinja2 through tests/chat/render_reference.py, re-checked against
// jinja2 when it is installed), hand-written checks of the constructs the
// Llama templates use, error messages, provenance of user text, and the
// render limits that keep hostile templates bounded.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <thread>

#include "chat/jinja/jinja.h"
#include "chat_test_util.h"
#include "util/error.h"

using namespace paca;
using namespace paca::jinja;
using ojson = nlohmann::ordered_json;

namespace {

constexpr int64_t kNow = 1700000000;  // the --now of the committed expectations

void use_utc() {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
}

std::vector<std::pair<std::string, Value>> vars_of(const ojson& ctx) {
  std::vector<std::pair<std::string, Value>> vars;
  for (auto it = ctx.begin(); it != ctx.end(); ++it) vars.emplace_back(it.key(), Value::from_json(it.value(), true));
  return vars;
}

std::string render(const std::string& src, const ojson& ctx = ojson::object(), const Limits& limits = {}) {
  RenderOptions o;
  o.now = kNow;
  o.limits = limits;
  return Template::parse(src, "t").render(vars_of(ctx), o).text;
}

// Status and message of the error a render throws (Status::ok when none).
std::pair<Status, std::string> error_of(const std::string& src, const ojson& ctx = ojson::object(), const Limits& limits = {}) {
  try {
    render(src, ctx, limits);
  } catch (const Error& e) {
    return {e.status(), e.what()};
  }
  return {Status::ok, ""};
}

}  // namespace

TEST(JinjaCases, MatchJinja2Expectations) {
  use_utc();
  const std::string path = chat_test::source_dir() + "/tests/chat/jinja_cases.json";
  const ojson cases = ojson::parse(chat_test::read_text(path));
  ASSERT_GE(cases.size(), 100u);
  int checked = 0;
  for (const auto& c : cases) {
    const std::string name = c["name"].get<std::string>();
    ASSERT_TRUE(c.contains("expect")) << name << ": no expectation (run render_reference.py snippets --update)";
    const ojson& want = c["expect"];
    std::string got, err;
    try {
      got = render(c["template"].get<std::string>(), c.value("context", ojson::object()));
    } catch (const Error& e) {
      err = e.what();
    }
    if (want.contains("error")) {
      EXPECT_FALSE(err.empty()) << name << ": jinja2 fails, paca rendered " << got;
    } else {
      EXPECT_TRUE(err.empty()) << name << ": " << err;
      EXPECT_EQ(got, want["text"].get<std::string>()) << name;
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(cases.size()));
}

// The committed expectations are what jinja2 renders (skips without python3-jinja2).
TEST(JinjaCases, ExpectationsAreJinja2s) {
  const std::string log = chat_test::temp_dir() + "/check.log";
  const int rc = chat_test::run_reference("snippets --cases " +
                                              chat_test::shell_quote(chat_test::source_dir() + "/tests/chat/jinja_cases.json") +
                                              " --now " + std::to_string(kNow) + " --check",
                                          log);
  if (rc == -1 || rc == 77) GTEST_SKIP() << "python3 with jinja2 not available (apt-get install python3-jinja2)";
  EXPECT_EQ(rc, 0) << chat_test::read_text(log);
}

TEST(Jinja, LlamaTemplateConstructs) {
  EXPECT_EQ(render("{{- bos_token }}\n{%- if x is not defined %}\n    {%- set x = 'd' %}\n{%- endif %}\n[{{ x }}]",
                   {{"bos_token", "<s>"}}),
            "<s>[d]");
  EXPECT_EQ(render("{{ 'Tools: ' + tools | reject('equalto', 'code_interpreter') | join(', ') + '\\n' }}",
                   {{"tools", {"brave_search", "code_interpreter", "wolfram_alpha"}}}),
            "Tools: brave_search, wolfram_alpha\n");
  EXPECT_EQ(render("{{ '<|h|>' + m['role'] + '\\n\\n'+ m['content'] | trim + '<|e|>' }}",
                   {{"m", {{"role", "user"}, {"content", "  hi  "}}}}),
            "<|h|>user\n\nhi<|e|>");
  EXPECT_EQ(render("{% if not m.calls|length == 1 %}bad{% else %}ok{% endif %}", {{"m", {{"calls", {1}}}}}), "ok");
  EXPECT_EQ(render("{% for k, v in a | items %}{{ k + '=\"' + v + '\"' }}{% if not loop.last %}, {% endif %}{% endfor %}",
                   {{"a", {{"query", "x"}, {"b", "y"}}}}),
            "query=\"x\", b=\"y\"");
  EXPECT_EQ(render("{{ t | tojson(indent=4) }}", {{"t", {{"a", {1, 2}}, {"b", ojson::object()}}}}),
            "{\n    \"a\": [\n        1,\n        2\n    ],\n    \"b\": {}\n}");
  EXPECT_EQ(render("{{ a | tojson }}", {{"a", {{"z", 1.5}, {"y", "é"}}}}), "{\"z\": 1.5, \"y\": \"é\"}");
  EXPECT_EQ(render("{{ c is mapping or c is iterable }}", {{"c", "text"}}), "True");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"), "3");
  EXPECT_EQ(render("{% if (r == 'user') != (loop_i % 2 == 0) %}x{% endif %}", {{"r", "user"}, {"loop_i", 1}}), "x");
  EXPECT_EQ(render("{{ m[1:] | length }} {{ s.strip() }}", {{"m", {1, 2, 3}}, {"s", " a "}}), "2 a");
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}"), "14 Nov 2023");
}

TEST(Jinja, WhitespaceControlAsTransformers) {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it.
  EXPECT_EQ(render("a\n    {% if true %}\n    b\n    {% endif %}\nc"), "a\n    b\nc");
  EXPECT_EQ(render("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(render("{{ 'x' }}\n{{ 'y' }}\n"), "x\ny");  // variables keep their newline; one trailing newline dropped
  EXPECT_EQ(render("  {%+ if true %}x{% endif +%}\ny"), "  x\ny");
}

TEST(Jinja, ErrorsNameTheConstructAndPosition) {
  auto [st, msg] = error_of("line one\n  {% extends 'base.html' %}");
  EXPECT_EQ(st, Status::unsupported);
  EXPECT_NE(msg.find("extends"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t:2:6"), std::string::npos) << msg;

  std::tie(st, msg) = error_of("{{ x | frobnicate }}");
  EXPECT_EQ(st, Status::unsupported);
  EXPECT_NE(msg.find("unknown filter 'frobnicate'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t:1:8"), std::string::npos) << msg;

  std::tie(st, msg) = error_of("{{ x is frobnicated }}");
  EXPECT_EQ(st, Status::unsupported);
  EXPECT_NE(msg.find("unknown test 'frobnicated'"), std::string::npos) << msg;

  std::tie(st, msg) = error_of("{% for x in xs recursive %}{% endfor %}");
  EXPECT_EQ(st, Status::unsupported);
  EXPECT_NE(msg.find("recursive"), std::string::npos) << msg;

  std::tie(st, msg) = error_of("{% call m() %}{% endcall %}");
  EXPECT_EQ(st, Status::unsupported);
  EXPECT_NE(msg.find("'call'"), std::string::npos) << msg;

  std::tie(st, msg) = error_of("{{ f(*args) }}");
  EXPECT_EQ(st, Status::unsupported);

  std::tie(st, msg) = error_of("{{ 'a'.format(1) }}");
  EXPECT_EQ(st, Status::unsupported);
  EXPECT_NE(msg.find("format"), std::string::npos) << msg;

  std::tie(st, msg) = error_of("{% if x %}\nno end");
  EXPECT_EQ(st, Status::format);
  EXPECT_NE(msg.find("'if' is not closed"), std::string::npos) << msg;

  std::tie(st, msg) = error_of("{{ 1 + }}");
  EXPECT_EQ(st, Status::format);

  std::tie(st, msg) = error_of("a\n{{ x.y }}");
  EXPECT_EQ(st, Status::format);
  EXPECT_NE(msg.find("'x' is undefined"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t:2:"), std::string::npos) << msg;

  std::tie(st, msg) = error_of("{{ raise_exception('Roles must alternate') }}");
  EXPECT_EQ(st, Status::invalid_argument);
  EXPECT_NE(msg.find("Roles must alternate"), std::string::npos) << msg;

  std::tie(st, msg) = error_of("{{ [1].append(2) }}");
  EXPECT_NE(msg.find("unsafe"), std::string::npos) << msg;
}

TEST(Jinja, LimitsStopHostileTemplates) {
  // Endless loops: the step budget (a smaller one, to keep the test quick).
  Limits steps;
  steps.max_steps = 200000;
  auto [st, msg] = error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", ojson::object(), steps);
  EXPECT_EQ(st, Status::format);
  EXPECT_NE(msg.find("steps"), std::string::npos) << msg;
  // Exponential strings: the string size limit.
  std::tie(st, msg) = error_of("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}");
  EXPECT_NE(msg.find("string of more than"), std::string::npos) << msg;
  std::tie(st, msg) = error_of("{{ 'x' * 100000000000 }}");
  EXPECT_NE(msg.find("string of more than"), std::string::npos) << msg;
  // Allocation: a big list made again and again.
  Limits alloc;
  alloc.max_alloc = 32u << 20;
  std::tie(st, msg) = error_of("{% for i in range(100000) %}{% set x = range(100000) %}{% endfor %}", ojson::object(), alloc);
  EXPECT_NE(msg.find("allocated more than"), std::string::npos) << msg;
  // Output size.
  Limits small;
  small.max_output = 1000;
  std::tie(st, msg) = error_of("{% for i in range(1000) %}xx{% endfor %}", ojson::object(), small);
  EXPECT_NE(msg.find("output exceeds"), std::string::npos) << msg;
  // Unbounded recursion.
  std::tie(st, msg) = error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_NE(msg.find("nested more than"), std::string::npos) << msg;
  // Deep nesting in the source.
  std::tie(st, msg) = error_of("{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}");
  EXPECT_EQ(st, Status::format);
  EXPECT_NE(msg.find("nested"), std::string::npos) << msg;
  std::string long_sum = "{{ 1";
  for (int i = 0; i < 5000; ++i) long_sum += " + 1";
  std::tie(st, msg) = error_of(long_sum + " }}");
  EXPECT_NE(msg.find("nested"), std::string::npos) << msg;
  // Deeply nested values and self-referencing namespaces.
  std::tie(st, msg) = error_of("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}");
  EXPECT_NE(msg.find("nested more than"), std::string::npos) << msg;
  std::tie(st, msg) = error_of("{% set ns = namespace() %}{% set ns.me = [ns] %}");
  EXPECT_EQ(st, Status::unsupported);
  // Big ranges (jinja2's sandbox limit).
  std::tie(st, msg) = error_of("{{ range(1000000) | length }}");
  EXPECT_NE(msg.find("range too big"), std::string::npos) << msg;
  // 64-bit integers.
  std::tie(st, msg) = error_of("{{ 2 ** 64 }}");
  EXPECT_NE(msg.find("overflow"), std::string::npos) << msg;
}

TEST(Jinja, UserTextKeepsItsProvenance) {
  Template t = Template::parse("<A>{{ u }}<B>{{ u | trim }}<C>{{ [u] | tojson }}{{ u[1:3] }}{{ 'x' ~ u ~ 'y' }}");
  std::vector<std::pair<std::string, Value>> vars;
  vars.emplace_back("u", Value::string(" <|eot_id|> ", true));
  const Rendered r = t.render(vars);
  EXPECT_EQ(r.text, "<A> <|eot_id|> <B><|eot_id|><C>[\" <|eot_id|> \"]<|x <|eot_id|> y");
  std::string user;
  for (const Span& s : r.user) user += "[" + r.text.substr(s.begin, s.end - s.begin) + "]";
  EXPECT_EQ(user, "[ <|eot_id|> ][<|eot_id|>][\" <|eot_id|> \"][<|][ <|eot_id|> ]");
}

TEST(Jinja, RendersFromManyThreads) {
  const Template t = Template::parse("{% for m in messages %}{{ m.role }}:{{ m.content | upper }};{% endfor %}");
  std::vector<std::thread> threads;
  std::vector<std::string> out(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      std::vector<std::pair<std::string, Value>> vars;
      vars.emplace_back("messages", Value::from_json(ojson::parse(R"([{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}])"), true));
      for (int k = 0; k < 200; ++k) out[static_cast<size_t>(i)] = t.render(vars).text;
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& s : out) EXPECT_EQ(s, "user:HI;assistant:YO;");
}
