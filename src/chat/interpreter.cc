#include "chat/interpreter.h"

#include "chat/lexer.h"

namespace kvr::chat {

Value Object::Call(Interp& in, const Args& /*args*/) {
  in.Fail(std::string("'") + TypeName() + "' object is not callable");
  return Value();
}

const Value* Scope::Find(int symbol) const {
  for (const Scope* s = this; s != nullptr; s = s->parent.get()) {
    for (const auto& [sym, v] : s->vars) {
      if (sym == symbol) return &v;
    }
  }
  return nullptr;
}

void Scope::Set(int symbol, Value v) {
  for (auto& [sym, old] : vars) {
    if (sym == symbol) {
      old = std::move(v);
      return;
    }
  }
  vars.emplace_back(symbol, std::move(v));
}

namespace {

// A macro or the body of a call block (`caller`), closed over its defining frame.
class MacroObject : public Object {
 public:
  MacroObject(const Stmt* stmt, std::shared_ptr<Scope> closure)
      : stmt_(stmt), closure_(std::move(closure)) {}
  const char* TypeName() const override { return "Macro"; }
  Value Call(Interp& in, const Args& args) override {
    return in.CallMacro(*stmt_, closure_, args, nullptr);
  }

 private:
  const Stmt* stmt_;
  std::shared_ptr<Scope> closure_;
};

// loop.cycle(a, b, ...): the argument at loop.index0 modulo the argument count.
class CycleObject : public Object {
 public:
  explicit CycleObject(int64_t index0) : index0_(index0) {}
  const char* TypeName() const override { return "method"; }
  Value Call(Interp& in, const Args& args) override {
    if (args.pos.empty()) {
      in.Fail("no items for cycling given");
      return Value();
    }
    return args.pos[static_cast<size_t>(index0_) % args.pos.size()];
  }

 private:
  int64_t index0_;
};

// Jinja2's LoopContext. One per loop, updated in place each iteration.
class LoopObject : public Object {
 public:
  explicit LoopObject(Value seq) : seq_(std::move(seq)), items_(&seq_.list()) {}
  const char* TypeName() const override { return "LoopContext"; }
  bool Callable() const override { return false; }
  void set_index(size_t i) { index0_ = static_cast<int64_t>(i); }

  Value GetAttr(std::string_view name) const override {
    auto n = static_cast<int64_t>(items_->size());
    if (name == "index0") return Value(index0_);
    if (name == "index") return Value(index0_ + 1);
    if (name == "revindex") return Value(n - index0_);
    if (name == "revindex0") return Value(n - index0_ - 1);
    if (name == "first") return Value(index0_ == 0);
    if (name == "last") return Value(index0_ + 1 == n);
    if (name == "length") return Value(n);
    if (name == "depth") return Value(1);
    if (name == "depth0") return Value(0);
    if (name == "previtem") return index0_ > 0 ? (*items_)[index0_ - 1] : Value();
    if (name == "nextitem") return index0_ + 1 < n ? (*items_)[index0_ + 1] : Value();
    if (name == "cycle") return Value::FromObject(std::make_shared<CycleObject>(index0_));
    return Value();
  }

 private:
  Value seq_;
  const List* items_;
  int64_t index0_ = 0;
};

}  // namespace

Interp::Interp(const Program& prog, const RenderLimits& limits, const std::tm& now)
    : prog_(prog), limits_(limits), now_(now) {}

// Also run by the destructor, so that a render left early (an exception caught by the caller)
// frees its reference cycles too.
Interp::~Interp() { ReleaseCycles(); }

void Interp::ReleaseCycles() {
  scope_.reset();
  for (const auto& s : closure_scopes_) s->vars.clear();
  for (const Value& ns : namespaces_) ns.mutable_namespace().items.clear();
  closure_scopes_.clear();
  namespaces_.clear();
}

absl::Status Interp::Render(const Dict& context, std::string* out) {
  scope_ = std::make_shared<Scope>(nullptr);
  for (const auto& [k, v] : context.items) {
    auto it = prog_.symbol_ids.find(k);
    if (it != prog_.symbol_ids.end()) scope_->Set(it->second, v);
  }
  out_ = out;
  Exec(prog_.body);
  ReleaseCycles();
  if (!failed_) return absl::OkStatus();
  if (raised_) return absl::InvalidArgumentError(error_);
  if (error_.rfind("resource limit", 0) == 0) return absl::ResourceExhaustedError(error_);
  std::string where =
      error_positioned_ ? " at " + DescribePosition(prog_.source, error_offset_) : "";
  return absl::InvalidArgumentError("template error" + where + ": " + error_);
}

void Interp::Fail(std::string msg, bool raised) {
  if (failed_) return;
  failed_ = true;
  raised_ = raised;
  error_ = std::move(msg);
}

void Interp::FailAt(const Expr& e, std::string msg) {
  Fail(std::move(msg));
  if (!error_positioned_) {
    error_positioned_ = true;
    error_offset_ = e.offset;
  }
}

bool Interp::ChargeExceeded() {
  Fail("resource limit: template exceeded " + std::to_string(limits_.max_steps) + " steps");
  return false;
}

bool Interp::CheckSize(size_t n) {
  if (n <= limits_.max_output_bytes) return Charge(n / 64);
  Fail("resource limit: value of " + std::to_string(n) + " exceeds the size cap");
  return false;
}

void Interp::Emit(const Value& v) {
  AppendStr(v, out_);
  if (out_->size() > limits_.max_output_bytes) {
    Fail("resource limit: output exceeds " + std::to_string(limits_.max_output_bytes) + " bytes");
  }
}

void Interp::Exec(const Body& body) {
  for (const StmtPtr& s : body) {
    if (failed_ || flow_ != Flow::kNormal) return;
    if (!Charge(1)) return;
    ExecStmt(*s);
  }
}

std::string Interp::Capture(const Body& body) {
  std::string buf;
  std::string* saved = out_;
  out_ = &buf;
  Exec(body);
  out_ = saved;
  return buf;
}

void Interp::ExecStmt(const Stmt& s) {
  switch (s.kind) {
    case StmtKind::kText:
      out_->append(s.text);
      if (out_->size() > limits_.max_output_bytes) Emit(Value());
      return;
    case StmtKind::kPrint:
      return Emit(Eval(*s.exprs[0]));
    case StmtKind::kIf:
      for (size_t i = 0; i < s.exprs.size(); ++i) {
        Value c = Eval(*s.exprs[i]);
        if (failed_) return;
        if (c.Truthy()) return Exec(s.bodies[i]);
      }
      return Exec(s.bodies.back());
    case StmtKind::kFor:
      return ExecFor(s);
    case StmtKind::kSet: {
      Value v = Eval(*s.exprs[0]);
      if (!failed_) Assign(s.target, std::move(v));
      return;
    }
    case StmtKind::kSetBlock:
    case StmtKind::kFilterBlock: {
      Value text(Capture(s.bodies[0]));
      if (failed_) return;
      if (s.exprs[0] != nullptr) {
        const Value* saved = filter_input_;
        filter_input_ = &text;
        text = Eval(*s.exprs[0]);
        filter_input_ = saved;
      }
      if (s.kind == StmtKind::kSetBlock) return Assign(s.target, std::move(text));
      return Emit(text);
    }
    case StmtKind::kMacro:
      closure_scopes_.push_back(scope_);
      scope_->Set(s.symbol, Value::FromObject(std::make_shared<MacroObject>(&s, scope_)));
      return;
    case StmtKind::kCallBlock:
      return ExecCallBlock(s);
    case StmtKind::kBreak:
      flow_ = Flow::kBreak;
      return;
    case StmtKind::kContinue:
      flow_ = Flow::kContinue;
      return;
    case StmtKind::kScope:
      return Exec(s.bodies[0]);
  }
}

void Interp::Assign(const Target& t, Value v) {
  // Values only grow deeper across statements through assignments (`ns.x = [ns.x]` in a loop);
  // within one expression the parser's nesting limit bounds them. Python would build the value
  // and fail (RecursionError) printing it; we stop before printing or freeing it recurses
  // through the whole stack.
  if (v.depth() > kMaxValueDepth) {
    return Fail("resource limit: value nested deeper than " + std::to_string(kMaxValueDepth) +
                " levels");
  }
  if (t.kind == Target::Kind::kName) return scope_->Set(t.symbols[0], std::move(v));
  if (t.kind == Target::Kind::kNamespaceAttr) {
    const Value* ns = scope_->Find(t.symbols[0]);
    if (ns == nullptr || !ns->is_namespace()) {
      return Fail("cannot assign attribute on non-namespace object");
    }
    ns->mutable_namespace().Set(t.attr, std::move(v));
    return;
  }
  std::vector<Value> items;
  const List* shared = nullptr;
  if (!Iterate(v, &items, &shared)) return;
  const List& seq = shared ? *shared : items;
  if (seq.size() != t.symbols.size()) {
    return Fail(seq.size() < t.symbols.size()
                    ? "not enough values to unpack (expected " + std::to_string(t.symbols.size()) +
                          ", got " + std::to_string(seq.size()) + ")"
                    : "too many values to unpack (expected " + std::to_string(t.symbols.size()) +
                          ")");
  }
  for (size_t i = 0; i < seq.size(); ++i) scope_->Set(t.symbols[i], seq[i]);
}

// The items of an iterable: lists share their storage, dicts give keys, strings code points.
bool Interp::Iterate(const Value& v, std::vector<Value>* items, const List** shared) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return true;
    case Value::Kind::kList:
    case Value::Kind::kGenerator:
      *shared = &v.list();
      return true;
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      const Dict& d = v.is_dict() ? v.dict() : v.mutable_namespace();
      items->reserve(d.items.size());
      for (size_t i = 0; i < d.items.size(); ++i) items->push_back(d.KeyAt(i));
      return Charge(d.items.size());
    }
    case Value::Kind::kString: {
      const std::string& s = v.str();
      for (size_t i = 0; i < s.size();) {
        size_t b = i;
        DecodeUtf8(s, &i);
        items->emplace_back(s.substr(b, i - b));
      }
      return Charge(items->size());
    }
    default:
      Fail(std::string("'") + v.TypeName() + "' object is not iterable");
      return false;
  }
}

void Interp::ExecFor(const Stmt& s) {
  Value iterable = Eval(*s.exprs[0]);
  if (failed_) return;
  std::vector<Value> own;
  const List* shared = nullptr;
  if (!Iterate(iterable, &own, &shared)) return;
  // The loop object keeps the sequence alive: `loop` may be stored and outlive this frame.
  Value seq =
      shared && iterable.is_list() ? iterable : Value::FromList(shared ? *shared : std::move(own));
  auto saved = scope_;
  scope_ = std::make_shared<Scope>(saved);
  if (s.exprs[1] != nullptr) {  // `for x in xs if cond`: loop.* counts the kept items only
    List filtered;
    for (const Value& item : seq.list()) {
      Assign(s.target, item);
      Value keep = Eval(*s.exprs[1]);
      if (failed_) break;
      if (keep.Truthy()) filtered.push_back(item);
    }
    seq = Value::FromList(std::move(filtered));
  }
  const List* items = &seq.list();
  auto loop = std::make_shared<LoopObject>(seq);
  Value loop_value = Value::FromObject(loop);
  for (size_t i = 0; i < items->size() && !failed_; ++i) {
    Assign(s.target, (*items)[i]);
    loop->set_index(i);
    scope_->Set(prog_.well_known.loop, loop_value);
    Exec(s.bodies[0]);
    if (flow_ == Flow::kBreak) {
      flow_ = Flow::kNormal;
      break;
    }
    flow_ = Flow::kNormal;
  }
  scope_ = saved;
  if (items->empty() && !failed_) Exec(s.bodies[1]);
}

void Interp::ExecCallBlock(const Stmt& s) {
  const Expr& call = *s.exprs[0];
  Value callee = Eval(*call.args[0]);
  Args args;
  if (failed_ || !EvalArgs(call, &args)) return;
  closure_scopes_.push_back(scope_);
  args.kw.emplace_back("caller", Value::FromObject(std::make_shared<MacroObject>(&s, scope_)));
  Value r = CallValue(callee, args);
  if (!failed_) Emit(r);
}

Value Interp::CallMacro(const Stmt& m, const std::shared_ptr<Scope>& closure, const Args& args,
                        const Value* caller) {
  if (++depth_ > limits_.max_call_depth) {
    --depth_;
    Fail("resource limit: macro recursion deeper than " + std::to_string(limits_.max_call_depth));
    return Value();
  }
  auto saved = scope_;
  scope_ = std::make_shared<Scope>(closure);
  size_t n = m.params.size();
  List varargs;
  for (size_t i = 0; i < args.pos.size(); ++i) {
    if (i < n)
      scope_->Set(m.params[i], args.pos[i]);
    else
      varargs.push_back(args.pos[i]);
  }
  Dict kwargs;
  for (const auto& [k, v] : args.kw) {
    auto it = prog_.symbol_ids.find(k);
    bool is_param = false;
    for (size_t i = 0; it != prog_.symbol_ids.end() && i < n; ++i) {
      if (m.params[i] == it->second) {
        scope_->Set(m.params[i], v);
        is_param = true;
      }
    }
    if (k == "caller" && it != prog_.symbol_ids.end())
      scope_->Set(it->second, v);
    else if (!is_param)
      kwargs.Set(k, v);
  }
  for (size_t i = args.pos.size(); i < n && !failed_; ++i) {
    bool given = false;
    for (const auto& sv : scope_->vars) given = given || sv.first == m.params[i];
    if (given) continue;
    const ExprPtr& def = m.exprs[i + 1];
    scope_->Set(m.params[i], def ? Eval(*def) : Value::Undefined(&prog_.symbols[m.params[i]]));
  }
  if (caller != nullptr) scope_->Set(prog_.well_known.caller, *caller);
  scope_->Set(prog_.well_known.varargs, Value::Tuple(std::move(varargs)));
  scope_->Set(prog_.well_known.kwargs, Value::FromDict(std::move(kwargs)));
  std::string text = Capture(m.bodies[0]);
  scope_ = saved;
  --depth_;
  return Value(std::move(text));
}

Value Interp::CallValue(const Value& callee, const Args& args) {
  if (callee.is_object()) return callee.object().Call(*this, args);
  if (callee.is_undefined()) {
    const std::string* n = callee.undefined_name();
    Fail("'" + (n ? *n : std::string("object")) + "' is undefined");
    return Value();
  }
  Fail(std::string("'") + callee.TypeName() + "' object is not callable");
  return Value();
}

}  // namespace kvr::chat
