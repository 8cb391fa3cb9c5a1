#include "tokenizer/regex.h"

#include <oniguruma.h>

#include <mutex>
#include <string>

#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

void InitOnigOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern) {
  InitOnigOnce();
  regex_t* re = nullptr;
  OnigErrorInfo info;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  int rc = onig_new(&re, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                    ONIG_SYNTAX_DEFAULT, &info);
  if (rc != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, rc, &info);
    return absl::InvalidArgumentError("regex '" + std::string(pattern) +
                                      "' does not compile: " + reinterpret_cast<char*>(msg));
  }
  return std::unique_ptr<Regex>(new Regex(re));
}

Regex::~Regex() { onig_free(static_cast<regex_t*>(re_)); }

void Regex::FindAll(std::string_view text, std::vector<Span>* out) const {
  auto* re = static_cast<regex_t*>(re_);
  OnigRegion* region = onig_region_new();
  const auto* begin = reinterpret_cast<const OnigUChar*>(text.data());
  const auto* end = begin + text.size();
  size_t from = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (from <= text.size()) {
    int r = onig_search(re, begin, end, begin + from, end, region, ONIG_OPTION_NONE);
    if (r < 0) break;  // ONIG_MISMATCH (or an engine error: treated as no further match)
    size_t s = static_cast<size_t>(region->beg[0]);
    size_t e = static_cast<size_t>(region->end[0]);
    if (s == e && have_last && last_end == e) {
      if (from >= text.size()) break;
      from += Utf8Len(static_cast<unsigned char>(text[from]));
      continue;
    }
    out->emplace_back(s, e);
    from = e;
    have_last = true;
    last_end = e;
  }
  onig_region_free(region, 1);
}

}  // namespace kvr::tokenizer
