// builtins.cpp - the filters, tests, methods and globals of the Jinja
// engine, with the semantics of jinja2 3.1 and Python 3 (see jinja.h for the
// deliberate differences).
//
// Filters: abs attr capitalize count d default dictsort e escape first float
//   forceescape indent int items join last length list lower map max min
//   reject rejectattr replace reverse round safe select selectattr sort
//   string sum title tojson trim unique upper wordcount
// Tests: boolean callable defined divisibleby eq equalto escaped even false
//   filter float ge greaterthan gt in integer iterable le lessthan lower lt
//   mapping ne none number odd sameas sequence string test true undefined
//   upper == != < <= > >=
// Methods: str: strip lstrip rstrip split rsplit splitlines startswith
//   endswith upper lower title capitalize swapcase replace find rfind count
//   join removeprefix removesuffix isspace isdigit isalpha isalnum isupper
//   islower; dict: items keys values get copy; list/tuple: index count
// Globals: raise_exception strftime_now range dict namespace
#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>

#include "chat/jinja/internal.h"

namespace paca::jinja {

namespace {

// ---- argument binding ----------------------------------------------------------

// Binds positional and keyword arguments to parameter names, as Python does.
class Params {
 public:
  Params(const char* fn, CallArgs& a, std::initializer_list<const char*> names) : fn_(fn), v_(names.size()) {
    std::vector<const char*> nm(names);
    if (a.args.size() > nm.size())
      fail(Status::format, "{}() takes at most {} argument(s) ({} given)", fn, nm.size(), a.args.size());
    for (size_t i = 0; i < a.args.size(); ++i) v_[i] = a.args[i];
    for (auto& [k, val] : a.kwargs) {
      size_t i = 0;
      while (i < nm.size() && k != nm[i]) ++i;
      if (i == nm.size()) fail(Status::format, "{}() got an unexpected keyword argument '{}'", fn, k);
      if (i < a.args.size()) fail(Status::format, "{}() got multiple values for argument '{}'", fn, k);
      v_[i] = val;
    }
  }
  const Value& operator[](size_t i) const { return v_[i]; }
  bool has(size_t i) const { return !v_[i].is_undefined(); }
  bool flag(size_t i) const { return has(i) && v_[i].truthy(); }
  int64_t int_or(size_t i, int64_t dflt) const {
    if (!has(i) || v_[i].is_none()) return dflt;
    if (!v_[i].is_int() && !v_[i].is_bool()) fail(Status::format, "{}(): expected an integer, got {}", fn_, v_[i].type_name());
    return v_[i].as_int();
  }
  const std::string& str(size_t i, const char* what) const {
    if (!v_[i].is_string()) fail(Status::format, "{}(): {} must be a string, got {}", fn_, what, v_[i].type_name());
    return v_[i].s();
  }

 private:
  const char* fn_;
  std::vector<Value> v_;
};

void no_args(const char* fn, const CallArgs& a) {
  if (!a.args.empty() || !a.kwargs.empty()) fail(Status::format, "{}() takes no arguments", fn);
}

// ---- string helpers ------------------------------------------------------------

Str str_of(const Value& v) { return to_str(v); }

Str strip_impl(const Str& s, const Value& chars, bool left, bool right) {
  const std::string& t = s.s;
  std::vector<uint32_t> set;
  const bool ws = chars.is_undefined() || chars.is_none();
  if (!ws) {
    if (!chars.is_string()) fail(Status::format, "strip arg must be None or str");
    for (size_t i = 0; i < chars.s().size();) set.push_back(utf8_next(chars.s(), i));
  }
  auto drop = [&](uint32_t c) { return ws ? is_py_space(c) : std::find(set.begin(), set.end(), c) != set.end(); };
  const auto off = utf8_offsets(t);
  size_t b = 0, e = off.size() - 1;
  auto cp_at = [&](size_t k) {
    size_t i = off[k];
    return utf8_next(t, i);
  };
  if (left)
    while (b < e && drop(cp_at(b))) ++b;
  if (right)
    while (e > b && drop(cp_at(e - 1))) --e;
  return str_substr(s, off[b], off[e]);
}

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

Str map_chars(const Str& s, char (*f)(char)) {
  Str out = s;
  for (char& c : out.s) c = f(c);
  return out;
}

Str capitalize(const Str& s) {
  Str out = map_chars(s, ascii_lower);
  if (!out.s.empty()) out.s[0] = ascii_upper(out.s[0]);
  return out;
}

bool is_word_sep_title(char c) {
  return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
         c == '\f' || c == '\v';
}

// jinja2's title filter: capitalises each part after whitespace, - ( { [ <.
Str title_filter(const Str& s) {
  Str out = s;
  bool start = true;
  for (char& c : out.s) {
    if (is_word_sep_title(c)) {
      start = true;
      continue;
    }
    c = start ? ascii_upper(c) : ascii_lower(c);
    start = false;
  }
  return out;
}

// Python's str.title(): a letter after a non-letter is upper-cased, others lower-cased.
Str py_title(const Str& s) {
  Str out = s;
  bool prev_letter = false;
  for (char& c : out.s) {
    const bool letter = std::isalpha(static_cast<unsigned char>(c)) != 0;
    if (letter) c = prev_letter ? ascii_lower(c) : ascii_upper(c);
    prev_letter = letter || (static_cast<unsigned char>(c) >= 0x80);
  }
  return out;
}

Str replace_impl(Interp& in, const Str& s, const Str& old, const Str& rep, int64_t count) {
  Str out;
  auto add = [&](const Str& piece) {
    in.check_string_size(out.s.size() + piece.s.size());
    str_append(out, piece);
  };
  if (old.s.empty()) {  // insert rep before every code point and at the end
    const auto off = utf8_offsets(s.s);
    int64_t done = 0;
    for (size_t k = 0; k + 1 < off.size(); ++k) {
      if (count < 0 || done < count) {
        add(rep);
        ++done;
      }
      add(str_substr(s, off[k], off[k + 1]));
    }
    if (count < 0 || done < count) add(rep);
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t f = s.s.find(old.s, pos);
    if (f == std::string::npos) break;
    add(str_substr(s, pos, f));
    add(rep);
    pos = f + old.s.size();
    ++done;
  }
  add(str_substr(s, pos, s.s.size()));
  return out;
}

std::vector<Value> split_impl(Interp& in, const Str& s, const Value& sep, int64_t maxsplit, bool from_right) {
  in.work(s.s.size());
  std::vector<Value> parts;
  const std::string& t = s.s;
  if (sep.is_undefined() || sep.is_none()) {
    // Runs of whitespace; no empty strings.
    const auto off = utf8_offsets(t);
    std::vector<std::pair<size_t, size_t>> words;  // code point ranges
    size_t k = 0;
    const size_t n = off.size() - 1;
    auto space_at = [&](size_t idx) {
      size_t i = off[idx];
      return is_py_space(utf8_next(t, i));
    };
    while (k < n) {
      while (k < n && space_at(k)) ++k;
      if (k >= n) break;
      size_t e = k;
      while (e < n && !space_at(e)) ++e;
      words.emplace_back(k, e);
      k = e;
    }
    if (maxsplit >= 0 && static_cast<int64_t>(words.size()) > maxsplit + 1) {
      if (!from_right) {
        const auto keep = static_cast<size_t>(maxsplit);
        // The rest after the first maxsplit words, left-stripped, right part kept as is.
        // The remainder keeps its trailing whitespace (Python's str.split).
        std::vector<std::pair<size_t, size_t>> w(words.begin(), words.begin() + static_cast<std::ptrdiff_t>(keep));
        w.emplace_back(words[keep].first, n);
        words = std::move(w);
      } else {
        const auto keep = static_cast<size_t>(maxsplit);
        const size_t first_kept = words.size() - keep;
        std::vector<std::pair<size_t, size_t>> w;
        w.emplace_back(0, words[first_kept - 1].second);  // the remainder keeps its leading whitespace
        w.insert(w.end(), words.begin() + static_cast<std::ptrdiff_t>(first_kept), words.end());
        words = std::move(w);
      }
    }
    for (auto [b, e] : words) parts.push_back(Value::string(str_substr(s, off[b], off[e])));
    in.charge(32 * parts.size());
    return parts;
  }
  if (!sep.is_string()) fail(Status::format, "must be str or None, not {}", sep.type_name());
  const std::string& d = sep.s();
  if (d.empty()) fail(Status::format, "empty separator");
  std::vector<std::pair<size_t, size_t>> ranges;
  if (!from_right) {
    size_t pos = 0;
    int64_t done = 0;
    while (maxsplit < 0 || done < maxsplit) {
      const size_t f = t.find(d, pos);
      if (f == std::string::npos) break;
      ranges.emplace_back(pos, f);
      pos = f + d.size();
      ++done;
    }
    ranges.emplace_back(pos, t.size());
  } else {
    size_t end = t.size();
    int64_t done = 0;
    std::vector<std::pair<size_t, size_t>> rev;
    while ((maxsplit < 0 || done < maxsplit) && end >= d.size()) {
      const size_t f = t.rfind(d, end - d.size());
      if (f == std::string::npos) break;
      rev.emplace_back(f + d.size(), end);
      end = f;
      ++done;
    }
    rev.emplace_back(0, end);
    ranges.assign(rev.rbegin(), rev.rend());
  }
  in.check_items(ranges.size());
  for (auto [b, e] : ranges) parts.push_back(Value::string(str_substr(s, b, e)));
  in.charge(32 * parts.size());
  return parts;
}

bool is_line_break(uint32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

// Python's str.splitlines(keepends): [begin, end) byte ranges.
std::vector<std::pair<size_t, size_t>> splitlines_ranges(const std::string& t, bool keepends) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t start = 0, i = 0;
  while (i < t.size()) {
    const size_t at = i;
    const uint32_t c = utf8_next(t, i);
    if (!is_line_break(c)) continue;
    size_t after = i;
    if (c == '\r' && after < t.size() && t[after] == '\n') ++after;
    out.emplace_back(start, keepends ? after : at);
    start = i = after;
  }
  if (start < t.size()) out.emplace_back(start, t.size());
  return out;
}

Value make_strings(Interp& in, const Str& s, const std::vector<std::pair<size_t, size_t>>& r) {
  std::vector<Value> items;
  for (auto [b, e] : r) items.push_back(Value::string(str_substr(s, b, e)));
  return in.make_list(std::move(items));
}

Str join_impl(Interp& in, const std::vector<Value>& items, const Str& sep, bool require_str) {
  Str out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (require_str && !items[i].is_string())
      fail(Status::format, "sequence item {}: expected str instance, {} found", i, items[i].type_name());
    const Str piece = str_of(items[i]);
    in.check_string_size(out.s.size() + sep.s.size() + piece.s.size());
    if (i) str_append(out, sep);
    str_append(out, piece);
  }
  return out;
}

size_t cp_index(const std::string& s, size_t byte_pos) { return utf8_length(std::string_view(s).substr(0, byte_pos)); }

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// ---- bound methods --------------------------------------------------------------

class Builtin : public Callable {
 public:
  using Fn = Value (*)(Interp&, CallArgs&);
  Builtin(const char* name, Fn fn) : name_(name), fn_(fn) {}
  Value call(Interp& in, CallArgs& a) override { return fn_(in, a); }
  std::string name() const override { return name_; }

 private:
  const char* name_;
  Fn fn_;
};

class Method : public Callable {
 public:
  Method(Value self, std::string name) : self_(std::move(self)), name_(std::move(name)) {}
  Value call(Interp& in, CallArgs& a) override;
  std::string name() const override { return name_; }

 private:
  Value self_;
  std::string name_;
};

Value str_method(Interp& in, const Value& self, const std::string& m, CallArgs& a) {
  const Str& s = self.str();
  const std::string& t = s.s;
  if (m == "strip" || m == "lstrip" || m == "rstrip") {
    Params p(m.c_str(), a, {"chars"});
    return in.make_str(strip_impl(s, p[0], m != "rstrip", m != "lstrip"));
  }
  if (m == "split" || m == "rsplit") {
    Params p(m.c_str(), a, {"sep", "maxsplit"});
    return in.make_list(split_impl(in, s, p[0], p.int_or(1, -1), m == "rsplit"));
  }
  if (m == "splitlines") {
    Params p(m.c_str(), a, {"keepends"});
    in.work(t.size());
    return make_strings(in, s, splitlines_ranges(t, p.flag(0)));
  }
  if (m == "startswith" || m == "endswith") {
    Params p(m.c_str(), a, {"prefix"});
    std::vector<Value> options;
    if (p[0].is_list() && p[0].kind() == Value::Kind::tuple) options = p[0].items();
    else options.push_back(p[0]);
    for (const Value& o : options) {
      if (!o.is_string()) fail(Status::format, "{} first arg must be str or a tuple of str, not {}", m, o.type_name());
      const std::string& x = o.s();
      if (m == "startswith" ? t.compare(0, x.size(), x) == 0 && t.size() >= x.size()
                            : t.size() >= x.size() && t.compare(t.size() - x.size(), x.size(), x) == 0)
        return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (m == "upper") return no_args("upper", a), in.make_str(map_chars(s, ascii_upper));
  if (m == "lower") return no_args("lower", a), in.make_str(map_chars(s, ascii_lower));
  if (m == "title") return no_args("title", a), in.make_str(py_title(s));
  if (m == "capitalize") return no_args("capitalize", a), in.make_str(capitalize(s));
  if (m == "swapcase") {
    no_args("swapcase", a);
    Str out = s;
    for (char& c : out.s) c = (c >= 'a' && c <= 'z') ? ascii_upper(c) : ascii_lower(c);
    return in.make_str(std::move(out));
  }
  if (m == "replace") {
    Params p("replace", a, {"old", "new", "count"});
    if (!p[0].is_string() || !p[1].is_string()) fail(Status::format, "replace() arguments must be str");
    return in.make_str(replace_impl(in, s, p[0].str(), p[1].str(), p.int_or(2, -1)));
  }
  if (m == "find" || m == "rfind" || m == "count") {
    Params p(m.c_str(), a, {"sub"});
    in.work(t.size());
    const std::string& x = p.str(0, "sub");
    if (m == "count") {
      if (x.empty()) return Value::integer(static_cast<int64_t>(utf8_length(t) + 1));
      int64_t n = 0;
      for (size_t f = t.find(x); f != std::string::npos; f = t.find(x, f + x.size())) ++n;
      return Value::integer(n);
    }
    const size_t f = m == "find" ? t.find(x) : t.rfind(x);
    return Value::integer(f == std::string::npos ? -1 : static_cast<int64_t>(cp_index(t, f)));
  }
  if (m == "join") {
    Params p("join", a, {"iterable"});
    return in.make_str(join_impl(in, in.iterate(p[0]), s, true));
  }
  if (m == "removeprefix" || m == "removesuffix") {
    Params p(m.c_str(), a, {"affix"});
    const std::string& x = p.str(0, "affix");
    if (m == "removeprefix" && t.compare(0, x.size(), x) == 0 && t.size() >= x.size())
      return in.make_str(str_substr(s, x.size(), t.size()));
    if (m == "removesuffix" && t.size() >= x.size() && t.compare(t.size() - x.size(), x.size(), x) == 0)
      return in.make_str(str_substr(s, 0, t.size() - x.size()));
    return self;
  }
  if (m == "isspace" || m == "isdigit" || m == "isalpha" || m == "isalnum" || m == "isupper" || m == "islower") {
    no_args(m.c_str(), a);
    if (t.empty()) return Value::boolean(false);
    bool any_cased = false, ok = true;
    for (size_t i = 0; i < t.size() && ok;) {
      const uint32_t c = utf8_next(t, i);
      const bool ascii = c < 0x80;
      const auto ch = static_cast<unsigned char>(c);
      if (m == "isspace") ok = is_py_space(c);
      else if (m == "isdigit") ok = ascii && std::isdigit(ch);
      else if (m == "isalpha") ok = !ascii || std::isalpha(ch);
      else if (m == "isalnum") ok = !ascii || std::isalnum(ch);
      else if (m == "isupper") {
        if (ascii && std::islower(ch)) ok = false;
        any_cased = any_cased || (ascii && std::isupper(ch));
      } else {
        if (ascii && std::isupper(ch)) ok = false;
        any_cased = any_cased || (ascii && std::islower(ch));
      }
    }
    if (m == "isupper" || m == "islower") ok = ok && any_cased;
    return Value::boolean(ok);
  }
  if (m == "format") fail(Status::unsupported, "str.format() is not supported");
  fail(Status::unsupported, "str.{}() is not supported", m);
}

Value dict_method(Interp& in, const Value& self, const std::string& m, CallArgs& a) {
  const Dict& d = self.dict();
  if (m == "items" || m == "keys" || m == "values") {
    no_args(m.c_str(), a);
    std::vector<Value> out;
    out.reserve(d.size());
    for (const auto& [k, v] : d.items()) {
      if (m == "items") out.push_back(Value::list({k, v}, true));
      else out.push_back(m == "keys" ? k : v);
    }
    return in.make_list(std::move(out));
  }
  if (m == "get") {
    Params p("get", a, {"key", "default"});
    if (p[0].is_string())
      if (const Value* v = d.find(p[0].s())) return *v;
    return p.has(1) ? p[1] : Value::none();
  }
  if (m == "copy") return no_args("copy", a), self;
  fail(Status::unsupported, "dict.{}() is not supported", m);
}

Value list_method(Interp&, const Value& self, const std::string& m, CallArgs& a) {
  Params p(m.c_str(), a, {"value"});
  const auto& items = self.items();
  if (m == "count") {
    int64_t n = 0;
    for (const Value& v : items) n += equals(v, p[0]) ? 1 : 0;
    return Value::integer(n);
  }
  for (size_t i = 0; i < items.size(); ++i)
    if (equals(items[i], p[0])) return Value::integer(static_cast<int64_t>(i));
  fail(Status::format, "{} is not in list", to_repr(p[0]).s);
}

Value Method::call(Interp& in, CallArgs& a) {
  if (self_.is_string()) return str_method(in, self_, name_, a);
  if (self_.kind() == Value::Kind::dict) return dict_method(in, self_, name_, a);
  return list_method(in, self_, name_, a);
}

bool in_list(const std::string& name, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return name == n; });
}

// ---- filters ---------------------------------------------------------------------

Value attr_of(Interp& in, const Value& v, const std::string& path) {
  // "a.b.0": dotted attribute paths, integers index lists (jinja2's make_attrgetter).
  Value cur = v;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    int64_t idx = 0;
    auto r = std::from_chars(part.data(), part.data() + part.size(), idx);
    if (!part.empty() && r.ec == std::errc() && r.ptr == part.data() + part.size()) cur = in.get_item(cur, Value::integer(idx));
    else cur = in.get_item(cur, Value::string(part));
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

// select/reject: the test and its arguments from the filter's arguments.
bool run_test_args(Interp& in, const Value& item, const CallArgs& a, size_t first) {
  if (a.args.size() <= first) return item.truthy();
  if (!a.args[first].is_string()) fail(Status::format, "the test name must be a string");
  CallArgs t;
  t.args.assign(a.args.begin() + static_cast<std::ptrdiff_t>(first) + 1, a.args.end());
  t.kwargs = a.kwargs;
  return in.apply_test(a.args[first].s(), item, t);
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(map_chars(v.str(), ascii_lower).s);
  return v;
}

double round_half_even(double x, int64_t precision) {
  if (!std::isfinite(x)) return x;
  char buf[512];
  const int prec = static_cast<int>(std::clamp<int64_t>(precision, 0, 300));
  auto r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::fixed, prec);
  if (r.ec != std::errc()) return x;
  double out = 0;
  std::from_chars(buf, r.ptr, out);
  return out;
}

Value tojson_filter(Interp& in, const Value& v, CallArgs& a) {
  Params p("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = p.flag(0);
  if (p.has(1) && !p[1].is_none()) {
    if (p[1].is_int() || p[1].is_bool()) {
      o.indent = static_cast<int>(std::clamp<int64_t>(p[1].as_int(), 0, 64));
    } else if (p[1].is_string()) {
      // Python accepts an indent string; only spaces are supported here.
      const std::string& ind = p[1].s();
      check(std::all_of(ind.begin(), ind.end(), [](char c) { return c == ' '; }), Status::unsupported,
            "tojson: an indent string other than spaces is not supported");
      o.indent = static_cast<int>(std::min<size_t>(ind.size(), 64));
    } else {
      fail(Status::format, "tojson: indent must be an integer");
    }
  }
  if (p.has(2) && !p[2].is_none()) {
    if (!p[2].is_list() || p[2].items().size() != 2 || !p[2].items()[0].is_string() || !p[2].items()[1].is_string())
      fail(Status::format, "tojson: separators must be a pair of strings");
    o.item_sep = p[2].items()[0].s();
    o.key_sep = p[2].items()[1].s();
    if (o.item_sep.empty()) o.item_sep = std::string();
  } else if (o.indent >= 0) {
    o.item_sep = ",";
  }
  o.sort_keys = p.flag(3);
  Str out = to_json(v, o);
  return in.make_str(std::move(out));
}

Value indent_filter(Interp& in, const Value& v, CallArgs& a) {
  Params p("indent", a, {"width", "first", "blank"});
  std::string ind = "    ";
  if (p.has(0)) {
    if (p[0].is_string()) ind = p[0].s();
    else ind = std::string(static_cast<size_t>(std::clamp<int64_t>(p.int_or(0, 4), 0, 256)), ' ');
  }
  Str s = str_concat(str_of(v), Str{"\n", {}});
  const auto lines = splitlines_ranges(s.s, false);
  Str out;
  const Str nl{"\n", {}}, indent{ind, {}};
  for (size_t i = 0; i < lines.size(); ++i) {
    Str line = str_substr(s, lines[i].first, lines[i].second);
    if (i > 0) {
      str_append(out, nl);
      if (p.flag(2) || !line.s.empty()) str_append(out, indent);
    }
    in.check_string_size(out.s.size() + line.s.size());
    str_append(out, line);
  }
  if (p.flag(1)) out = str_concat(indent, out);
  return in.make_str(std::move(out));
}

Value int_filter(const Value& v, CallArgs& a) {
  Params p("int", a, {"default", "base"});
  const Value dflt = p.has(0) ? p[0] : Value::integer(0);
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  if (v.is_real()) {
    const double d = v.as_double();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return dflt;
    return Value::integer(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    std::string t = strip_impl(v.str(), Value(), true, true).s;
    t.erase(std::remove(t.begin(), t.end(), '_'), t.end());
    const int base = static_cast<int>(p.int_or(1, 10));
    int64_t i = 0;
    const char* b = t.data();
    if (!t.empty() && t[0] == '+') ++b;
    auto r = std::from_chars(b, t.data() + t.size(), i, base >= 2 && base <= 36 ? base : 10);
    if (!t.empty() && r.ec == std::errc() && r.ptr == t.data() + t.size()) return Value::integer(i);
    double d = 0;
    auto rd = std::from_chars(b, t.data() + t.size(), d);
    if (!t.empty() && rd.ec == std::errc() && rd.ptr == t.data() + t.size() && std::isfinite(d) && std::fabs(d) < 9.2e18)
      return Value::integer(static_cast<int64_t>(d));
  }
  return dflt;
}

Value float_filter(const Value& v, CallArgs& a) {
  Params p("float", a, {"default"});
  const Value dflt = p.has(0) ? p[0] : Value::real(0.0);
  if (v.is_number()) return Value::real(v.as_double());
  if (v.is_string()) {
    const std::string t = strip_impl(v.str(), Value(), true, true).s;
    double d = 0;
    const char* b = t.data();
    if (!t.empty() && t[0] == '+') ++b;
    auto r = std::from_chars(b, t.data() + t.size(), d);
    if (!t.empty() && r.ec == std::errc() && r.ptr == t.data() + t.size()) return Value::real(d);
  }
  return dflt;
}

// ---- filters: one function each, found by name in kFilters ----------------------

// Every filter gets its own name too (several names share one function).
using FilterFn = Value (*)(Interp& in, const std::string& f, const Value& v, CallArgs& a);

Value trim_filter(Interp& in, const std::string&, const Value& v, CallArgs& a) {
  Params p("trim", a, {"chars"});
  return in.make_str(strip_impl(str_of(v), p[0], true, true));
}

Value length_filter(Interp& in, const std::string& f, const Value& v, CallArgs& a) {
  no_args(f.c_str(), a);
  switch (v.kind()) {
    case Value::Kind::undefined: return Value::integer(0);
    case Value::Kind::string: in.work(v.s().size()); return Value::integer(static_cast<int64_t>(utf8_length(v.s())));
    case Value::Kind::list:
    case Value::Kind::tuple: return Value::integer(static_cast<int64_t>(v.items().size()));
    case Value::Kind::dict: return Value::integer(static_cast<int64_t>(v.dict().size()));
    default: fail(Status::format, "object of type '{}' has no len()", v.type_name());
  }
}

Value join_filter(Interp& in, const std::string&, const Value& v, CallArgs& a) {
  Params p("join", a, {"d", "attribute"});
  Str sep;
  if (p.has(0)) sep = str_of(p[0]);
  std::vector<Value> items = in.iterate(v);
  if (p.has(1)) {
    const std::string path = to_str(p[1]).s;
    for (Value& it : items) it = attr_of(in, it, path);
  }
  return in.make_str(join_impl(in, items, sep, false));
}

Value default_filter(Interp&, const std::string&, const Value& v, CallArgs& a) {
  Params p("default", a, {"default_value", "boolean"});
  const bool boolean = p.flag(1);
  if (v.is_undefined() || (boolean && !v.truthy())) return p.has(0) ? p[0] : Value::string("");
  return v;
}

Value escape_filter(Interp& in, const std::string& f, const Value& v, CallArgs& a) {
  no_args(f.c_str(), a);
  const Str s = str_of(v);
  Str out;
  out.s = html_escape(s.s);
  if (!s.user.empty()) spans_add(out.user, 0, out.s.size());
  return in.make_str(std::move(out));
}

Value replace_filter(Interp& in, const std::string&, const Value& v, CallArgs& a) {
  Params p("replace", a, {"old", "new", "count"});
  const Str s = str_of(v);
  return in.make_str(replace_impl(in, s, str_of(p[0]), str_of(p[1]), p.int_or(2, -1)));
}

Value first_last_filter(Interp& in, const std::string& f, const Value& v, CallArgs& a) {
  no_args(f.c_str(), a);
  const std::vector<Value> items = in.iterate(v);
  if (items.empty()) return Value::undefined(fmt::format("No {} item, sequence was empty.", f));
  return f == "first" ? items.front() : items.back();
}

Value items_filter(Interp& in, const std::string&, const Value& v, CallArgs& a) {
  no_args("items", a);
  if (v.is_undefined()) return in.make_list({});
  if (v.kind() != Value::Kind::dict) fail(Status::format, "Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, x] : v.dict().items()) out.push_back(Value::list({k, x}, true));
  return in.make_list(std::move(out));
}

Value reverse_filter(Interp& in, const std::string&, const Value& v, CallArgs& a) {
  no_args("reverse", a);
  if (v.is_string()) {
    const auto off = utf8_offsets(v.s());
    Str out;
    for (size_t k = off.size() - 1; k > 0; --k) str_append(out, v.str(), off[k - 1], off[k]);
    return in.make_str(std::move(out));
  }
  std::vector<Value> items = in.iterate(v);
  std::reverse(items.begin(), items.end());
  return in.make_list(std::move(items));
}

Value select_filter(Interp& in, const std::string& f, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  for (const Value& it : in.iterate(v))
    if (run_test_args(in, it, a, 0) == (f == "select")) out.push_back(it);
  return in.make_list(std::move(out));
}

Value selectattr_filter(Interp& in, const std::string& f, const Value& v, CallArgs& a) {
  if (a.args.empty() || !a.args[0].is_string()) fail(Status::format, "{}() needs an attribute name", f);
  const std::string path = a.args[0].s();
  std::vector<Value> out;
  for (const Value& it : in.iterate(v))
    if (run_test_args(in, attr_of(in, it, path), a, 1) == (f == "selectattr")) out.push_back(it);
  return in.make_list(std::move(out));
}

Value map_filter(Interp& in, const std::string&, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  const std::vector<Value> items = in.iterate(v);
  if (a.args.empty()) {
    Params p("map", a, {"attribute", "default"});
    if (!p.has(0)) fail(Status::format, "map() needs a filter name or attribute=");
    const std::string path = to_str(p[0]).s;
    for (const Value& it : items) {
      Value x = attr_of(in, it, path);
      if (x.is_undefined() && p.has(1)) x = p[1];
      out.push_back(std::move(x));
    }
    return in.make_list(std::move(out));
  }
  if (!a.args[0].is_string()) fail(Status::format, "map(): the filter name must be a string");
  const std::string name = a.args[0].s();
  if (!is_known_filter(name)) fail(Status::unsupported, "unknown filter '{}'", name);
  for (const Value& it : items) {
    CallArgs fa;
    fa.args.assign(a.args.begin() + 1, a.args.end());
    fa.kwargs = a.kwargs;
    out.push_back(in.apply_filter(name, it, fa));
  }
  return in.make_list(std::move(out));
}

// sort, unique, min and max: items compared by sort_key of the item or of
// its attribute path.
Value ordering_filter(Interp& in, const std::string& f, const Value& v, CallArgs& a) {
  Params p(f.c_str(), a, f == "sort" ? std::initializer_list<const char*>{"reverse", "case_sensitive", "attribute"}
                                     : std::initializer_list<const char*>{"case_sensitive", "attribute"});
  const size_t cs_i = f == "sort" ? 1 : 0, at_i = f == "sort" ? 2 : 1;
  const bool cs = p.flag(cs_i);
  const std::string path = p.has(at_i) ? to_str(p[at_i]).s : std::string();
  std::vector<Value> items = in.iterate(v);
  auto key = [&](const Value& it) { return sort_key(path.empty() ? it : attr_of(in, it, path), cs); };
  if (f == "unique") {
    std::vector<Value> out, seen;
    for (const Value& it : items) {
      Value k = key(it);
      in.work(256 * static_cast<uint64_t>(seen.size()));  // quadratic: it counts
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
        seen.push_back(k);
        out.push_back(it);
      }
    }
    return in.make_list(std::move(out));
  }
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t i = 0; i < items.size(); ++i) keyed.emplace_back(key(items[i]), i);
  if (f == "min" || f == "max") {
    if (items.empty()) return Value::undefined(fmt::format("No {} item, sequence was empty.", f == "min" ? "smallest" : "largest"));
    size_t best = 0;
    for (size_t i = 1; i < keyed.size(); ++i) {
      const int c = py_compare(keyed[i].first, keyed[best].first);
      if (f == "min" ? c < 0 : c > 0) best = i;
    }
    return items[best];
  }
  const bool rev = p.flag(0);
  in.work(256 * static_cast<uint64_t>(keyed.size()) * static_cast<uint64_t>(std::bit_width(keyed.size())));
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return rev ? py_compare(y.first, x.first) < 0 : py_compare(x.first, y.first) < 0;
  });
  std::vector<Value> out;
  for (auto& [k, i] : keyed) out.push_back(items[i]);
  return in.make_list(std::move(out));
}

Value dictsort_filter(Interp& in, const std::string&, const Value& v, CallArgs& a) {
  Params p("dictsort", a, {"case_sensitive", "by", "reverse"});
  if (v.kind() != Value::Kind::dict) fail(Status::format, "dictsort: expected a mapping, got {}", v.type_name());
  const bool by_value = p.has(1) && to_str(p[1]).s == "value";
  std::vector<Value> pairs;
  for (const auto& [k, x] : v.dict().items()) pairs.push_back(Value::list({k, x}, true));
  const bool cs = p.flag(0), rev = p.flag(2);
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    const Value kx = sort_key(x.items()[by_value ? 1 : 0], cs), ky = sort_key(y.items()[by_value ? 1 : 0], cs);
    return rev ? py_compare(ky, kx) < 0 : py_compare(kx, ky) < 0;
  });
  return in.make_list(std::move(pairs));
}

Value sum_filter(Interp& in, const std::string&, const Value& v, CallArgs& a) {
  Params p("sum", a, {"attribute", "start"});
  Value total = p.has(1) ? p[1] : Value::integer(0);
  const std::string path = p.has(0) ? to_str(p[0]).s : std::string();
  for (const Value& it : in.iterate(v)) total = py_add(in, total, path.empty() ? it : attr_of(in, it, path));
  return total;
}

Value abs_filter(Interp&, const std::string&, const Value& v, CallArgs& a) {
  no_args("abs", a);
  require_defined(v);
  if (v.is_real()) return Value::real(std::fabs(v.as_double()));
  if (v.is_int() || v.is_bool()) {
    check(v.as_int() != INT64_MIN, Status::format, "integer overflow");
    return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  fail(Status::format, "bad operand type for abs(): '{}'", v.type_name());
}

Value round_filter(Interp&, const std::string&, const Value& v, CallArgs& a) {
  Params p("round", a, {"precision", "method"});
  const int64_t prec = p.int_or(0, 0);
  const std::string method = p.has(1) ? to_str(p[1]).s : "common";
  if (!v.is_number()) fail(Status::format, "round: expected a number, got {}", v.type_name());
  if (method != "common" && method != "ceil" && method != "floor")
    fail(Status::format, "method must be 'common', 'ceil' or 'floor'");
  const double x = v.as_double();
  if (method == "common") {
    if (!v.is_real() && prec >= 0) return Value::integer(v.as_int());
    return Value::real(round_half_even(x, prec));
  }
  const double scale = std::pow(10.0, static_cast<double>(prec));
  return Value::real((method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale);
}

// Python getattr(): methods and namespace attributes, never dict keys.
Value attr_filter(Interp& in, const std::string&, const Value& v, CallArgs& a) {
  Params p("attr", a, {"name"});
  const std::string& name = p.str(0, "name");
  require_defined(v);
  if (v.kind() == Value::Kind::ns) return in.get_attr(v, name);
  Value m = builtin_method(v, name);
  if (m.is_callable()) return m;
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", v.type_name(), name));
}

Value wordcount_filter(Interp&, const std::string&, const Value& v, CallArgs& a) {
  no_args("wordcount", a);
  const std::string s = str_of(v).s;
  int64_t n = 0;
  bool in_word = false;
  for (unsigned char c : s) {
    const bool w = std::isalnum(c) || c == '_' || c >= 0x80;
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

// A filter that takes no arguments and maps the value's text.
template <Str (*map)(const Str&)>
Value text_filter(Interp& in, const std::string& f, const Value& v, CallArgs& a) {
  no_args(f.c_str(), a);
  return in.make_str(map(str_of(v)));
}
Str upper_text(const Str& s) { return map_chars(s, ascii_upper); }
Str lower_text(const Str& s) { return map_chars(s, ascii_lower); }
Str same_text(const Str& s) { return s; }

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};

// Sorted by name (is_known_filter and find_filter search it).
constexpr FilterEntry kFilters[] = {
    {"abs", abs_filter},
    {"attr", attr_filter},
    {"capitalize", text_filter<capitalize>},
    {"count", length_filter},
    {"d", default_filter},
    {"default", default_filter},
    {"dictsort", dictsort_filter},
    {"e", escape_filter},
    {"escape", escape_filter},
    {"first", first_last_filter},
    {"float", [](Interp&, const std::string&, const Value& v, CallArgs& a) { return float_filter(v, a); }},
    {"forceescape", escape_filter},
    {"indent", [](Interp& in, const std::string&, const Value& v, CallArgs& a) { return indent_filter(in, v, a); }},
    {"int", [](Interp&, const std::string&, const Value& v, CallArgs& a) { return int_filter(v, a); }},
    {"items", items_filter},
    {"join", join_filter},
    {"last", first_last_filter},
    {"length", length_filter},
    {"list", [](Interp& in, const std::string&, const Value& v, CallArgs& a) {
       no_args("list", a);
       return in.make_list(in.iterate(v));
     }},
    {"lower", text_filter<lower_text>},
    {"map", map_filter},
    {"max", ordering_filter},
    {"min", ordering_filter},
    {"reject", select_filter},
    {"rejectattr", selectattr_filter},
    {"replace", replace_filter},
    {"reverse", reverse_filter},
    {"round", round_filter},
    {"safe", [](Interp&, const std::string&, const Value& v, CallArgs& a) {
       no_args("safe", a);
       return v;
     }},
    {"select", select_filter},
    {"selectattr", selectattr_filter},
    {"sort", ordering_filter},
    {"string", text_filter<same_text>},
    {"sum", sum_filter},
    {"title", text_filter<title_filter>},
    {"tojson", [](Interp& in, const std::string&, const Value& v, CallArgs& a) { return tojson_filter(in, v, a); }},
    {"trim", trim_filter},
    {"unique", ordering_filter},
    {"upper", text_filter<upper_text>},
    {"wordcount", wordcount_filter},
};

static_assert(std::is_sorted(std::begin(kFilters), std::end(kFilters),
                             [](const FilterEntry& x, const FilterEntry& y) { return x.name < y.name; }),
              "kFilters must stay sorted by name");

FilterFn find_filter(std::string_view name) {
  const auto it = std::lower_bound(std::begin(kFilters), std::end(kFilters), name,
                                   [](const FilterEntry& e, std::string_view n) { return e.name < n; });
  return it != std::end(kFilters) && it->name == name ? it->fn : nullptr;
}

// ---- tests -----------------------------------------------------------------------

const char* const kTests[] = {"boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even",
                              "false", "filter", "float", "ge", "greaterthan", "gt", "in", "integer", "iterable",
                              "le", "lessthan", "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas",
                              "sequence", "string", "test", "true", "undefined", "upper", "==", "!=", "<", "<=",
                              ">", ">="};

bool test_impl(Interp& in, const std::string& t, const Value& v, CallArgs& a) {
  auto arg = [&](const char* name) -> Value {
    Params p(t.c_str(), a, {name});
    return p[0];
  };
  if (t == "defined") return !v.is_undefined();
  if (t == "undefined") return v.is_undefined();
  if (t == "none") return v.is_none();
  if (t == "boolean") return v.is_bool();
  if (t == "true") return v.is_bool() && v.as_bool();
  if (t == "false") return v.is_bool() && !v.as_bool();
  if (t == "integer") return v.is_int();
  if (t == "float") return v.is_real();
  if (t == "number") return v.is_number();
  if (t == "string") return v.is_string();
  if (t == "mapping") return v.kind() == Value::Kind::dict;
  if (t == "iterable" || t == "sequence")
    return v.is_undefined() || v.is_string() || v.is_list() || v.kind() == Value::Kind::dict;
  if (t == "callable") return v.is_callable();
  if (t == "escaped") return false;
  if (t == "filter") return v.is_string() && is_known_filter(v.s());
  if (t == "test") return v.is_string() && is_known_test(v.s());
  if (t == "odd" || t == "even") {
    require_defined(v);
    if (!v.is_number()) fail(Status::format, "{}: expected a number, got {}", t, v.type_name());
    if (v.is_real()) return std::fmod(std::fabs(v.as_double()), 2.0) == (t == "odd" ? 1.0 : 0.0);
    const int64_t m = v.as_int() % 2;
    return t == "odd" ? m != 0 : m == 0;
  }
  if (t == "divisibleby") {
    const Value d = arg("num");
    if (!v.is_number() || !d.is_number()) fail(Status::format, "divisibleby: expected numbers");
    if (v.is_real() || d.is_real()) return d.as_double() != 0 && std::fmod(v.as_double(), d.as_double()) == 0;
    check(d.as_int() != 0, Status::format, "integer division or modulo by zero");
    return d.as_int() == -1 || v.as_int() % d.as_int() == 0;
  }
  if (t == "lower" || t == "upper") {
    const std::string s = str_of(v).s;
    bool cased = false;
    for (unsigned char c : s) {
      if (t == "lower" ? std::isupper(c) : std::islower(c)) return false;
      cased = cased || std::isalpha(c);
    }
    return cased;
  }
  if (t == "sameas") {
    const Value o = arg("other");
    if (v.kind() != o.kind()) return false;
    if (v.is_list()) return &v.list() == &o.list();
    if (v.is_dict()) return v.dict_ptr() == o.dict_ptr();
    return equals(v, o);
  }
  if (t == "in") return py_contains(arg("seq"), v);
  if (t == "eq" || t == "equalto" || t == "==") return equals(v, arg("other"));
  if (t == "ne" || t == "!=") return !equals(v, arg("other"));
  if (t == "lt" || t == "lessthan" || t == "<") return py_compare(v, arg("other")) < 0;
  if (t == "le" || t == "<=") return py_compare(v, arg("other")) <= 0;
  if (t == "gt" || t == "greaterthan" || t == ">") return py_compare(v, arg("other")) > 0;
  if (t == "ge" || t == ">=") return py_compare(v, arg("other")) >= 0;
  (void)in;
  fail(Status::unsupported, "unknown test '{}'", t);
}

// ---- globals -----------------------------------------------------------------------

Value g_raise_exception(Interp&, CallArgs& a) {
  Params p("raise_exception", a, {"message"});
  throw Error(Status::invalid_argument, "raise_exception: " + to_str(p[0]).s);
}

Value g_strftime_now(Interp& in, CallArgs& a) {
  Params p("strftime_now", a, {"format"});
  const std::string& f = p.str(0, "format");
  check(f.size() <= 256, Status::format, "strftime_now: format string too long");
  const auto t = static_cast<std::time_t>(in.now());
  std::tm tm{};
  if (localtime_r(&t, &tm) == nullptr) fail(Status::format, "strftime_now: bad time");
  if (f.empty()) return Value::string("");
  char buf[2048];
  const size_t n = std::strftime(buf, sizeof buf, f.c_str(), &tm);
  check(n > 0, Status::format, "strftime_now: the formatted date is empty or too long");
  return Value::string(std::string(buf, n));
}

Value g_range(Interp& in, CallArgs& a) {
  check(a.kwargs.empty(), Status::format, "range() takes no keyword arguments");
  check(!a.args.empty() && a.args.size() <= 3, Status::format, "range expected 1 to 3 arguments, got {}", a.args.size());
  for (const Value& v : a.args)
    if (!v.is_int() && !v.is_bool()) fail(Status::format, "'{}' object cannot be interpreted as an integer", v.type_name());
  int64_t start = 0, stop, step = 1;
  if (a.args.size() == 1) {
    stop = a.args[0].as_int();
  } else {
    start = a.args[0].as_int();
    stop = a.args[1].as_int();
    if (a.args.size() == 3) step = a.args[2].as_int();
  }
  check(step != 0, Status::format, "range() arg 3 must not be zero");
  // jinja2's sandbox refuses ranges of more than 100000 items.
  constexpr int64_t kMaxRange = 100000;
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    check(static_cast<int64_t>(items.size()) < kMaxRange, Status::format, "range too big (more than {} items)", kMaxRange);
    items.push_back(Value::integer(i));
    if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
  }
  return in.make_list(std::move(items));
}

Value dict_from_args(Interp& in, CallArgs& a, const char* fn) {
  auto d = std::make_shared<Dict>();
  check(a.args.size() <= 1, Status::format, "{}() takes at most 1 positional argument", fn);
  if (!a.args.empty()) {
    const Value& init = a.args[0];
    if (init.kind() == Value::Kind::dict) {
      for (const auto& [k, v] : init.dict().items()) d->set(k, v);
    } else {
      for (const Value& pair : in.iterate(init)) {
        if (!pair.is_list() || pair.items().size() != 2 || !pair.items()[0].is_string())
          fail(Status::format, "{}(): expected (str, value) pairs", fn);
        d->set(pair.items()[0], pair.items()[1]);
      }
    }
  }
  for (auto& [k, v] : a.kwargs) d->set(Value::string(k), v);
  in.charge(48 * d->size());
  return Value::dict(std::move(d));
}

Value g_dict(Interp& in, CallArgs& a) { return dict_from_args(in, a, "dict"); }

Value g_namespace(Interp& in, CallArgs& a) {
  Value d = dict_from_args(in, a, "namespace");
  for (const auto& kv : d.dict().items())
    if (kv.second.has_ns()) fail(Status::unsupported, "a namespace attribute cannot hold a namespace");
  return Value::ns(d.dict_ptr());
}

}  // namespace

bool is_known_filter(std::string_view name) { return find_filter(name) != nullptr; }

bool is_known_test(std::string_view name) {
  return std::any_of(std::begin(kTests), std::end(kTests), [&](const char* t) { return name == t; });
}

Value builtin_filter(Interp& in, const std::string& name, const Value& v, CallArgs& args) {
  const FilterFn fn = find_filter(name);
  if (fn == nullptr) fail(Status::unsupported, "unknown filter '{}'", name);
  return fn(in, name, v, args);
}

bool builtin_test(Interp& in, const std::string& name, const Value& v, CallArgs& args) {
  return test_impl(in, name, v, args);
}

Value builtin_method(const Value& obj, const std::string& name) {
  auto bound = [&]() { return Value::callable(std::make_shared<Method>(obj, name)); };
  if (obj.is_string()) {
    if (in_list(name, {"strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "upper",
                       "lower", "title", "capitalize", "swapcase", "replace", "find", "rfind", "count", "join",
                       "removeprefix", "removesuffix", "isspace", "isdigit", "isalpha", "isalnum", "isupper",
                       "islower", "format"}))
      return bound();
    return Value();
  }
  if (obj.kind() == Value::Kind::dict) {
    if (in_list(name, {"items", "keys", "values", "get", "copy"})) return bound();
    if (in_list(name, {"pop", "popitem", "update", "clear", "setdefault"}))
      return Value::undefined(fmt::format("access to attribute '{}' of 'dict' object is unsafe (templates cannot modify a dict)", name));
    return Value();
  }
  if (obj.is_list()) {
    if (in_list(name, {"index", "count"})) return bound();
    if (in_list(name, {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"}))
      return Value::undefined(fmt::format("access to attribute '{}' of '{}' object is unsafe (templates cannot modify a list)", name, obj.type_name()));
    return Value();
  }
  return Value();
}

std::vector<std::pair<std::string, Value>> builtin_globals() {
  auto fn = [](const char* name, Builtin::Fn f) { return std::make_pair(std::string(name), Value::callable(std::make_shared<Builtin>(name, f))); };
  return {fn("raise_exception", g_raise_exception), fn("strftime_now", g_strftime_now), fn("range", g_range),
          fn("dict", g_dict), fn("namespace", g_namespace)};
}

}  // namespace paca::jinja
