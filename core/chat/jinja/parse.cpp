// parse.cpp - lexer and parser of the Jinja engine: template text ->
// syntax tree (internal.h). Follows jinja2's lexer (trim_blocks and
// lstrip_blocks on, as Hugging Face configures it) and its recursive-descent
// grammar, so that whitespace and operator precedence come out the same.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "chat/jinja/internal.h"
#include "tokenizer/utf8.h"  // utf8_append

namespace paca::jinja {

std::string Program::where(Pos pos) const {
  auto it = std::upper_bound(line_starts.begin(), line_starts.end(), static_cast<size_t>(pos));
  const size_t line = static_cast<size_t>(it - line_starts.begin());
  const size_t start = line ? line_starts[line - 1] : 0;
  size_t col = 1;
  for (size_t i = start; i < pos && i < source.size();) {
    utf8_next(source, i);
    ++col;
  }
  return fmt::format("{}:{}:{}", name, line, col);
}

namespace {

// ---- lexer -----------------------------------------------------------------

enum class Tok : uint8_t { data, var_begin, var_end, block_begin, block_end, name, string, integer, real, op, eof };

struct Token {
  Tok type = Tok::eof;
  Pos pos = 0;
  std::string text;  // data text, name, decoded string, operator
  int64_t i = 0;
  double d = 0;
};

const char* tok_desc(Tok t) {
  switch (t) {
    case Tok::data: return "template data";
    case Tok::var_begin: return "begin of print statement";
    case Tok::var_end: return "end of print statement";
    case Tok::block_begin: return "begin of statement block";
    case Tok::block_end: return "end of statement block";
    case Tok::name: return "name";
    case Tok::string: return "string";
    case Tok::integer: return "integer";
    case Tok::real: return "float";
    case Tok::op: return "operator";
    case Tok::eof: return "end of template";
  }
  return "token";
}

std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::name:
    case Tok::op: return "'" + t.text + "'";
    case Tok::string: return "string";
    case Tok::integer:
    case Tok::real: return "number";
    default: return tok_desc(t.type);
  }
}

class Lexer {
 public:
  Lexer(const Program& prog) : prog_(prog), src_(prog.source) {}

  std::vector<Token> run() {
    size_t pos = 0;
    const size_t n = src_.size();
    while (pos < n) {
      const size_t t = find_tag(pos);
      if (t == std::string::npos) {
        push_data(pos, src_.substr(pos));
        line_starting_ = src_.back() == '\n';
        break;
      }
      std::string text = src_.substr(pos, t - pos);
      const char kind = src_[t + 1];  // '{', '%' or '#'
      char sign = 0;
      if (t + 2 < n && (src_[t + 2] == '-' || src_[t + 2] == '+')) sign = src_[t + 2];
      size_t raw_end = 0;
      const bool raw = kind == '%' && match_raw_begin(t, raw_end);
      // Whitespace control on the text before the tag.
      if (sign == '-') {
        text = rstrip(text);
      } else if (sign != '+' && kind != '{') {  // lstrip_blocks: blocks, comments, raw
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting_) && l_pos < text.size() && all_space(text, l_pos)) text.resize(l_pos);
      }
      push_data(pos, text);
      if (raw) {
        pos = lex_raw(t, raw_end);
      } else if (kind == '#') {
        pos = lex_comment(t, t + 2 + (sign ? 1 : 0));
      } else {
        pos = lex_tag(t, t + 2 + (sign ? 1 : 0), kind == '%');
      }
    }
    Token eof;
    eof.type = Tok::eof;
    eof.pos = static_cast<Pos>(src_.size());
    toks_.push_back(eof);
    return std::move(toks_);
  }

 private:
  [[noreturn]] void fail_at(size_t pos, const std::string& msg) const {
    throw LocatedError(Status::format, prog_.where(static_cast<Pos>(pos)) + ": " + msg);
  }

  size_t find_tag(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
    }
    return std::string::npos;
  }

  static bool all_space(const std::string& s, size_t from) {
    for (size_t i = from; i < s.size();)
      if (!is_py_space(utf8_next(s, i))) return false;
    return true;
  }

  static std::string rstrip(const std::string& s) {
    size_t end = s.size();
    // Walk back over whitespace code points.
    while (end > 0) {
      size_t start = end - 1;
      while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 && end - start < 4) --start;
      size_t i = start;
      const uint32_t c = utf8_next(s, i);
      if (i != end) {  // not a complete code point ending here: a single byte
        start = end - 1;
        i = start;
        if (!is_py_space(utf8_next(s, i)) || i != end) break;
      } else if (!is_py_space(c)) {
        break;
      }
      end = start;
    }
    return s.substr(0, end);
  }

  size_t skip_space(size_t p) const {
    while (p < src_.size()) {
      size_t q = p;
      if (!is_py_space(utf8_next(src_, q))) break;
      p = q;
    }
    return p;
  }

  void push_data(size_t pos, const std::string& text) {
    if (text.empty()) return;
    Token t;
    t.type = Tok::data;
    t.pos = static_cast<Pos>(pos);
    t.text = text;
    toks_.push_back(std::move(t));
  }

  void push(Tok type, size_t pos, std::string text = {}) {
    Token t;
    t.type = type;
    t.pos = static_cast<Pos>(pos);
    t.text = std::move(text);
    toks_.push_back(std::move(t));
  }

  // {%[-+]?\s*raw\s*(-%}\s*|%})
  bool match_raw_begin(size_t t, size_t& end) const {
    size_t p = t + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    p = skip_space(p);
    if (src_.compare(p, 3, "raw") != 0) return false;
    p = skip_space(p + 3);
    if (src_.compare(p, 3, "-%}") == 0) {
      end = skip_space(p + 3);
      return true;
    }
    if (src_.compare(p, 2, "%}") == 0) {
      end = p + 2;
      return true;
    }
    return false;
  }

  // Block-end handling shared by tags, raw and comments: returns the position after it.
  size_t end_of_block(size_t p, char sign, size_t len) {
    p += len;
    if (sign == '-') p = skip_space(p);
    else if (sign == 0 && p < src_.size() && src_[p] == '\n') ++p;  // trim_blocks
    line_starting_ = p > 0 && src_[p - 1] == '\n';
    return p;
  }

  size_t lex_raw(size_t t, size_t body) {
    // Find {%[-+]?\s*endraw\s*(+%}|-%}\s*|%}\n?)
    for (size_t p = src_.find("{%", body); p != std::string::npos; p = src_.find("{%", p + 1)) {
      size_t q = p + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      q = skip_space(q);
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q = skip_space(q + 6);
      char esign = 0;
      size_t len = 0;
      if (src_.compare(q, 3, "+%}") == 0) esign = '+', len = 3;
      else if (src_.compare(q, 3, "-%}") == 0) esign = '-', len = 3;
      else if (src_.compare(q, 2, "%}") == 0) len = 2;
      else continue;
      std::string text = src_.substr(body, p - body);
      if (sign == '-') {
        text = rstrip(text);
      } else if (sign != '+') {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if (l_pos > 0 && l_pos < text.size() && all_space(text, l_pos)) text.resize(l_pos);
      }
      push_data(body, text);
      return end_of_block(q, esign, len);
    }
    fail_at(t, "missing end of raw directive");
  }

  size_t lex_comment(size_t t, size_t body) {
    const size_t q = src_.find("#}", body);
    if (q == std::string::npos) fail_at(t, "missing end of comment tag");
    if (q > body && (src_[q - 1] == '-' || src_[q - 1] == '+')) return end_of_block(q - 1, src_[q - 1], 3);
    return end_of_block(q, 0, 2);
  }

  size_t lex_tag(size_t t, size_t p, bool block) {
    push(block ? Tok::block_begin : Tok::var_begin, t);
    std::vector<char> balance;
    const size_t n = src_.size();
    while (true) {
      if (balance.empty()) {
        if (block) {
          if (src_.compare(p, 3, "+%}") == 0) return push(Tok::block_end, p), end_of_block(p, '+', 3);
          if (src_.compare(p, 3, "-%}") == 0) return push(Tok::block_end, p), end_of_block(p, '-', 3);
          if (src_.compare(p, 2, "%}") == 0) return push(Tok::block_end, p), end_of_block(p, 0, 2);
        } else {
          if (src_.compare(p, 3, "-}}") == 0) {
            push(Tok::var_end, p);
            p = skip_space(p + 3);
            line_starting_ = src_[p - 1] == '\n';
            return p;
          }
          if (src_.compare(p, 2, "}}") == 0) {
            push(Tok::var_end, p);
            line_starting_ = false;
            return p + 2;
          }
        }
      }
      if (p >= n) fail_at(t, block ? "unexpected end of template: missing '%}'" : "unexpected end of template: missing '}}'");
      const size_t q = skip_space(p);
      if (q != p) {
        p = q;
        continue;
      }
      const char c = src_[p];
      if (lex_number(p)) continue;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p + 1;
        while (e < n && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        push(Tok::name, p, src_.substr(p, e - p));
        p = e;
        continue;
      }
      if (c == '\'' || c == '"') {
        p = lex_string(p);
        continue;
      }
      static const char* const ops[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]",
                                        "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};
      bool found = false;
      for (const char* op : ops) {
        const size_t len = std::strlen(op);
        if (src_.compare(p, len, op) != 0) continue;
        found = true;
        if (len == 1) {
          if (c == '(') balance.push_back(')');
          else if (c == '[') balance.push_back(']');
          else if (c == '{') balance.push_back('}');
          else if (c == ')' || c == ']' || c == '}') {
            if (balance.empty()) fail_at(p, fmt::format("unexpected '{}'", c));
            if (balance.back() != c) fail_at(p, fmt::format("unexpected '{}', expected '{}'", c, balance.back()));
            balance.pop_back();
          }
        }
        push(Tok::op, p, op);
        p += len;
        break;
      }
      if (!found) {
        size_t e = p;
        utf8_next(src_, e);
        fail_at(p, "unexpected character '" + src_.substr(p, e - p) + "'");
      }
    }
  }

  // Integers (decimal, 0b, 0o, 0x, with '_' separators) and floats (digits
  // with a fraction and/or an exponent), as jinja2 lexes them.
  bool lex_number(size_t& p) {
    const size_t n = src_.size();
    auto digit = [&](size_t i) { return i < n && std::isdigit(static_cast<unsigned char>(src_[i])); };
    if (!digit(p)) return false;
    auto digits = [&](size_t i) {  // (\d+_)*\d+ starting at i; returns end or npos
      if (!digit(i)) return std::string::npos;
      while (true) {
        while (digit(i)) ++i;
        if (i < n && src_[i] == '_' && digit(i + 1)) {
          ++i;
          continue;
        }
        return i;
      }
    };
    // Float: not right after a '.'.
    if (p == 0 || src_[p - 1] != '.') {
      const size_t a = digits(p);
      size_t e = a;
      bool is_float = false;
      if (e < n && src_[e] == '.' && digit(e + 1)) {
        e = digits(e + 1);
        is_float = true;
      }
      if (e < n && (src_[e] == 'e' || src_[e] == 'E')) {
        size_t x = e + 1;
        if (x < n && (src_[x] == '+' || src_[x] == '-')) ++x;
        const size_t xe = digits(x);
        if (xe != std::string::npos) {
          e = xe;
          is_float = true;
        }
      }
      if (is_float) {
        std::string text;
        for (size_t i = p; i < e; ++i)
          if (src_[i] != '_') text += src_[i];
        Token t;
        t.type = Tok::real;
        t.pos = static_cast<Pos>(p);
        t.d = std::strtod(text.c_str(), nullptr);
        t.text = src_.substr(p, e - p);
        toks_.push_back(std::move(t));
        p = e;
        return true;
      }
    }
    // Integer.
    int base = 10;
    size_t s = p, e = p;
    if (src_[p] == '0' && p + 1 < n && std::strchr("bBoOxX", src_[p + 1]) != nullptr) {
      const char b = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[p + 1])));
      base = b == 'b' ? 2 : b == 'o' ? 8 : 16;
      auto ok = [&](char ch) {
        if (base == 2) return ch == '0' || ch == '1';
        if (base == 8) return ch >= '0' && ch <= '7';
        return std::isxdigit(static_cast<unsigned char>(ch)) != 0;
      };
      e = p + 2;
      size_t last = e;
      while (e < n) {
        if (src_[e] == '_' && e + 1 < n && ok(src_[e + 1])) e += 2;
        else if (ok(src_[e])) ++e;
        else break;
        last = e;
      }
      if (last == p + 2) {  // "0x" without digits: the integer is 0
        base = 10;
        e = p + 1;
      } else {
        s = p + 2;
      }
    } else if (src_[p] == '0') {
      e = p + 1;
      while (e < n && ((src_[e] == '_' && e + 1 < n && src_[e + 1] == '0') || src_[e] == '0')) ++e;
    } else {
      e = digits(p);
    }
    std::string text;
    for (size_t i = s; i < e; ++i)
      if (src_[i] != '_') text += src_[i];
    Token t;
    t.type = Tok::integer;
    t.pos = static_cast<Pos>(p);
    t.text = src_.substr(p, e - p);
    auto r = std::from_chars(text.data(), text.data() + text.size(), t.i, base);
    if (r.ec != std::errc()) {
      throw LocatedError(Status::unsupported, prog_.where(static_cast<Pos>(p)) + ": integer literal " + t.text +
                                                  " does not fit in 64 bits");
    }
    toks_.push_back(std::move(t));
    p = e;
    return true;
  }

  size_t lex_string(size_t p) {
    const char q = src_[p];
    std::string out;
    size_t i = p + 1;
    const size_t n = src_.size();
    auto hex = [&](size_t at, int count) -> uint32_t {
      uint32_t v = 0;
      for (int k = 0; k < count; ++k) {
        const size_t j = at + static_cast<size_t>(k);
        if (j >= n || !std::isxdigit(static_cast<unsigned char>(src_[j])))
          fail_at(at - 2, fmt::format("truncated \\{}{} escape in a string", src_[at - 1], std::string(static_cast<size_t>(count), 'X')));
        const char ch = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[j])));
        v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(ch)) ? ch - '0' : ch - 'a' + 10);
      }
      return v;
    };
    while (true) {
      if (i >= n) fail_at(p, "unterminated string");
      const char c = src_[i];
      if (c == q) break;
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      if (i + 1 >= n) fail_at(p, "unterminated string");
      const char e = src_[i + 1];
      i += 2;
      switch (e) {
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case '\n': break;  // line continuation
        case 'x': utf8_append(out, hex(i, 2)); i += 2; break;
        case 'u': {
          const uint32_t cp = hex(i, 4);
          i += 4;
          if (cp >= 0xD800 && cp <= 0xDFFF) fail_at(i - 6, "a surrogate code point in a string escape is not supported");
          utf8_append(out, cp);
          break;
        }
        case 'U': {
          const uint32_t cp = hex(i, 8);
          i += 8;
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail_at(i - 10, "invalid \\U escape in a string");
          utf8_append(out, cp);
          break;
        }
        case 'N': fail_at(i - 2, "\\N{...} escapes are not supported");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i < n && src_[i] >= '0' && src_[i] <= '7'; ++k) v = v * 8 + static_cast<uint32_t>(src_[i++] - '0');
            utf8_append(out, v);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    Token t;
    t.type = Tok::string;
    t.pos = static_cast<Pos>(p);
    t.text = std::move(out);
    toks_.push_back(std::move(t));
    return i + 1;
  }

  const Program& prog_;
  const std::string& src_;
  std::vector<Token> toks_;
  bool line_starting_ = true;
};

// ---- parser ----------------------------------------------------------------

constexpr int kMaxNesting = 100;      // nested blocks, parentheses, unary operators
constexpr uint32_t kMaxExprDepth = 256;

class Parser {
 public:
  Parser(std::vector<Token> toks, Program& prog) : toks_(std::move(toks)), prog_(prog) {}

  Body parse_template() {
    Body body = subparse({});
    if (cur().type != Tok::eof) fail(fmt::format("unexpected {}", describe(cur())));
    return body;
  }

 private:
  // ---- token stream ----
  const Token& cur() const { return toks_[i_]; }
  const Token& look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  bool is_op(const char* op) const { return cur().type == Tok::op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  [[noreturn]] void fail(const std::string& msg, Status st = Status::format) const { fail_at(cur().pos, msg, st); }
  [[noreturn]] void fail_at(Pos pos, const std::string& msg, Status st = Status::format) const {
    throw LocatedError(st, prog_.where(pos) + ": " + msg);
  }
  void expect(Tok type) {
    if (cur().type != type) fail(fmt::format("expected {}, got {}", tok_desc(type), describe(cur())));
    next();
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(fmt::format("expected '{}', got {}", op, describe(cur())));
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::name) fail(fmt::format("expected a name, got {}", describe(cur())));
    return next().text;
  }

  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.nest_ > kMaxNesting) p.fail(fmt::format("template nested more than {} levels deep", kMaxNesting));
    }
    ~Nest() { --p.nest_; }
  };

  ExprPtr node(ExprKind k, Pos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->pos = pos;
    return e;
  }
  ExprPtr finish(ExprPtr e) {
    uint32_t d = 0;
    for (const auto& k : e->kids)
      if (k) d = std::max(d, k->depth);
    e->depth = d + 1;
    if (e->depth > kMaxExprDepth) fail_at(e->pos, fmt::format("expression nested more than {} levels deep", kMaxExprDepth));
    return e;
  }
  ExprPtr unary(ExprKind k, Pos pos, ExprPtr a) {
    auto e = node(k, pos);
    e->kids.push_back(std::move(a));
    return finish(std::move(e));
  }
  ExprPtr binary(ExprKind k, Pos pos, ExprPtr a, ExprPtr b) {
    auto e = node(k, pos);
    e->kids.push_back(std::move(a));
    e->kids.push_back(std::move(b));
    return finish(std::move(e));
  }

  // ---- statements ----
  bool at_end_tag(const std::vector<const char*>& end) const {
    if (cur().type != Tok::name) return false;
    return std::any_of(end.begin(), end.end(), [&](const char* e) { return cur().text == e; });
  }

  Body subparse(const std::vector<const char*>& end) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::data) {
        Stmt s;
        s.kind = StmtKind::data;
        s.pos = t.pos;
        s.text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == Tok::var_begin) {
        Stmt s;
        s.kind = StmtKind::output;
        s.pos = t.pos;
        next();
        s.expr = parse_tuple(false, true, {}, false);
        expect(Tok::var_end);
        body.push_back(std::move(s));
      } else if (t.type == Tok::block_begin) {
        next();
        if (!end.empty() && at_end_tag(end)) return body;
        parse_statement(body);
        expect(Tok::block_end);
      } else if (t.type == Tok::eof) {
        return body;
      } else {
        fail(fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  Body parse_statements(const std::vector<const char*>& end, bool drop_needle, const std::string& tag, Pos tag_pos) {
    Nest guard(*this);
    skip_op(":");
    expect(Tok::block_end);
    Body body = subparse(end);
    if (cur().type == Tok::eof) {
      std::string want;
      for (const char* e : end) want += (want.empty() ? "'" : " or '") + std::string(e) + "'";
      fail_at(tag_pos, fmt::format("unexpected end of template: '{}' is not closed (looking for {})", tag, want));
    }
    if (drop_needle) next();
    return body;
  }

  void parse_statement(Body& out) {
    const Token& t = cur();
    if (t.type != Tok::name) fail(fmt::format("expected a tag name, got {}", describe(t)));
    const std::string tag = t.text;
    const Pos pos = t.pos;
    if (tag == "for") return out.push_back(parse_for());
    if (tag == "if") return out.push_back(parse_if());
    if (tag == "set") return out.push_back(parse_set());
    if (tag == "macro") return out.push_back(parse_macro());
    if (tag == "filter") return out.push_back(parse_filter_block());
    if (tag == "with") return out.push_back(parse_with());
    if (tag == "generation") {  // transformers' AssistantTracker: renders its body
      next();
      Stmt s;
      s.kind = StmtKind::with;
      s.pos = pos;
      s.bodies.push_back(parse_statements({"endgeneration"}, true, tag, pos));
      return out.push_back(std::move(s));
    }
    if (tag == "print") {
      next();
      bool first = true;
      while (cur().type != Tok::block_end) {
        if (!first) expect_op(",");
        first = false;
        Stmt s;
        s.kind = StmtKind::output;
        s.pos = cur().pos;
        s.expr = parse_expression(true);
        out.push_back(std::move(s));
      }
      return;
    }
    if (tag == "break" || tag == "continue") {
      if (loops_ == 0) fail(fmt::format("'{}' outside of a loop", tag));
      next();
      Stmt s;
      s.kind = tag == "break" ? StmtKind::break_ : StmtKind::continue_;
      s.pos = pos;
      return out.push_back(std::move(s));
    }
    static const char* const unsupported[] = {"block", "extends", "include", "import", "from", "call", "autoescape", "do", "trans", "pluralize"};
    for (const char* u : unsupported)
      if (tag == u) fail(fmt::format("the '{}' tag is not supported", tag), Status::unsupported);
    fail(fmt::format("unknown tag '{}'", tag), Status::unsupported);
  }

  // Targets of for/set/with: a name, names separated by commas (optionally in
  // parentheses), or ns.attr when with_namespace.
  std::vector<Target> parse_targets(bool with_namespace, bool with_tuple, const char* extra_end) {
    std::vector<Target> targets;
    if (with_namespace && cur().type == Tok::name && look().type == Tok::op && look().text == ".") {
      Target tg;
      tg.name = next().text;
      next();
      tg.attr = expect_name();
      targets.push_back(std::move(tg));
      return targets;
    }
    const bool paren = with_tuple && skip_op("(");
    while (true) {
      if (cur().type != Tok::name) fail(fmt::format("cannot assign to {}", describe(cur())));
      const std::string n = cur().text;
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None")
        fail(fmt::format("cannot assign to '{}'", n));
      next();
      targets.push_back({n, {}});
      if (!with_tuple || !is_op(",")) break;
      next();
      if (is_op(")") || cur().type == Tok::block_end || (extra_end && is_name(extra_end)) || is_op("=")) break;
    }
    if (paren) expect_op(")");
    return targets;
  }

  Stmt parse_for() {
    Stmt s;
    s.kind = StmtKind::for_;
    s.pos = next().pos;
    s.targets = parse_targets(false, true, "in");
    if (!skip_name("in")) fail(fmt::format("expected 'in', got {}", describe(cur())));
    s.expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) s.cond = parse_expression(true);
    if (is_name("recursive")) fail("recursive loops are not supported", Status::unsupported);
    ++loops_;
    s.bodies.push_back(parse_statements({"endfor", "else"}, false, "for", s.pos));
    --loops_;
    if (next().text == "endfor") {
      s.bodies.emplace_back();
    } else {
      s.bodies.push_back(parse_statements({"endfor"}, true, "for", s.pos));
    }
    return s;
  }

  Stmt parse_if() {
    Stmt s;
    s.kind = StmtKind::if_;
    s.pos = next().pos;
    while (true) {
      s.exprs.push_back(parse_tuple(false, false, {}, false));
      s.bodies.push_back(parse_statements({"elif", "else", "endif"}, false, "if", s.pos));
      const Token& t = next();
      if (t.text == "elif") continue;
      if (t.text == "else") s.bodies.push_back(parse_statements({"endif"}, true, "if", s.pos));
      else s.bodies.emplace_back();
      break;
    }
    return s;
  }

  Stmt parse_set() {
    Stmt s;
    s.pos = next().pos;
    s.targets = parse_targets(true, true, nullptr);
    if (skip_op("=")) {
      s.kind = StmtKind::set;
      s.expr = parse_tuple(false, true, {}, false);
      return s;
    }
    if (s.targets.size() != 1) fail("a block set needs exactly one target");
    s.kind = StmtKind::set_block;
    if (is_op("|")) s.filter = parse_filter(nullptr, false);
    s.bodies.push_back(parse_statements({"endset"}, true, "set", s.pos));
    return s;
  }

  Stmt parse_macro() {
    Stmt s;
    s.kind = StmtKind::macro;
    s.pos = next().pos;
    s.name = expect_name();
    expect_op("(");
    bool defaults = false;
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      if (is_op(")")) break;
      s.params.push_back(expect_name());
      if (skip_op("=")) {
        s.exprs.push_back(parse_expression(true));
        defaults = true;
      } else {
        if (defaults) fail("non-default argument follows default argument");
        s.exprs.emplace_back();
      }
    }
    expect_op(")");
    const int saved = loops_;
    loops_ = 0;
    s.bodies.push_back(parse_statements({"endmacro"}, true, "macro", s.pos));
    loops_ = saved;
    return s;
  }

  Stmt parse_filter_block() {
    Stmt s;
    s.kind = StmtKind::filter_block;
    s.pos = next().pos;
    s.filter = parse_filter(nullptr, true);
    s.bodies.push_back(parse_statements({"endfilter"}, true, "filter", s.pos));
    return s;
  }

  Stmt parse_with() {
    Stmt s;
    s.kind = StmtKind::with;
    s.pos = next().pos;
    while (cur().type != Tok::block_end) {
      if (!s.targets.empty()) expect_op(",");
      auto t = parse_targets(false, false, nullptr);
      s.targets.push_back(t[0]);
      expect_op("=");
      s.exprs.push_back(parse_expression(true));
    }
    s.bodies.push_back(parse_statements({"endwith"}, true, "with", s.pos));
    return s;
  }

  // ---- expressions ----
  bool is_tuple_end(const std::vector<const char*>& extra_end) const {
    if (cur().type == Tok::var_end || cur().type == Tok::block_end || is_op(")")) return true;
    return at_end_tag(extra_end);
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<const char*>& extra_end, bool explicit_parens) {
    const Pos pos = cur().pos;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) fail(fmt::format("expected an expression, got {}", describe(cur())));
    }
    auto e = node(ExprKind::tuple, pos);
    e->kids = std::move(args);
    return finish(std::move(e));
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    Nest guard(*this);
    ExprPtr e1 = parse_or();
    while (is_name("if")) {
      const Pos pos = next().pos;
      ExprPtr e2 = parse_or();
      ExprPtr e3;
      if (skip_name("else")) e3 = parse_condexpr();
      auto c = node(ExprKind::cond, pos);
      c->kids.push_back(std::move(e1));
      c->kids.push_back(std::move(e2));
      c->kids.push_back(std::move(e3));
      e1 = finish(std::move(c));
    }
    return e1;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const Pos pos = next().pos;
      left = binary(ExprKind::or_, pos, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const Pos pos = next().pos;
      left = binary(ExprKind::and_, pos, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      Nest guard(*this);
      const Pos pos = next().pos;
      return unary(ExprKind::not_, pos, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Pos pos = cur().pos;
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      CmpOp op;
      if (is_op("==")) op = CmpOp::eq;
      else if (is_op("!=")) op = CmpOp::ne;
      else if (is_op("<")) op = CmpOp::lt;
      else if (is_op("<=")) op = CmpOp::le;
      else if (is_op(">")) op = CmpOp::gt;
      else if (is_op(">=")) op = CmpOp::ge;
      else if (is_name("in")) op = CmpOp::in;
      else if (is_name("not") && look().type == Tok::name && look().text == "in") {
        next();
        op = CmpOp::not_in;
      } else {
        break;
      }
      next();
      if (!cmp) {
        cmp = node(ExprKind::compare, pos);
        cmp->kids.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->kids.push_back(parse_math1());
    }
    if (!cmp) return first;
    return finish(std::move(cmp));
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const ExprKind k = is_op("+") ? ExprKind::add : ExprKind::sub;
      const Pos pos = next().pos;
      left = binary(k, pos, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    const Pos pos = cur().pos;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = node(ExprKind::concat, pos);
    e->kids.push_back(std::move(first));
    while (skip_op("~")) e->kids.push_back(parse_math2());
    return finish(std::move(e));
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = cur().text;
      const ExprKind k = op == "*" ? ExprKind::mul : op == "/" ? ExprKind::div : op == "//" ? ExprKind::floordiv : ExprKind::mod;
      const Pos pos = next().pos;
      left = binary(k, pos, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Pos pos = next().pos;
      left = binary(ExprKind::pow, pos, std::move(left), parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nest guard(*this);
    ExprPtr e;
    if (is_op("-")) {
      const Pos pos = next().pos;
      e = unary(ExprKind::neg, pos, parse_unary(false));
    } else if (is_op("+")) {
      const Pos pos = next().pos;
      e = unary(ExprKind::pos, pos, parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    Nest guard(*this);
    const Token& t = cur();
    const Pos pos = t.pos;
    if (t.type == Tok::name) {
      auto e = node(ExprKind::constant, pos);
      if (t.text == "true" || t.text == "True") e->value = Value::boolean(true);
      else if (t.text == "false" || t.text == "False") e->value = Value::boolean(false);
      else if (t.text == "none" || t.text == "None") e->value = Value::none();
      else {
        e->kind = ExprKind::name;
        e->name = t.text;
      }
      next();
      return finish(std::move(e));
    }
    if (t.type == Tok::string) {
      std::string s;
      while (cur().type == Tok::string) s += next().text;
      auto e = node(ExprKind::constant, pos);
      e->value = Value::string(std::move(s));
      return finish(std::move(e));
    }
    if (t.type == Tok::integer || t.type == Tok::real) {
      auto e = node(ExprKind::constant, pos);
      e->value = t.type == Tok::integer ? Value::integer(t.i) : Value::real(t.d);
      next();
      return finish(std::move(e));
    }
    if (is_op("(")) {
      next();
      ExprPtr e = parse_tuple(false, true, {}, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      next();
      auto e = node(ExprKind::list, pos);
      while (!is_op("]")) {
        if (!e->kids.empty()) expect_op(",");
        if (is_op("]")) break;
        e->kids.push_back(parse_expression(true));
      }
      expect_op("]");
      return finish(std::move(e));
    }
    if (is_op("{")) {
      next();
      auto e = node(ExprKind::dict, pos);
      while (!is_op("}")) {
        if (!e->kids.empty()) expect_op(",");
        if (is_op("}")) break;
        e->kids.push_back(parse_expression(true));
        expect_op(":");
        e->kids.push_back(parse_expression(true));
      }
      expect_op("}");
      return finish(std::move(e));
    }
    fail(fmt::format("unexpected {}", describe(t)));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".") || is_op("[")) e = parse_subscript(std::move(e));
      else if (is_op("(")) e = parse_call(std::move(e));
      else return e;
    }
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) e = parse_filter(std::move(e), false);
      else if (is_name("is")) e = parse_test(std::move(e));
      else if (is_op("(")) e = parse_call(std::move(e));
      else return e;
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    Nest guard(*this);
    const Token& t = next();
    const Pos pos = t.pos;
    if (t.text == ".") {
      if (cur().type == Tok::name) {
        auto e = node(ExprKind::getattr, pos);
        e->name = next().text;
        e->kids.push_back(std::move(obj));
        return finish(std::move(e));
      }
      if (cur().type != Tok::integer) fail("expected a name or number after '.'");
      auto k = node(ExprKind::constant, cur().pos);
      k->value = Value::integer(next().i);
      return binary(ExprKind::getitem, pos, std::move(obj), finish(std::move(k)));
    }
    // '[' subscript ']'
    ExprPtr parts[3];
    bool is_slice = false;
    auto parse_part = [&]() -> ExprPtr {
      if (is_op(":") || is_op("]") || is_op(",")) return nullptr;
      return parse_expression(true);
    };
    parts[0] = parse_part();
    if (skip_op(":")) {
      is_slice = true;
      parts[1] = parse_part();
      if (skip_op(":")) parts[2] = parse_part();
    } else if (!parts[0]) {
      fail("expected a subscript expression");
    }
    if (is_op(",")) fail("tuple subscripts are not supported", Status::unsupported);
    expect_op("]");
    if (!is_slice) return binary(ExprKind::getitem, pos, std::move(obj), std::move(parts[0]));
    auto e = node(ExprKind::slice, pos);
    e->kids.push_back(std::move(obj));
    for (auto& p : parts) e->kids.push_back(std::move(p));
    return finish(std::move(e));
  }

  // Parses "(args)" into e (kids from index 1 on, kwnames).
  void parse_call_args(Expr& e) {
    Nest guard(*this);
    const Pos pos = cur().pos;
    expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported", Status::unsupported);
      if (cur().type == Tok::name && look().type == Tok::op && look().text == "=") {
        e.kwnames.push_back(next().text);
        next();
        e.kids.push_back(parse_expression(true));
      } else {
        if (!e.kwnames.empty()) fail_at(pos, "invalid syntax for function call expression (positional argument after keyword argument)");
        e.kids.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = node(ExprKind::call, cur().pos);
    e->kids.push_back(std::move(callee));
    parse_call_args(*e);
    return finish(std::move(e));
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (is_op(".")) {
      next();
      name += "." + expect_name();
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr operand, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      const Pos pos = cur().pos;
      auto e = node(ExprKind::filter, pos);
      e->name = dotted_name();
      if (!is_known_filter(e->name)) fail_at(pos, fmt::format("unknown filter '{}'", e->name), Status::unsupported);
      e->kids.push_back(std::move(operand));
      if (is_op("(")) parse_call_args(*e);
      operand = finish(std::move(e));
    }
    return operand;
  }

  ExprPtr parse_test(ExprPtr operand) {
    const Pos pos = next().pos;  // 'is'
    const bool negated = skip_name("not");
    const Pos npos = cur().pos;
    auto e = node(ExprKind::test, pos);
    e->name = dotted_name();
    if (!is_known_test(e->name)) fail_at(npos, fmt::format("unknown test '{}'", e->name), Status::unsupported);
    e->kids.push_back(std::move(operand));
    if (is_op("(")) {
      parse_call_args(*e);
    } else {
      const Tok ty = cur().type;
      const bool arg_start = ty == Tok::name || ty == Tok::string || ty == Tok::integer || ty == Tok::real ||
                             is_op("(") || is_op("[") || is_op("{");
      if (arg_start && !is_name("else") && !is_name("or") && !is_name("and")) {
        if (is_name("is")) fail("you cannot chain multiple tests with 'is'");
        e->kids.push_back(parse_postfix(parse_primary()));
      }
    }
    ExprPtr t = finish(std::move(e));
    if (negated) t = unary(ExprKind::not_, pos, std::move(t));
    return t;
  }

  std::vector<Token> toks_;
  Program& prog_;
  size_t i_ = 0;
  int nest_ = 0;
  int loops_ = 0;
};

}  // namespace

void parse_program(std::string_view source, Program& prog) {
  // Newlines: \r\n, \r and \n all become \n; one trailing newline is dropped
  // (jinja2's keep_trailing_newline=False).
  std::string norm;
  norm.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      norm += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      norm += source[i];
    }
  }
  if (!norm.empty() && norm.back() == '\n') norm.pop_back();
  prog.source = std::move(norm);
  prog.line_starts.assign(1, 0);
  for (size_t i = 0; i < prog.source.size(); ++i)
    if (prog.source[i] == '\n') prog.line_starts.push_back(i + 1);
  Lexer lexer(prog);
  Parser parser(lexer.run(), prog);
  prog.body = parser.parse_template();
}

}  // namespace paca::jinja
