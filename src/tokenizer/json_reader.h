// Reading tokenizer.json. The file is 2-35 MB (Gemma's), so it is parsed with simdjson's DOM
// (milliseconds, where a node-per-value DOM took most of a second), and read through JsonNode, a
// view that knows each value's path from the root. Every loader error therefore names the field
// and the reason, e.g. `pre_tokenizer.pretokenizers[1].pattern.Regex: expected a string, got
// number`. Nothing here throws: simdjson is used through its error-code API.
//
// Absent and null members are the same to Find and the Get* defaults: tokenizer.json writes
// parts it does not use as null (`"normalizer": null`).
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kvr::tokenizer {

class JsonNode {
 public:
  JsonNode(simdjson::dom::element element, std::string path)
      : element_(element), path_(std::move(path)) {}

  // "model.vocab", "added_tokens[3]"; empty at the root.
  const std::string& path() const { return path_; }
  // The raw DOM value, for the loops over the vocabulary and the merges.
  simdjson::dom::element element() const { return element_; }

  bool is_null() const { return element_.is_null(); }
  bool is_string() const { return element_.is_string(); }
  bool is_object() const { return element_.is_object(); }
  // "object", "string", ... for error messages.
  std::string_view TypeName() const;

  // InvalidArgument "<path>: <reason>".
  absl::Status Error(std::string_view reason) const;
  // The error for a value of the wrong type: "<path>: expected <what>, got <type>".
  absl::Status TypeError(std::string_view what) const;

  // Member `key`; nullopt when absent or null, or when this is not an object.
  std::optional<JsonNode> Find(std::string_view key) const;
  // Member `key`; an error naming it when absent or null, or when this is not an object.
  absl::StatusOr<JsonNode> Get(std::string_view key) const;

  absl::StatusOr<std::string_view> String() const;
  absl::StatusOr<bool> Bool() const;
  absl::StatusOr<uint64_t> Uint() const;  // a non-negative integer
  absl::StatusOr<uint32_t> Uint32() const;
  absl::StatusOr<double> Number() const;  // any number
  // The elements of an array, each with its path ("<path>[i]").
  absl::StatusOr<std::vector<JsonNode>> Items() const;

  // Required members of a given type.
  absl::StatusOr<std::string> GetString(std::string_view key) const;
  absl::StatusOr<uint32_t> GetUint32(std::string_view key) const;
  // Optional members: `def` when absent or null, an error when of another type.
  absl::StatusOr<std::string> GetString(std::string_view key, std::string_view def) const;
  absl::StatusOr<bool> GetBool(std::string_view key, bool def) const;
  absl::StatusOr<uint64_t> GetUint(std::string_view key, uint64_t def) const;

 private:
  std::string ChildPath(std::string_view key) const;

  simdjson::dom::element element_;
  std::string path_;
};

// A parsed document. The strings that JsonNode returns point into it: keep it alive while
// they are used.
class JsonDocument {
 public:
  // A syntax error gives InvalidArgument "malformed JSON: ..." with the line and column.
  static absl::StatusOr<std::unique_ptr<JsonDocument>> Parse(std::string_view text);
  JsonNode root() const { return JsonNode(root_, ""); }

 private:
  JsonDocument() = default;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
};

}  // namespace kvr::tokenizer
