#include "chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "utf8proc.h"

namespace kvr::chat {

const Value* Dict::Find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::Set(std::string_view key, Value v) {
  for (auto& [k, old] : items) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  items.emplace_back(std::string(key), std::move(v));
  if (!key_values.empty()) key_values.emplace_back(std::string(key));
}

void Dict::SetKey(const Value& key, Value v) {
  std::string k = ToStr(key);
  if (key.is_string() && key_values.empty()) return Set(k, std::move(v));
  if (key_values.empty()) {
    for (const auto& kv : items) key_values.emplace_back(kv.first);
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].first == k) {
      items[i].second = std::move(v);
      return;
    }
  }
  items.emplace_back(std::move(k), std::move(v));
  key_values.push_back(key);
}

Value Dict::KeyAt(size_t i) const {
  return key_values.empty() ? Value(items[i].first) : key_values[i];
}

Value::Value(std::string s) : kind_(Kind::kString) {
  p_ = std::make_shared<std::string>(std::move(s));
}

namespace {

uint16_t DepthOver(const List& l) {
  int d = 0;
  for (const Value& x : l) d = std::max(d, x.depth());
  return static_cast<uint16_t>(std::min(d + 1, 0xFFFF));
}

uint16_t DepthOver(const Dict& dict) {
  int d = 0;
  for (const auto& kv : dict.items) d = std::max(d, kv.second.depth());
  return static_cast<uint16_t>(std::min(d + 1, 0xFFFF));
}

}  // namespace

Value Value::FromList(List l) {
  Value v(Kind::kList);
  v.depth_ = DepthOver(l);
  v.p_ = std::make_shared<List>(std::move(l));
  return v;
}

Value Value::Generator(List l) {
  Value v = FromList(std::move(l));
  v.kind_ = Kind::kGenerator;
  return v;
}

Value Value::FromDict(Dict d) {
  Value v(Kind::kDict);
  v.depth_ = DepthOver(d);
  v.p_ = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::NewNamespace(Dict d) {
  Value v(Kind::kNamespace);
  v.depth_ = DepthOver(d);
  v.p_ = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::FromObject(std::shared_ptr<Object> o) {
  Value v(Kind::kObject);
  v.p_ = std::move(o);
  return v;
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return u_.b;
    case Kind::kInt:
      return u_.i != 0;
    case Kind::kFloat:
      return u_.f != 0.0;
    case Kind::kString:
      return !str().empty();
    case Kind::kList:
      return !list().empty();
    case Kind::kDict:
      return !dict().items.empty();
    case Kind::kNamespace:
    case Kind::kObject:
    case Kind::kGenerator:
      return true;
  }
  return false;
}

const char* Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kObject:
      return object().TypeName();
    case Kind::kGenerator:
      return "generator";
  }
  return "object";
}

// Python's repr(float): the shortest round-trip digits, positional for 1e-4 <= |x| < 1e16 and
// scientific otherwise, always with a ".0" or an exponent so it reads back as a float.
void AppendFloat(double f, std::string* out) {
  if (std::isnan(f) || std::isinf(f)) {
    out->append(std::isnan(f) ? "nan" : f < 0 ? "-inf" : "inf");
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string_view sci(buf, res.ptr - buf);
  size_t e = sci.find('e');
  // to_chars wrote "e+NN" / "e-NNN": from_chars takes the '-' but not the '+'.
  int exp = 0;
  const char* exp_begin = sci.data() + e + 1 + (sci[e + 1] == '+' ? 1 : 0);
  std::from_chars(exp_begin, sci.data() + sci.size(), exp);
  std::string digits;
  bool neg = sci[0] == '-';
  for (char c : sci.substr(0, e)) {
    if (c >= '0' && c <= '9') digits.push_back(c);
  }
  if (neg) out->push_back('-');
  if (exp >= -5 + 1 && exp < 16) {
    if (exp < 0) {
      out->append("0.");
      out->append(static_cast<size_t>(-exp - 1), '0');
      out->append(digits);
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out->append(digits);
      out->append(static_cast<size_t>(exp + 1 - static_cast<int>(digits.size())), '0');
      out->append(".0");
    } else {
      out->append(digits, 0, exp + 1);
      out->push_back('.');
      out->append(digits, exp + 1);
    }
    return;
  }
  out->push_back(digits[0]);
  if (digits.size() > 1) {
    out->push_back('.');
    out->append(digits, 1);
  }
  char ebuf[16];
  std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  out->append(ebuf);
}

namespace {

bool IsPrintable(uint32_t cp) {
  if (cp == ' ') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

void AppendStringRepr(const std::string& s, std::string* out) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  out->push_back(quote);
  for (size_t i = 0; i < s.size();) {
    size_t start = i;
    uint32_t cp = DecodeUtf8(s, &i);
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out->append("\\n");
    } else if (cp == '\r') {
      out->append("\\r");
    } else if (cp == '\t') {
      out->append("\\t");
    } else if (!IsPrintable(cp)) {
      char buf[16];
      if (cp < 0x100)
        std::snprintf(buf, sizeof(buf), "\\x%02x", cp);
      else if (cp < 0x10000)
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      else
        std::snprintf(buf, sizeof(buf), "\\U%08x", cp);
      out->append(buf);
    } else {
      out->append(s, start, i - start);
    }
  }
  out->push_back(quote);
}

}  // namespace

void AppendRepr(const Value& v, std::string* out) {
  switch (v.kind()) {
    case Value::Kind::kString:
      return AppendStringRepr(v.str(), out);
    case Value::Kind::kList: {
      out->push_back(v.is_tuple() ? '(' : '[');
      bool first = true;
      for (const Value& x : v.list()) {
        if (!first) out->append(", ");
        first = false;
        AppendRepr(x, out);
      }
      if (v.is_tuple() && v.list().size() == 1) out->push_back(',');
      return out->push_back(v.is_tuple() ? ')' : ']');
    }
    case Value::Kind::kDict: {
      out->push_back('{');
      bool first = true;
      const Dict& d = v.dict();
      for (size_t i = 0; i < d.items.size(); ++i) {
        const Value& x = d.items[i].second;
        if (!first) out->append(", ");
        first = false;
        if (d.key_values.empty())
          AppendStringRepr(d.items[i].first, out);
        else
          AppendRepr(d.key_values[i], out);
        out->append(": ");
        AppendRepr(x, out);
      }
      return out->push_back('}');
    }
    case Value::Kind::kUndefined:
      out->append("Undefined");
      return;
    default:
      return AppendStr(v, out);
  }
}

void AppendStr(const Value& v, std::string* out) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return;
    case Value::Kind::kNone:
      out->append("None");
      return;
    case Value::Kind::kBool:
      out->append(v.as_bool() ? "True" : "False");
      return;
    case Value::Kind::kInt:
      out->append(std::to_string(v.as_int()));
      return;
    case Value::Kind::kFloat:
      AppendFloat(v.as_float(), out);
      return;
    case Value::Kind::kString:
      out->append(v.str());
      return;
    case Value::Kind::kList:
    case Value::Kind::kDict:
      AppendRepr(v, out);
      return;
    case Value::Kind::kNamespace: {
      out->append("<Namespace ");
      AppendRepr(Value::FromDict(v.mutable_namespace()), out);
      out->push_back('>');
      return;
    }
    case Value::Kind::kObject:
    case Value::Kind::kGenerator:
      out->append("<").append(v.TypeName()).append(" object>");
      return;
  }
}

std::string ToStr(const Value& v) {
  if (v.is_string()) return v.str();
  std::string s;
  AppendStr(v, &s);
  return s;
}

bool PyEquals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind() || a.is_tuple() != b.is_tuple()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.str() == b.str();
    case Value::Kind::kList: {
      const List& x = a.list();
      const List& y = b.list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!PyEquals(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const Dict& x = a.dict();
      const Dict& y = b.dict();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* w = y.Find(k);
        if (w == nullptr || !PyEquals(v, *w)) return false;
      }
      return true;
    }
    default:
      return a.identity() == b.identity();
  }
}

bool PyLess(const Value& a, const Value& b, bool* ok) {
  *ok = true;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  if (a.is_list() && b.is_list()) {
    const List& x = a.list();
    const List& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (PyEquals(x[i], y[i])) continue;
      return PyLess(x[i], y[i], ok);
    }
    return x.size() < y.size();
  }
  *ok = false;
  return false;
}

uint32_t DecodeUtf8(std::string_view s, size_t* i) {
  auto c = static_cast<unsigned char>(s[*i]);
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || *i + len > s.size()) {
    ++*i;
    return c;
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    auto d = static_cast<unsigned char>(s[*i + k]);
    if ((d & 0xC0) != 0x80) {
      ++*i;
      return c;
    }
    cp = (cp << 6) | (d & 0x3F);
  }
  *i += len;
  return cp;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t CodePointCount(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size();) {
    DecodeUtf8(s, &i);
    ++n;
  }
  return n;
}

std::vector<size_t> CodePointOffsets(std::string_view s) {
  std::vector<size_t> offs;
  offs.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    offs.push_back(i);
    DecodeUtf8(s, &i);
  }
  offs.push_back(s.size());
  return offs;
}

bool IsPySpace(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace kvr::chat
