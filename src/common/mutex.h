// Mutex and MutexLock: std::mutex with Abseil's thread-safety annotations, so that clang's
// -Wthread-safety checks what each one guards (libstdc++'s std::mutex and lock_guard carry no
// annotations). Lock() spins briefly before it blocks (spin.h: why).
//
// Why not absl::Mutex, which is annotated: Debian's Abseil is built without ThreadSanitizer, so
// TSan cannot see absl::Mutex synchronize and reports a race on everything it guards. std::mutex
// is pthread's, which TSan intercepts.
#pragma once

#include <mutex>

#include "absl/base/thread_annotations.h"
#include "common/spin.h"

namespace kvr {

class ABSL_LOCKABLE Mutex {
 public:
  constexpr Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // The bodies are the lock itself, which the analysis cannot follow into std::mutex.
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (!internal::SpinUntil([this] { return mu_.try_lock(); })) mu_.lock();
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() ABSL_NO_THREAD_SAFETY_ANALYSIS { mu_.unlock(); }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return mu_.try_lock();
  }

 private:
  std::mutex mu_;
};

// Holds `mu` for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_.Lock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_.Unlock(); }

 private:
  Mutex& mu_;
};

}  // namespace kvr
