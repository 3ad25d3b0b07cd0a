// value.h - the values of the Jinja template engine (jinja.h): a small
// Python-like dynamic type (undefined, none, bool, int, float, str, list,
// tuple, dict, namespace, callable) with Python's printing rules (str/repr),
// json.dumps-compatible serialisation, and provenance on strings.
//
// Provenance: every string remembers which of its bytes came from caller data
// (messages, tools, ...) as opposed to the template's own literals. The chat
// layer uses it to tell the tokenizer where special-token text may be read as
// a control token (template text) and where it must stay plain text (user
// content). Operations that build strings (concatenation, slicing, strip,
// replace, join, tojson, ...) carry the ranges along.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace paca::jinja {

// A byte range [begin, end) of a string.
struct Span {
  size_t begin = 0;
  size_t end = 0;
  bool operator==(const Span&) const = default;
};

// Byte ranges of `text` that came from caller data: sorted, disjoint, non-empty, merged.
using Spans = std::vector<Span>;

// A string with its user ranges. Immutable once shared.
struct Str {
  std::string s;
  Spans user;
};
using StrPtr = std::shared_ptr<const Str>;

// Appends [begin, end) (shifted by `shift`) to spans, merging with the last one.
void spans_add(Spans& spans, size_t begin, size_t end);
// Appends the parts of `src` inside [from, to), shifted so that `from` lands at `at`.
void spans_copy(Spans& dst, const Spans& src, size_t from, size_t to, size_t at);

class Value;
class Dict;
class Callable;
class Interp;
struct CallArgs;

// Lists and tuples. depth: 1 + the deepest container inside (bounds recursion).
// has_ns: a namespace is inside (namespaces may not hold themselves).
struct List {
  std::vector<Value> items;
  uint32_t depth = 1;
  bool has_ns = false;
};
using ListPtr = std::shared_ptr<const List>;
using DictPtr = std::shared_ptr<Dict>;
using FnPtr = std::shared_ptr<Callable>;

// The deepest container nesting a value may have (JSON input and template-built values).
inline constexpr uint32_t kMaxValueDepth = 200;

class Value {
 public:
  enum class Kind : uint8_t { undefined, none, boolean, integer, real, string, list, tuple, dict, ns, callable };

  Value() = default;  // undefined
  static Value undefined(std::string hint);  // hint: why, for error messages ("'x' is undefined")
  static Value none() { Value v; v.kind_ = Kind::none; return v; }
  static Value boolean(bool b) { Value v; v.kind_ = Kind::boolean; v.p_ = b; return v; }
  static Value integer(int64_t i) { Value v; v.kind_ = Kind::integer; v.p_ = i; return v; }
  static Value real(double d) { Value v; v.kind_ = Kind::real; v.p_ = d; return v; }
  static Value string(std::string s, bool user = false);
  static Value string(StrPtr s) { Value v; v.kind_ = Kind::string; v.p_ = std::move(s); return v; }
  static Value string(Str s) { return string(std::make_shared<const Str>(std::move(s))); }
  static Value list(std::vector<Value> items, bool tuple = false);  // throws when nested too deeply
  static Value dict(DictPtr d);
  static Value ns(DictPtr d);
  static Value callable(FnPtr f) { Value v; v.kind_ = Kind::callable; v.p_ = std::move(f); return v; }

  // Converts JSON; every string (keys included) is marked as user data when `user`.
  static Value from_json(const nlohmann::ordered_json& j, bool user);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::undefined; }
  bool is_none() const { return kind_ == Kind::none; }
  bool is_bool() const { return kind_ == Kind::boolean; }
  bool is_int() const { return kind_ == Kind::integer; }
  bool is_real() const { return kind_ == Kind::real; }
  bool is_number() const { return kind_ == Kind::integer || kind_ == Kind::real || kind_ == Kind::boolean; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_list() const { return kind_ == Kind::list || kind_ == Kind::tuple; }  // list or tuple
  bool is_dict() const { return kind_ == Kind::dict || kind_ == Kind::ns; }      // dict or namespace
  bool is_callable() const { return kind_ == Kind::callable; }

  bool as_bool() const { return std::get<bool>(p_); }
  int64_t as_int() const;      // integer or bool
  double as_double() const;    // any number
  const Str& str() const { return *std::get<StrPtr>(p_); }
  const StrPtr& str_ptr() const { return std::get<StrPtr>(p_); }
  const std::string& s() const { return str().s; }
  const List& list() const { return *std::get<ListPtr>(p_); }
  const std::vector<Value>& items() const { return list().items; }
  Dict& dict() const { return *std::get<DictPtr>(p_); }
  const DictPtr& dict_ptr() const { return std::get<DictPtr>(p_); }
  Callable& fn() const { return *std::get<FnPtr>(p_); }
  const std::string& undefined_hint() const;

  uint32_t depth() const;  // container nesting (0 for scalars)
  bool has_ns() const;     // is or holds a namespace

  // Python truthiness (undefined is false).
  bool truthy() const;
  // Python's type name as jinja2 reports it ("str", "dict", "NoneType", ...).
  const char* type_name() const;

 private:
  Kind kind_ = Kind::undefined;
  std::variant<std::monostate, bool, int64_t, double, StrPtr, ListPtr, DictPtr, FnPtr> p_;
};

// An ordered dict with string keys (insertion order kept, like Python 3.7+).
class Dict {
 public:
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);  // key is a string value; replaces an existing entry in place
  void append(Value key, Value value);  // key known to be new (internal fast path)
  void reserve(size_t n) { items_.reserve(n); }
  size_t size() const { return items_.size(); }
  const std::vector<std::pair<Value, Value>>& items() const { return items_; }
  uint32_t depth() const { return depth_; }
  bool has_ns() const { return has_ns_; }

 private:
  std::vector<std::pair<Value, Value>> items_;
  std::unordered_map<std::string, size_t> index_;  // built once the dict grows past a few entries
  uint32_t depth_ = 1;
  bool has_ns_ = false;
};

struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

// Something a template can call: macros, builtin functions, bound methods.
class Callable {
 public:
  virtual ~Callable() = default;
  virtual Value call(Interp& in, CallArgs& args) = 0;
  virtual std::string name() const = 0;
};

// Python equality (1 == 1.0 == True; lists/dicts element-wise; undefined == undefined).
bool equals(const Value& a, const Value& b);

// Python's str(): strings as they are, numbers/None/True as Python prints them,
// containers as their repr. Undefined prints as "". Keeps user ranges.
Str to_str(const Value& v);
// Python's repr() (strings quoted).
Str to_repr(const Value& v);
// Python repr of a float: shortest round-trip digits, "1e-05", "1e+16", "3.0", "inf", "nan".
std::string float_repr(double d);

struct JsonOptions {
  int indent = -1;                 // < 0: no newlines
  std::string item_sep;            // "" = default: ", " without indent, "," with indent
  std::string key_sep = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;       // HF's tojson passes ensure_ascii=False
};
// Python json.dumps(v, ...) for the values JSON can hold; throws Error(format)
// for undefined and callables. Each string's escaped text keeps its user mark.
Str to_json(const Value& v, const JsonOptions& opt);

// UTF-8 helpers (invalid bytes count as one code point each).
size_t utf8_length(std::string_view s);
// Byte offsets of every code point start, plus s.size() at the end.
std::vector<size_t> utf8_offsets(std::string_view s);
// Python's str.isspace() for one code point.
bool is_py_space(uint32_t cp);
// Decodes the code point at s[i], advancing i (invalid bytes: the byte value, one byte).
uint32_t utf8_next(std::string_view s, size_t& i);

}  // namespace paca::jinja
