// eval.cpp - the interpreter of the Jinja engine: walks the syntax tree
// with jinja2's scoping (a fresh scope per loop iteration, macro and with
// block; if blocks share their parent's), Python semantics for operators,
// and the render limits of jinja.h.
#include <cmath>
#include <limits>

#include "chat/jinja/internal.h"

namespace paca::jinja {

// ---- scopes ----------------------------------------------------------------

const Value* Scope::find(std::string_view name) const {
  for (const Scope* s = this; s != nullptr; s = s->parent.get())
    for (auto it = s->vars.rbegin(); it != s->vars.rend(); ++it)
      if (it->first == name) return &it->second;
  return nullptr;
}

void Scope::set(const std::string& name, Value v) {
  for (auto& kv : vars) {
    if (kv.first == name) {
      kv.second = std::move(v);
      return;
    }
  }
  vars.emplace_back(name, std::move(v));
}

namespace {

// A macro defined by {% macro %}. The closure is cut when the render ends,
// which breaks the cycle scope -> macro -> scope.
class MacroFn : public Callable {
 public:
  MacroFn(const Stmt* stmt, ScopePtr closure) : stmt_(stmt), closure_(std::move(closure)) {}
  Value call(Interp& in, CallArgs& args) override { return in.call_macro(*stmt_, closure_, args); }
  std::string name() const override { return stmt_->name; }
  void release() { closure_.reset(); }

 private:
  const Stmt* stmt_;
  ScopePtr closure_;
};

// loop.cycle(a, b, ...)
class CycleFn : public Callable {
 public:
  explicit CycleFn(size_t index0) : index0_(index0) {}
  Value call(Interp&, CallArgs& a) override {
    check(!a.args.empty(), Status::format, "loop.cycle() needs at least one argument");
    return a.args[index0_ % a.args.size()];
  }
  std::string name() const override { return "cycle"; }

 private:
  size_t index0_;
};

thread_local std::vector<std::weak_ptr<MacroFn>>* t_macros = nullptr;

bool add_overflows(int64_t a, int64_t b, int64_t& r) { return __builtin_add_overflow(a, b, &r); }
bool sub_overflows(int64_t a, int64_t b, int64_t& r) { return __builtin_sub_overflow(a, b, &r); }
bool mul_overflows(int64_t a, int64_t b, int64_t& r) { return __builtin_mul_overflow(a, b, &r); }

[[noreturn]] void overflow() { fail(Status::format, "integer overflow (paca's integers are 64-bit)"); }

[[noreturn]] void bad_operands(const char* op, const Value& a, const Value& b) {
  fail(Status::format, "unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name());
}

bool is_int_like(const Value& v) { return v.is_int() || v.is_bool(); }

}  // namespace

void require_defined(const Value& v) {
  if (v.is_undefined()) throw Error(Status::format, v.undefined_hint().empty() ? "value is undefined" : v.undefined_hint());
}

// ---- Python operators --------------------------------------------------------

Str str_concat(const Str& a, const Str& b) {
  Str out;
  out.s.reserve(a.s.size() + b.s.size());
  out.s = a.s;
  out.user = a.user;
  out.s += b.s;
  spans_copy(out.user, b.user, 0, b.s.size(), a.s.size());
  return out;
}

void str_append(Str& out, const Str& src, size_t begin, size_t end) {
  const size_t at = out.s.size();
  out.s.append(src.s, begin, end - begin);
  spans_copy(out.user, src.user, begin, end, at);
}

Str str_substr(const Str& s, size_t begin, size_t end) {
  Str out;
  out.s = s.s.substr(begin, end - begin);
  spans_copy(out.user, s.user, begin, end, 0);
  return out;
}

Value py_add(Interp& in, const Value& a, const Value& b) {
  require_defined(a);
  require_defined(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_real() || b.is_real()) return Value::real(a.as_double() + b.as_double());
    int64_t r;
    if (add_overflows(a.as_int(), b.as_int(), r)) overflow();
    return Value::integer(r);
  }
  if (a.is_string() && b.is_string()) {
    in.check_string_size(a.s().size() + b.s().size());
    return in.make_str(str_concat(a.str(), b.str()));
  }
  if (a.is_list() && b.is_list() && a.kind() == b.kind()) {
    in.check_items(a.items().size() + b.items().size());
    std::vector<Value> items = a.items();
    items.insert(items.end(), b.items().begin(), b.items().end());
    return in.make_list(std::move(items), a.kind() == Value::Kind::tuple);
  }
  if (a.is_string()) fail(Status::format, "can only concatenate str (not \"{}\") to str", b.type_name());
  if (a.is_list()) fail(Status::format, "can only concatenate {} (not \"{}\") to {}", a.type_name(), b.type_name(), a.type_name());
  bad_operands("+", a, b);
}

int py_compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_real() || b.is_real()) {
      const double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    const int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.s().compare(b.s());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.kind() == b.kind()) {
    const auto &x = a.items(), &y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return py_compare(x[i], y[i]);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  require_defined(a);
  require_defined(b);
  fail(Status::format, "'<' not supported between instances of '{}' and '{}'", a.type_name(), b.type_name());
}

bool py_contains(const Value& c, const Value& item) {
  switch (c.kind()) {
    case Value::Kind::undefined: return false;
    case Value::Kind::string:
      if (!item.is_string()) fail(Status::format, "'in <string>' requires string as left operand, not {}", item.type_name());
      return c.s().find(item.s()) != std::string::npos;
    case Value::Kind::list:
    case Value::Kind::tuple:
      for (const Value& v : c.items())
        if (equals(v, item)) return true;
      return false;
    case Value::Kind::dict: return item.is_string() && c.dict().find(item.s()) != nullptr;
    default: fail(Status::format, "argument of type '{}' is not iterable", c.type_name());
  }
}

Value py_slice(Interp& in, const Value& obj, const Value& start, const Value& stop, const Value& step) {
  require_defined(obj);
  auto idx = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!is_int_like(v)) fail(Status::format, "slice {} must be an integer or None, not {}", what, v.type_name());
    return v.as_int();
  };
  const auto o_start = idx(start, "start"), o_stop = idx(stop, "stop"), o_step = idx(step, "step");
  const int64_t st = o_step.value_or(1);
  check(st != 0, Status::format, "slice step cannot be zero");
  std::vector<size_t> offsets;
  int64_t n;
  if (obj.is_string()) {
    in.work(obj.s().size());
    offsets = utf8_offsets(obj.s());
    n = static_cast<int64_t>(offsets.size()) - 1;
  } else if (obj.is_list()) {
    n = static_cast<int64_t>(obj.items().size());
  } else {
    fail(Status::format, "'{}' object is not subscriptable", obj.type_name());
  }
  auto adjust = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
    return x;
  };
  const int64_t b = adjust(o_start, st < 0 ? n - 1 : 0);
  const int64_t e = adjust(o_stop, st < 0 ? -1 : n);
  std::vector<int64_t> picks;
  if (st > 0) {
    for (int64_t i = b; i < e; i += st) picks.push_back(i);
  } else {
    for (int64_t i = b; i > e; i += st) picks.push_back(i);
  }
  if (obj.is_string()) {
    if (st == 1) {
      if (picks.empty()) return Value::string("");
      return in.make_str(str_substr(obj.str(), offsets[static_cast<size_t>(b)], offsets[static_cast<size_t>(e)]));
    }
    Str out;
    for (int64_t i : picks) {
      const auto k = static_cast<size_t>(i);
      str_append(out, obj.str(), offsets[k], offsets[k + 1]);
    }
    return in.make_str(std::move(out));
  }
  std::vector<Value> items;
  items.reserve(picks.size());
  for (int64_t i : picks) items.push_back(obj.items()[static_cast<size_t>(i)]);
  return in.make_list(std::move(items), obj.kind() == Value::Kind::tuple);
}

namespace {

Value arith(Interp& in, ExprKind k, const Value& a, const Value& b) {
  require_defined(a);
  require_defined(b);
  const char* sym = k == ExprKind::sub ? "-" : k == ExprKind::mul ? "*" : k == ExprKind::div ? "/"
                    : k == ExprKind::floordiv ? "//" : k == ExprKind::mod ? "%" : "**";
  if (k == ExprKind::mul) {
    // Sequence repetition.
    const Value* seq = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
    const Value* count = seq == &a ? &b : &a;
    if (seq != nullptr) {
      if (!is_int_like(*count)) bad_operands("*", a, b);
      const int64_t c = std::max<int64_t>(0, count->as_int());
      if (seq->is_string()) {
        const size_t len = seq->s().size();
        if (len != 0 && static_cast<uint64_t>(c) > (uint64_t{1} << 40) / len) in.check_string_size(SIZE_MAX);
        in.check_string_size(len * static_cast<size_t>(c));
        Str out;
        out.s.reserve(len * static_cast<size_t>(c));
        for (int64_t i = 0; i < c; ++i) out.s += seq->s();
        if (!seq->str().user.empty()) spans_add(out.user, 0, out.s.size());  // conservatively all user text
        return in.make_str(std::move(out));
      }
      const size_t len = seq->items().size();
      if (len != 0 && static_cast<uint64_t>(c) > (uint64_t{1} << 40) / len) in.check_items(SIZE_MAX);
      in.check_items(len * static_cast<size_t>(c));
      std::vector<Value> items;
      for (int64_t i = 0; i < c; ++i) items.insert(items.end(), seq->items().begin(), seq->items().end());
      return in.make_list(std::move(items), seq->kind() == Value::Kind::tuple);
    }
  }
  if (k == ExprKind::mod && a.is_string())
    fail(Status::unsupported, "string formatting with '%' is not supported");
  if (!a.is_number() || !b.is_number()) bad_operands(sym, a, b);
  const bool real = a.is_real() || b.is_real();
  switch (k) {
    case ExprKind::sub: {
      if (real) return Value::real(a.as_double() - b.as_double());
      int64_t r;
      if (sub_overflows(a.as_int(), b.as_int(), r)) overflow();
      return Value::integer(r);
    }
    case ExprKind::mul: {
      if (real) return Value::real(a.as_double() * b.as_double());
      int64_t r;
      if (mul_overflows(a.as_int(), b.as_int(), r)) overflow();
      return Value::integer(r);
    }
    case ExprKind::div:
      check(b.as_double() != 0.0, Status::format, "division by zero");
      return Value::real(a.as_double() / b.as_double());
    case ExprKind::floordiv:
    case ExprKind::mod: {
      if (real) {
        const double x = a.as_double(), y = b.as_double();
        check(y != 0.0, Status::format, "{}", k == ExprKind::mod ? "float modulo" : "float floor division by zero");
        double m = std::fmod(x, y);
        if (m != 0.0 && ((m < 0) != (y < 0))) m += y;
        if (k == ExprKind::mod) return Value::real(m);
        return Value::real(std::floor((x - m) / y + 0.5));
      }
      const int64_t x = a.as_int(), y = b.as_int();
      check(y != 0, Status::format, "{}", k == ExprKind::mod ? "integer modulo by zero" : "integer division or modulo by zero");
      if (x == std::numeric_limits<int64_t>::min() && y == -1) {
        if (k == ExprKind::mod) return Value::integer(0);
        overflow();
      }
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        m += y;
        --q;
      }
      return Value::integer(k == ExprKind::mod ? m : q);
    }
    case ExprKind::pow: {
      if (!real && b.as_int() >= 0) {
        int64_t base = a.as_int(), e = b.as_int(), r = 1;
        while (e > 0) {
          if (e & 1)
            if (mul_overflows(r, base, r)) overflow();
          e >>= 1;
          if (e > 0 && mul_overflows(base, base, base)) overflow();
        }
        return Value::integer(r);
      }
      if (a.as_double() == 0.0 && b.as_double() < 0) fail(Status::format, "0.0 cannot be raised to a negative power");
      return Value::real(std::pow(a.as_double(), b.as_double()));
    }
    default: break;
  }
  fail(Status::internal, "bad arithmetic operator");
}

}  // namespace

// ---- interpreter -------------------------------------------------------------

struct EvalGuard {
  Interp& in;
  explicit EvalGuard(Interp& i) : in(i) {
    if (++in.depth_ > in.opt_.limits.max_depth) {
      --in.depth_;
      fail(Status::format, "template evaluation nested more than {} levels deep (recursion?)", in.opt_.limits.max_depth);
    }
  }
  ~EvalGuard() { --in.depth_; }
};

Interp::Interp(const Program& prog, const RenderOptions& opt) : prog_(prog), opt_(opt) {}

void Interp::step() {
  if (++steps_ > opt_.limits.max_steps)
    fail(Status::format, "template exceeded {} evaluation steps (endless loop?)", opt_.limits.max_steps);
}

void Interp::work(uint64_t bytes) {
  steps_ += bytes >> 8;
  if (steps_ > opt_.limits.max_steps)
    fail(Status::format, "template exceeded {} evaluation steps (endless loop?)", opt_.limits.max_steps);
}

void Interp::charge(uint64_t bytes) {
  allocated_ += bytes;
  if (allocated_ > opt_.limits.max_alloc)
    fail(Status::format, "template allocated more than {} bytes", opt_.limits.max_alloc);
}

void Interp::check_string_size(size_t bytes) const {
  if (bytes > opt_.limits.max_string)
    fail(Status::format, "template built a string of more than {} bytes", opt_.limits.max_string);
}

void Interp::check_items(size_t n) const {
  if (n > opt_.limits.max_items) fail(Status::format, "template built a list of more than {} items", opt_.limits.max_items);
}

Value Interp::make_str(Str s) {
  check_string_size(s.s.size());
  work(s.s.size());
  charge(s.s.size() + 16 * s.user.size());
  return Value::string(std::move(s));
}

Value Interp::make_list(std::vector<Value> items, bool tuple) {
  check_items(items.size());
  work(256 * static_cast<uint64_t>(items.size()));
  charge(32 * items.size());
  return Value::list(std::move(items), tuple);
}

int64_t Interp::now() const {
  if (opt_.now) return *opt_.now;
  return static_cast<int64_t>(std::time(nullptr));
}

void Interp::fail_at(Pos pos, Status st, const std::string& msg) const {
  throw LocatedError(st, prog_.where(pos) + ": " + msg);
}

void Interp::emit(const Str& s) {
  Str& out = outs_.back().str;
  if (out.s.size() + s.s.size() > opt_.limits.max_output)
    fail(Status::format, "template output exceeds {} bytes", opt_.limits.max_output);
  const size_t at = out.s.size();
  out.s += s.s;
  spans_copy(out.user, s.user, 0, s.s.size(), at);
}

void Interp::emit_plain(std::string_view s) {
  Str& out = outs_.back().str;
  if (out.s.size() + s.size() > opt_.limits.max_output)
    fail(Status::format, "template output exceeds {} bytes", opt_.limits.max_output);
  out.s += s;
}

Value Interp::lookup(const std::string& name) const {
  if (const Value* v = scope_->find(name)) return *v;
  return Value::undefined("'" + name + "' is undefined");
}

Rendered Interp::run(const std::vector<std::pair<std::string, Value>>& vars) {
  std::vector<std::weak_ptr<MacroFn>> macros;
  t_macros = &macros;
  struct Cleanup {
    std::vector<std::weak_ptr<MacroFn>>& m;
    Interp& in;
    ~Cleanup() {
      for (auto& w : m)
        if (auto p = w.lock()) p->release();
      t_macros = nullptr;
      in.scope_.reset();
    }
  } cleanup{macros, *this};

  auto root = std::make_shared<Scope>();
  for (auto& [k, v] : builtin_globals()) root->set(k, v);
  for (const auto& [k, v] : vars) root->set(k, v);
  scope_ = std::make_shared<Scope>();
  scope_->parent = root;
  outs_.clear();
  outs_.emplace_back();
  exec_body(prog_.body);
  Rendered r;
  r.text = std::move(outs_.back().str.s);
  r.user = std::move(outs_.back().str.user);
  return r;
}

Interp::Flow Interp::exec_body(const Body& body) {
  for (const Stmt& s : body) {
    const Flow f = exec(s);
    if (f != Flow::normal) return f;
  }
  return Flow::normal;
}

Value Interp::capture(const Body& body) {
  outs_.emplace_back();
  struct Pop {
    std::vector<Out>& o;
    ~Pop() { o.pop_back(); }
  } pop{outs_};
  exec_body(body);
  return make_str(std::move(outs_.back().str));
}

void Interp::assign(const Target& t, Value v) {
  if (t.attr.empty()) {
    scope_->set(t.name, std::move(v));
    return;
  }
  const Value* ns = scope_->find(t.name);
  if (ns == nullptr || ns->kind() != Value::Kind::ns)
    fail(Status::format, "cannot assign attribute '{}' on '{}': it is not a namespace()", t.attr, t.name);
  if (v.has_ns()) fail(Status::unsupported, "a namespace attribute cannot hold a namespace");
  ns->dict().set(Value::string(t.attr), std::move(v));
}

void Interp::assign_targets(const std::vector<Target>& targets, const Value& v) {
  if (targets.size() == 1) return assign(targets[0], v);
  std::vector<Value> items = iterate(v);
  if (items.size() < targets.size())
    fail(Status::format, "not enough values to unpack (expected {}, got {})", targets.size(), items.size());
  if (items.size() > targets.size()) fail(Status::format, "too many values to unpack (expected {})", targets.size());
  for (size_t i = 0; i < targets.size(); ++i) assign(targets[i], items[i]);
}

std::vector<Value> Interp::iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::undefined: return {};
    case Value::Kind::list:
    case Value::Kind::tuple: work(256 * static_cast<uint64_t>(v.items().size())); return v.items();
    case Value::Kind::dict: {
      work(256 * static_cast<uint64_t>(v.dict().size()));
      std::vector<Value> keys;
      keys.reserve(v.dict().size());
      for (const auto& kv : v.dict().items()) keys.push_back(kv.first);
      return keys;
    }
    case Value::Kind::string: {
      work(v.s().size());
      charge(64 * utf8_length(v.s()));
      std::vector<Value> chars;
      const std::string& t = v.s();
      for (size_t i = 0; i < t.size();) {
        const size_t b = i;
        utf8_next(t, i);
        chars.push_back(Value::string(str_substr(v.str(), b, i)));
      }
      return chars;
    }
    default: fail(Status::format, "'{}' object is not iterable", v.type_name());
  }
}

Interp::Flow Interp::exec(const Stmt& s) {
  step();
  EvalGuard guard(*this);
  try {
    switch (s.kind) {
      case StmtKind::data: emit_plain(s.text); return Flow::normal;
      case StmtKind::output: {
        const Value v = eval(*s.expr);
        if (v.is_string()) emit(v.str());
        else emit(to_str(v));
        return Flow::normal;
      }
      case StmtKind::if_:
        for (size_t i = 0; i < s.exprs.size(); ++i)
          if (eval(*s.exprs[i]).truthy()) return exec_body(s.bodies[i]);
        return exec_body(s.bodies.back());
      case StmtKind::for_: return exec_for(s);
      case StmtKind::set: assign_targets(s.targets, eval(*s.expr)); return Flow::normal;
      case StmtKind::set_block: {
        Value v = capture(s.bodies[0]);
        if (s.filter) v = eval_filter_chain(*s.filter, v);
        assign(s.targets[0], std::move(v));
        return Flow::normal;
      }
      case StmtKind::macro: {
        auto fn = std::make_shared<MacroFn>(&s, scope_);
        if (t_macros != nullptr) t_macros->push_back(fn);
        scope_->set(s.name, Value::callable(fn));
        return Flow::normal;
      }
      case StmtKind::filter_block: {
        const Value v = eval_filter_chain(*s.filter, capture(s.bodies[0]));
        emit(to_str(v));
        return Flow::normal;
      }
      case StmtKind::with: {
        std::vector<Value> values;
        for (const auto& e : s.exprs) values.push_back(eval(*e));
        auto inner = std::make_shared<Scope>();
        inner->parent = scope_;
        ScopePtr saved = scope_;
        scope_ = inner;
        struct Restore {
          ScopePtr& s;
          ScopePtr saved;
          ~Restore() { s = saved; }
        } restore{scope_, saved};
        for (size_t i = 0; i < s.targets.size(); ++i) assign(s.targets[i], values[i]);
        return exec_body(s.bodies[0]);
      }
      case StmtKind::break_: return Flow::break_;
      case StmtKind::continue_: return Flow::continue_;
    }
  } catch (const LocatedError&) {
    throw;
  } catch (const Error& e) {
    throw LocatedError(e.status(), prog_.where(s.pos) + ": " + e.what());
  }
  return Flow::normal;
}

Interp::Flow Interp::exec_for(const Stmt& s) {
  const Value seq = eval(*s.expr);
  if (seq.kind() == Value::Kind::ns) fail(Status::format, "'Namespace' object is not iterable");
  std::vector<Value> items = iterate(seq);
  ScopePtr outer = scope_;
  struct Restore {
    ScopePtr& s;
    ScopePtr saved;
    ~Restore() { s = saved; }
  } restore{scope_, outer};

  if (s.cond) {
    std::vector<Value> kept;
    for (const Value& it : items) {
      step();
      scope_ = std::make_shared<Scope>();
      scope_->parent = outer;
      assign_targets(s.targets, it);
      if (eval(*s.cond).truthy()) kept.push_back(it);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    scope_ = std::make_shared<Scope>();
    scope_->parent = outer;
    return exec_body(s.bodies[1]);
  }
  const size_t n = items.size();
  for (size_t i = 0; i < n; ++i) {
    step();
    scope_ = std::make_shared<Scope>();
    scope_->parent = outer;
    // The loop object; its keys are shared, immutable strings.
    static const Value keys[] = {Value::string("index"), Value::string("index0"), Value::string("revindex"),
                                 Value::string("revindex0"), Value::string("first"), Value::string("last"),
                                 Value::string("length"), Value::string("depth"), Value::string("depth0"),
                                 Value::string("previtem"), Value::string("nextitem"), Value::string("cycle")};
    static const Value no_prev = Value::undefined("there is no previous item");
    static const Value no_next = Value::undefined("there is no next item");
    auto loop = std::make_shared<Dict>();
    loop->reserve(12);
    const auto si = static_cast<int64_t>(i), sn = static_cast<int64_t>(n);
    loop->append(keys[0], Value::integer(si + 1));
    loop->append(keys[1], Value::integer(si));
    loop->append(keys[2], Value::integer(sn - si));
    loop->append(keys[3], Value::integer(sn - si - 1));
    loop->append(keys[4], Value::boolean(i == 0));
    loop->append(keys[5], Value::boolean(i + 1 == n));
    loop->append(keys[6], Value::integer(sn));
    loop->append(keys[7], Value::integer(1));
    loop->append(keys[8], Value::integer(0));
    loop->append(keys[9], i > 0 ? items[i - 1] : no_prev);
    loop->append(keys[10], i + 1 < n ? items[i + 1] : no_next);
    loop->append(keys[11], Value::callable(std::make_shared<CycleFn>(i)));
    scope_->set("loop", Value::dict(std::move(loop)));
    assign_targets(s.targets, items[i]);
    const Flow f = exec_body(s.bodies[0]);
    if (f == Flow::break_) break;
  }
  return Flow::normal;
}

Value Interp::eval(const Expr& e) {
  step();
  EvalGuard guard(*this);
  try {
    return eval_inner(e);
  } catch (const LocatedError&) {
    throw;
  } catch (const Error& err) {
    throw LocatedError(err.status(), prog_.where(e.pos) + ": " + err.what());
  }
}

void Interp::collect_args(const Expr& e, size_t first, CallArgs& out) {
  const size_t n_kw = e.kwnames.size();
  const size_t n_pos = e.kids.size() - first - n_kw;
  for (size_t i = 0; i < n_pos; ++i) out.args.push_back(eval(*e.kids[first + i]));
  for (size_t i = 0; i < n_kw; ++i) out.kwargs.emplace_back(e.kwnames[i], eval(*e.kids[first + n_pos + i]));
}

Value Interp::eval_call(const Expr& e) {
  const Expr& callee = *e.kids[0];
  Value fn;
  if (callee.kind == ExprKind::getattr) fn = get_attr(eval(*callee.kids[0]), callee.name);
  else fn = eval(callee);
  CallArgs args;
  collect_args(e, 1, args);
  return call(fn, args);
}

Value Interp::call(const Value& fn, CallArgs& args) {
  require_defined(fn);
  if (!fn.is_callable()) fail(Status::format, "'{}' object is not callable", fn.type_name());
  return fn.fn().call(*this, args);
}

Value Interp::eval_filter_chain(const Expr& chain, Value input) {
  Value v = chain.kids[0] ? eval_filter_chain(*chain.kids[0], std::move(input)) : std::move(input);
  CallArgs args;
  collect_args(chain, 1, args);
  return apply_filter(chain.name, v, args);
}

Value Interp::apply_filter(const std::string& name, const Value& v, CallArgs& args) {
  return builtin_filter(*this, name, v, args);
}

bool Interp::apply_test(const std::string& name, const Value& v, CallArgs& args) {
  return builtin_test(*this, name, v, args);
}

Value Interp::get_attr(const Value& obj, const std::string& name) {
  require_defined(obj);
  if (obj.kind() == Value::Kind::ns) {
    if (const Value* v = obj.dict().find(name)) return *v;
    return Value::undefined("'Namespace' object has no attribute '" + name + "'");
  }
  // Methods first (as jinja2's getattr does), then dict keys.
  Value m = builtin_method(obj, name);
  if (m.is_callable() || !m.undefined_hint().empty()) return m;  // a method, or an unsafe one (hint says why)
  if (obj.kind() == Value::Kind::dict) {
    if (const Value* v = obj.dict().find(name)) return *v;
  }
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", obj.type_name(), name));
}

Value Interp::get_item(const Value& obj, const Value& key) {
  require_defined(obj);
  switch (obj.kind()) {
    case Value::Kind::dict:
    case Value::Kind::ns:
      if (key.is_string()) {
        if (const Value* v = obj.dict().find(key.s())) return *v;
        if (obj.kind() == Value::Kind::dict) {
          Value m = builtin_method(obj, key.s());
          if (m.is_callable()) return m;
        }
        return Value::undefined(fmt::format("'{} object' has no attribute '{}'", obj.type_name(), key.s()));
      }
      return Value::undefined(fmt::format("'{} object' has no element {}", obj.type_name(), to_repr(key).s));
    case Value::Kind::list:
    case Value::Kind::tuple:
    case Value::Kind::string: {
      if (is_int_like(key)) {
        int64_t i = key.as_int();
        if (obj.is_string()) {
          const std::string& t = obj.s();
          work(t.size());
          if (i < 0) i += static_cast<int64_t>(utf8_length(t));
          if (i < 0) return Value::undefined(fmt::format("'str object' has no element {}", key.as_int()));
          size_t pos = 0;
          for (int64_t k = 0; k < i && pos < t.size(); ++k) utf8_next(t, pos);
          if (pos >= t.size()) return Value::undefined(fmt::format("'str object' has no element {}", key.as_int()));
          size_t end = pos;
          utf8_next(t, end);
          return Value::string(str_substr(obj.str(), pos, end));
        }
        const auto n = static_cast<int64_t>(obj.items().size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undefined(fmt::format("'{} object' has no element {}", obj.type_name(), key.as_int()));
        return obj.items()[static_cast<size_t>(i)];
      }
      if (key.is_string()) return get_attr(obj, key.s());
      return Value::undefined(fmt::format("'{} object' has no element {}", obj.type_name(), to_repr(key).s));
    }
    default:
      return Value::undefined(fmt::format("'{} object' has no element {}", obj.type_name(), to_repr(key).s));
  }
}

Value Interp::eval_collection(const Expr& e) {
  if (e.kind != ExprKind::dict) {
    std::vector<Value> items;
    items.reserve(e.kids.size());
    for (const auto& k : e.kids) items.push_back(eval(*k));
    return make_list(std::move(items), e.kind == ExprKind::tuple);
  }
  auto d = std::make_shared<Dict>();
  for (size_t i = 0; i + 1 < e.kids.size(); i += 2) {
    Value k = eval(*e.kids[i]);
    if (!k.is_string()) fail(Status::unsupported, "dict keys must be strings (got {})", k.type_name());
    d->set(std::move(k), eval(*e.kids[i + 1]));
  }
  charge(48 * d->size());
  return Value::dict(std::move(d));
}

Value Interp::eval_unary(const Expr& e) {
  const Value v = eval(*e.kids[0]);
  require_defined(v);
  if (!v.is_number()) fail(Status::format, "bad operand type for unary {}: '{}'", e.kind == ExprKind::neg ? '-' : '+', v.type_name());
  if (e.kind == ExprKind::pos) return v.is_real() ? v : Value::integer(v.as_int());
  if (v.is_real()) return Value::real(-v.as_double());
  if (v.as_int() == std::numeric_limits<int64_t>::min()) overflow();
  return Value::integer(-v.as_int());
}

Value Interp::eval_concat(const Expr& e) {
  Str out;
  for (const auto& k : e.kids) {
    const Value v = eval(*k);
    const Str piece = to_str(v);
    check_string_size(out.s.size() + piece.s.size());
    str_append(out, piece);
  }
  return make_str(std::move(out));
}

// a < b <= c ...: each operand evaluated once, left to right, stopping at the
// first false link. Comparing or searching big strings and lists is O(n): it
// counts as work.
Value Interp::eval_compare(const Expr& e) {
  auto cost = [](const Value& v) -> uint64_t {
    if (v.is_string()) return v.s().size();
    if (v.is_list()) return 256 * static_cast<uint64_t>(v.items().size());
    if (v.kind() == Value::Kind::dict) return 256 * static_cast<uint64_t>(v.dict().size());
    return 0;
  };
  Value left = eval(*e.kids[0]);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    Value right = eval(*e.kids[i + 1]);
    work(cost(left) + cost(right));
    bool r = false;
    switch (e.ops[i]) {
      case CmpOp::eq: r = equals(left, right); break;
      case CmpOp::ne: r = !equals(left, right); break;
      case CmpOp::lt: r = py_compare(left, right) < 0; break;
      case CmpOp::le: r = py_compare(left, right) <= 0; break;
      case CmpOp::gt: r = py_compare(left, right) > 0; break;
      case CmpOp::ge: r = py_compare(left, right) >= 0; break;
      case CmpOp::in: r = py_contains(right, left); break;
      case CmpOp::not_in: r = !py_contains(right, left); break;
    }
    if (!r) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Interp::eval_inner(const Expr& e) {
  pos_ = e.pos;
  switch (e.kind) {
    case ExprKind::constant: return e.value;
    case ExprKind::name: return lookup(e.name);
    case ExprKind::list:
    case ExprKind::tuple:
    case ExprKind::dict: return eval_collection(e);
    case ExprKind::getattr: return get_attr(eval(*e.kids[0]), e.name);
    case ExprKind::getitem: {
      const Value obj = eval(*e.kids[0]);
      return get_item(obj, eval(*e.kids[1]));
    }
    case ExprKind::slice: {
      const Value obj = eval(*e.kids[0]);
      Value part[3];
      for (int i = 0; i < 3; ++i)
        part[i] = e.kids[static_cast<size_t>(i) + 1] ? eval(*e.kids[static_cast<size_t>(i) + 1]) : Value::none();
      return py_slice(*this, obj, part[0], part[1], part[2]);
    }
    case ExprKind::call: return eval_call(e);
    case ExprKind::filter: {
      const Value v = eval(*e.kids[0]);
      CallArgs args;
      collect_args(e, 1, args);
      return apply_filter(e.name, v, args);
    }
    case ExprKind::test: {
      const Value v = eval(*e.kids[0]);
      CallArgs args;
      collect_args(e, 1, args);
      return Value::boolean(apply_test(e.name, v, args));
    }
    case ExprKind::neg:
    case ExprKind::pos: return eval_unary(e);
    case ExprKind::not_: return Value::boolean(!eval(*e.kids[0]).truthy());
    case ExprKind::add: {
      const Value a = eval(*e.kids[0]);
      return py_add(*this, a, eval(*e.kids[1]));
    }
    case ExprKind::sub:
    case ExprKind::mul:
    case ExprKind::div:
    case ExprKind::floordiv:
    case ExprKind::mod:
    case ExprKind::pow: {
      const Value a = eval(*e.kids[0]);
      return arith(*this, e.kind, a, eval(*e.kids[1]));
    }
    case ExprKind::concat: return eval_concat(e);
    case ExprKind::and_: {
      Value a = eval(*e.kids[0]);
      if (!a.truthy()) return a;
      return eval(*e.kids[1]);
    }
    case ExprKind::or_: {
      Value a = eval(*e.kids[0]);
      if (a.truthy()) return a;
      return eval(*e.kids[1]);
    }
    case ExprKind::compare: return eval_compare(e);
    case ExprKind::cond: {
      if (eval(*e.kids[1]).truthy()) return eval(*e.kids[0]);
      if (e.kids[2]) return eval(*e.kids[2]);
      return Value::undefined("the conditional expression has no else branch");
    }
  }
  fail(Status::internal, "bad expression node");
}

Value Interp::call_macro(const Stmt& m, const ScopePtr& closure, CallArgs& args) {
  EvalGuard guard(*this);
  auto sc = std::make_shared<Scope>();
  sc->parent = closure ? closure : scope_;
  std::vector<bool> bound(m.params.size(), false);
  std::vector<Value> varargs;
  auto kwargs = std::make_shared<Dict>();
  for (size_t i = 0; i < args.args.size(); ++i) {
    if (i < m.params.size()) {
      sc->set(m.params[i], args.args[i]);
      bound[i] = true;
    } else {
      varargs.push_back(args.args[i]);
    }
  }
  for (auto& [k, v] : args.kwargs) {
    size_t i = 0;
    while (i < m.params.size() && m.params[i] != k) ++i;
    if (i < m.params.size()) {
      if (bound[i]) fail(Status::format, "macro '{}' got multiple values for argument '{}'", m.name, k);
      sc->set(k, v);
      bound[i] = true;
    } else {
      kwargs->set(Value::string(k), v);
    }
  }
  ScopePtr saved = scope_;
  scope_ = sc;
  struct Restore {
    ScopePtr& s;
    ScopePtr saved;
    ~Restore() { s = saved; }
  } restore{scope_, saved};
  for (size_t i = 0; i < m.params.size(); ++i) {
    if (bound[i]) continue;
    if (m.exprs[i]) sc->set(m.params[i], eval(*m.exprs[i]));
    else sc->set(m.params[i], Value::undefined("parameter '" + m.params[i] + "' was not provided"));
  }
  sc->set("varargs", make_list(std::move(varargs), true));
  sc->set("kwargs", Value::dict(std::move(kwargs)));
  return capture(m.bodies[0]);
}

// ---- Template ------------------------------------------------------------------

Template Template::parse(std::string_view source, std::string name) {
  auto prog = std::make_shared<Program>();
  prog->name = std::move(name);
  parse_program(source, *prog);
  Template t;
  t.prog_ = std::move(prog);
  return t;
}

Rendered Template::render(const std::vector<std::pair<std::string, Value>>& vars, const RenderOptions& opt) const {
  check(prog_ != nullptr, Status::state, "render() of an empty template");
  Interp in(*prog_, opt);
  return in.run(vars);
}

const std::string& Template::name() const {
  static const std::string empty;
  return prog_ ? prog_->name : empty;
}

}  // namespace paca::jinja
