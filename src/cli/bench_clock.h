// The benchmarks' CPU clock.
#pragma once

#include <ctime>

namespace kvr::cli {

// This thread's CPU time in µs: immune to the thread being descheduled on a shared machine,
// which otherwise sets the wall-clock tail (a scheduler time slice is milliseconds).
inline double ThreadCpuUs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e6 + double(ts.tv_nsec) * 1e-3;
}

}  // namespace kvr::cli
