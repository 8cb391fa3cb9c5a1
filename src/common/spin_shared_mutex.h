// SpinSharedMutex: a writer-preferring reader/writer lock whose lock() and lock_shared() first
// retry the try-lock for a bounded time (spin.h: why) before blocking.
//
// Why writer-preferring: the index has one writer (the event thread) and many readers (every
// routing thread). Under a reader-preferring lock (glibc's default, and so std::shared_mutex's)
// readers that keep overlapping hold the lock without a gap and the writer never gets it: the
// index would stop following the engines. Here a writer that has stopped spinning and waits
// turns new readers away (try_lock_shared fails, lock_shared waits) until it has had its turn.
// It is glibc's rwlock in PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP mode, so ThreadSanitizer
// knows it as a lock.
//
// Not recursive: a thread that holds a shared lock must not call lock_shared() again (behind a
// waiting writer that would deadlock); try_lock_shared() is fine and fails instead.
// Annotated for clang's -Wthread-safety; SpinWriterLock and SpinReaderLock are its scoped guards.
#pragma once

#include <pthread.h>

#include <atomic>

#include "absl/base/thread_annotations.h"
#include "common/spin.h"

namespace kvr {

class ABSL_LOCKABLE SpinSharedMutex {
 public:
  SpinSharedMutex() = default;
  SpinSharedMutex(const SpinSharedMutex&) = delete;
  SpinSharedMutex& operator=(const SpinSharedMutex&) = delete;
  ~SpinSharedMutex() { pthread_rwlock_destroy(&rw_); }

  // The bodies are the lock's implementation, which the analysis cannot follow into pthread.
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (!internal::SpinUntil([this] { return TryWrite(); })) pthread_rwlock_wrlock(&rw_);
  }
  bool try_lock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return TryWrite();
  }
  void unlock() ABSL_UNLOCK_FUNCTION() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    pthread_rwlock_unlock(&rw_);
  }

  void lock_shared() ABSL_SHARED_LOCK_FUNCTION() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (TryRead()) return;
    waiting_readers_.fetch_add(1, std::memory_order_relaxed);
    if (!internal::SpinUntil([this] { return TryRead(); })) pthread_rwlock_rdlock(&rw_);
    waiting_readers_.fetch_sub(1, std::memory_order_relaxed);
  }
  bool try_lock_shared() ABSL_SHARED_TRYLOCK_FUNCTION(true) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return TryRead();
  }
  void unlock_shared() ABSL_UNLOCK_FUNCTION() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    pthread_rwlock_unlock(&rw_);
  }

  // For a writer that releases the lock between parts of one long update: after unlock(), lets
  // the readers waiting for it in (up to internal::kSpinNs), instead of re-locking before they
  // notice.
  void YieldToReaders() {
    if (waiting_readers_.load(std::memory_order_relaxed) == 0) return;
    internal::SpinUntil([this] { return waiting_readers_.load(std::memory_order_relaxed) == 0; });
  }

 private:
  bool TryWrite() { return pthread_rwlock_trywrlock(&rw_) == 0; }
  bool TryRead() { return pthread_rwlock_tryrdlock(&rw_) == 0; }
  pthread_rwlock_t rw_ = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
  std::atomic<int> waiting_readers_{0};  // readers spinning in lock_shared()
};

// Holds `mu` exclusively for its scope.
class ABSL_SCOPED_LOCKABLE SpinWriterLock {
 public:
  explicit SpinWriterLock(SpinSharedMutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_.lock();
  }
  SpinWriterLock(const SpinWriterLock&) = delete;
  SpinWriterLock& operator=(const SpinWriterLock&) = delete;
  ~SpinWriterLock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  SpinSharedMutex& mu_;
};

// Holds `mu` shared for its scope.
class ABSL_SCOPED_LOCKABLE SpinReaderLock {
 public:
  explicit SpinReaderLock(SpinSharedMutex& mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_.lock_shared();
  }
  SpinReaderLock(const SpinReaderLock&) = delete;
  SpinReaderLock& operator=(const SpinReaderLock&) = delete;
  ~SpinReaderLock() ABSL_UNLOCK_FUNCTION() { mu_.unlock_shared(); }

 private:
  SpinSharedMutex& mu_;
};

}  // namespace kvr
