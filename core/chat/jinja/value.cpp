// value.cpp - see value.h.
#include "chat/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "util/error.h"

namespace paca::jinja {

// ---- spans -----------------------------------------------------------------

void spans_add(Spans& spans, size_t begin, size_t end) {
  if (begin >= end) return;
  if (!spans.empty() && spans.back().end >= begin) {
    spans.back().end = std::max(spans.back().end, end);
    return;
  }
  spans.push_back({begin, end});
}

void spans_copy(Spans& dst, const Spans& src, size_t from, size_t to, size_t at) {
  for (const Span& sp : src) {
    if (sp.end <= from) continue;
    if (sp.begin >= to) break;
    const size_t b = std::max(sp.begin, from), e = std::min(sp.end, to);
    spans_add(dst, b - from + at, e - from + at);
  }
}

// ---- UTF-8 -----------------------------------------------------------------

uint32_t utf8_next(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int n = 0;
  uint32_t cp = 0, min = 0;
  if ((b0 & 0xE0) == 0xC0) n = 1, cp = b0 & 0x1F, min = 0x80;
  else if ((b0 & 0xF0) == 0xE0) n = 2, cp = b0 & 0x0F, min = 0x800;
  else if ((b0 & 0xF8) == 0xF0) n = 3, cp = b0 & 0x07, min = 0x10000;
  else {
    ++i;
    return b0;
  }
  if (i + static_cast<size_t>(n) >= s.size()) {  // truncated sequence
    ++i;
    return b0;
  }
  for (int k = 1; k <= n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return b0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return b0;
  }
  i += static_cast<size_t>(n) + 1;
  return cp;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) utf8_next(s, i);
  return n;
}

std::vector<size_t> utf8_offsets(std::string_view s) {
  std::vector<size_t> off;
  off.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    off.push_back(i);
    utf8_next(s, i);
  }
  off.push_back(s.size());
  return off;
}

bool is_py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// ---- Value -----------------------------------------------------------------

Value Value::undefined(std::string hint) {
  Value v;
  v.p_ = std::make_shared<const Str>(Str{std::move(hint), {}});
  return v;
}

Value Value::string(std::string s, bool user) {
  Str st;
  if (user) spans_add(st.user, 0, s.size());
  st.s = std::move(s);
  return string(std::move(st));
}

Value Value::list(std::vector<Value> items, bool tuple) {
  auto l = std::make_shared<List>();
  uint32_t d = 0;
  for (const Value& it : items) {
    d = std::max(d, it.depth());
    l->has_ns = l->has_ns || it.has_ns();
  }
  check(d < kMaxValueDepth, Status::format, "a value is nested more than {} levels deep", kMaxValueDepth);
  l->depth = d + 1;
  l->items = std::move(items);
  Value v;
  v.kind_ = tuple ? Kind::tuple : Kind::list;
  v.p_ = ListPtr(std::move(l));
  return v;
}

Value Value::dict(DictPtr d) {
  Value v;
  v.kind_ = Kind::dict;
  v.p_ = std::move(d);
  return v;
}

Value Value::ns(DictPtr d) {
  Value v;
  v.kind_ = Kind::ns;
  v.p_ = std::move(d);
  return v;
}

namespace {

Value from_json_at(const nlohmann::ordered_json& j, bool user, uint32_t depth) {
  check(depth < kMaxValueDepth, Status::invalid_argument, "JSON input is nested more than {} levels deep",
        kMaxValueDepth);
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value::integer(static_cast<int64_t>(u));
      return Value::real(static_cast<double>(u));
    }
    case nlohmann::json::value_t::number_float: return Value::real(j.get<double>());
    case nlohmann::json::value_t::string: return Value::string(j.get<std::string>(), user);
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_at(e, user, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      auto d = std::make_shared<Dict>();
      for (auto it = j.begin(); it != j.end(); ++it)
        d->set(Value::string(it.key(), user), from_json_at(it.value(), user, depth + 1));
      return Value::dict(std::move(d));
    }
    default: fail(Status::invalid_argument, "JSON input holds a value of an unsupported type");
  }
}

}  // namespace

Value Value::from_json(const nlohmann::ordered_json& j, bool user) { return from_json_at(j, user, 0); }

int64_t Value::as_int() const {
  if (kind_ == Kind::boolean) return std::get<bool>(p_) ? 1 : 0;
  return std::get<int64_t>(p_);
}

double Value::as_double() const {
  if (kind_ == Kind::real) return std::get<double>(p_);
  return static_cast<double>(as_int());
}

const std::string& Value::undefined_hint() const {
  static const std::string empty;
  if (const auto* p = std::get_if<StrPtr>(&p_)) return (*p)->s;
  return empty;
}

bool Value::has_ns() const {
  if (kind_ == Kind::ns) return true;
  if (is_list()) return list().has_ns;
  if (kind_ == Kind::dict) return dict().has_ns();
  return false;
}

uint32_t Value::depth() const {
  if (is_list()) return list().depth;
  if (is_dict()) return dict().depth();
  return 0;
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::undefined:
    case Kind::none: return false;
    case Kind::boolean: return as_bool();
    case Kind::integer: return as_int() != 0;
    case Kind::real: return as_double() != 0.0;
    case Kind::string: return !s().empty();
    case Kind::list:
    case Kind::tuple: return !items().empty();
    case Kind::dict: return dict().size() != 0;
    case Kind::ns:
    case Kind::callable: return true;
  }
  return false;
}

const char* Value::type_name() const {
  switch (kind_) {
    case Kind::undefined: return "Undefined";
    case Kind::none: return "NoneType";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::real: return "float";
    case Kind::string: return "str";
    case Kind::list: return "list";
    case Kind::tuple: return "tuple";
    case Kind::dict: return "dict";
    case Kind::ns: return "Namespace";
    case Kind::callable: return "function";
  }
  return "object";
}

// ---- Dict ------------------------------------------------------------------

const Value* Dict::find(std::string_view key) const {
  if (!index_.empty()) {
    auto it = index_.find(std::string(key));
    return it == index_.end() ? nullptr : &items_[it->second].second;
  }
  for (const auto& [k, v] : items_)
    if (k.s() == key) return &v;
  return nullptr;
}

void Dict::set(Value key, Value value) {
  const uint32_t d = value.depth();
  check(d < kMaxValueDepth, Status::format, "a value is nested more than {} levels deep", kMaxValueDepth);
  depth_ = std::max(depth_, d + 1);
  has_ns_ = has_ns_ || value.has_ns();
  if (!index_.empty()) {
    auto it = index_.find(key.s());
    if (it != index_.end()) {
      items_[it->second].second = std::move(value);
      return;
    }
    index_.emplace(key.s(), items_.size());
    items_.emplace_back(std::move(key), std::move(value));
    return;
  }
  for (auto& kv : items_) {
    if (kv.first.s() == key.s()) {
      kv.second = std::move(value);
      return;
    }
  }
  items_.emplace_back(std::move(key), std::move(value));
  if (items_.size() > 16)
    for (size_t i = 0; i < items_.size(); ++i) index_.emplace(items_[i].first.s(), i);
}

void Dict::append(Value key, Value value) {
  if (items_.size() >= 16) return set(std::move(key), std::move(value));
  const uint32_t d = value.depth();
  check(d < kMaxValueDepth, Status::format, "a value is nested more than {} levels deep", kMaxValueDepth);
  depth_ = std::max(depth_, d + 1);
  has_ns_ = has_ns_ || value.has_ns();
  items_.emplace_back(std::move(key), std::move(value));
}

// ---- equality --------------------------------------------------------------

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_real() || b.is_real()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::undefined:
    case Value::Kind::none: return true;
    case Value::Kind::string: return a.s() == b.s();
    case Value::Kind::list:
    case Value::Kind::tuple: {
      const auto &x = a.items(), &y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case Value::Kind::dict: {
      const Dict &x = a.dict(), &y = b.dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.items()) {
        const Value* w = y.find(k.s());
        if (w == nullptr || !equals(v, *w)) return false;
      }
      return true;
    }
    case Value::Kind::ns: return a.dict_ptr() == b.dict_ptr();
    case Value::Kind::callable: return &a.fn() == &b.fn();
    default: return false;
  }
}

// ---- printing --------------------------------------------------------------

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  // sci = [-]D[.DDD]e(+|-)XX
  bool neg = false;
  size_t p = 0;
  if (sci[0] == '-') neg = true, p = 1;
  const size_t e = sci.find('e');
  std::string digits;
  for (size_t i = p; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  int exp = std::stoi(sci.substr(e + 1));
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
    return out;
  }
  if (exp < 0) {
    out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
    return out;
  }
  const size_t int_digits = static_cast<size_t>(exp) + 1;
  if (digits.size() <= int_digits) {
    out += digits + std::string(int_digits - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, int_digits) + "." + digits.substr(int_digits);
  }
  return out;
}

namespace {

void append(Str& out, const Str& s) {
  const size_t at = out.s.size();
  out.s += s.s;
  spans_copy(out.user, s.user, 0, s.s.size(), at);
}

// Appends text produced from `src` (escaped or quoted), marking all of it as
// user data when any byte of src was.
void append_derived(Str& out, const std::string& text, const Str& src) {
  const size_t at = out.s.size();
  out.s += text;
  if (!src.user.empty()) spans_add(out.user, at, out.s.size());
}

std::string py_quote(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const uint32_t c = utf8_next(s, i);
    char buf[16];
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<uint32_t>(q)) (out += '\\') += q;
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else if (c == 0x2028 || c == 0x2029 || (c >= 0xD800 && c <= 0xDFFF)) {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.append(s, start, i - start);
    }
  }
  out += q;
  return out;
}

void repr_into(Str& out, const Value& v, bool top_str);

void repr_items(Str& out, const std::vector<Value>& items) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.s += ", ";
    repr_into(out, items[i], false);
  }
}

void repr_into(Str& out, const Value& v, bool top_str) {
  switch (v.kind()) {
    case Value::Kind::undefined: return;
    case Value::Kind::none: out.s += "None"; return;
    case Value::Kind::boolean: out.s += v.as_bool() ? "True" : "False"; return;
    case Value::Kind::integer: out.s += std::to_string(v.as_int()); return;
    case Value::Kind::real: out.s += float_repr(v.as_double()); return;
    case Value::Kind::string:
      if (top_str) append(out, v.str());
      else append_derived(out, py_quote(v.s()), v.str());
      return;
    case Value::Kind::list:
      out.s += '[';
      repr_items(out, v.items());
      out.s += ']';
      return;
    case Value::Kind::tuple:
      out.s += '(';
      repr_items(out, v.items());
      if (v.items().size() == 1) out.s += ',';
      out.s += ')';
      return;
    case Value::Kind::dict:
    case Value::Kind::ns: {
      if (v.kind() == Value::Kind::ns) out.s += "<Namespace ";
      out.s += '{';
      bool first = true;
      for (const auto& [k, x] : v.dict().items()) {
        if (!first) out.s += ", ";
        first = false;
        repr_into(out, k, false);
        out.s += ": ";
        repr_into(out, x, false);
      }
      out.s += '}';
      if (v.kind() == Value::Kind::ns) out.s += '>';
      return;
    }
    case Value::Kind::callable: out.s += "<function " + v.fn().name() + ">"; return;
  }
}

}  // namespace

Str to_str(const Value& v) {
  if (v.is_string()) return v.str();
  Str out;
  repr_into(out, v, true);
  return out;
}

Str to_repr(const Value& v) {
  Str out;
  repr_into(out, v, false);
  return out;
}

// ---- JSON ------------------------------------------------------------------

namespace {

void json_escape(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  char buf[16];
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const uint32_t c = utf8_next(s, i);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
      if (c >= 0x10000) {
        const uint32_t v = c - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
      }
      out += buf;
    } else {
      out.append(s, start, i - start);
    }
  }
  out += '"';
}

void json_into(Str& out, const Value& v, const JsonOptions& o, int level) {
  const std::string& item_sep = !o.item_sep.empty() ? o.item_sep : (o.indent >= 0 ? std::string(",") : std::string(", "));
  auto newline = [&](int lvl) {
    if (o.indent < 0) return;
    out.s += '\n';
    out.s.append(static_cast<size_t>(o.indent) * static_cast<size_t>(lvl), ' ');
  };
  switch (v.kind()) {
    case Value::Kind::none: out.s += "null"; return;
    case Value::Kind::boolean: out.s += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::integer: out.s += std::to_string(v.as_int()); return;
    case Value::Kind::real: {
      const double d = v.as_double();
      if (std::isnan(d)) out.s += "NaN";
      else if (std::isinf(d)) out.s += d < 0 ? "-Infinity" : "Infinity";
      else out.s += float_repr(d);
      return;
    }
    case Value::Kind::string: {
      std::string esc;
      json_escape(esc, v.s(), o.ensure_ascii);
      append_derived(out, esc, v.str());
      return;
    }
    case Value::Kind::list:
    case Value::Kind::tuple: {
      const auto& items = v.items();
      if (items.empty()) {
        out.s += "[]";
        return;
      }
      out.s += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out.s += item_sep;
        newline(level + 1);
        json_into(out, items[i], o, level + 1);
      }
      newline(level);
      out.s += ']';
      return;
    }
    case Value::Kind::dict: {
      const auto& items = v.dict().items();
      if (items.empty()) {
        out.s += "{}";
        return;
      }
      std::vector<const std::pair<Value, Value>*> order;
      for (const auto& kv : items) order.push_back(&kv);
      if (o.sort_keys)
        std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first.s() < b->first.s(); });
      out.s += '{';
      for (size_t i = 0; i < order.size(); ++i) {
        if (i) out.s += item_sep;
        newline(level + 1);
        json_into(out, order[i]->first, o, level + 1);
        out.s += o.key_sep;
        json_into(out, order[i]->second, o, level + 1);
      }
      newline(level);
      out.s += '}';
      return;
    }
    case Value::Kind::undefined: fail(Status::format, "Object of type Undefined is not JSON serializable");
    case Value::Kind::ns: fail(Status::format, "Object of type Namespace is not JSON serializable");
    case Value::Kind::callable: fail(Status::format, "Object of type function is not JSON serializable");
  }
}

}  // namespace

Str to_json(const Value& v, const JsonOptions& opt) {
  Str out;
  json_into(out, v, opt, 0);
  return out;
}

}  // namespace paca::jinja
