// Python operators and string helpers with CPython's results.
#include <cmath>
#include <cstdio>

#include "chat/builtins_internal.h"
#include "chat/interpreter.h"
#include "chat/numbers.h"
#include "utf8proc.h"

namespace kvr::chat {
namespace {

Value TypeError(Interp& in, const char* op, const Value& a, const Value& b) {
  in.Fail(std::string("unsupported operand type(s) for ") + op + ": '" + a.TypeName() + "' and '" +
          b.TypeName() + "'");
  return Value();
}

Value Repeat(Interp& in, const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? Value("") : Value::FromList({});
  size_t unit = seq.is_string() ? seq.str().size() : seq.list().size();
  if (unit == 0) return seq;  // "" * 10**18 is "": no loop of n empty appends
  if (static_cast<uint64_t>(n) > (1u << 30) / unit) {
    in.CheckSize(SIZE_MAX);
    return Value();
  }
  if (!in.CheckSize(unit * static_cast<size_t>(n))) return Value();
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value(std::move(out));
  }
  List out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.list().begin(), seq.list().end());
  return Value::FromList(std::move(out));
}

// x ** y by squaring: O(log y) whatever y is (1 ** 10**18 must not loop 10**18 times).
Value IntPow(Interp& in, int64_t x, int64_t y) {
  if (y < 0) {
    if (x == 0) return in.Error("0.0 cannot be raised to a negative power");
    return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
  }
  int64_t result = 1, base = x;
  bool overflow = false;
  for (uint64_t e = static_cast<uint64_t>(y); e != 0; e >>= 1) {
    if (e & 1) overflow |= __builtin_mul_overflow(result, base, &result);
    if (e > 1) overflow |= __builtin_mul_overflow(base, base, &base);
    if (overflow) return in.Error("integer overflow");
  }
  return Value(result);
}

Value IntArith(Interp& in, BinOp op, int64_t x, int64_t y) {
  int64_t r = 0;
  bool overflow = false;
  switch (op) {
    case BinOp::kAdd:
      overflow = __builtin_add_overflow(x, y, &r);
      break;
    case BinOp::kSub:
      overflow = __builtin_sub_overflow(x, y, &r);
      break;
    case BinOp::kMul:
      overflow = __builtin_mul_overflow(x, y, &r);
      break;
    case BinOp::kFloorDiv:
    case BinOp::kMod: {
      if (y == 0) return in.Error("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) {  // x / y traps on x86; Python: 2**63 and 0
        if (op == BinOp::kMod) return Value(int64_t{0});
        return in.Error("integer overflow");
      }
      int64_t q = x / y;
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return Value(op == BinOp::kFloorDiv ? q : m);
    }
    case BinOp::kPow:
      return IntPow(in, x, y);
    default:
      break;
  }
  if (overflow) return in.Error("integer overflow");
  return Value(r);
}

Value FloatArith(Interp& in, BinOp op, double x, double y) {
  switch (op) {
    case BinOp::kAdd:
      return Value(x + y);
    case BinOp::kSub:
      return Value(x - y);
    case BinOp::kMul:
      return Value(x * y);
    case BinOp::kDiv:
      if (y == 0) return in.Error("division by zero");
      return Value(x / y);
    case BinOp::kFloorDiv:
    case BinOp::kMod: {
      if (y == 0) return in.Error("float modulo");
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value(op == BinOp::kMod ? m : std::floor(x / y));
    }
    case BinOp::kPow:
      return Value(std::pow(x, y));
    default:
      return Value();
  }
}

}  // namespace

Value PyBinary(Interp& in, BinOp op, const Value& a, const Value& b) {
  static const char* kNames[] = {"+", "-", "*", "/", "//", "%", "**", "~"};
  const char* name = kNames[static_cast<int>(op)];
  if (op == BinOp::kConcat) {
    std::string s = ToStr(a);
    AppendStr(b, &s);
    if (!in.CheckSize(s.size())) return Value();
    return Value(std::move(s));
  }
  if (a.is_number() && b.is_number()) {
    if (op == BinOp::kDiv) return FloatArith(in, op, a.as_float(), b.as_float());
    if (a.is_float() || b.is_float()) return FloatArith(in, op, a.as_float(), b.as_float());
    return IntArith(in, op, a.as_int(), b.as_int());
  }
  if (op == BinOp::kAdd && (a.is_markup() || b.is_markup())) {
    // Markup.__add__/__radd__: the plain operand is HTML-escaped, the result stays Markup.
    const Value& plain = a.is_markup() ? b : a;
    if (plain.is_string() || plain.is_markup()) {
      std::string x = a.is_markup() ? a.str() : internal::HtmlEscape(a.str());
      x += b.is_markup() ? b.str() : internal::HtmlEscape(b.str());
      if (!in.CheckSize(x.size())) return Value();
      return Value::Markup(std::move(x));
    }
  }
  if (op == BinOp::kAdd) {
    if (a.is_string() && b.is_string()) {
      if (!in.CheckSize(a.str().size() + b.str().size())) return Value();
      return Value(a.str() + b.str());
    }
    if (a.is_list() && b.is_list()) {
      if (!in.CheckSize(a.list().size() + b.list().size())) return Value();
      List out = a.list();
      out.insert(out.end(), b.list().begin(), b.list().end());
      return Value::FromList(std::move(out));
    }
  }
  if (op == BinOp::kMul) {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) {
      return Repeat(in, a, b.as_int());
    }
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) {
      return Repeat(in, b, a.as_int());
    }
  }
  if (op == BinOp::kMod && a.is_string()) return internal::PyPercentFormat(in, a.str(), b);
  return TypeError(in, name, a, b);
}

bool PyContains(Interp& in, const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) {
        in.Fail(std::string("'in <string>' requires string as left operand, not ") +
                item.TypeName());
        return false;
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kList:
    case Value::Kind::kGenerator:
      for (const Value& v : container.list()) {
        if (PyEquals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict: {
      const Dict& d = container.dict();
      if (d.key_values.empty()) return item.is_string() && d.Find(item.str()) != nullptr;
      for (const Value& k : d.key_values) {
        if (PyEquals(k, item)) return true;
      }
      return false;
    }
    case Value::Kind::kUndefined:
      return false;
    default:
      in.Fail(std::string("argument of type '") + container.TypeName() + "' is not iterable");
      return false;
  }
}

namespace internal {

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string PyStrip(std::string_view s, const std::string* chars, bool left, bool right) {
  auto strippable = [&](size_t b, size_t e) {
    if (chars == nullptr) {
      size_t i = b;
      return IsPySpace(DecodeUtf8(s, &i));
    }
    return chars->find(s.substr(b, e - b)) != std::string::npos;
  };
  size_t b = 0, e = s.size();
  while (left && b < e) {
    size_t next = b;
    DecodeUtf8(s, &next);
    if (!strippable(b, next)) break;
    b = next;
  }
  while (right && e > b) {
    size_t start = e - 1;  // back up to the first byte of the last code point
    while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t check = start;
    DecodeUtf8(s, &check);
    if (check != e) start = e - 1;  // invalid sequence: treat the byte alone
    if (!strippable(start, e)) break;
    e = start;
  }
  return std::string(s.substr(b, e - b));
}

namespace {
template <typename F>
std::string MapCodePoints(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = DecodeUtf8(s, &i);
    AppendUtf8(f(cp), &out);
  }
  return out;
}
uint32_t Lower(uint32_t cp) {
  return static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}
uint32_t Upper(uint32_t cp) {
  return static_cast<uint32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(cp)));
}
bool IsCased(uint32_t cp) { return Lower(cp) != cp || Upper(cp) != cp; }
}  // namespace

std::string PyLower(std::string_view s) { return MapCodePoints(s, Lower); }
std::string PyUpper(std::string_view s) { return MapCodePoints(s, Upper); }

std::string PyTitle(std::string_view s) {
  bool prev_cased = false;
  return MapCodePoints(s, [&](uint32_t cp) {
    uint32_t r = prev_cased ? Lower(cp) : Upper(cp);
    prev_cased = IsCased(cp);
    return r;
  });
}

std::string PyCapitalize(std::string_view s) {
  bool first = true;
  return MapCodePoints(s, [&](uint32_t cp) {
    uint32_t r = first ? Upper(cp) : Lower(cp);
    first = false;
    return r;
  });
}

std::string PyReplace(const std::string& s, const std::string& from, const std::string& to,
                      int64_t count, size_t max_bytes) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between code points
    std::vector<size_t> offs = CodePointOffsets(s);
    for (size_t k = 0; k + 1 < offs.size() && out.size() <= max_bytes; ++k) {
      if (count < 0 || static_cast<int64_t>(k) < count) out += to;
      out.append(s, offs[k], offs[k + 1] - offs[k]);
    }
    if (count < 0 || static_cast<int64_t>(offs.size()) - 1 < count) out += to;
    return out;
  }
  size_t pos = 0;
  for (int64_t n = 0; (count < 0 || n < count) && out.size() <= max_bytes; ++n) {
    size_t f = s.find(from, pos);
    if (f == std::string::npos) break;
    out.append(s, pos, f - pos);
    out += to;
    pos = f + from.size();
  }
  out.append(s, pos);
  return out;
}

Value PyPercentFormat(Interp& in, const std::string& fmt, const Value& args) {
  std::vector<Value> items;
  if (args.is_list())
    items = args.list();
  else
    items.push_back(args);
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) return in.Error("incomplete format");
    char c = fmt[i];
    if (c == '%') {
      out.push_back('%');
      continue;
    }
    if (next >= items.size()) return in.Error("not enough arguments for format string");
    const Value& v = items[next++];
    if (c == 's') {
      AppendStr(v, &out);
    } else if (c == 'r') {
      AppendRepr(v, &out);
    } else if ((c == 'd' || c == 'i') && v.is_number()) {
      int64_t n = v.as_int();
      if (v.is_float() && FloatToInt(v.as_float(), &n) != NumParse::kOk) {
        return in.Error(FloatToIntError(v.as_float()));
      }
      out += std::to_string(n);
    } else if (c == 'f' && v.is_number()) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%f", v.as_float());
      out += buf;
    } else {
      return in.Error(std::string("unsupported format character '") + c + "'");
    }
  }
  if (next < items.size() && args.is_list()) {
    return in.Error("not all arguments converted during string formatting");
  }
  return Value(std::move(out));
}

Value PyStrFormat(Interp& in, const std::string& fmt, const Args& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if ((c == '{' || c == '}') && i + 1 < fmt.size() && fmt[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) return in.Error("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    const Value* v = nullptr;
    if (field.empty()) {
      v = auto_index < args.pos.size() ? &args.pos[auto_index++] : nullptr;
    } else if (field.find_first_not_of("0123456789") == std::string::npos) {
      int64_t k = 0;
      if (ParseDigits(field, &k) != NumParse::kOk) {
        return in.Error("Too many decimal digits in format string");  // Python's words
      }
      v = static_cast<uint64_t>(k) < args.pos.size() ? &args.pos[static_cast<size_t>(k)] : nullptr;
    } else {
      for (const auto& [name, val] : args.kw) {
        if (name == field) v = &val;
      }
    }
    if (v == nullptr) return in.Error("format field '" + field + "' not found");
    AppendStr(*v, &out);
    i = close;
  }
  return Value(std::move(out));
}

}  // namespace internal
}  // namespace kvr::chat
