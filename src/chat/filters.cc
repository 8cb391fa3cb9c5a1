// Jinja2's builtin filters (jinja2/filters.py) plus transformers' tojson.
#include <algorithm>
#include <cmath>

#include "chat/builtins_internal.h"
#include "chat/interpreter.h"
#include "chat/json.h"
#include "chat/numbers.h"

namespace kvr::chat::internal {
namespace {

// Items of an iterable as a list (dict -> keys, string -> code points, undefined -> empty).
bool ToList(Interp& in, const Value& v, List* out) {
  if (v.is_list() || v.is_generator()) {
    *out = v.list();
    return true;
  }
  if (v.is_undefined()) return true;
  if (v.is_dict()) {
    for (size_t i = 0; i < v.dict().items.size(); ++i) out->push_back(v.dict().KeyAt(i));
    return true;
  }
  if (v.is_string()) {
    const std::string& s = v.str();
    for (size_t i = 0; i < s.size();) {
      size_t b = i;
      DecodeUtf8(s, &i);
      out->emplace_back(s.substr(b, i - b));
    }
    return true;
  }
  in.Fail(std::string("'") + v.TypeName() + "' object is not iterable");
  return false;
}

// environment.getitem over a dotted path ("a.b.0"), as make_attrgetter does.
Value AttrPath(Interp& in, const Value& v, const std::string& path) {
  Value cur = v;
  size_t b = 0;
  while (b <= path.size()) {
    size_t e = path.find('.', b);
    if (e == std::string::npos) e = path.size();
    std::string part = path.substr(b, e - b);
    bool numeric = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    int64_t index = 0;
    if (!numeric) {
      cur = in.GetItem(cur, Value(part));
    } else if (ParseDigits(part, &index) == NumParse::kOk) {
      cur = in.GetItem(cur, Value(index));
    } else {
      // Python looks the unbounded int up and finds nothing: no list or string is that long and
      // no dict here can hold such a key (our ints are 64-bit). Undefined, as getitem gives.
      cur = Value();
    }
    b = e + 1;
  }
  return cur;
}

Value FTojson(Interp& in, const Value& v, const Args& a) {
  PyJsonOptions o;
  o.ensure_ascii = a.GetOr(0, "ensure_ascii", Value(false)).Truthy();
  Value indent = a.GetOr(1, "indent", Value::None());
  if (indent.is_int()) {
    o.has_indent = true;
    auto width = static_cast<size_t>(std::max<int64_t>(0, indent.as_int()));
    if (!in.CheckSize(width)) return Value();
    o.indent.assign(width, ' ');
  } else if (indent.is_string()) {
    o.has_indent = true;
    o.indent = indent.str();
  }
  if (o.has_indent) o.item_separator = ",";
  Value seps = a.GetOr(2, "separators", Value::None());
  if (seps.is_list() && seps.list().size() == 2) {
    o.item_separator = ToStr(seps.list()[0]);
    o.key_separator = ToStr(seps.list()[1]);
  }
  o.sort_keys = a.GetOr(3, "sort_keys", Value(false)).Truthy();
  o.max_bytes = in.max_size();  // indentation multiplies: stop before building a huge string
  std::string out;
  absl::Status st = PyJsonDumps(v, o, &out);
  if (!st.ok()) return in.Error(std::string(st.message()));
  if (!in.CheckSize(out.size())) return Value();
  return Value(std::move(out));
}

Value FLength(Interp& in, const Value& v, const Args&) {
  switch (v.kind()) {
    case Value::Kind::kString:
      return Value(static_cast<int64_t>(CodePointCount(v.str())));
    case Value::Kind::kList:
      return Value(static_cast<int64_t>(v.list().size()));
    case Value::Kind::kDict:
      return Value(static_cast<int64_t>(v.dict().items.size()));
    case Value::Kind::kUndefined:
      return Value(0);
    default:
      return in.Error(std::string("object of type '") + v.TypeName() + "' has no len()");
  }
}

Value FTrim(Interp&, const Value& v, const Args& a) {
  const Value* chars = a.Get(0, "chars");
  std::string cs = chars && chars->is_string() ? chars->str() : "";
  return Value(PyStrip(ToStr(v), chars && chars->is_string() ? &cs : nullptr, true, true));
}

Value FString(Interp&, const Value& v, const Args&) { return v.is_string() ? v : Value(ToStr(v)); }
Value FSafe(Interp&, const Value& v, const Args&) { return Value::Markup(ToStr(v)); }

Value FDefault(Interp&, const Value& v, const Args& a) {
  bool boolean = a.GetOr(1, "boolean", Value(false)).Truthy();
  if (v.is_undefined() || (boolean && !v.Truthy())) return a.GetOr(0, "default_value", Value(""));
  return v;
}

Value FJoin(Interp& in, const Value& v, const Args& a) {
  std::string sep = ToStr(a.GetOr(0, "d", Value("")));
  const Value* attr = a.Get(1, "attribute");
  List items;
  if (!ToList(in, v, &items)) return Value();
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    AppendStr(attr ? AttrPath(in, items[i], ToStr(*attr)) : items[i], &out);
    // Items may share one big string: check as it grows, not only at the end.
    if (!in.CheckSize(out.size())) return Value();
  }
  return Value(std::move(out));
}

Value FItems(Interp& in, const Value& v, const Args&) {
  if (v.is_undefined()) return Value::FromList({});
  if (!v.is_dict()) return in.Error("Can only get item pairs from a mapping.");
  List out;
  const Dict& d = v.dict();
  for (size_t i = 0; i < d.items.size(); ++i) {
    out.push_back(Value::Tuple({d.KeyAt(i), d.items[i].second}));
  }
  return Value::FromList(std::move(out));
}

Value FList(Interp& in, const Value& v, const Args&) {
  List out;
  if (!ToList(in, v, &out)) return Value();
  return Value::FromList(std::move(out));
}

// select/reject/selectattr/rejectattr share one implementation (jinja2 select_or_reject).
Value SelectOrReject(Interp& in, const Value& v, const Args& a, bool by_attr, bool keep) {
  if (!v.Truthy()) return Value::Generator({});  // Jinja2: `if value:` before iterating
  List items;
  if (!ToList(in, v, &items)) return Value();
  size_t first = by_attr ? 1 : 0;
  std::string attr = by_attr && !a.pos.empty() ? ToStr(a.pos[0]) : "";
  std::string test = a.pos.size() > first ? ToStr(a.pos[first]) : "";
  Args targs;
  targs.pos.assign(a.pos.begin() + std::min(a.pos.size(), first + 1), a.pos.end());
  List out;
  for (const Value& item : items) {
    Value x = by_attr ? AttrPath(in, item, attr) : item;
    bool r = test.empty() ? x.Truthy() : in.ApplyTest(test, x, targs);
    if (in.failed()) return Value();
    if (r == keep) out.push_back(item);
  }
  return Value::Generator(std::move(out));
}
Value FSelect(Interp& in, const Value& v, const Args& a) {
  return SelectOrReject(in, v, a, false, true);
}
Value FReject(Interp& in, const Value& v, const Args& a) {
  return SelectOrReject(in, v, a, false, false);
}
Value FSelectAttr(Interp& in, const Value& v, const Args& a) {
  return SelectOrReject(in, v, a, true, true);
}
Value FRejectAttr(Interp& in, const Value& v, const Args& a) {
  return SelectOrReject(in, v, a, true, false);
}

Value FMap(Interp& in, const Value& v, const Args& a) {
  if (!v.Truthy()) return Value::Generator({});
  List items;
  if (!ToList(in, v, &items)) return Value();
  List out;
  const Value* attr = nullptr;
  for (const auto& [k, x] : a.kw) {
    if (k == "attribute") attr = &x;
  }
  if (attr != nullptr) {
    const Value* def = nullptr;
    for (const auto& [k, x] : a.kw) {
      if (k == "default") def = &x;
    }
    for (const Value& item : items) {
      Value x = AttrPath(in, item, ToStr(*attr));
      out.push_back(x.is_undefined() && def ? *def : x);
    }
    return Value::Generator(std::move(out));
  }
  if (a.pos.empty()) return in.Error("map requires a filter argument");
  Args fargs;
  fargs.pos.assign(a.pos.begin() + 1, a.pos.end());
  fargs.kw = a.kw;
  std::string name = ToStr(a.pos[0]);
  for (const Value& item : items) {
    out.push_back(in.ApplyFilter(name, item, fargs));
    if (in.failed()) return Value();
  }
  return Value::Generator(std::move(out));
}

Value SortKey(const Value& v, bool case_sensitive) {
  return !case_sensitive && v.is_string() ? Value(PyLower(v.str())) : v;
}

bool SortList(Interp& in, List* items, bool case_sensitive, const std::string& attr, bool reverse) {
  bool ok = true;
  std::stable_sort(items->begin(), items->end(), [&](const Value& x, const Value& y) {
    Value kx = SortKey(attr.empty() ? x : AttrPath(in, x, attr), case_sensitive);
    Value ky = SortKey(attr.empty() ? y : AttrPath(in, y, attr), case_sensitive);
    bool o = true;
    bool r = reverse ? PyLess(ky, kx, &o) : PyLess(kx, ky, &o);
    ok = ok && o;
    return r;
  });
  if (!ok) in.Fail("'<' not supported between these types");
  return ok;
}

Value FDictSort(Interp& in, const Value& v, const Args& a) {
  if (!v.is_dict()) return in.Error("dictsort expects a mapping");
  bool cs = a.GetOr(0, "case_sensitive", Value(false)).Truthy();
  std::string by = ToStr(a.GetOr(1, "by", Value("key")));
  bool reverse = a.GetOr(2, "reverse", Value(false)).Truthy();
  List items;
  const Dict& d = v.dict();
  for (size_t i = 0; i < d.items.size(); ++i) {
    items.push_back(Value::Tuple({d.KeyAt(i), d.items[i].second}));
  }
  if (!SortList(in, &items, cs, by == "value" ? "1" : "0", reverse)) return Value();
  return Value::FromList(std::move(items));
}

Value FSort(Interp& in, const Value& v, const Args& a) {
  List items;
  if (!ToList(in, v, &items)) return Value();
  bool reverse = a.GetOr(0, "reverse", Value(false)).Truthy();
  bool cs = a.GetOr(1, "case_sensitive", Value(false)).Truthy();
  const Value* attr = a.Get(2, "attribute");
  if (!SortList(in, &items, cs, attr ? ToStr(*attr) : "", reverse)) return Value();
  return Value::FromList(std::move(items));
}

Value MinMax(Interp& in, const Value& v, const Args& a, bool want_max) {
  List items;
  if (!ToList(in, v, &items)) return Value();
  if (items.empty()) return Value();
  bool cs = a.GetOr(0, "case_sensitive", Value(false)).Truthy();
  const Value* attr = a.Get(1, "attribute");
  if (!SortList(in, &items, cs, attr ? ToStr(*attr) : "", false)) return Value();
  return want_max ? items.back() : items.front();
}
Value FMin(Interp& in, const Value& v, const Args& a) { return MinMax(in, v, a, false); }
Value FMax(Interp& in, const Value& v, const Args& a) { return MinMax(in, v, a, true); }

Value FUnique(Interp& in, const Value& v, const Args& a) {
  List items;
  if (!ToList(in, v, &items)) return Value();
  bool cs = a.GetOr(0, "case_sensitive", Value(false)).Truthy();
  const Value* attr = a.Get(1, "attribute");
  List out, seen;
  for (const Value& item : items) {
    Value key = SortKey(attr ? AttrPath(in, item, ToStr(*attr)) : item, cs);
    bool dup = false;
    for (const Value& s : seen) dup = dup || PyEquals(s, key);
    if (dup) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::FromList(std::move(out));
}

Value FLower(Interp&, const Value& v, const Args&) { return Value(PyLower(ToStr(v))); }
Value FUpper(Interp&, const Value& v, const Args&) { return Value(PyUpper(ToStr(v))); }
Value FTitle(Interp&, const Value& v, const Args&) { return Value(PyTitle(ToStr(v))); }
Value FCapitalize(Interp&, const Value& v, const Args&) { return Value(PyCapitalize(ToStr(v))); }

Value FReplace(Interp& in, const Value& v, const Args& a) {
  Value count = a.GetOr(2, "count", Value::None());
  std::string r =
      PyReplace(ToStr(v), ToStr(a.GetOr(0, "old", Value(""))), ToStr(a.GetOr(1, "new", Value(""))),
                count.is_none() ? -1 : count.as_int(), in.max_size());
  if (!in.CheckSize(r.size())) return Value();
  return Value(std::move(r));
}

Value FIndent(Interp& in, const Value& v, const Args& a) {
  Value w = a.GetOr(0, "width", Value(4));
  auto width = static_cast<size_t>(std::max<int64_t>(0, w.is_string() ? 0 : w.as_int()));
  if (!in.CheckSize(width)) return Value();
  std::string pad = w.is_string() ? w.str() : std::string(width, ' ');
  bool first = a.GetOr(1, "first", Value(false)).Truthy();
  bool blank = a.GetOr(2, "blank", Value(false)).Truthy();
  std::string s = ToStr(v);
  // Every line gets the pad: bound the result before building it.
  size_t lines = static_cast<size_t>(std::count(s.begin(), s.end(), '\n')) + 1;
  if (!in.CheckSize(s.size() + pad.size() * lines)) return Value();
  std::string out;
  size_t b = 0;
  for (size_t line = 0; b <= s.size(); ++line) {
    size_t e = s.find('\n', b);
    bool last = e == std::string::npos;
    std::string_view text(s.data() + b, (last ? s.size() : e) - b);
    bool indent = (line > 0 || first) && (blank || !PyStrip(text, nullptr, true, true).empty());
    if (indent) out += pad;
    out += text;
    if (last) break;
    out.push_back('\n');
    b = e + 1;
  }
  return Value(std::move(out));
}

// Jinja2's do_int (3.1.6): int(value); else, for a string, int(float(value)); else the default.
// Where Python would return an int beyond 64 bits this is an error ("integer out of range"),
// never a clamped value.
Value FInt(Interp& in, const Value& v, const Args& a) {
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  Value def = a.GetOr(0, "default", Value(0));
  int64_t i = 0;
  if (v.is_float()) {
    NumParse r = FloatToInt(v.as_float(), &i);
    if (r == NumParse::kOk) return Value(i);
    if (r == NumParse::kInvalid) return def;         // int(nan): ValueError, swallowed
    return in.Error(FloatToIntError(v.as_float()));  // int(inf): OverflowError propagates
  }
  if (!v.is_string()) return def;
  std::string s = PyStrip(v.str(), nullptr, true, true);
  NumParse r = ParsePyInt(s, &i);
  if (r == NumParse::kOk) return Value(i);
  if (r == NumParse::kOutOfRange) return in.Error("integer out of range (more than 64 bits)");
  double f = 0;
  if (ParsePyFloat(s, &f) != NumParse::kOk) return def;
  r = FloatToInt(f, &i);
  if (r == NumParse::kOk) return Value(i);
  // The fallback swallows ValueError and OverflowError ("nan", "inf"); a finite float beyond
  // 64 bits ("1e300") is a big int in Python, which we cannot return.
  if (r == NumParse::kInvalid || std::isinf(f)) return def;
  return in.Error(FloatToIntError(f));
}

// Jinja2's do_float: float(value), else the default.
Value FFloat(Interp&, const Value& v, const Args& a) {
  if (v.is_number()) return Value(v.as_float());
  double f = 0;
  if (v.is_string() && ParsePyFloat(PyStrip(v.str(), nullptr, true, true), &f) == NumParse::kOk) {
    return Value(f);
  }
  return a.GetOr(0, "default", Value(0.0));
}

Value FFirst(Interp& in, const Value& v, const Args&) {
  List items;
  if (!ToList(in, v, &items)) return Value();
  return items.empty() ? Value() : items.front();
}
Value FLast(Interp& in, const Value& v, const Args&) {
  List items;
  if (!ToList(in, v, &items)) return Value();
  return items.empty() ? Value() : items.back();
}
Value FReverse(Interp& in, const Value& v, const Args&) {
  if (v.is_string()) {
    std::vector<size_t> offs = CodePointOffsets(v.str());
    std::string out;
    for (size_t k = offs.size() - 1; k > 0; --k)
      out.append(v.str(), offs[k - 1], offs[k] - offs[k - 1]);
    return Value(std::move(out));
  }
  List items;
  if (!ToList(in, v, &items)) return Value();
  std::reverse(items.begin(), items.end());
  return Value::FromList(std::move(items));
}

Value FSum(Interp& in, const Value& v, const Args& a) {
  List items;
  if (!ToList(in, v, &items)) return Value();
  const Value* attr = a.Get(0, "attribute");
  Value total = a.GetOr(1, "start", Value(0));
  for (const Value& item : items) {
    total = PyBinary(in, BinOp::kAdd, total, attr ? AttrPath(in, item, ToStr(*attr)) : item);
    if (in.failed()) return Value();
  }
  return total;
}

Value FAbs(Interp& in, const Value& v, const Args&) {
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  if (v.is_number()) {
    // abs(-2**63) is 2**63 in Python: one past int64.
    if (v.as_int() == INT64_MIN) return in.Error("integer overflow");
    return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  return in.Error(std::string("bad operand type for abs(): '") + v.TypeName() + "'");
}

Value FRound(Interp&, const Value& v, const Args& a) {
  int64_t precision = a.GetOr(0, "precision", Value(0)).as_int();
  std::string method = ToStr(a.GetOr(1, "method", Value("common")));
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = v.as_float() * scale;
  x = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::round(x);
  return Value(x / scale);
}

Value FEscape(Interp&, const Value& v, const Args&) {
  if (v.is_markup()) return v;
  return Value::Markup(HtmlEscape(ToStr(v)));
}
Value FForceEscape(Interp&, const Value& v, const Args&) {
  return Value::Markup(HtmlEscape(ToStr(v)));
}

Value FFormat(Interp& in, const Value& v, const Args& a) {
  return PyPercentFormat(in, ToStr(v), Value::FromList(a.pos));
}

Value FAttr(Interp& in, const Value& v, const Args& a) { return in.GetAttr(v, ToStr(Arg0(a))); }

Value FWordcount(Interp&, const Value& v, const Args&) {
  std::string s = ToStr(v);
  int64_t n = 0;
  bool in_word = false;
  for (char c : s) {
    bool w = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

Value FCenter(Interp&, const Value& v, const Args& a) {
  std::string s = ToStr(v);
  auto width = static_cast<size_t>(std::max<int64_t>(0, a.GetOr(0, "width", Value(80)).as_int()));
  size_t n = CodePointCount(s);
  if (width <= n || width > (1u << 20)) return Value(s);
  size_t total = width - n;
  size_t left = total / 2 + (total & width & 1);
  return Value(std::string(left, ' ') + s + std::string(total - left, ' '));
}

constexpr Builtin kFilters[] = {
    {"tojson", FTojson},
    {"length", FLength},
    {"count", FLength},
    {"trim", FTrim},
    {"string", FString},
    {"safe", FSafe},
    {"default", FDefault},
    {"d", FDefault},
    {"join", FJoin},
    {"items", FItems},
    {"list", FList},
    {"select", FSelect},
    {"reject", FReject},
    {"selectattr", FSelectAttr},
    {"rejectattr", FRejectAttr},
    {"map", FMap},
    {"dictsort", FDictSort},
    {"sort", FSort},
    {"min", FMin},
    {"max", FMax},
    {"unique", FUnique},
    {"lower", FLower},
    {"upper", FUpper},
    {"title", FTitle},
    {"capitalize", FCapitalize},
    {"replace", FReplace},
    {"indent", FIndent},
    {"int", FInt},
    {"float", FFloat},
    {"first", FFirst},
    {"last", FLast},
    {"reverse", FReverse},
    {"sum", FSum},
    {"abs", FAbs},
    {"round", FRound},
    {"escape", FEscape},
    {"e", FEscape},
    {"forceescape", FForceEscape},
    {"format", FFormat},
    {"attr", FAttr},
    {"wordcount", FWordcount},
    {"center", FCenter},
};

}  // namespace

int FindFilterImpl(std::string_view name) {
  for (size_t i = 0; i < std::size(kFilters); ++i) {
    if (name == kFilters[i].name) return static_cast<int>(i);
  }
  return -1;
}

const Builtin& FilterAtImpl(int i) { return kFilters[i]; }

}  // namespace kvr::chat::internal
