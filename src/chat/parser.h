// Tokens -> Program, following Jinja2's grammar and operator precedence (jinja2/parser.py):
// condexpr < or < and < not < compare < + - < ~ < * / // % < ** < unary - + < postfix
// (.attr, [key], call) < filters and tests.
#pragma once

#include <memory>
#include <string_view>

#include "chat/ast.h"
#include "common/status.h"

namespace kvr::chat {

// Parses template source. Errors carry "line L, column C". Nesting is bounded (kMaxDepth) so a
// hostile template cannot overflow the stack while parsing.
absl::StatusOr<std::unique_ptr<Program>> ParseTemplate(std::string_view source);

inline constexpr int kMaxParseDepth = 200;

}  // namespace kvr::chat
