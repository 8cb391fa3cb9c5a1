#include "common/check.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace kvr {
namespace {

constexpr uint64_t kBugsLogged = 16;  // then only counted: a bug in a hot loop must not flood
std::atomic<uint64_t> bugs{0};

// Straight to stderr, one write per line: on the way to an abort nothing else is trusted (and
// the pure modules that check invariants do not link the logger).
void Report(const char* kind, const char* file, int line, const char* what, const char* tail) {
  std::fprintf(stderr, "kvrouter: %s at %s:%d: %s%s\n", kind, file, line, what, tail);
  std::fflush(stderr);
}

}  // namespace

bool Bug(const char* file, int line, const char* what) {
#ifndef NDEBUG
  CheckFailed(file, line, what);
#endif
  if (bugs.fetch_add(1, std::memory_order_relaxed) < kBugsLogged) {
    Report("bug", file, line, what, " (going on; see the caller)");
  }
  return true;
}

void CheckFailed(const char* file, int line, const char* what) {
  Report("check failed", file, line, what, "");
  std::abort();
}

uint64_t BugCount() { return bugs.load(std::memory_order_relaxed); }

}  // namespace kvr
