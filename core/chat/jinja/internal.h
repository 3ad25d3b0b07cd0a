// internal.h - what the engine's translation units share: the syntax
// tree (parse.cpp builds it), the interpreter (eval.cpp) and the
// builtin filters, tests, methods and globals (builtins.cpp).
// Private to core/chat/jinja/*.cpp.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja/jinja.h"
#include "util/error.h"

namespace paca::jinja {

// ---- syntax tree -----------------------------------------------------------

// A position is a byte offset into the (newline-normalised) source; errors
// turn it into line and column.
using Pos = uint32_t;

enum class ExprKind : uint8_t {
  constant, name, list, tuple, dict, getattr, getitem, slice, call, filter, test,
  neg, pos, not_, add, sub, mul, div, floordiv, mod, pow, concat, and_, or_, compare, cond,
};
enum class CmpOp : uint8_t { eq, ne, lt, le, gt, ge, in, not_in };

// kids by kind:
//   list/tuple: items; dict: key0, value0, key1, value1, ...
//   getattr: obj (attribute in `name`); getitem: obj, key; slice: obj, start, stop, step (each may be null)
//   call: callee, positional..., keyword values... (names in kwnames)
//   filter/test: operand (null in filter blocks), positional..., keyword values...; name = filter/test
//   unary: x; binary: a, b; concat: a, b, c...; compare: x0, x1, ... with ops[i] between x_i and x_i+1
//   cond: then, test, else (null when absent)
struct Expr {
  ExprKind kind = ExprKind::constant;
  Pos pos = 0;
  Value value;  // constant
  std::string name;
  std::vector<std::unique_ptr<Expr>> kids;
  std::vector<std::string> kwnames;
  std::vector<CmpOp> ops;
  uint32_t depth = 1;
  size_t n_positional() const { return kids.size() - 1 - kwnames.size(); }
};
using ExprPtr = std::unique_ptr<Expr>;

enum class StmtKind : uint8_t { data, output, if_, for_, set, set_block, macro, filter_block, with, break_, continue_ };

// An assignment target: a name, or namespace attribute ns.attr.
struct Target {
  std::string name;
  std::string attr;  // non-empty: ns.attr
};

struct Stmt;
using Body = std::vector<Stmt>;

// Fields by kind:
//   data: text
//   output: expr
//   if_: exprs = one condition per branch, bodies = one per branch + else
//   for_: targets, expr = iterable, cond = filter (may be null), bodies = {body, else}
//   set: targets (several: tuple unpacking), expr
//   set_block: targets (one), filter (may be null), bodies = {body}
//   macro: name, params, exprs = defaults (null when none), bodies = {body}
//   filter_block: filter chain, bodies = {body}
//   with: targets, exprs = values, bodies = {body}
struct Stmt {
  StmtKind kind = StmtKind::data;
  Pos pos = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;
  ExprPtr filter;
  std::vector<Target> targets;
  std::vector<ExprPtr> exprs;
  std::vector<Body> bodies;
  std::string name;
  std::vector<std::string> params;
};

struct Program {
  std::string name;
  std::string source;              // normalised (for positions in error messages)
  std::vector<size_t> line_starts; // offsets of line starts in source
  Body body;

  std::string where(Pos pos) const;  // "<name>:<line>:<col>"
};

// Parses source into prog (parse.cpp).
void parse_program(std::string_view source, Program& prog);

// ---- interpreter -----------------------------------------------------------

// An error that already carries its position.
class LocatedError : public Error {
 public:
  using Error::Error;
};

struct Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;
  const Value* find(std::string_view name) const;
  void set(const std::string& name, Value v);
};
using ScopePtr = std::shared_ptr<Scope>;

// Output text with its user ranges.
struct Out {
  Str str;
};

class Interp {
 public:
  Interp(const Program& prog, const RenderOptions& opt);

  Rendered run(const std::vector<std::pair<std::string, Value>>& vars);

  // Limits and accounting (builtins call these).
  void charge(uint64_t bytes);                 // total allocation budget
  void work(uint64_t bytes);                   // O(n) string work counts against the step budget
  void check_string_size(size_t bytes) const;  // one string
  void check_items(size_t n) const;            // one container
  Value make_str(Str s);                       // charges and wraps
  Value make_list(std::vector<Value> items, bool tuple = false);
  int64_t now() const;

  // Evaluation helpers shared with the builtins.
  Value call(const Value& callee, CallArgs& args);
  Value apply_filter(const std::string& name, const Value& v, CallArgs& args);
  bool apply_test(const std::string& name, const Value& v, CallArgs& args);
  Value get_attr(const Value& obj, const std::string& name);
  Value get_item(const Value& obj, const Value& key);
  std::vector<Value> iterate(const Value& v);  // items of a list/tuple, keys of a dict, characters of a string

  // Runs a macro (eval.cpp).
  Value call_macro(const Stmt& macro, const ScopePtr& closure, CallArgs& args);

 private:
  friend struct EvalGuard;
  enum class Flow { normal, break_, continue_ };

  Flow exec_body(const Body& body);
  Flow exec(const Stmt& s);
  Flow exec_for(const Stmt& s);
  Value eval(const Expr& e);
  Value eval_inner(const Expr& e);
  Value eval_collection(const Expr& e);  // list, tuple, dict
  Value eval_unary(const Expr& e);       // -x, +x
  Value eval_concat(const Expr& e);      // a ~ b ~ ...
  Value eval_compare(const Expr& e);     // chained comparisons and (not) in
  Value eval_call(const Expr& e);
  void collect_args(const Expr& e, size_t first, CallArgs& out);
  Value eval_filter_chain(const Expr& chain, Value input);
  Value capture(const Body& body);
  void assign(const Target& t, Value v);
  void assign_targets(const std::vector<Target>& targets, const Value& v);
  Value lookup(const std::string& name) const;
  void emit(const Str& s);
  void emit_plain(std::string_view s);
  void step();
  [[noreturn]] void fail_at(Pos pos, Status st, const std::string& msg) const;

  const Program& prog_;
  RenderOptions opt_;
  ScopePtr scope_;
  std::vector<Out> outs_;
  uint64_t steps_ = 0;
  uint64_t allocated_ = 0;
  int depth_ = 0;
  Pos pos_ = 0;
};

// ---- builtins (builtins.cpp) ------------------------------------------

bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);
Value builtin_filter(Interp& in, const std::string& name, const Value& v, CallArgs& args);
bool builtin_test(Interp& in, const std::string& name, const Value& v, CallArgs& args);
// The attribute `name` of obj when it is a method of obj's type (bound), else undefined.
Value builtin_method(const Value& obj, const std::string& name);
// raise_exception, strftime_now, range, dict, namespace, ...
std::vector<std::pair<std::string, Value>> builtin_globals();

// Python semantics used by both the interpreter and the builtins.
Value py_add(Interp& in, const Value& a, const Value& b);
int py_compare(const Value& a, const Value& b);  // <0, 0, >0; throws for unorderable types
bool py_contains(const Value& container, const Value& item);
Value py_slice(Interp& in, const Value& obj, const Value& start, const Value& stop, const Value& step);
// Throws "'x' is undefined" style errors when v is undefined.
void require_defined(const Value& v);

// Python string methods on Str, keeping user ranges.
Str str_substr(const Str& s, size_t begin, size_t end);  // bytes
Str str_concat(const Str& a, const Str& b);
// Appends src[begin, end) (bytes) to out with its user ranges; amortised O(end - begin).
void str_append(Str& out, const Str& src, size_t begin, size_t end);
inline void str_append(Str& out, const Str& src) { str_append(out, src, 0, src.s.size()); }

}  // namespace paca::jinja
