// Python methods of str, dict and list that templates call (`content.strip()`, `d.items()`).
#include <algorithm>

#include "chat/builtins_internal.h"
#include "chat/interpreter.h"

namespace kvr::chat {
namespace {

using internal::Arg0;
using MethodFn = Value (*)(Interp& in, const Value& self, const Args& args);

class BoundMethod : public Object {
 public:
  BoundMethod(Value self, MethodFn fn) : self_(std::move(self)), fn_(fn) {}
  const char* TypeName() const override { return "builtin_function_or_method"; }
  Value Call(Interp& in, const Args& args) override { return fn_(in, self_, args); }

 private:
  Value self_;
  MethodFn fn_;
};

// ImmutableSandboxedEnvironment: methods that would mutate a list or dict are unsafe.
class UnsafeMethod : public Object {
 public:
  UnsafeMethod(std::string name, const char* type) : name_(std::move(name)), type_(type) {}
  const char* TypeName() const override { return "Undefined"; }
  Value Call(Interp& in, const Args&) override {
    in.Fail("access to attribute '" + name_ + "' of '" + type_ + "' object is unsafe.");
    return Value();
  }

 private:
  std::string name_;
  const char* type_;
};

const std::string* OptString(const Args& a, size_t i, std::string_view name) {
  const Value* v = a.Get(i, name);
  return v && v->is_string() ? &v->str() : nullptr;
}

Value Strip(const Value& s, const Args& a, bool l, bool r) {
  return Value(internal::PyStrip(s.str(), OptString(a, 0, "chars"), l, r));
}
Value MStrip(Interp&, const Value& s, const Args& a) { return Strip(s, a, true, true); }
Value MLStrip(Interp&, const Value& s, const Args& a) { return Strip(s, a, true, false); }
Value MRStrip(Interp&, const Value& s, const Args& a) { return Strip(s, a, false, true); }

// str.split() / str.rsplit() without a separator: runs of Python whitespace separate, and
// leading and trailing whitespace yields no empty pieces. At most `maxsplit` splits (all when
// negative), counted from the left or from the right; what is left unsplit is one more piece,
// verbatim from its first (last) non-space character to the end (start) of the string, as
// CPython's split_whitespace does: '  a  b c  '.split(None, 1) == ['a', 'b c  '].
List SplitWhitespace(const std::string& s, int64_t maxsplit, bool from_right) {
  std::vector<std::pair<size_t, size_t>> words;  // byte ranges of non-space runs
  size_t i = 0, start = std::string::npos;
  while (i < s.size()) {
    const size_t b = i;
    const bool space = IsPySpace(DecodeUtf8(s, &i));
    if (!space && start == std::string::npos) start = b;
    if (space && start != std::string::npos) {
      words.emplace_back(start, b);
      start = std::string::npos;
    }
  }
  if (start != std::string::npos) words.emplace_back(start, s.size());
  const auto word = [&](size_t k) {
    return s.substr(words[k].first, words[k].second - words[k].first);
  };
  List parts;
  if (maxsplit < 0 || words.size() <= static_cast<uint64_t>(maxsplit)) {
    for (size_t k = 0; k < words.size(); ++k) parts.emplace_back(word(k));
    return parts;
  }
  const size_t keep = static_cast<size_t>(maxsplit);
  if (!from_right) {
    for (size_t k = 0; k < keep; ++k) parts.emplace_back(word(k));
    parts.emplace_back(s.substr(words[keep].first));
  } else {
    const size_t first = words.size() - keep;
    parts.emplace_back(s.substr(0, words[first - 1].second));
    for (size_t k = first; k < words.size(); ++k) parts.emplace_back(word(k));
  }
  return parts;
}

// str.split(sep) / str.rsplit(sep), sep not empty: at most `maxsplit` splits (all when
// negative), from the left or from the right; the pieces in order.
std::vector<std::string> SplitOn(const std::string& s, const std::string& sep, int64_t maxsplit,
                                 bool from_right) {
  std::vector<std::string> pieces;
  if (!from_right) {
    size_t pos = 0;
    for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
      const size_t f = s.find(sep, pos);
      if (f == std::string::npos) break;
      pieces.push_back(s.substr(pos, f - pos));
      pos = f + sep.size();
    }
    pieces.push_back(s.substr(pos));
    return pieces;
  }
  size_t end = s.size();
  for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
    if (end < sep.size()) break;
    const size_t f = s.rfind(sep, end - sep.size());
    if (f == std::string::npos) break;
    pieces.push_back(s.substr(f + sep.size(), end - f - sep.size()));
    end = f;
  }
  pieces.push_back(s.substr(0, end));
  std::reverse(pieces.begin(), pieces.end());
  return pieces;
}

Value Split(Interp& in, const Value& self, const Args& a, bool from_right) {
  const std::string* sep = OptString(a, 0, "sep");
  const int64_t maxsplit = a.GetOr(1, "maxsplit", Value(-1)).as_int();
  if (sep == nullptr) return Value::FromList(SplitWhitespace(self.str(), maxsplit, from_right));
  if (sep->empty()) return in.Error("empty separator");
  std::vector<std::string> pieces = SplitOn(self.str(), *sep, maxsplit, from_right);
  if (!in.Charge(pieces.size())) return Value();
  List parts;
  for (std::string& p : pieces) parts.emplace_back(std::move(p));
  return Value::FromList(std::move(parts));
}
Value MSplit(Interp& in, const Value& s, const Args& a) { return Split(in, s, a, false); }
Value MRSplit(Interp& in, const Value& s, const Args& a) { return Split(in, s, a, true); }

Value Affix(Interp& in, const Value& s, const Args& a, bool prefix) {
  const Value& arg = Arg0(a);
  auto match = [&](const Value& p) {
    if (!p.is_string()) return false;
    const std::string& x = p.str();
    if (x.size() > s.str().size()) return false;
    return prefix ? s.str().compare(0, x.size(), x) == 0
                  : s.str().compare(s.str().size() - x.size(), x.size(), x) == 0;
  };
  if (arg.is_list()) {
    for (const Value& p : arg.list()) {
      if (match(p)) return Value(true);
    }
    return Value(false);
  }
  if (!arg.is_string()) {
    in.Fail(std::string(prefix ? "startswith" : "endswith") +
            " first arg must be str or a tuple of str, not " + arg.TypeName());
    return Value();
  }
  return Value(match(arg));
}
Value MStartsWith(Interp& in, const Value& s, const Args& a) { return Affix(in, s, a, true); }
Value MEndsWith(Interp& in, const Value& s, const Args& a) { return Affix(in, s, a, false); }

Value MReplace(Interp& in, const Value& s, const Args& a) {
  std::string r = internal::PyReplace(s.str(), ToStr(Arg0(a)), ToStr(a.GetOr(1, "new", Value(""))),
                                      a.GetOr(2, "count", Value(-1)).as_int(), in.max_size());
  if (!in.CheckSize(r.size())) return Value();
  return Value(std::move(r));
}
Value MLower(Interp&, const Value& s, const Args&) { return Value(internal::PyLower(s.str())); }
Value MUpper(Interp&, const Value& s, const Args&) { return Value(internal::PyUpper(s.str())); }
Value MTitle(Interp&, const Value& s, const Args&) { return Value(internal::PyTitle(s.str())); }
Value MCapitalize(Interp&, const Value& s, const Args&) {
  return Value(internal::PyCapitalize(s.str()));
}

Value Find(const Value& s, const Args& a, bool right) {
  std::string sub = ToStr(Arg0(a));
  size_t f = right ? s.str().rfind(sub) : s.str().find(sub);
  if (f == std::string::npos) return Value(-1);
  return Value(static_cast<int64_t>(CodePointCount(std::string_view(s.str()).substr(0, f))));
}
Value MFind(Interp&, const Value& s, const Args& a) { return Find(s, a, false); }
Value MRFind(Interp&, const Value& s, const Args& a) { return Find(s, a, true); }

Value MCount(Interp&, const Value& s, const Args& a) {
  if (s.is_list()) {
    int64_t n = 0;
    for (const Value& x : s.list()) n += PyEquals(x, Arg0(a)) ? 1 : 0;
    return Value(n);
  }
  std::string sub = ToStr(Arg0(a));
  if (sub.empty()) return Value(static_cast<int64_t>(CodePointCount(s.str()) + 1));
  int64_t n = 0;
  for (size_t p = s.str().find(sub); p != std::string::npos; p = s.str().find(sub, p + sub.size()))
    ++n;
  return Value(n);
}

Value MJoin(Interp& in, const Value& s, const Args& a) {
  const Value& items = Arg0(a);
  if (!items.is_list()) return in.Error("can only join an iterable");
  std::string out;
  for (size_t i = 0; i < items.list().size(); ++i) {
    const Value& x = items.list()[i];
    if (!x.is_string()) return in.Error("sequence item: expected str instance");
    if (i > 0) out += s.str();
    out += x.str();
  }
  if (!in.CheckSize(out.size())) return Value();
  return Value(std::move(out));
}

Value MFormat(Interp& in, const Value& s, const Args& a) {
  return internal::PyStrFormat(in, s.str(), a);
}

Value MSplitLines(Interp&, const Value& s, const Args&) {
  List out;
  const std::string& str = s.str();
  size_t b = 0;
  for (size_t i = 0; i < str.size(); ++i) {
    if (str[i] == '\n' || str[i] == '\r') {
      out.emplace_back(str.substr(b, i - b));
      if (str[i] == '\r' && i + 1 < str.size() && str[i + 1] == '\n') ++i;
      b = i + 1;
    }
  }
  if (b < str.size()) out.emplace_back(str.substr(b));
  return Value::FromList(std::move(out));
}

template <typename Pred>
Value AllChars(const Value& s, Pred p) {
  if (s.str().empty()) return Value(false);
  for (size_t i = 0; i < s.str().size();) {
    if (!p(DecodeUtf8(s.str(), &i))) return Value(false);
  }
  return Value(true);
}
Value MIsDigit(Interp&, const Value& s, const Args&) {
  return AllChars(s, [](uint32_t c) { return c >= '0' && c <= '9'; });
}
Value MIsSpace(Interp&, const Value& s, const Args&) { return AllChars(s, IsPySpace); }
Value MIsAlpha(Interp&, const Value& s, const Args&) {
  return AllChars(s, [](uint32_t c) { return (c | 32) >= 'a' && (c | 32) <= 'z'; });
}
Value MIsAlnum(Interp&, const Value& s, const Args&) {
  return AllChars(
      s, [](uint32_t c) { return ((c | 32) >= 'a' && (c | 32) <= 'z') || (c >= '0' && c <= '9'); });
}

Value MItems(Interp&, const Value& d, const Args&) {
  List out;
  out.reserve(d.dict().items.size());
  for (size_t i = 0; i < d.dict().items.size(); ++i) {
    out.push_back(Value::Tuple({d.dict().KeyAt(i), d.dict().items[i].second}));
  }
  return Value::FromList(std::move(out));
}
Value MKeys(Interp&, const Value& d, const Args&) {
  List out;
  for (size_t i = 0; i < d.dict().items.size(); ++i) out.push_back(d.dict().KeyAt(i));
  return Value::FromList(std::move(out));
}
Value MValues(Interp&, const Value& d, const Args&) {
  List out;
  for (const auto& kv : d.dict().items) out.push_back(kv.second);
  return Value::FromList(std::move(out));
}
Value MGet(Interp&, const Value& d, const Args& a) {
  const Value& key = Arg0(a);
  const Value* v = key.is_string() ? d.dict().Find(key.str()) : nullptr;
  return v ? *v : a.GetOr(1, "default", Value::None());
}
Value MCopy(Interp&, const Value& d, const Args&) { return d; }

Value MIndex(Interp& in, const Value& l, const Args& a) {
  for (size_t i = 0; i < l.list().size(); ++i) {
    if (PyEquals(l.list()[i], Arg0(a))) return Value(static_cast<int64_t>(i));
  }
  in.Fail("value is not in list");
  return Value();
}

struct Method {
  const char* name;
  MethodFn fn;
};

constexpr Method kStrMethods[] = {
    {"strip", MStrip},       {"lstrip", MLStrip},   {"rstrip", MRStrip},
    {"split", MSplit},       {"rsplit", MRSplit},   {"startswith", MStartsWith},
    {"endswith", MEndsWith}, {"replace", MReplace}, {"lower", MLower},
    {"upper", MUpper},       {"title", MTitle},     {"capitalize", MCapitalize},
    {"find", MFind},         {"rfind", MRFind},     {"count", MCount},
    {"join", MJoin},         {"format", MFormat},   {"splitlines", MSplitLines},
    {"isdigit", MIsDigit},   {"isspace", MIsSpace}, {"isalpha", MIsAlpha},
    {"isalnum", MIsAlnum},
};
constexpr Method kDictMethods[] = {
    {"items", MItems}, {"keys", MKeys}, {"values", MValues}, {"get", MGet}, {"copy", MCopy},
};
constexpr Method kListMethods[] = {{"index", MIndex}, {"count", MCount}, {"copy", MCopy}};
constexpr const char* kUnsafeDict[] = {"clear", "pop", "popitem", "setdefault", "update"};
constexpr const char* kUnsafeList[] = {"append", "clear",  "extend",  "insert",
                                       "pop",    "remove", "reverse", "sort"};

template <size_t N>
MethodFn Lookup(const Method (&table)[N], std::string_view name) {
  for (const Method& m : table) {
    if (name == m.name) return m.fn;
  }
  return nullptr;
}

template <size_t N>
bool Contains(const char* const (&table)[N], std::string_view name) {
  return std::find(std::begin(table), std::end(table), name) != std::end(table);
}

}  // namespace

Value GetMethod(const Value& self, std::string_view name) {
  MethodFn fn = nullptr;
  if (self.is_string()) {
    fn = Lookup(kStrMethods, name);
  } else if (self.is_dict()) {
    fn = Lookup(kDictMethods, name);
    if (!fn && Contains(kUnsafeDict, name)) {
      return Value::FromObject(std::make_shared<UnsafeMethod>(std::string(name), "dict"));
    }
  } else if (self.is_list()) {
    fn = Lookup(kListMethods, name);
    if (!fn && Contains(kUnsafeList, name)) {
      return Value::FromObject(std::make_shared<UnsafeMethod>(std::string(name), "list"));
    }
  }
  if (fn == nullptr) return Value();
  return Value::FromObject(std::make_shared<BoundMethod>(self, fn));
}

}  // namespace kvr::chat
