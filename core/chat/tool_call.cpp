// tool_call.cpp - see tool_call.h.
#include "chat/tool_call.h"

#include <charconv>
#include <cstring>

#include "tokenizer/utf8.h"  // utf8_append

namespace paca {

using ojson = nlohmann::ordered_json;

const char* reply_end_name(ReplyEnd e) {
  switch (e) {
    case ReplyEnd::none: return "none";
    case ReplyEnd::eot: return "eot";
    case ReplyEnd::eom: return "eom";
    case ReplyEnd::eos: return "eos";
  }
  return "none";
}

namespace {

constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr int kMaxDepth = 64;  // nesting of JSON / Python literals in a call

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }

// Bracket nesting of JSON text (strings skipped), to refuse absurd nesting
// before handing it to the JSON parser and serialiser.
int json_depth(std::string_view s) {
  int depth = 0, max = 0;
  bool in_str = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    else if (c == '{' || c == '[') max = std::max(max, ++depth);
    else if (c == '}' || c == ']') --depth;
  }
  return max;
}

bool parse_json(std::string_view s, ojson& out) {
  if (json_depth(s) > kMaxDepth) return false;
  out = ojson::parse(s.begin(), s.end(), nullptr, false);
  return !out.is_discarded();
}

// {"name": ..., "parameters"|"arguments": ...}. Returns false when j is not
// call-shaped (no "name" string, or no arguments); err is set when it is
// call-shaped but unusable.
bool json_call(const ojson& j, ToolCall& call, std::string& err) {
  if (!j.is_object()) return false;
  auto n = j.find("name");
  if (n == j.end() || !n->is_string()) return false;
  auto p = j.find("parameters");
  if (p == j.end()) p = j.find("arguments");
  if (p == j.end()) return false;
  call.type = "function";
  call.name = n->get<std::string>();
  if (call.name.empty()) {
    err = "tool call with an empty name";
    return true;
  }
  if (p->is_object()) {
    call.arguments = *p;
  } else if (p->is_string()) {
    ojson parsed;
    if (!parse_json(p->get_ref<const std::string&>(), parsed) || !parsed.is_object()) {
      err = "the arguments of tool call '" + call.name + "' are a string that is not a JSON object";
      return true;
    }
    call.arguments = std::move(parsed);
  } else if (p->is_null()) {
    call.arguments = ojson::object();
  } else {
    err = "the arguments of tool call '" + call.name + "' are not an object";
  }
  return true;
}

// Python literals and keyword-argument calls: name(k=v, ...) and name.call(k=v, ...).
class PyParser {
 public:
  explicit PyParser(std::string_view s) : s_(s) {}

  size_t pos() const { return i_; }
  bool at_end() {
    ws();
    return i_ >= s_.size();
  }
  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool ident(std::string& out) {
    ws();
    if (i_ >= s_.size() || !is_ident_start(s_[i_])) return false;
    const size_t b = i_;
    while (i_ < s_.size() && is_ident(s_[i_])) ++i_;
    out.assign(s_.substr(b, i_ - b));
    return true;
  }

  // "(" [k=v {, k=v}] [","] ")"
  bool kwargs(ojson& out) {
    out = ojson::object();
    if (!eat('(')) return false;
    if (eat(')')) return true;
    while (true) {
      std::string key;
      if (!ident(key) || !eat('=')) return false;
      ojson v;
      if (!value(v, 0)) return false;
      out[key] = std::move(v);
      if (eat(')')) return true;
      if (!eat(',')) return false;
      if (eat(')')) return true;
    }
  }

  bool value(ojson& out, int depth) {
    if (depth > kMaxDepth) return false;
    ws();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"' || c == '\'') {
      std::string str;
      if (!string(str)) return false;
      out = std::move(str);
      return true;
    }
    if (c == '[' || c == '(') {
      const char close = c == '[' ? ']' : ')';
      ++i_;
      out = ojson::array();
      if (eat(close)) return true;
      while (true) {
        ojson v;
        if (!value(v, depth + 1)) return false;
        out.push_back(std::move(v));
        if (eat(close)) return true;
        if (!eat(',')) return false;
        if (eat(close)) return true;
      }
    }
    if (c == '{') {
      ++i_;
      out = ojson::object();
      if (eat('}')) return true;
      while (true) {
        std::string key;
        ws();
        if (!string(key) || !eat(':')) return false;
        ojson v;
        if (!value(v, depth + 1)) return false;
        out[key] = std::move(v);
        if (eat('}')) return true;
        if (!eat(',')) return false;
        if (eat('}')) return true;
      }
    }
    std::string word;
    if (ident(word)) {
      if (word == "True" || word == "true") out = true;
      else if (word == "False" || word == "false") out = false;
      else if (word == "None" || word == "null") out = nullptr;
      else return false;
      return true;
    }
    return number(out);
  }

 private:
  void ws() {
    while (i_ < s_.size() && is_ws(s_[i_])) ++i_;
  }

  bool number(ojson& out) {
    const size_t b = i_;
    if (i_ < s_.size() && (s_[i_] == '-' || s_[i_] == '+')) ++i_;
    bool digits = false, real = false;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_, digits = true;
    if (i_ < s_.size() && s_[i_] == '.') {
      real = true;
      ++i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_, digits = true;
    }
    if (!digits) return false;
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      real = true;
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '-' || s_[i_] == '+')) ++i_;
      if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) return false;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    std::string t(s_.substr(b, i_ - b));
    if (!t.empty() && t[0] == '+') t.erase(0, 1);
    if (!real) {
      int64_t v = 0;
      auto r = std::from_chars(t.data(), t.data() + t.size(), v);
      if (r.ec == std::errc() && r.ptr == t.data() + t.size()) {
        out = v;
        return true;
      }
    }
    double d = 0;
    auto r = std::from_chars(t.data(), t.data() + t.size(), d);
    if (r.ec != std::errc() || r.ptr != t.data() + t.size() || !std::isfinite(d)) return false;
    out = d;
    return true;
  }

  bool hex(size_t n, uint32_t& v) {
    v = 0;
    for (size_t k = 0; k < n; ++k) {
      if (i_ >= s_.size()) return false;
      const char c = s_[i_++];
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else return false;
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return true;
  }

  bool string(std::string& out) {
    if (i_ >= s_.size()) return false;
    const char q = s_[i_];
    if (q != '"' && q != '\'') return false;
    ++i_;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == q) return true;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      uint32_t cp = 0;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case '0': out += '\0'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;
        case 'x':
          if (!hex(2, cp)) return false;
          utf8_append(out, cp);
          break;
        case 'u':
          if (!hex(4, cp) || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
          utf8_append(out, cp);
          break;
        case 'U':
          if (!hex(8, cp) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
          utf8_append(out, cp);
          break;
        default:
          out += '\\';
          out += e;
      }
    }
    return false;  // unterminated
  }

  std::string_view s_;
  size_t i_ = 0;
};

// name.call(k=v, ...) filling the whole of t.
bool builtin_call(std::string_view t, ToolCall& call, bool& shaped) {
  PyParser p(t);
  std::string name, method;
  shaped = false;
  if (!p.ident(name) || !p.eat('.') || !p.ident(method) || method != "call") return false;
  PyParser probe = p;
  if (!probe.eat('(')) return false;
  shaped = true;
  ojson args;
  if (p.kwargs(args) && p.at_end()) {
    call = {"builtin", name, std::move(args)};
    return true;
  }
  // Lenient form for unescaped quotes inside the value: name.call(key="...anything...")
  // (Meta's reference parser takes the text between the quotes).
  const size_t open = t.find('(');
  const size_t eq = t.find('=', open);
  if (eq == std::string_view::npos || t.back() != ')' || t.size() < eq + 4) return false;
  std::string key(trim(t.substr(open + 1, eq - open - 1)));
  const std::string_view rest = trim(t.substr(eq + 1, t.size() - eq - 2));
  if (key.empty() || rest.size() < 2 || rest.front() != rest.back() || (rest.front() != '"' && rest.front() != '\''))
    return false;
  for (char c : key)
    if (!is_ident(c)) return false;
  ojson a = ojson::object();
  a[key] = std::string(rest.substr(1, rest.size() - 2));
  call = {"builtin", name, std::move(a)};
  return true;
}

// [f(a=1), g(b='x')] filling the whole of t (Llama 3.2 pythonic calls).
bool pythonic_calls(std::string_view t, std::vector<ToolCall>& calls) {
  PyParser p(t);
  if (!p.eat('[')) return false;
  std::vector<ToolCall> out;
  if (!p.eat(']')) {
    while (true) {
      std::string name;
      ojson args;
      if (!p.ident(name)) return false;
      while (p.eat('.')) {  // dotted names: module.function
        std::string part;
        if (!p.ident(part)) return false;
        name += "." + part;
      }
      if (!p.kwargs(args)) return false;
      out.push_back({"function", name, std::move(args)});
      if (p.eat(']')) break;
      if (!p.eat(',')) return false;
    }
  }
  if (!p.at_end() || out.empty()) return false;
  calls = std::move(out);
  return true;
}

// <function=name>{json}</function> (one or more, back to back).
bool function_tags(std::string_view t, std::vector<ToolCall>& calls, std::string& err) {
  std::vector<ToolCall> out;
  while (!t.empty()) {
    if (!starts_with(t, "<function=")) return false;
    const size_t gt = t.find('>');
    if (gt == std::string_view::npos) {
      err = "unterminated <function=...> tag";
      return false;
    }
    ToolCall call;
    call.type = "function";
    call.name = std::string(trim(t.substr(10, gt - 10)));
    t.remove_prefix(gt + 1);
    size_t close = t.find("</function>");
    std::string_view body = trim(close == std::string_view::npos ? t : t.substr(0, close));
    ojson args;
    if (call.name.empty() || !parse_json(body, args) || !args.is_object()) {
      err = "the arguments of <function=" + call.name + "> are not a JSON object";
      return false;
    }
    call.arguments = std::move(args);
    out.push_back(std::move(call));
    t = close == std::string_view::npos ? std::string_view() : trim(t.substr(close + 11));
  }
  calls = std::move(out);
  return !calls.empty();
}

// What the text after the optional <|python_tag|> holds: plain text (code
// for the code interpreter after the tag), tool calls found, or a malformed
// call.
struct BodyReading {
  enum Kind { text, found, malformed } kind = text;
  std::vector<ToolCall> calls;
  std::string error;
};

BodyReading calls_read(std::vector<ToolCall> calls) { return {BodyReading::found, std::move(calls), {}}; }
BodyReading malformed_read(std::string why) { return {BodyReading::malformed, {}, std::move(why)}; }

// A parsed JSON body: one call object, or a list whose entries are all calls.
BodyReading read_json_calls(const ojson& j) {
  std::string err;
  if (j.is_object()) {
    ToolCall c;
    if (!json_call(j, c, err)) return {};
    if (!err.empty()) return malformed_read(err);
    return calls_read({std::move(c)});
  }
  if (!j.is_array() || j.empty()) return {};
  std::vector<ToolCall> calls;
  for (const auto& e : j) {
    ToolCall c;
    std::string e_err;
    if (json_call(e, c, e_err)) {
      if (!e_err.empty() && err.empty()) err = e_err;
      calls.push_back(std::move(c));
    }
  }
  if (calls.size() == j.size() && err.empty()) return calls_read(std::move(calls));
  if (!calls.empty()) return malformed_read(err.empty() ? "a list of tool calls holds entries that are not calls" : err);
  return {};
}

// A body starting with { or [: JSON calls, or pythonic [f(a=1), ...] calls.
BodyReading read_bracketed(std::string_view t, bool python_tag) {
  ojson j;
  if (parse_json(t, j)) return read_json_calls(j);
  std::vector<ToolCall> calls;
  if (t.front() == '[' && pythonic_calls(t, calls)) return calls_read(std::move(calls));
  if (t.front() == '{' && (t.find("\"name\"") != std::string_view::npos || python_tag))
    return malformed_read("the tool call is not valid JSON (truncated or mis-quoted?)");
  return {};
}

// A non-empty, trimmed body in any of the call forms.
BodyReading read_body(std::string_view t, bool python_tag) {
  if (t.front() == '{' || t.front() == '[') return read_bracketed(t, python_tag);
  if (starts_with(t, "<function=")) {
    std::vector<ToolCall> calls;
    std::string err;
    if (function_tags(t, calls, err)) return calls_read(std::move(calls));
    return malformed_read(err.empty() ? "malformed <function=...> call" : err);
  }
  ToolCall c;
  bool shaped = false;
  if (builtin_call(t, c, shaped)) return calls_read({std::move(c)});
  if (shaped && (python_tag || t.back() == ')'))
    return malformed_read("could not parse the arguments of a built-in tool call (name.call(key=\"value\", ...))");
  return {};
}

// Removes the stop token's text (and the whitespace after it) when the caller
// left it at the end of the reply, and records which token it was.
std::string_view strip_end_token(std::string_view text, ReplyEnd& end) {
  size_t e = text.size();
  while (e > 0 && is_ws(text[e - 1])) --e;
  const std::string_view head = text.substr(0, e);
  static const std::pair<std::string_view, ReplyEnd> ends[] = {
      {"<|eom_id|>", ReplyEnd::eom}, {"<|eot_id|>", ReplyEnd::eot}, {"<|end_of_text|>", ReplyEnd::eos}, {"</s>", ReplyEnd::eos}};
  for (const auto& [s, kind] : ends)
    if (head.size() >= s.size() && head.substr(head.size() - s.size()) == s) {
      end = kind;
      return head.substr(0, head.size() - s.size());
    }
  return text;
}

}  // namespace

ParsedReply parse_tool_calls(std::string_view text, const ToolParseOptions& opt) {
  ParsedReply r;
  r.end = opt.stop;
  text = strip_end_token(text, r.end);
  std::string_view body = text, prefix;
  if (const size_t tag = text.find(kPythonTag); tag != std::string_view::npos) {
    r.python_tag = true;
    prefix = text.substr(0, tag);
    body = text.substr(tag + kPythonTag.size());
  }
  const std::string_view t = trim(body);
  BodyReading b;
  if (!t.empty()) b = read_body(t, r.python_tag);
  else if (r.python_tag) b = malformed_read("nothing follows <|python_tag|>");

  if (b.kind == BodyReading::text && r.python_tag) {  // code for the code interpreter
    ojson a = ojson::object();
    a["code"] = std::string(t);
    b = calls_read({{"code_interpreter", "code_interpreter", std::move(a)}});
  }
  switch (b.kind) {
    case BodyReading::found:
      r.tool_calls = std::move(b.calls);
      r.content = std::string(prefix);
      break;
    case BodyReading::malformed:
      r.malformed = true;
      r.error = std::move(b.error);
      r.content = std::string(text);
      break;
    case BodyReading::text:
      r.content = std::string(text);
      break;
  }
  return r;
}

nlohmann::ordered_json reply_to_json(const ParsedReply& r) {
  ojson j = ojson::object();
  j["content"] = r.content;
  ojson calls = ojson::array();
  for (const ToolCall& c : r.tool_calls) {
    ojson e = ojson::object();
    e["type"] = c.type;
    e["name"] = c.name;
    e["arguments"] = c.arguments;
    calls.push_back(std::move(e));
  }
  j["tool_calls"] = std::move(calls);
  j["python_tag"] = r.python_tag;
  j["malformed"] = r.malformed;
  if (r.malformed) j["error"] = r.error;
  j["end"] = reply_end_name(r.end);
  j["awaiting_tool_result"] = r.awaiting_tool_result();
  return j;
}

}  // namespace paca
