// JSON <-> Value. Parsing keeps object key order (nlohmann::ordered_json), as Python's
// json.loads does; dumping follows Python's json.dumps byte for byte, because transformers'
// `tojson` filter is json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...).
#pragma once

#include <string>

#include "chat/value.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace kvr::chat {

struct PyJsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // the indent unit (Python: int n -> n spaces, or a string)
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};

// json.dumps(v). Fails (like Python's TypeError) on values JSON cannot hold.
absl::Status PyJsonDumps(const Value& v, const PyJsonOptions& opt, std::string* out);

// JSON (parsed with key order kept) -> Value: integers stay int, reals become float.
Value FromJson(const nlohmann::ordered_json& j);

// Parses JSON text into a Value; errors instead of exceptions.
absl::StatusOr<Value> ParseJson(std::string_view text);

}  // namespace kvr::chat
