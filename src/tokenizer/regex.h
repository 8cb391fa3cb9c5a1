// A thin RAII wrapper over Oniguruma, the regex engine that Hugging Face tokenizers compiles its
// patterns with (same syntax, same Unicode property tables), so \p{L}, \s and lookaheads behave
// identically. Thread-safe: a compiled Regex is immutable; each search uses its own region.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace kvr::tokenizer {

using Span = std::pair<size_t, size_t>;  // [begin, end) byte offsets

class Regex {
 public:
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(std::string_view pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends every match in `text` in order, with the rules of the Rust `onig` crate's
  // find_iter: after an empty match at the end of the previous match the search advances one
  // character, so the scan always terminates.
  void FindAll(std::string_view text, std::vector<Span>* out) const;

 private:
  explicit Regex(void* re) : re_(re) {}
  void* re_;  // regex_t*
};

}  // namespace kvr::tokenizer
