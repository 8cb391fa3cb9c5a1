// Registry, tests, globals and Python operators.
#include "chat/builtins.h"

#include <cmath>
#include <cstdio>

#include "chat/builtins_internal.h"
#include "chat/interpreter.h"

namespace kvr::chat {

const Value* Args::Get(size_t i, std::string_view name) const {
  if (i < pos.size()) return &pos[i];
  for (const auto& [k, v] : kw) {
    if (k == name) return &v;
  }
  return nullptr;
}

Value Args::GetOr(size_t i, std::string_view name, Value fallback) const {
  const Value* v = Get(i, name);
  return v ? *v : std::move(fallback);
}

namespace {

using internal::Arg0;

Value TestDefined(Interp&, const Value& v, const Args&) { return !v.is_undefined(); }
Value TestUndefined(Interp&, const Value& v, const Args&) { return v.is_undefined(); }
Value TestNone(Interp&, const Value& v, const Args&) { return v.is_none(); }
Value TestString(Interp&, const Value& v, const Args&) { return v.is_string(); }
Value TestNumber(Interp&, const Value& v, const Args&) { return v.is_number(); }
Value TestInteger(Interp&, const Value& v, const Args&) { return v.is_int(); }
Value TestFloat(Interp&, const Value& v, const Args&) { return v.is_float(); }
Value TestBoolean(Interp&, const Value& v, const Args&) { return v.is_bool(); }
Value TestTrue(Interp&, const Value& v, const Args&) { return v.is_bool() && v.as_bool(); }
Value TestFalse(Interp&, const Value& v, const Args&) { return v.is_bool() && !v.as_bool(); }
Value TestMapping(Interp&, const Value& v, const Args&) { return v.is_dict(); }
// Undefined is iterable (empty) and has __len__/__getitem__ in Jinja2, so it passes both.
Value TestIterable(Interp&, const Value& v, const Args&) {
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined() || v.is_generator();
}
Value TestSequence(Interp&, const Value& v, const Args&) {
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
}
Value TestCallable(Interp&, const Value& v, const Args&) {
  return v.is_object() && v.object().Callable();
}
Value TestEq(Interp&, const Value& v, const Args& a) { return PyEquals(v, Arg0(a)); }
Value TestNe(Interp&, const Value& v, const Args& a) { return !PyEquals(v, Arg0(a)); }
Value Ordered(Interp& in, const Value& x, const Value& y) {
  bool ok;
  bool r = PyLess(x, y, &ok);
  if (!ok) in.Fail("'<' not supported between these types");
  return r;
}
Value TestLt(Interp& in, const Value& v, const Args& a) { return Ordered(in, v, Arg0(a)); }
Value TestGt(Interp& in, const Value& v, const Args& a) { return Ordered(in, Arg0(a), v); }
Value TestLe(Interp& in, const Value& v, const Args& a) {
  return !Ordered(in, Arg0(a), v).Truthy();
}
Value TestGe(Interp& in, const Value& v, const Args& a) {
  return !Ordered(in, v, Arg0(a)).Truthy();
}
Value TestIn(Interp& in, const Value& v, const Args& a) { return PyContains(in, Arg0(a), v); }
Value TestOdd(Interp&, const Value& v, const Args&) { return v.is_int() && v.as_int() % 2 != 0; }
Value TestEven(Interp&, const Value& v, const Args&) { return v.is_int() && v.as_int() % 2 == 0; }
// Jinja2's divisibleby: value % num == 0, with Python's % (floats too; INT64_MIN % -1 is 0
// where the machine instruction traps; num == 0 is a ZeroDivisionError).
Value TestDivisibleBy(Interp& in, const Value& v, const Args& a) {
  Value rest = PyBinary(in, BinOp::kMod, v, Arg0(a));
  if (in.failed()) return Value(false);
  return rest.is_number() && rest.as_float() == 0;
}
Value TestSameAs(Interp&, const Value& v, const Args& a) {
  const Value& o = Arg0(a);
  if (v.kind() != o.kind()) return false;
  if (v.is_none() || v.is_undefined()) return true;
  if (v.is_bool() || v.is_int()) return v.as_int() == o.as_int();
  if (v.is_float()) return false;
  return v.identity() == o.identity();
}
Value TestLower(Interp&, const Value& v, const Args&) {
  if (!v.is_string()) return false;
  bool cased = false;
  for (char c : v.str()) {
    if (c >= 'A' && c <= 'Z') return false;
    cased = cased || (c >= 'a' && c <= 'z');
  }
  return cased;
}
Value TestUpper(Interp&, const Value& v, const Args&) {
  if (!v.is_string()) return false;
  bool cased = false;
  for (char c : v.str()) {
    if (c >= 'a' && c <= 'z') return false;
    cased = cased || (c >= 'A' && c <= 'Z');
  }
  return cased;
}
Value TestFilter(Interp&, const Value& v, const Args&) {
  return v.is_string() && FindFilter(v.str()) >= 0;
}
Value TestTest(Interp&, const Value& v, const Args&) {
  return v.is_string() && FindTest(v.str()) >= 0;
}
Value TestEscaped(Interp&, const Value&, const Args&) { return false; }

constexpr Builtin kTests[] = {
    {"defined", TestDefined},
    {"undefined", TestUndefined},
    {"none", TestNone},
    {"string", TestString},
    {"number", TestNumber},
    {"integer", TestInteger},
    {"float", TestFloat},
    {"boolean", TestBoolean},
    {"true", TestTrue},
    {"false", TestFalse},
    {"mapping", TestMapping},
    {"iterable", TestIterable},
    {"sequence", TestSequence},
    {"callable", TestCallable},
    {"eq", TestEq},
    {"equalto", TestEq},
    {"==", TestEq},
    {"ne", TestNe},
    {"!=", TestNe},
    {"lt", TestLt},
    {"lessthan", TestLt},
    {"<", TestLt},
    {"gt", TestGt},
    {"greaterthan", TestGt},
    {">", TestGt},
    {"le", TestLe},
    {"<=", TestLe},
    {"ge", TestGe},
    {">=", TestGe},
    {"in", TestIn},
    {"odd", TestOdd},
    {"even", TestEven},
    {"divisibleby", TestDivisibleBy},
    {"sameas", TestSameAs},
    {"lower", TestLower},
    {"upper", TestUpper},
    {"filter", TestFilter},
    {"test", TestTest},
    {"escaped", TestEscaped},
};

// ---- globals ----

Value GlobalRange(Interp& in, const Value&, const Args& a) {
  int64_t start = 0, stop = 0, step = 1;
  for (const Value& v : a.pos) {
    if (!v.is_int() && !v.is_bool()) return in.Error("range() arguments must be integers");
  }
  if (a.pos.size() == 1) {
    stop = a.pos[0].as_int();
  } else if (a.pos.size() >= 2) {
    start = a.pos[0].as_int();
    stop = a.pos[1].as_int();
    if (a.pos.size() >= 3) step = a.pos[2].as_int();
  } else {
    return in.Error("range expected at least 1 argument, got 0");
  }
  if (step == 0) return in.Error("range() arg 3 must not be zero");
  // 128-bit: stop - start overflows int64 for range(-2**63, 2**63 - 1).
  const __int128 lo = start, hi = stop, st = step;
  const __int128 len =
      st > 0 ? (hi > lo ? (hi - lo + st - 1) / st : 0) : (lo > hi ? (lo - hi - st - 1) / -st : 0);
  if (len > 100000) {
    return in.Error("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  }
  const auto n = static_cast<int64_t>(len);
  if (!in.Charge(static_cast<size_t>(n))) return Value();
  List out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out.emplace_back(start + i * step);
  return Value::FromList(std::move(out));
}

Dict KwargsDict(const Args& a) {
  Dict d;
  if (!a.pos.empty() && a.pos[0].is_dict()) d = a.pos[0].dict();
  for (const auto& [k, v] : a.kw) d.Set(k, v);
  return d;
}

Value GlobalNamespace(Interp& in, const Value&, const Args& a) {
  Value ns = Value::NewNamespace(KwargsDict(a));
  in.TrackForCleanup(ns);
  return ns;
}
Value GlobalDict(Interp&, const Value&, const Args& a) { return Value::FromDict(KwargsDict(a)); }

Value GlobalRaise(Interp& in, const Value&, const Args& a) {
  in.Fail(a.pos.empty() ? std::string() : ToStr(a.pos[0]), /*raised=*/true);
  return Value();
}

// datetime.strftime over the caller-supplied clock (pure module: no wall clock here).
Value GlobalStrftimeNow(Interp& in, const Value&, const Args& a) {
  std::string fmt = a.pos.empty() ? std::string() : ToStr(a.pos[0]);
  char buf[512];
  // The format comes from the template, as Python's strftime passes it to the C library.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  size_t n = fmt.empty() ? 0 : std::strftime(buf, sizeof(buf), fmt.c_str(), &in.now());
#pragma GCC diagnostic pop
  return Value(std::string(buf, n));
}

constexpr Builtin kGlobals[] = {
    {"range", GlobalRange},           {"namespace", GlobalNamespace},      {"dict", GlobalDict},
    {"raise_exception", GlobalRaise}, {"strftime_now", GlobalStrftimeNow},
};

class GlobalObject : public Object {
 public:
  explicit GlobalObject(const Builtin* b) : b_(b) {}
  const char* TypeName() const override { return "builtin_function_or_method"; }
  Value Call(Interp& in, const Args& args) override { return b_->fn(in, Value(), args); }

 private:
  const Builtin* b_;
};

template <size_t N>
int FindIn(const Builtin (&table)[N], std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (name == table[i].name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

int FindTest(std::string_view name) { return FindIn(kTests, name); }
int FindGlobal(std::string_view name) { return FindIn(kGlobals, name); }
int FindFilter(std::string_view name) { return internal::FindFilterImpl(name); }
const Builtin& TestAt(int i) { return kTests[i]; }
const Builtin& GlobalAt(int i) { return kGlobals[i]; }
const Builtin& FilterAt(int i) { return internal::FilterAtImpl(i); }

Value MakeGlobal(int index) {
  static const auto* values = [] {
    auto* v = new std::vector<Value>();
    for (const Builtin& b : kGlobals) {
      v->push_back(Value::FromObject(std::make_shared<GlobalObject>(&b)));
    }
    return v;
  }();
  return (*values)[index];
}

}  // namespace kvr::chat
