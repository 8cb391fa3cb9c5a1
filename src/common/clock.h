// The time seam. Pure modules take a Clock& and never read the wall clock themselves, so the
// simulator can run the production index and scheduler in virtual time.
#pragma once

#include <atomic>
#include <cstdint>

namespace kvr {

// Nanoseconds on a monotonic time line; only differences are meaningful.
using TimeNs = int64_t;
inline constexpr TimeNs kNsPerUs = 1'000;
inline constexpr TimeNs kNsPerMs = 1'000'000;
inline constexpr TimeNs kNsPerSec = 1'000'000'000;

// Thread-safe for concurrent Now() calls in every implementation.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeNs Now() const = 0;
};

// steady_clock.
class SystemClock final : public Clock {
 public:
  TimeNs Now() const override;
  static SystemClock& Get();
};

// Time moves only when told. Set/Advance may race with Now() safely (atomic).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeNs start = 0) : now_(start) {}
  TimeNs Now() const override { return now_.load(std::memory_order_relaxed); }
  void Set(TimeNs t) { now_.store(t, std::memory_order_relaxed); }
  void Advance(TimeNs d) { now_.fetch_add(d, std::memory_order_relaxed); }

 private:
  std::atomic<TimeNs> now_;
};

}  // namespace kvr
