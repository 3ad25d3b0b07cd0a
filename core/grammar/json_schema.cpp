// json_schema.cpp - JSON Schema -> GBNF (see json_schema.h for what each
// keyword becomes). One rule per schema node, named after where it is
// (properties by name); the primitives (ws, string, number, ...) are
// written once, when first used.
#include "grammar/json_schema.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace paca {

namespace {

using json = nlohmann::ordered_json;

constexpr int kMaxDepth = 64;
constexpr uint64_t kMaxCount = 10000;  // minItems/maxItems/minLength/maxLength

// A GBNF string literal matching exactly the bytes `raw` (valid UTF-8).
std::string lit(std::string_view raw) {
  std::string o = "\"";
  for (char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') o += "\\\"";
    else if (c == '\\') o += "\\\\";
    else if (c == '\n') o += "\\n";
    else if (c == '\r') o += "\\r";
    else if (c == '\t') o += "\\t";
    else if (c < 0x20 || c == 0x7F) o += fmt::format("\\x{:02X}", c);
    else o += ch;
  }
  return o + "\"";
}

// A code point inside a GBNF character class.
std::string class_char(uint32_t cp) {
  if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return std::string(1, static_cast<char>(cp));
  if (cp <= 0xFFFF) return fmt::format("\\u{:04X}", cp);
  return fmt::format("\\U{:08X}", cp);
}

// The JSON text inside a string that decodes to code point cp.
std::string json_char(uint32_t cp) {
  if (cp == '"') return "\\\"";
  if (cp == '\\') return "\\\\";
  if (cp < 0x20) return fmt::format("\\u{:04x}", cp);
  std::string s;
  utf8_append(s, cp);
  return s;
}

// What a plain character class or '.' of a pattern can produce inside a JSON
// string: no quote, backslash or control character (they need escapes).
constexpr const char* kPlainChar = "[^\"\\\\\\x00-\\x1F]";

const std::set<std::string_view> kUnsupported = {
    "not", "if", "then", "else", "patternProperties", "dependentSchemas", "dependentRequired", "dependencies",
    "unevaluatedProperties", "unevaluatedItems", "contains", "minContains", "maxContains", "prefixItems",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minProperties", "maxProperties",
    "propertyNames", "additionalItems", "$dynamicRef", "$recursiveRef"};

[[noreturn]] void schema_error(const std::string& path, const std::string& msg) {
  fail(Status::invalid_argument, "json_schema: at {}: {}", path.empty() ? "/" : path, msg);
}

std::string pointer_escape(const std::string& key) {
  std::string o;
  for (char c : key) {
    if (c == '~') o += "~0";
    else if (c == '/') o += "~1";
    else o += c;
  }
  return o;
}

// A pattern (ECMA-262 regular expression, the common subset) -> GBNF over
// the JSON text of the string's contents.
class PatternCompiler {
 public:
  PatternCompiler(std::string_view p, std::string path) : p_(p), path_(std::move(path)) {}

  std::string run() {
    bool start = false, end = false;
    if (!p_.empty() && p_[0] == '^') {
      start = true;
      p_.remove_prefix(1);
    }
    if (!p_.empty() && p_.back() == '$' && (p_.size() < 2 || p_[p_.size() - 2] != '\\')) {
      end = true;
      p_.remove_suffix(1);
    }
    std::string body = alternatives(0);
    if (i_ != p_.size()) error("unbalanced ')'");
    const std::string any = "char*";
    return (start ? "" : any + " ") + "(" + body + ")" + (end ? "" : " " + any);
  }

 private:
  std::string_view p_;
  std::string path_;
  size_t i_ = 0;

  [[noreturn]] void error(const std::string& msg) const {
    schema_error(path_, fmt::format("pattern, at character {}: {}", i_, msg));
  }

  uint32_t next_cp() {
    const auto c0 = static_cast<unsigned char>(p_[i_]);
    int n = c0 < 0x80 ? 1 : c0 < 0xE0 ? 2 : c0 < 0xF0 ? 3 : 4;
    if (i_ + static_cast<size_t>(n) > p_.size()) error("invalid UTF-8");
    uint32_t cp = n == 1 ? c0 : n == 2 ? (c0 & 0x1Fu) : n == 3 ? (c0 & 0x0Fu) : (c0 & 0x07u);
    for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(p_[i_ + static_cast<size_t>(k)]) & 0x3Fu);
    i_ += static_cast<size_t>(n);
    return cp;
  }

  std::string alternatives(int depth) {
    if (depth > kMaxDepth) error("groups nested too deep");
    std::string out = sequence(depth);
    while (i_ < p_.size() && p_[i_] == '|') {
      ++i_;
      out += " | " + sequence(depth);
    }
    return out;
  }

  std::string sequence(int depth) {
    std::string out;
    while (i_ < p_.size() && p_[i_] != '|' && p_[i_] != ')') {
      std::string atom_text = atom(depth);
      out += " " + quantified("(" + atom_text + ")");
    }
    return out.empty() ? "\"\"" : out;
  }

  uint64_t number() {
    if (i_ >= p_.size() || p_[i_] < '0' || p_[i_] > '9') error("expected a number");
    uint64_t v = 0;
    while (i_ < p_.size() && p_[i_] >= '0' && p_[i_] <= '9') {
      v = v * 10 + static_cast<uint64_t>(p_[i_++] - '0');
      if (v > kMaxCount) error(fmt::format("repetition count above {}", kMaxCount));
    }
    return v;
  }

  std::string quantified(std::string a) {
    if (i_ >= p_.size()) return a;
    const char c = p_[i_];
    std::string q;
    if (c == '*' || c == '+' || c == '?') {
      ++i_;
      q = std::string(1, c);
    } else if (c == '{' && i_ + 1 < p_.size() && p_[i_ + 1] >= '0' && p_[i_ + 1] <= '9') {
      ++i_;
      const uint64_t m = number();
      q = fmt::format("{{{}", m);
      if (i_ < p_.size() && p_[i_] == ',') {
        ++i_;
        q += ",";
        if (i_ < p_.size() && p_[i_] != '}') {
          const uint64_t n = number();
          if (n < m) error("repetition {m,n} with n < m");
          q += std::to_string(n);
        }
      }
      if (i_ >= p_.size() || p_[i_] != '}') error("expected '}'");
      ++i_;
      q += "}";
    } else {
      return a;
    }
    if (i_ < p_.size() && p_[i_] == '?') ++i_;  // lazy: the same language
    if (i_ < p_.size() && (p_[i_] == '+' || p_[i_] == '*' || p_[i_] == '{')) error("stacked quantifiers");
    return a + q;
  }

  // A character class escape (\d \w \s and their negations) as ranges.
  static bool class_escape(char e, std::vector<std::pair<uint32_t, uint32_t>>& r, bool& negated) {
    negated = e == 'D' || e == 'W' || e == 'S';
    switch (e) {
      case 'd': case 'D': r.push_back({'0', '9'}); return true;
      case 'w': case 'W': r.insert(r.end(), {{'a', 'z'}, {'A', 'Z'}, {'0', '9'}, {'_', '_'}}); return true;
      case 's': case 'S': r.push_back({' ', ' '}); return true;
      default: return false;
    }
  }

  uint32_t escaped_char(char e) {
    switch (e) {
      case 'n': return '\n';
      case 't': return '\t';
      case 'r': return '\r';
      case 'f': return '\f';
      case 'v': return '\v';
      case '0': return 0;
      default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '1' && e <= '9'))
          error(fmt::format("escape '\\{}' is not supported", e));
        return static_cast<unsigned char>(e);
    }
  }

  // A class of plain characters: quote, backslash and controls removed
  // (positive) or added to the excluded ones (negated).
  static std::string class_text(std::vector<std::pair<uint32_t, uint32_t>> r, bool negated) {
    std::string o = "[";
    if (negated) o += "^\"\\\\\\x00-\\x1F";
    for (const auto& [lo, hi] : r) {
      std::vector<std::pair<uint32_t, uint32_t>> pieces;
      if (negated) {
        pieces.push_back({lo, hi});
      } else {  // drop 00-1F, '"', '\\'
        uint32_t a = std::max<uint32_t>(lo, 0x20);
        for (uint32_t cut : {uint32_t{'"'}, uint32_t{'\\'}}) {
          if (a <= cut && cut <= hi) {
            if (a < cut) pieces.push_back({a, cut - 1});
            a = cut + 1;
          }
        }
        if (a <= hi) pieces.push_back({a, hi});
      }
      for (const auto& [x, y] : pieces) o += x == y ? class_char(x) : class_char(x) + "-" + class_char(y);
    }
    return o + "]";
  }

  std::string atom(int depth) {
    const char c = p_[i_];
    if (c == '(') {
      ++i_;
      if (i_ < p_.size() && p_[i_] == '?') {
        if (i_ + 1 < p_.size() && p_[i_ + 1] == ':') i_ += 2;
        else error("only (?:...) groups are supported (no lookaround or named groups)");
      }
      std::string a = alternatives(depth + 1);
      if (i_ >= p_.size() || p_[i_] != ')') error("unclosed '('");
      ++i_;
      return a;
    }
    if (c == '[') {
      ++i_;
      bool negated = false;
      if (i_ < p_.size() && p_[i_] == '^') {
        negated = true;
        ++i_;
      }
      std::vector<std::pair<uint32_t, uint32_t>> r;
      bool first = true;
      while (i_ < p_.size() && (p_[i_] != ']' || first)) {
        first = false;
        uint32_t lo;
        if (p_[i_] == '\\') {
          if (i_ + 1 >= p_.size()) error("unterminated escape");
          const char e = p_[i_ + 1];
          bool neg = false;
          std::vector<std::pair<uint32_t, uint32_t>> sub;
          if (class_escape(e, sub, neg)) {
            if (neg) error("negated class escapes inside [...] are not supported");
            r.insert(r.end(), sub.begin(), sub.end());
            i_ += 2;
            continue;
          }
          i_ += 2;
          lo = escaped_char(e);
        } else {
          lo = next_cp();
        }
        uint32_t hi = lo;
        if (i_ + 1 < p_.size() && p_[i_] == '-' && p_[i_ + 1] != ']') {
          ++i_;
          if (p_[i_] == '\\') {
            if (i_ + 1 >= p_.size()) error("unterminated escape");
            hi = escaped_char(p_[i_ + 1]);
            i_ += 2;
          } else {
            hi = next_cp();
          }
          if (hi < lo) error("reversed range in a class");
        }
        r.push_back({lo, hi});
      }
      if (i_ >= p_.size()) error("unterminated '['");
      ++i_;
      const std::string t = class_text(std::move(r), negated);
      if (t == "[]") error("the class holds only characters that need escapes in JSON");
      return t;
    }
    if (c == '.') {
      ++i_;
      return kPlainChar;
    }
    if (c == '\\') {
      if (i_ + 1 >= p_.size()) error("unterminated escape");
      const char e = p_[i_ + 1];
      i_ += 2;
      std::vector<std::pair<uint32_t, uint32_t>> r;
      bool neg = false;
      if (class_escape(e, r, neg)) return class_text(r, neg);
      return lit(json_char(escaped_char(e)));
    }
    if (c == '^' || c == '$') error("anchors are supported only at the ends of the pattern");
    if (c == '*' || c == '+' || c == '?' || c == '{') error(fmt::format("nothing to repeat before '{}'", c));
    return lit(json_char(next_cp()));
  }
};

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const json& root) : root_(root) {}

  std::string run() {
    const std::string r = visit(root_, "root-value", "", 0);
    std::string out = "root ::= " + r + "\n";
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    return out;
  }

 private:
  const json& root_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::set<std::string> names_{"root"};
  std::map<std::string, std::string> refs_;  // JSON pointer -> its rule
  std::set<std::string> primitives_;

  static std::string sanitize(std::string_view hint) {
    std::string s;
    for (char c : hint) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      s += ok ? c : '-';
      if (s.size() >= 40) break;
    }
    return s.empty() ? std::string("r") : s;
  }

  std::string unique(std::string_view hint) {
    std::string base = sanitize(hint);
    std::string name = base;
    for (int i = 1; names_.count(name) != 0; ++i) name = base + "-" + std::to_string(i);
    names_.insert(name);
    return name;
  }

  std::string add_rule(std::string_view hint, std::string body) {
    std::string name = unique(hint);
    rules_.emplace_back(name, std::move(body));
    return name;
  }

  // The primitives, each defined once under its own name.
  std::string prim(const std::string& which) {
    if (primitives_.insert(which).second) {
      static const std::map<std::string, std::vector<std::string>> kDefs = {
          {"ws", {"[ \\t\\n]{0,20}"}},
          {"char", {"[^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})"}},
          {"string", {"\"\\\"\" char* \"\\\"\"", "char"}},
          {"integer", {"\"-\"? (\"0\" | [1-9] [0-9]{0,15})"}},
          {"number", {"integer (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?", "integer"}},
          {"boolean", {"\"true\" | \"false\""}},
          {"null", {"\"null\""}},
          {"value", {"object | array | string | number | boolean | null", "object", "array", "string", "number",
                     "boolean", "null"}},
          {"object", {"\"{\" ws (string ws \":\" ws value ws (\",\" ws string ws \":\" ws value ws)*)? \"}\"", "ws",
                      "string", "value"}},
          {"array", {"\"[\" ws (value ws (\",\" ws value ws)*)? \"]\"", "ws", "value"}},
          {"date", {"[0-9]{4} \"-\" (\"0\" [1-9] | \"1\" [0-2]) \"-\" (\"0\" [1-9] | [12] [0-9] | \"3\" [01])"}},
          {"time", {"([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})? "
                    "(\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])"}},
          {"date-time", {"date \"T\" time", "date", "time"}},
          {"uuid", {"[0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{12}"}},
          {"email", {"[a-zA-Z0-9_+-]{1,32} (\".\" [a-zA-Z0-9_+-]{1,32}){0,3} \"@\" [a-zA-Z0-9-]{1,32} "
                     "(\".\" [a-zA-Z0-9-]{1,32}){1,3}"}},
      };
      const auto& d = kDefs.at(which);
      names_.insert(which);
      rules_.emplace_back(which, d[0]);
      for (size_t i = 1; i < d.size(); ++i) prim(d[i]);
    }
    return which;
  }

  static const json* member(const json& s, const char* key) {
    const auto it = s.find(key);
    return it == s.end() ? nullptr : &*it;
  }

  static uint64_t count_of(const json& s, const char* key, uint64_t dflt, const std::string& path) {
    const json* v = member(s, key);
    if (v == nullptr) return dflt;
    // a float counts when it is integral (2.0); std::trunc keeps 1e46 away from an out-of-range cast
    if (!v->is_number_integer() && !v->is_number_unsigned() &&
        !(v->is_number_float() && std::isfinite(v->get<double>()) && v->get<double>() == std::trunc(v->get<double>())))
      schema_error(path, fmt::format("'{}' must be a non-negative integer", key));
    const double d = v->get<double>();
    if (d < 0) schema_error(path, fmt::format("'{}' must be a non-negative integer", key));
    if (d > static_cast<double>(kMaxCount)) schema_error(path, fmt::format("'{}' above {} is not supported", key, kMaxCount));
    return static_cast<uint64_t>(d);
  }

  std::string ref(const json& r, const std::string& path, int depth) {
    if (!r.is_string()) schema_error(path, "'$ref' must be a string");
    const std::string s = r.get<std::string>();
    if (s.empty() || s[0] != '#') schema_error(path, fmt::format("'$ref' \"{}\": only references inside the document (#...) are supported", s));
    if (const auto it = refs_.find(s); it != refs_.end()) return it->second;
    const json* target = nullptr;
    try {
      const std::string ptr = s.substr(1);
      target = &root_.at(json::json_pointer(ptr));
    } catch (const std::exception&) {
      schema_error(path, fmt::format("'$ref' \"{}\" does not point into the document", s));
    }
    // the rule's name is taken before its body is built, so a recursive schema refers to it
    const std::string name = unique("ref-" + s.substr(s.rfind('/') + 1));
    refs_[s] = name;
    const size_t slot = rules_.size();
    rules_.emplace_back(name, "");
    const std::string body = visit(*target, name + "-v", "$ref " + s, depth + 1);
    rules_[slot].second = body;
    return name;
  }

  std::string visit(const json& s, const std::string& hint, const std::string& path, int depth) {
    if (depth > kMaxDepth) schema_error(path, fmt::format("schemas nested deeper than {}", kMaxDepth));
    if (s.is_boolean()) {
      if (s.get<bool>()) return prim("value");
      schema_error(path, "the schema false matches nothing");
    }
    if (!s.is_object()) schema_error(path, "a schema must be an object or a boolean");
    for (const auto& [k, v] : s.items()) {
      if (kUnsupported.count(k) != 0) schema_error(path, fmt::format("keyword '{}' is not supported", k));
      if (k == "uniqueItems" && v.is_boolean() && v.get<bool>()) schema_error(path, "keyword 'uniqueItems' is not supported");
    }
    if (const json* r = member(s, "$ref")) return ref(*r, path, depth);
    if (const json* c = member(s, "const")) return add_rule(hint, lit(c->dump(-1, ' ', false)));
    if (const json* e = member(s, "enum")) {
      if (!e->is_array() || e->empty()) schema_error(path, "'enum' must be a non-empty array");
      std::string body;
      for (const json& v : *e) body += (body.empty() ? "" : " | ") + lit(v.dump(-1, ' ', false));
      return add_rule(hint, body);
    }
    for (const char* key : {"anyOf", "oneOf"})
      if (const json* a = member(s, key)) {
        if (!a->is_array() || a->empty()) schema_error(path, fmt::format("'{}' must be a non-empty array", key));
        std::string body;
        for (size_t i = 0; i < a->size(); ++i)
          body += (i == 0 ? "" : " | ") +
                  visit((*a)[i], hint + "-" + std::to_string(i), path + "/" + key + "/" + std::to_string(i), depth + 1);
        return add_rule(hint, body);
      }
    if (const json* a = member(s, "allOf")) {
      if (!a->is_array() || a->size() != 1) schema_error(path, "'allOf' is supported with exactly one schema");
      return visit((*a)[0], hint, path + "/allOf/0", depth + 1);
    }
    std::vector<std::string> types;
    if (const json* t = member(s, "type")) {
      if (t->is_string()) {
        types.push_back(t->get<std::string>());
      } else if (t->is_array() && !t->empty()) {
        for (const json& x : *t) {
          if (!x.is_string()) schema_error(path, "'type' must be a string or an array of strings");
          types.push_back(x.get<std::string>());
        }
      } else {
        schema_error(path, "'type' must be a string or a non-empty array of strings");
      }
    } else if (member(s, "properties") || member(s, "required") || member(s, "additionalProperties")) {
      types.push_back("object");
    } else if (member(s, "items") || member(s, "minItems") || member(s, "maxItems")) {
      types.push_back("array");
    } else if (member(s, "minLength") || member(s, "maxLength") || member(s, "pattern") || member(s, "format")) {
      types.push_back("string");
    } else {
      return prim("value");
    }
    std::string body;
    for (const std::string& t : types) body += (body.empty() ? "" : " | ") + of_type(t, s, hint, path, depth);
    return add_rule(hint, body);
  }

  std::string of_type(const std::string& t, const json& s, const std::string& hint, const std::string& path, int depth) {
    if (t == "string") return string_rule(s, path);
    if (t == "number" || t == "integer" || t == "boolean" || t == "null") return prim(t);
    if (t == "object") return object_rule(s, hint, path, depth);
    if (t == "array") return array_rule(s, hint, path, depth);
    schema_error(path, fmt::format("unknown type \"{}\"", t));
  }

  std::string string_rule(const json& s, const std::string& path) {
    const json* pattern = member(s, "pattern");
    const json* format = member(s, "format");
    const bool lengths = member(s, "minLength") != nullptr || member(s, "maxLength") != nullptr;
    if (pattern != nullptr) {
      if (!pattern->is_string()) schema_error(path, "'pattern' must be a string");
      if (lengths) schema_error(path, "'pattern' together with minLength/maxLength is not supported");
      prim("char");  // the unanchored ends of a pattern
      return "\"\\\"\" (" + PatternCompiler(pattern->get<std::string>(), path).run() + ") \"\\\"\"";
    }
    if (format != nullptr) {
      if (!format->is_string()) schema_error(path, "'format' must be a string");
      const std::string f = format->get<std::string>();
      if (f == "date" || f == "time" || f == "date-time" || f == "uuid" || f == "email") {
        if (lengths) schema_error(path, fmt::format("format \"{}\" together with minLength/maxLength is not supported", f));
        return "\"\\\"\" " + prim(f) + " \"\\\"\"";
      }
    }
    if (!lengths) return prim("string");
    const uint64_t lo = count_of(s, "minLength", 0, path);
    const uint64_t hi = count_of(s, "maxLength", UINT64_MAX, path);
    if (hi != UINT64_MAX && hi < lo) schema_error(path, "maxLength < minLength");
    prim("char");
    return hi == UINT64_MAX ? fmt::format("\"\\\"\" char{{{},}} \"\\\"\"", lo)
                            : fmt::format("\"\\\"\" char{{{},{}}} \"\\\"\"", lo, hi);
  }

  std::string array_rule(const json& s, const std::string& hint, const std::string& path, int depth) {
    std::string item = prim("value");
    if (const json* it = member(s, "items")) {
      if (it->is_array()) schema_error(path, "'items' as an array (tuples) is not supported");
      item = visit(*it, hint + "-item", path + "/items", depth + 1);
    }
    const uint64_t lo = count_of(s, "minItems", 0, path);
    const uint64_t hi = count_of(s, "maxItems", UINT64_MAX, path);
    if (hi != UINT64_MAX && hi < lo) schema_error(path, "maxItems < minItems");
    prim("ws");
    if (hi == 0) return "\"[\" ws \"]\"";
    const std::string elem = item + " ws";
    const std::string more = hi == UINT64_MAX ? fmt::format("{{{},}}", lo > 0 ? lo - 1 : 0)
                                              : fmt::format("{{{},{}}}", lo > 0 ? lo - 1 : 0, hi - 1);
    const std::string list = elem + " (\",\" ws " + elem + ")" + more;
    return lo == 0 ? "\"[\" ws (" + list + ")? \"]\"" : "\"[\" ws " + list + " \"]\"";
  }

  std::string object_rule(const json& s, const std::string& hint, const std::string& path, int depth) {
    prim("ws");
    struct Prop {
      std::string name;
      const json* schema;  // null: any value
      bool required;
    };
    std::vector<Prop> props;
    std::set<std::string> req;
    if (const json* r = member(s, "required")) {
      if (!r->is_array()) schema_error(path, "'required' must be an array of strings");
      for (const json& x : *r) {
        if (!x.is_string()) schema_error(path, "'required' must be an array of strings");
        req.insert(x.get<std::string>());
      }
    }
    if (const json* p = member(s, "properties")) {
      if (!p->is_object()) schema_error(path, "'properties' must be an object");
      for (const auto& [k, v] : p->items()) props.push_back({k, &v, req.count(k) != 0});
    }
    for (const std::string& r : req) {
      bool found = false;
      for (const Prop& p : props) found = found || p.name == r;
      if (!found) props.push_back({r, nullptr, true});
    }
    if (props.empty()) {
      const json* ap = member(s, "additionalProperties");
      if (ap == nullptr || (ap->is_boolean() && ap->get<bool>())) return prim("object");
      if (ap->is_boolean()) return "\"{\" ws \"}\"";
      const std::string v = visit(*ap, hint + "-additional", path + "/additionalProperties", depth + 1);
      const std::string kv = prim("string") + " ws \":\" ws " + v + " ws";
      return "\"{\" ws (" + kv + " (\",\" ws " + kv + ")*)? \"}\"";
    }
    // c[i]: properties i.. after one was written (each starts with a comma);
    // n[i]: properties i.. before any was written
    const size_t k = props.size();
    std::vector<std::string> c(k + 1, "\"\""), n(k + 1, "\"\"");
    for (size_t i = k; i-- > 0;) {
      const Prop& p = props[i];
      const std::string value = p.schema != nullptr
                                    ? visit(*p.schema, hint + "-" + p.name, path + "/properties/" + pointer_escape(p.name), depth + 1)
                                    : prim("value");
      const std::string kv = lit(json(p.name).dump(-1, ' ', false)) + " ws \":\" ws " + value + " ws";
      std::string cb = "\",\" ws " + kv + " " + c[i + 1];
      std::string nb = kv + " " + c[i + 1];
      if (!p.required) {
        cb += " | " + c[i + 1];
        nb += " | " + n[i + 1];
      }
      c[i] = add_rule(hint + "-after-" + p.name, cb);
      n[i] = add_rule(hint + "-from-" + p.name, nb);
    }
    return "\"{\" ws " + n[0] + " \"}\"";
  }
};

}  // namespace

std::string json_schema_to_gbnf(std::string_view schema) {
  json root;
  try {
    root = json::parse(schema.begin(), schema.end());
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number that overflows
    fail(Status::invalid_argument, "json_schema: not valid JSON: {}", e.what());
  }
  try {
    return SchemaCompiler(root).run();
  } catch (const json::exception& e) {  // e.g. invalid UTF-8 met by dump()
    fail(Status::invalid_argument, "json_schema: {}", e.what());
  }
}

Grammar compile_json_schema(std::string_view schema) { return parse_gbnf(json_schema_to_gbnf(schema)); }

}  // namespace paca
