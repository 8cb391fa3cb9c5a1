// Template source -> tokens, with Jinja2's whitespace rules as transformers configures them:
// trim_blocks (drop the first newline after a block or comment tag), lstrip_blocks (drop spaces
// and tabs before a block or comment tag that starts a line), `-` and `+` modifiers, and
// keep_trailing_newline=False (one trailing newline of the source is dropped).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kvr::chat {

enum class Tok : uint8_t {
  kData,        // literal text (already whitespace-processed)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,
  kInt,
  kFloat,
  kOp,  // text holds the operator: + - * / // % ** ~ == != < <= > >= = . , : | ( ) [ ] { }
  kEof,
};

struct Token {
  Tok type;
  std::string text;  // data, name, unescaped string, or operator
  int64_t int_value = 0;
  double float_value = 0;
  uint32_t offset = 0;  // byte offset in the (newline-normalized) source
};

struct LexResult {
  std::string source;  // newline-normalized source the offsets refer to
  std::vector<Token> tokens;
};

absl::StatusOr<LexResult> Lex(std::string_view source);

// "line L, column C" (1-based; column counts code points) for an error message.
std::string DescribePosition(std::string_view source, uint32_t offset);

}  // namespace kvr::chat
