// SpinUntil: the bounded busy-wait that the project's locks (mutex.h, spin_shared_mutex.h) try
// before they block.
//
// Why: their critical sections last microseconds, and a thread that blocks pays a futex sleep
// plus a cross-CPU wake-up, which on virtualized hosts costs tens of microseconds: measured on
// the project's 2-core VM, a reader's median index query went from 2 µs to 26 µs while one
// writer applied events without it, and two routing threads made 1.23× the decisions of one
// with a blocking admission lock against 1.38× with a spinning one (docs/BENCHMARKS.md).
// Spinning briefly keeps a waiter that arrives during a short hold on the CPU; past kSpinNs (a
// long hold, or an oversubscribed machine where the holder is descheduled) the caller blocks as
// before.
#pragma once

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace kvr::internal {

inline constexpr std::chrono::nanoseconds kSpinNs{20'000};

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Retries `attempt` until it succeeds (true) or kSpinNs pass (false). The clock is read once per
// 64 tries, so an uncontended lock costs one try.
template <typename Attempt>
bool SpinUntil(Attempt attempt) {
  if (attempt()) return true;
  const auto deadline = std::chrono::steady_clock::now() + kSpinNs;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      CpuRelax();
      if (attempt()) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

}  // namespace kvr::internal
