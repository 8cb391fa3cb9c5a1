// Whole-file reads for configuration and model files (tokenizer.json, chat templates).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace kvr {

// The file's bytes; NotFound "cannot open PATH" when it cannot be opened.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace kvr
