// jinja.h - a Jinja2 template engine, written for chat templates.
//
// It covers what the Llama chat templates (and the other common Hugging Face
// templates) use, with the semantics of Python jinja2 in the environment that
// transformers' apply_chat_template builds: trim_blocks and lstrip_blocks on,
// the loopcontrols extension ({% break %}, {% continue %}), the globals
// raise_exception(msg) and strftime_now(fmt), and a tojson filter that is
// Python's json.dumps(value, ensure_ascii=False, indent=..., separators=...,
// sort_keys=...). Values are Python-like (value.h): printing, equality,
// truthiness, string slicing by code point and number formatting follow Python.
//
// Supported: {{ }}, {# #}, whitespace control (-, +), {% raw %}, if/elif/else,
// for (tuple targets, `if` filter, else, loop.*, break/continue), set (names,
// tuples, namespace attributes, block set), macro (defaults; varargs/kwargs),
// filter blocks, with, print, generation (rendered as its body). Expressions:
// literals, lists, tuples, dicts, attribute/index access, slices, calls,
// filters, tests, arithmetic, comparisons, in / not in, and/or/not, ~ and
// conditional expressions. Filters, tests, string/dict/list methods and
// globals are listed in builtins.cpp.
//
// Not supported (a clear Error(unsupported) naming the construct and its
// line and column): template inheritance and inclusion (extends, block,
// include, import, from), call blocks, recursive loops, *args / **kwargs at
// call sites, filters/tests/methods outside the list, anything that modifies
// a list or dict in place (the sandbox forbids it in jinja2 too).
//
// Differences from jinja2 by design: integers are 64-bit (overflow is an
// error, Python would grow them); upper/lower/title/capitalize map ASCII
// letters only; every render is bounded by Limits (output size, string
// size, items, total allocation, steps, nesting), so a template cannot hang
// or exhaust memory.
//
// Errors: Error(format) for syntax errors and run-time errors (type errors,
// undefined values used where a value is needed, limits), Error(unsupported)
// for constructs outside the list above, Error(invalid_argument) for
// raise_exception(); each message starts with "<name>:<line>:<column>: ".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/jinja/value.h"

namespace paca::jinja {

struct Limits {
  size_t max_output = size_t{16} << 20;   // bytes of rendered text
  size_t max_string = size_t{16} << 20;   // bytes of any one string value
  size_t max_items = size_t{1} << 20;     // items of any one list or dict
  uint64_t max_alloc = uint64_t{256} << 20;  // bytes of strings and containers created by one render
  uint64_t max_steps = 5'000'000;        // expressions evaluated and statements executed
  int max_depth = 400;                    // nested evaluation depth (macro recursion included)
};

struct RenderOptions {
  Limits limits;
  std::optional<int64_t> now;  // seconds since the epoch for strftime_now (local time); default: the clock
};

// Rendered text and the byte ranges of it that came from caller data.
struct Rendered {
  std::string text;
  Spans user;
};

struct Program;

class Template {
 public:
  // Parses a template. `name` prefixes error messages. Throws Error(format)
  // for syntax errors and Error(unsupported) for unsupported constructs.
  static Template parse(std::string_view source, std::string name = "template");

  // Renders with `vars` (they shadow the builtin globals). Thread-safe: a
  // parsed template may be rendered by many threads at once.
  Rendered render(const std::vector<std::pair<std::string, Value>>& vars, const RenderOptions& opt = {}) const;

  const std::string& name() const;

 private:
  std::shared_ptr<const Program> prog_;
};

}  // namespace paca::jinja
