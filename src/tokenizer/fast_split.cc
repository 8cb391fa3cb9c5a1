#include "tokenizer/fast_split.h"

#include <atomic>

namespace kvr::tokenizer {
namespace {
std::atomic<bool> g_enabled{true};
}  // namespace

void SetFastMatchersEnabled(bool enabled) { g_enabled = enabled; }

FastMatchFn FindFastMatcher(std::string_view pattern) {
  (void)pattern;
  if (!g_enabled) return nullptr;
  return nullptr;
}

}  // namespace kvr::tokenizer
