// The workers' prefill rates for one kvrouter decision: each worker's online fit, split into
// speed classes, with the fits that are noise snapped to their class's median.
//
// The online fits (PrefillRateModel) scatter: by a factor of two over a run's first requests
// on equal engines, and by noise after (each includes the decode steps its worker happened to
// interleave). Compared raw, they send a request off its cached prefix to a worker whose fit is
// a little higher. So the settled fits are split into speed classes at their
// widest gaps (Split), and a fit within calibrate_tolerance of its class's median is given the
// median rate and overhead (Snap). Before every fit has settled the fleet is one class.
//
// The rules for several speed classes (classes_* in PolicyOptions) ask more than one split: the
// same split must have held while the fleet observed classes_persist first tokens per worker.
// A fleet of several speeds splits the same way from its first fits on; far past saturation
// equal engines' fits split for a while, each time differently.
//
// Not thread-safe: one per policy, used under the scheduler's lock. No allocation once sized.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "scheduler/policy.h"

namespace kvr {

// The median of ascending values (not empty).
double MedianOfSorted(std::span<const double> s);
// The median of `values` (not empty), sorted in place.
double MedianInPlace(std::span<double> values);

class SpeedClasses {
 public:
  explicit SpeedClasses(const PolicyOptions& o) : o_(o) {}

  // This decision's rates and overheads: each worker's fit (its configured prior rate and no
  // overhead when calibrate_rate is off), split and snapped.
  void Fit(std::span<const WorkerView> w);

  double rate(size_t i) const { return rate_[i]; }
  double overhead(size_t i) const { return overhead_[i]; }
  // Whether the rules for several classes act: the fastest worker's class is not the slowest's,
  // and that split has held for classes_persist first tokens per worker.
  bool several() const { return several_; }
  // Whether the calibrated rates differ by more than calibrate_tolerance: a heterogeneous fleet
  // (split or not).
  bool RatesDiffer() const;

 private:
  void Split(size_t b, size_t e);
  void Snap(size_t b, size_t e);
  double SortedMedian(size_t b, size_t e) const;

  PolicyOptions o_;
  std::vector<double> rate_, overhead_;
  // The fits in ascending order (sorted_) and whose they are (order_); each worker's class, as
  // the index in sorted_ of its class's slowest fit (class_of_).
  std::vector<size_t> order_, class_of_;
  std::vector<double> sorted_, scratch_;
  bool several_ = false;
  // The split of the last change (held_class_of_) and the fleet's first tokens observed then.
  std::vector<size_t> held_class_of_;
  uint64_t split_at_samples_ = 0;
};

}  // namespace kvr
