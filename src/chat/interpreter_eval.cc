// Expression evaluation for Interp.
#include <cmath>

#include "chat/interpreter.h"

namespace kvr::chat {
namespace {

std::string UndefinedMessage(const Value& v) {
  const std::string* n = v.undefined_name();
  return "'" + (n ? *n : std::string("value")) + "' is undefined";
}

// Python slice index normalization (slice.indices).
void SliceIndices(int64_t len, const Value& start, const Value& stop, int64_t step, int64_t* b,
                  int64_t* e) {
  auto norm = [&](const Value& v, int64_t def, int64_t lo, int64_t hi) {
    if (v.is_none() || v.is_undefined()) return def;
    int64_t x = v.as_int();
    if (x < 0) x += len;
    return x < lo ? lo : (x > hi ? hi : x);
  };
  if (step > 0) {
    *b = norm(start, 0, 0, len);
    *e = norm(stop, len, 0, len);
  } else {
    *b = norm(start, len - 1, -1, len - 1);
    *e = norm(stop, -1, -1, len - 1);
  }
}

}  // namespace

Value Interp::Eval(const Expr& e) {
  if (failed_ || !Charge(1)) return Value();
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.literal;
    case ExprKind::kName:
      return EvalName(e);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      List items;
      items.reserve(e.args.size());
      for (const ExprPtr& a : e.args) items.push_back(Eval(*a));
      if (e.kind == ExprKind::kTuple) return Value::Tuple(std::move(items));
      return Value::FromList(std::move(items));
    }
    case ExprKind::kDict: {
      Dict d;
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value k = Eval(*e.args[i]);
        d.SetKey(k, Eval(*e.args[i + 1]));
      }
      return Value::FromDict(std::move(d));
    }
    case ExprKind::kAttr: {
      Value obj = Eval(*e.args[0]);
      if (failed_) return Value();
      if (obj.is_undefined()) return ErrorAt(e, UndefinedMessage(obj));
      return GetAttr(obj, e.name);
    }
    case ExprKind::kItem: {
      Value obj = Eval(*e.args[0]);
      Value key = Eval(*e.args[1]);
      if (failed_) return Value();
      if (obj.is_undefined()) return ErrorAt(e, UndefinedMessage(obj));
      return GetItem(obj, key);
    }
    case ExprKind::kSlice:
      return EvalSlice(e);
    case ExprKind::kCall:
      return EvalCall(e);
    case ExprKind::kFilter:
      return EvalFilter(e);
    case ExprKind::kTest: {
      Value subject = Eval(*e.args[0]);
      Args args;
      if (failed_ || !EvalArgs(e, &args)) return Value();
      if (e.builtin < 0) return ErrorAt(e, "no test named '" + e.name + "'");
      Value r = TestAt(e.builtin).fn(*this, subject, args);
      if (failed_) return ErrorAt(e, "");
      return Value(r.Truthy() != e.negated);
    }
    case ExprKind::kNot:
      return Value(!Eval(*e.args[0]).Truthy());
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      Value v = Eval(*e.args[0]);
      if (failed_) return Value();
      if (!v.is_number()) {
        return ErrorAt(e, std::string("bad operand type for unary ") +
                              (e.kind == ExprKind::kNeg ? "-" : "+") + ": '" + v.TypeName() + "'");
      }
      if (e.kind == ExprKind::kPos) return v.is_bool() ? Value(v.as_int()) : v;
      if (v.is_float()) return Value(-v.as_float());
      if (v.as_int() == INT64_MIN) return ErrorAt(e, "integer overflow");  // 2**63
      return Value(-v.as_int());
    }
    case ExprKind::kBinary:
      return EvalBinary(e);
    case ExprKind::kCompare:
      return EvalCompare(e);
    case ExprKind::kAnd: {
      Value a = Eval(*e.args[0]);
      return a.Truthy() ? Eval(*e.args[1]) : a;
    }
    case ExprKind::kOr: {
      Value a = Eval(*e.args[0]);
      return a.Truthy() || failed_ ? a : Eval(*e.args[1]);
    }
    case ExprKind::kCond: {
      Value c = Eval(*e.args[1]);
      if (c.Truthy()) return Eval(*e.args[0]);
      return e.args[2] ? Eval(*e.args[2]) : Value();
    }
  }
  return Value();
}

Value Interp::EvalName(const Expr& e) {
  if (const Value* v = scope_->Find(e.symbol)) return *v;
  int g = prog_.global_of_symbol[e.symbol];
  if (g >= 0) return MakeGlobal(g);
  return Value::Undefined(&e.name);
}

bool Interp::EvalArgs(const Expr& e, Args* args) {
  args->pos.reserve(e.args.size() - 1);
  for (size_t i = 1; i < e.args.size(); ++i) args->pos.push_back(Eval(*e.args[i]));
  for (const auto& [k, v] : e.kwargs) args->kw.emplace_back(k, Eval(*v));
  return !failed_;
}

Value Interp::EvalCall(const Expr& e) {
  const Expr& callee = *e.args[0];
  Value fn;
  if (callee.kind == ExprKind::kAttr) {
    Value obj = Eval(*callee.args[0]);
    if (failed_) return Value();
    if (obj.is_undefined()) return ErrorAt(callee, UndefinedMessage(obj));
    fn = GetAttr(obj, callee.name);
    if (fn.is_undefined()) {
      return ErrorAt(callee, std::string("'") + obj.TypeName() + "' object has no attribute '" +
                                 callee.name + "'");
    }
  } else {
    fn = Eval(callee);
  }
  Args args;
  if (failed_ || !EvalArgs(e, &args)) return Value();
  Value r = CallValue(fn, args);
  if (failed_) FailAt(e, "");
  return r;
}

Value Interp::EvalFilter(const Expr& e) {
  Value subject = e.args[0] ? Eval(*e.args[0]) : (filter_input_ ? *filter_input_ : Value());
  Args args;
  if (failed_ || !EvalArgs(e, &args)) return Value();
  if (e.builtin < 0) return ErrorAt(e, "no filter named '" + e.name + "'");
  Value r = FilterAt(e.builtin).fn(*this, subject, args);
  if (failed_) FailAt(e, "");
  return r;
}

Value Interp::EvalBinary(const Expr& e) {
  Value a = Eval(*e.args[0]);
  Value b = Eval(*e.args[1]);
  if (failed_) return Value();
  Value r = PyBinary(*this, e.bin, a, b);
  if (failed_) FailAt(e, "");
  return r;
}

Value Interp::EvalCompare(const Expr& e) {
  Value left = Eval(*e.args[0]);
  for (size_t i = 0; i < e.cmp_ops.size(); ++i) {
    Value right = Eval(*e.args[i + 1]);
    if (failed_) return Value();
    bool r = false;
    bool ok = true;
    switch (e.cmp_ops[i]) {
      case CmpOp::kEq:
        r = PyEquals(left, right);
        break;
      case CmpOp::kNe:
        r = !PyEquals(left, right);
        break;
      case CmpOp::kLt:
        r = PyLess(left, right, &ok);
        break;
      case CmpOp::kGt:
        r = PyLess(right, left, &ok);
        break;
      case CmpOp::kLe:
        r = !PyLess(right, left, &ok);
        break;
      case CmpOp::kGe:
        r = !PyLess(left, right, &ok);
        break;
      case CmpOp::kIn:
        r = PyContains(*this, right, left);
        break;
      case CmpOp::kNotIn:
        r = !PyContains(*this, right, left);
        break;
    }
    if (!ok) {
      return ErrorAt(e, std::string("comparison not supported between instances of '") +
                            left.TypeName() + "' and '" + right.TypeName() + "'");
    }
    if (failed_) return ErrorAt(e, "");
    if (!r) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

Value Interp::EvalSlice(const Expr& e) {
  Value obj = Eval(*e.args[0]);
  Value start = e.args[1] ? Eval(*e.args[1]) : Value::None();
  Value stop = e.args[2] ? Eval(*e.args[2]) : Value::None();
  Value stepv = e.args[3] ? Eval(*e.args[3]) : Value::None();
  if (failed_) return Value();
  if (obj.is_undefined()) return ErrorAt(e, UndefinedMessage(obj));
  for (const Value* v : {&start, &stop, &stepv}) {
    if (!v->is_none() && !v->is_int() && !v->is_bool()) {
      return ErrorAt(e, "slice indices must be integers or None");
    }
  }
  int64_t step = stepv.is_none() ? 1 : stepv.as_int();
  if (step == 0) return ErrorAt(e, "slice step cannot be zero");
  if (!obj.is_list() && !obj.is_string()) {
    return ErrorAt(e, std::string("'") + obj.TypeName() + "' object is not subscriptable");
  }
  std::vector<size_t> offs;
  int64_t len;
  if (obj.is_list()) {
    len = static_cast<int64_t>(obj.list().size());
  } else {
    offs = CodePointOffsets(obj.str());
    len = static_cast<int64_t>(offs.size()) - 1;
  }
  int64_t b, end;
  SliceIndices(len, start, stop, step, &b, &end);
  if (!Charge(static_cast<size_t>(len))) return Value();
  // A step near 2**63 would overflow `i += step`; stop there instead (the next index is past
  // the end anyway).
  auto advance = [step](int64_t* i) { return !__builtin_add_overflow(*i, step, i); };
  if (obj.is_list()) {
    List out;
    for (int64_t i = b; step > 0 ? i < end : i > end;) {
      out.push_back(obj.list()[i]);
      if (!advance(&i)) break;
    }
    return Value::FromList(std::move(out));
  }
  const std::string& s = obj.str();
  std::string out;
  if (step == 1) {
    if (b < end) out.assign(s, offs[b], offs[end] - offs[b]);
    return Value(std::move(out));
  }
  for (int64_t i = b; step > 0 ? i < end : i > end;) {
    out.append(s, offs[i], offs[i + 1] - offs[i]);
    if (!advance(&i)) break;
  }
  return Value(std::move(out));
}

Value Interp::GetAttr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::kDict: {
      Value m = GetMethod(obj, name);
      if (!m.is_undefined()) return m;
      const Value* v = obj.dict().Find(name);
      return v ? *v : Value::Undefined(&name);
    }
    case Value::Kind::kNamespace: {
      const Value* v = obj.mutable_namespace().Find(name);
      return v ? *v : Value::Undefined(&name);
    }
    case Value::Kind::kObject: {
      Value v = obj.object().GetAttr(name);
      return v.is_undefined() ? Value::Undefined(&name) : v;
    }
    case Value::Kind::kString:
    case Value::Kind::kList: {
      Value m = GetMethod(obj, name);
      return m.is_undefined() ? Value::Undefined(&name) : m;
    }
    default:
      return Value::Undefined(&name);
  }
}

Value Interp::GetItem(const Value& obj, const Value& key) {
  if (key.is_string()) {
    if (obj.is_dict()) {
      const Value* v = obj.dict().Find(key.str());
      if (v) return *v;
    }
    // Falls back to getattr, as Environment.getitem does.
    Value v = GetAttr(obj, key.str());
    return v.is_undefined() ? Value() : v;
  }
  if (obj.is_dict() && !obj.dict().key_values.empty()) {
    const Dict& d = obj.dict();
    for (size_t i = 0; i < d.items.size(); ++i) {
      if (PyEquals(d.key_values[i], key)) return d.items[i].second;
    }
    return Value();
  }
  if (key.is_int() || key.is_bool()) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      auto n = static_cast<int64_t>(obj.list().size());
      if (i < 0) i += n;
      return i >= 0 && i < n ? obj.list()[i] : Value();
    }
    if (obj.is_string()) {
      std::vector<size_t> offs = CodePointOffsets(obj.str());
      auto n = static_cast<int64_t>(offs.size()) - 1;
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value();
      return Value(obj.str().substr(offs[i], offs[i + 1] - offs[i]));
    }
  }
  return Value();
}

Value Interp::ApplyFilter(std::string_view name, const Value& v, const Args& args) {
  int f = FindFilter(name);
  if (f < 0) return Error("no filter named '" + std::string(name) + "'");
  return FilterAt(f).fn(*this, v, args);
}

bool Interp::ApplyTest(std::string_view name, const Value& v, const Args& args) {
  int t = FindTest(name);
  if (t < 0) {
    Fail("no test named '" + std::string(name) + "'");
    return false;
  }
  return TestAt(t).fn(*this, v, args).Truthy();
}

}  // namespace kvr::chat
