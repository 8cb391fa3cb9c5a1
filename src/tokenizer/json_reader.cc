#include "tokenizer/json_reader.h"

#include <limits>
#include <nlohmann/json.hpp>

namespace kvr::tokenizer {
namespace {

using simdjson::dom::element_type;

// nlohmann's SAX parser, used only to describe a document simdjson rejected: simdjson's error
// codes say what but not where. It reports through parse_error() (line, column, last token)
// instead of throwing, and builds nothing.
struct Diagnoser : nlohmann::json_sax<nlohmann::json> {
  std::string message;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    message = ex.what();
    return false;
  }
};

absl::Status SyntaxError(std::string_view text, simdjson::error_code code) {
  Diagnoser diagnoser;
  nlohmann::json::sax_parse(text.begin(), text.end(), &diagnoser);
  // Limits only simdjson has (nesting depth, integers beyond 64 bits) leave no nlohmann message.
  const std::string why =
      diagnoser.message.empty() ? simdjson::error_message(code) : diagnoser.message;
  return absl::InvalidArgumentError("malformed JSON: " + why);
}

}  // namespace

std::string_view JsonNode::TypeName() const {
  switch (element_.type()) {
    case element_type::ARRAY:
      return "array";
    case element_type::OBJECT:
      return "object";
    case element_type::INT64:
    case element_type::UINT64:
      return "integer";
    case element_type::DOUBLE:
      return "float";
    case element_type::STRING:
      return "string";
    case element_type::BOOL:
      return "boolean";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "unknown";
}

absl::Status JsonNode::Error(std::string_view reason) const {
  std::string where = path_.empty() ? std::string("tokenizer.json") : path_;
  return absl::InvalidArgumentError(where + ": " + std::string(reason));
}

absl::Status JsonNode::TypeError(std::string_view what) const {
  return Error("expected " + std::string(what) + ", got " + std::string(TypeName()));
}

std::string JsonNode::ChildPath(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

std::optional<JsonNode> JsonNode::Find(std::string_view key) const {
  simdjson::dom::element child;
  if (!element_.is_object() || element_.get_object().at_key(key).get(child) != simdjson::SUCCESS ||
      child.is_null()) {
    return std::nullopt;
  }
  return JsonNode(child, ChildPath(key));
}

absl::StatusOr<JsonNode> JsonNode::Get(std::string_view key) const {
  if (!element_.is_object()) return TypeError("an object");
  std::optional<JsonNode> child = Find(key);
  if (!child) return Error("missing field \"" + std::string(key) + "\"");
  return *std::move(child);
}

absl::StatusOr<std::string_view> JsonNode::String() const {
  std::string_view s;
  if (element_.get_string().get(s) != simdjson::SUCCESS) return TypeError("a string");
  return s;
}

absl::StatusOr<bool> JsonNode::Bool() const {
  bool b = false;
  if (element_.get_bool().get(b) != simdjson::SUCCESS) return TypeError("a boolean");
  return b;
}

absl::StatusOr<uint64_t> JsonNode::Uint() const {
  uint64_t v = 0;
  if (element_.get_uint64().get(v) == simdjson::SUCCESS) return v;
  int64_t negative = 0;
  if (element_.get_int64().get(negative) == simdjson::SUCCESS) {
    return Error("expected a non-negative integer, got " + std::to_string(negative));
  }
  return TypeError("a non-negative integer");
}

absl::StatusOr<uint32_t> JsonNode::Uint32() const {
  KVR_ASSIGN_OR_RETURN(uint64_t v, Uint());
  if (v > std::numeric_limits<uint32_t>::max()) {
    return Error("integer " + std::to_string(v) + " out of range");
  }
  return static_cast<uint32_t>(v);
}

absl::StatusOr<double> JsonNode::Number() const {
  double d = 0;
  if (element_.get_double().get(d) != simdjson::SUCCESS) return TypeError("a number");
  return d;
}

absl::StatusOr<std::vector<JsonNode>> JsonNode::Items() const {
  simdjson::dom::array array;
  if (element_.get_array().get(array) != simdjson::SUCCESS) return TypeError("an array");
  std::vector<JsonNode> items;
  items.reserve(array.size());
  for (simdjson::dom::element e : array) {
    items.emplace_back(e, path_ + "[" + std::to_string(items.size()) + "]");
  }
  return items;
}

absl::StatusOr<std::string> JsonNode::GetString(std::string_view key) const {
  KVR_ASSIGN_OR_RETURN(JsonNode child, Get(key));
  KVR_ASSIGN_OR_RETURN(std::string_view s, child.String());
  return std::string(s);
}

absl::StatusOr<uint32_t> JsonNode::GetUint32(std::string_view key) const {
  KVR_ASSIGN_OR_RETURN(JsonNode child, Get(key));
  return child.Uint32();
}

absl::StatusOr<std::string> JsonNode::GetString(std::string_view key, std::string_view def) const {
  std::optional<JsonNode> child = Find(key);
  if (!child) return std::string(def);
  KVR_ASSIGN_OR_RETURN(std::string_view s, child->String());
  return std::string(s);
}

absl::StatusOr<bool> JsonNode::GetBool(std::string_view key, bool def) const {
  std::optional<JsonNode> child = Find(key);
  if (!child) return def;
  return child->Bool();
}

absl::StatusOr<uint64_t> JsonNode::GetUint(std::string_view key, uint64_t def) const {
  std::optional<JsonNode> child = Find(key);
  if (!child) return def;
  return child->Uint();
}

absl::StatusOr<std::unique_ptr<JsonDocument>> JsonDocument::Parse(std::string_view text) {
  std::unique_ptr<JsonDocument> doc(new JsonDocument());
  // realloc_if_needed: simdjson reads up to SIMDJSON_PADDING bytes past the end, so it parses a
  // padded copy (a memcpy, negligible next to the parse).
  simdjson::error_code code =
      doc->parser_.parse(text.data(), text.size(), /*realloc_if_needed=*/true).get(doc->root_);
  if (code != simdjson::SUCCESS) return SyntaxError(text, code);
  return doc;
}

}  // namespace kvr::tokenizer
