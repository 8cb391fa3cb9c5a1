// JSON <-> Value. Parsing keeps object key order (nlohmann::ordered_json), as Python's
// json.loads does; dumping follows Python's json.dumps byte for byte, because transformers'
// `tojson` filter is json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...).
#pragma once

#include <cstdint>
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
  // Output beyond this fails with ResourceExhausted (checked as it grows: a large indent
  // multiplies the size of nested values).
  size_t max_bytes = SIZE_MAX;
};

// json.dumps(v). Fails (like Python's TypeError) on values JSON cannot hold.
absl::Status PyJsonDumps(const Value& v, const PyJsonOptions& opt, std::string* out);

// JSON (parsed with key order kept) -> Value: integers stay int, reals become float. nlohmann
// has already turned integers beyond 64 bits into floats, and they stay floats here; arrays
// and objects nested deeper than 256 levels become None (deeper Values would overflow the stack
// when printed or destroyed). ParseJson reports both as errors instead.
Value FromJson(const nlohmann::ordered_json& j);

struct JsonParseOptions {
  // Integers beyond 64 bits: Python keeps them exact, which a 64-bit renderer cannot. By
  // default they are an error (a render context holding one cannot be rendered as the engine
  // renders it); true reads them as floats, for files where they are never rendered
  // (tokenizer_config.json's model_max_length is often 1000000000000000019884624838656).
  bool big_ints_as_float = false;
};

// Parses JSON text into a Value (Python's json.loads, key order kept; a repeated key keeps its
// first position and last value). Never throws; InvalidArgument for malformed JSON (with
// nlohmann's line and column), nesting deeper than 256, and integers beyond 64 bits (see
// JsonParseOptions).
absl::StatusOr<Value> ParseJson(std::string_view text, const JsonParseOptions& options = {});

}  // namespace kvr::chat
