// Hand-written matchers for the pre-tokenizer regexes that real models ship (Llama 3 / GPT-4
// style, Qwen 2/3, DeepSeek V3). Each is a drop-in replacement for Regex::FindAll on that exact
// pattern: same spans, proven by the differential tests in fast_split_test.cc against
// Oniguruma on random and real text, and several times faster. Character classes come from
// Oniguruma's own Unicode tables, so \p{L}, \p{N}, \s agree by construction.
#pragma once

#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace kvr::tokenizer {

using FastMatchFn = void (*)(std::string_view text, std::vector<Span>* out);

// Returns the matcher for `pattern` if one exists (exact pattern text), else nullptr.
FastMatchFn FindFastMatcher(std::string_view pattern);

// Whether `pattern`, as an isolated split, can be cut after a '\n' that spaces or tabs, then a
// printable non-space ASCII character follow (PreTokenizer::CutsAfterNewline): the Llama 3 and
// Qwen 2 patterns.
bool CutsAfterNewline(std::string_view pattern);

// Test hook: when false, FindFastMatcher always returns nullptr (process-wide; set it before
// loading tokenizers).
void SetFastMatchersEnabled(bool enabled);

}  // namespace kvr::tokenizer
