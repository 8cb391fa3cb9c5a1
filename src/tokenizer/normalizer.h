// Normalizers from tokenizer.json ("normalizer"): NFC, NFD, NFKC, NFKD, Replace, Prepend,
// Lowercase, Strip and Sequence. Each rewrites one segment of text in place; the tokenizer
// applies them to every segment between added tokens, as Hugging Face does.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kvr::tokenizer {

class JsonNode;

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Normalizes `in` (valid UTF-8). Returns false, leaving *out untouched, when `in` is already
  // normal (the common case, which then costs no copy); else stores the result in *out.
  virtual bool Normalize(std::string_view in, std::string* out) const = 0;
  // Convenience for cold paths.
  void Apply(std::string* s) const {
    std::string out;
    if (Normalize(*s, &out)) *s = std::move(out);
  }
};

// Builds the normalizer described by `j` (a JSON object, not null). Unsupported types are an
// Unimplemented error that names them; malformed fields an InvalidArgument error naming the
// field.
absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const JsonNode& j);

}  // namespace kvr::tokenizer
