#include "chat/json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace kvr::chat {
namespace {

// Python json's string encoder: short escapes for \" \\ \n \r \t \b \f, \u00XX for other
// control characters; with ensure_ascii every non-ASCII code point becomes \uXXXX (UTF-16).
void DumpString(const std::string& s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    size_t run = i;  // copy bytes that need no escape in one go
    while (run < s.size()) {
      auto c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c == '"' || c == '\\' || (ensure_ascii && c >= 0x7F)) break;
      ++run;
    }
    if (run > i) {
      out->append(s, i, run - i);
      i = run;
      continue;
    }
    size_t start = i;
    uint32_t cp = DecodeUtf8(s, &i);
    char buf[16];
    switch (cp) {
      case '"':
        out->append("\\\"");
        continue;
      case '\\':
        out->append("\\\\");
        continue;
      case '\n':
        out->append("\\n");
        continue;
      case '\r':
        out->append("\\r");
        continue;
      case '\t':
        out->append("\\t");
        continue;
      case '\b':
        out->append("\\b");
        continue;
      case '\f':
        out->append("\\f");
        continue;
      default:
        break;
    }
    if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
      if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      }
      out->append(buf);
    } else {
      out->append(s, start, i - start);
    }
  }
  out->push_back('"');
}

class Dumper {
 public:
  Dumper(const PyJsonOptions& opt, std::string* out) : opt_(opt), out_(out) {}

  absl::Status Dump(const Value& v, int level) {
    if (level > 512) return absl::InvalidArgumentError("maximum recursion depth exceeded");
    switch (v.kind()) {
      case Value::Kind::kNone:
        out_->append("null");
        return absl::OkStatus();
      case Value::Kind::kBool:
        out_->append(v.as_bool() ? "true" : "false");
        return absl::OkStatus();
      case Value::Kind::kInt:
        out_->append(std::to_string(v.as_int()));
        return absl::OkStatus();
      case Value::Kind::kFloat:
        DumpFloat(v.as_float());
        return absl::OkStatus();
      case Value::Kind::kString:
        DumpString(v.str(), opt_.ensure_ascii, out_);
        return absl::OkStatus();
      case Value::Kind::kList:
        return DumpList(v.list(), level);
      case Value::Kind::kDict:
        return DumpDict(v.dict(), level);
      default:
        return absl::InvalidArgumentError(std::string("Object of type ") + v.TypeName() +
                                          " is not JSON serializable");
    }
  }

 private:
  void DumpFloat(double f) {
    if (std::isnan(f))
      out_->append("NaN");
    else if (std::isinf(f))
      out_->append(f > 0 ? "Infinity" : "-Infinity");
    else
      AppendFloat(f, out_);
  }

  void Open(char c, int level) {
    out_->push_back(c);
    if (opt_.has_indent) NewLine(level + 1);
  }
  void Separator(int level) {
    out_->append(opt_.item_separator);
    if (opt_.has_indent) NewLine(level + 1);
  }
  void Close(char c, int level) {
    if (opt_.has_indent) NewLine(level);
    out_->push_back(c);
  }
  void NewLine(int level) {
    out_->push_back('\n');
    for (int i = 0; i < level; ++i) out_->append(opt_.indent);
  }

  absl::Status DumpList(const List& l, int level) {
    if (l.empty()) return out_->append("[]"), absl::OkStatus();
    Open('[', level);
    for (size_t i = 0; i < l.size(); ++i) {
      if (i > 0) Separator(level);
      RETURN_IF_ERROR(Dump(l[i], level + 1));
    }
    Close(']', level);
    return absl::OkStatus();
  }

  absl::Status DumpDict(const Dict& d, int level) {
    if (d.items.empty()) return out_->append("{}"), absl::OkStatus();
    std::vector<const std::pair<std::string, Value>*> items;
    for (const auto& kv : d.items) items.push_back(&kv);
    if (opt_.sort_keys) {
      std::stable_sort(items.begin(), items.end(),
                       [](const auto* a, const auto* b) { return a->first < b->first; });
    }
    Open('{', level);
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) Separator(level);
      DumpString(items[i]->first, opt_.ensure_ascii, out_);
      out_->append(opt_.key_separator);
      RETURN_IF_ERROR(Dump(items[i]->second, level + 1));
    }
    Close('}', level);
    return absl::OkStatus();
  }

  const PyJsonOptions& opt_;
  std::string* out_;
};

}  // namespace

absl::Status PyJsonDumps(const Value& v, const PyJsonOptions& opt, std::string* out) {
  return Dumper(opt, out).Dump(v, 0);
}

Value FromJson(const nlohmann::ordered_json& j) {
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null:
      return Value::None();
    case T::boolean:
      return Value(j.get<bool>());
    case T::number_integer:
      return Value(j.get<int64_t>());
    case T::number_unsigned: {
      auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case T::number_float:
      return Value(j.get<double>());
    case T::string:
      return Value(j.get_ref<const std::string&>());
    case T::array: {
      List l;
      l.reserve(j.size());
      for (const auto& x : j) l.push_back(FromJson(x));
      return Value::FromList(std::move(l));
    }
    case T::object: {
      Dict d;
      d.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) d.Set(it.key(), FromJson(it.value()));
      return Value::FromDict(std::move(d));
    }
    default:
      return Value();
  }
}

absl::StatusOr<Value> ParseJson(std::string_view text) {
  // The depth limit keeps a hostile input from exhausting the stack in FromJson.
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > 256) return absl::InvalidArgumentError("JSON nested too deeply");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  // No exceptions: allow_exceptions=false returns a discarded value on malformed input.
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError("invalid JSON");
  return FromJson(j);
}

}  // namespace kvr::chat
