#include "common/check.h"

#include <atomic>
#include <cstdlib>

#include "common/log.h"

namespace kvr {
namespace {

constexpr uint64_t kBugsLogged = 16;  // then only counted: a bug in a hot loop must not flood
std::atomic<uint64_t> bugs{0};

}  // namespace

bool Bug(const char* file, int line, const char* what) {
#ifndef NDEBUG
  CheckFailed(file, line, what);
#endif
  if (bugs.fetch_add(1, std::memory_order_relaxed) < kBugsLogged) {
    KVR_LOG("check", error, "bug at {}:{}: {} (going on; see the caller)", file, line, what);
  }
  return true;
}

void CheckFailed(const char* file, int line, const char* what) {
  KVR_LOG("check", critical, "check failed at {}:{}: {}", file, line, what);
  std::abort();
}

uint64_t BugCount() { return bugs.load(std::memory_order_relaxed); }

}  // namespace kvr
