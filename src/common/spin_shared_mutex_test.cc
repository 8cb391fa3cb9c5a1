// SpinSharedMutex: exclusion, and a writer that is not starved by readers who keep arriving.
// Threads wait for conditions (atomics), never for time.
#include "common/spin_shared_mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace kvr {
namespace {

void WaitFor(const std::atomic<bool>& flag) {
  while (!flag.load()) std::this_thread::yield();
}

TEST(SpinSharedMutex, TryLocksSeeEachOther) {
  SpinSharedMutex mu;
  ASSERT_TRUE(mu.try_lock_shared());
  ASSERT_TRUE(mu.try_lock_shared());  // readers share
  EXPECT_FALSE(mu.try_lock());
  mu.unlock_shared();
  mu.unlock_shared();
  ASSERT_TRUE(mu.try_lock());
  EXPECT_FALSE(mu.try_lock_shared());
  mu.unlock();
}

// One reader thread keeps the lock read-held without a gap, as readers that keep arriving and
// overlapping do: it takes a new shared hold before it drops the previous one. Under a
// reader-preferring lock every new hold succeeds, so the writer would get in only after the
// readers stop (kMaxReads holds later). Here a writer that waits turns the next reader away;
// the reader then steps aside until the writer is through.
TEST(SpinSharedMutex, WriterIsNotStarvedByArrivingReaders) {
  constexpr int kMaxReads = 2'000'000;
  SpinSharedMutex mu;
  std::atomic<int> reads{0};
  std::atomic<int> refusals{0};
  std::atomic<bool> writer_done{false};
  std::thread reader([&] {
    mu.lock_shared();
    while (reads.load() < kMaxReads) {
      if (mu.try_lock_shared()) {  // the new hold first, then the old one goes
        mu.unlock_shared();
        reads.fetch_add(1);
        continue;
      }
      refusals.fetch_add(1);  // a writer is waiting: let it through
      mu.unlock_shared();
      WaitFor(writer_done);
      mu.lock_shared();
    }
    mu.unlock_shared();
  });
  while (reads.load() < 1000) std::this_thread::yield();  // the readers are streaming
  mu.lock();
  const int reads_when_locked = reads.load();
  mu.unlock();
  writer_done = true;
  reader.join();
  EXPECT_LT(reads_when_locked, kMaxReads);
  EXPECT_GE(refusals.load(), 1);
}

// Blocking readers and writers in a loop: a writer's critical section is never seen by a
// reader half done (under TSan, also no data race).
TEST(SpinSharedMutex, ReadersSeeWholeWrites) {
  SpinSharedMutex mu;
  int a = 0, b = 0;  // the writer keeps a == b
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        SpinReaderLock lock(mu);
        ASSERT_EQ(a, b);
      }
    });
  }
  for (int i = 0; i < 20000; ++i) {
    SpinWriterLock lock(mu);
    ++a;
    ++b;
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(a, 20000);
}

}  // namespace
}  // namespace kvr
