#include "chat/json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <unordered_map>

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
    if (out_->size() > opt_.max_bytes) {
      return absl::ResourceExhaustedError("resource limit: tojson output exceeds the size cap");
    }
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
    for (int i = 0; i < level && out_->size() <= opt_.max_bytes; ++i) out_->append(opt_.indent);
  }

  absl::Status DumpList(const List& l, int level) {
    if (l.empty()) return out_->append("[]"), absl::OkStatus();
    Open('[', level);
    for (size_t i = 0; i < l.size(); ++i) {
      if (i > 0) Separator(level);
      KVR_RETURN_IF_ERROR(Dump(l[i], level + 1));
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
      KVR_RETURN_IF_ERROR(Dump(items[i]->second, level + 1));
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

namespace {

constexpr int kMaxDepth = 256;  // deeper values would recurse deeply when printed or destroyed

Value FromJsonAt(const nlohmann::ordered_json& j, int depth) {
  using T = nlohmann::ordered_json::value_t;
  if (depth > kMaxDepth && (j.is_array() || j.is_object())) return Value::None();
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
      for (const auto& x : j) l.push_back(FromJsonAt(x, depth + 1));
      return Value::FromList(std::move(l));
    }
    case T::object: {
      Dict d;
      d.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) {
        d.items.emplace_back(it.key(), FromJsonAt(it.value(), depth + 1));  // keys are unique
      }
      return Value::FromDict(std::move(d));
    }
    default:
      return Value();
  }
}

// Builds Values from nlohmann's SAX events: no DOM and no recursion (the nesting is a heap
// stack, capped at kMaxDepth), no exceptions (errors arrive through parse_error), and each
// number's own text, so that an integer literal beyond 64 bits is an error instead of a float
// (nlohmann's DOM would turn it into one; Python keeps it exact, which we cannot).
class ValueBuilder : public nlohmann::json_sax<nlohmann::ordered_json> {
 public:
  explicit ValueBuilder(const JsonParseOptions& options) : options_(options) {}

  absl::StatusOr<Value> Result() && {
    if (!error_.empty()) return absl::InvalidArgumentError(error_);
    return std::move(root_);
  }

  bool null() override { return Add(Value::None()); }
  bool boolean(bool b) override { return Add(Value(b)); }
  bool number_integer(number_integer_t v) override { return Add(Value(int64_t{v})); }
  bool number_unsigned(number_unsigned_t v) override {
    if (v <= static_cast<uint64_t>(INT64_MAX)) return Add(Value(static_cast<int64_t>(v)));
    if (options_.big_ints_as_float) return Add(Value(static_cast<double>(v)));
    return OutOfRange(std::to_string(v));
  }
  bool number_float(number_float_t v, const string_t& text) override {
    // No '.' or exponent: an integer literal that nlohmann could only read as a float.
    if (!options_.big_ints_as_float && text.find_first_of(".eE") == std::string::npos) {
      return OutOfRange(text);
    }
    return Add(Value(v));
  }
  bool string(string_t& s) override { return Add(Value(std::move(s))); }
  bool binary(binary_t&) override { return Fail("invalid JSON: binary value"); }
  bool start_object(std::size_t) override { return Open(/*is_dict=*/true); }
  bool key(string_t& k) override {
    stack_.back().pending_key = std::move(k);
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(/*is_dict=*/false); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string& last_token,
                   const nlohmann::detail::exception& e) override {
    // 406: a number nlohmann cannot hold even as a double (1e400, or 400 digits).
    if (e.id == 406) return OutOfRange(last_token);
    std::string what = e.what();
    if (what.size() > 300) what = what.substr(0, 300) + "...";  // it quotes the last token
    return Fail("invalid JSON: " + what);
  }

 private:
  struct Frame {
    bool is_dict;
    List list;
    std::vector<std::pair<std::string, Value>> pairs;  // in order, duplicates included
    std::string pending_key;
  };

  bool Fail(std::string msg) {
    if (error_.empty()) error_ = std::move(msg);
    return false;
  }
  bool OutOfRange(const std::string& text) {
    std::string shown = text.size() > 40 ? text.substr(0, 40) + "..." : text;
    return Fail("JSON number out of range (integers are 64-bit here): " + shown);
  }
  bool Open(bool is_dict) {
    if (stack_.size() >= kMaxDepth) return Fail("JSON nested too deeply");
    stack_.push_back(Frame{is_dict, {}, {}, {}});
    return true;
  }
  bool Add(Value v) {
    if (stack_.empty()) {
      root_ = std::move(v);
    } else if (stack_.back().is_dict) {
      stack_.back().pairs.emplace_back(std::move(stack_.back().pending_key), std::move(v));
    } else {
      stack_.back().list.push_back(std::move(v));
    }
    return true;
  }
  bool Close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    return Add(f.is_dict ? Value::FromDict(ToDict(std::move(f.pairs)))
                         : Value::FromList(std::move(f.list)));
  }
  // Python's dict from pairs: a repeated key keeps its first position and its last value. A
  // hash index keeps a large object linear (Dict::Set scans).
  static Dict ToDict(std::vector<std::pair<std::string, Value>> pairs) {
    Dict d;
    d.items.reserve(pairs.size());
    std::unordered_map<std::string_view, size_t> index;
    index.reserve(pairs.size());
    for (auto& [k, v] : pairs) {
      auto [it, inserted] = index.try_emplace(k, d.items.size());
      if (inserted) {
        d.items.emplace_back(k, std::move(v));
      } else {
        d.items[it->second].second = std::move(v);
      }
    }
    return d;
  }

  const JsonParseOptions& options_;
  std::vector<Frame> stack_;
  Value root_;
  std::string error_;
};

}  // namespace

Value FromJson(const nlohmann::ordered_json& j) { return FromJsonAt(j, 0); }

absl::StatusOr<Value> ParseJson(std::string_view text, const JsonParseOptions& options) {
  ValueBuilder builder(options);
  nlohmann::ordered_json::sax_parse(text.begin(), text.end(), &builder);
  return std::move(builder).Result();
}

}  // namespace kvr::chat
