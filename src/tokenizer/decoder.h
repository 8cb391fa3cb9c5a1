// Decoders from tokenizer.json ("decoder"): ByteLevel, Metaspace, Replace, ByteFallback, Fuse,
// Strip and Sequence. Like Hugging Face, each stage maps the list of token strings to a new
// list (decode_chain) and the result is concatenated.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace kvr::tokenizer {

class JsonNode;

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
};

// Builds the decoder described by `j`; errors name the unsupported type or malformed field.
absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const JsonNode& j);

// Replaces invalid UTF-8 by U+FFFD per maximal invalid subsequence (Rust from_utf8_lossy).
std::string Utf8Lossy(std::string_view bytes);

}  // namespace kvr::tokenizer
