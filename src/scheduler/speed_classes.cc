#include "scheduler/speed_classes.h"

#include <algorithm>
#include <cmath>

namespace kvr {

double MedianOfSorted(std::span<const double> s) {
  const size_t n = s.size();
  return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

double MedianInPlace(std::span<double> values) {
  std::sort(values.begin(), values.end());
  return MedianOfSorted(values);
}

void SpeedClasses::Fit(std::span<const WorkerView> w) {
  rate_.resize(w.size());
  overhead_.resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    rate_[i] = o_.calibrate_rate ? w[i].rate->rate() : w[i].spec->prefill_rate_prior;
    overhead_[i] = o_.calibrate_rate ? w[i].rate->overhead_s() : 0.0;
  }
  several_ = false;
  if (!o_.calibrate_rate || o_.calibrate_tolerance <= 0 || w.size() < 2) return;
  order_.resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) order_[i] = i;
  std::sort(order_.begin(), order_.end(), [&](size_t a, size_t b) { return rate_[a] < rate_[b]; });
  sorted_.resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) sorted_[i] = rate_[order_[i]];
  // The classes are told apart only while every rate is settled (the first fits of a run scatter
  // by a factor of two on equal engines); the split is tracked from the first fits on.
  class_of_.assign(w.size(), 0);
  if (o_.calibrate_classes > 0) Split(0, w.size());
  bool settled = o_.calibrate_classes > 0;
  uint64_t samples = 0;
  for (const WorkerView& v : w) {
    settled = settled && v.rate->settled();
    samples += v.rate->samples();
  }
  if (class_of_ != held_class_of_ || samples < split_at_samples_) {
    held_class_of_ = class_of_;
    split_at_samples_ = samples;
  }
  if (!settled) {
    Snap(0, w.size());
    return;
  }
  for (size_t b = 0, e = 1; b < w.size(); b = e++) {
    while (e < w.size() && class_of_[order_[e]] == b) ++e;
    Snap(b, e);
  }
  // Several classes: the fastest worker's is not the slowest's (class 0).
  several_ = class_of_[order_.back()] > 0 &&
             (split_at_samples_ == 0 ||
              double(samples - split_at_samples_) >= o_.classes_persist * double(w.size()));
}

bool SpeedClasses::RatesDiffer() const {
  const auto [lo, hi] = std::minmax_element(rate_.begin(), rate_.end());
  return *hi > *lo * (1 + o_.calibrate_tolerance);
}

// Splits the fits sorted_[b, e) (workers order_[b, e)): at the widest gap between two
// consecutive fits, at least two on each side, when the medians of the two sides differ by more
// than calibrate_classes, and each side again the same way. A single outlying fit is never a
// class of its own.
void SpeedClasses::Split(size_t b, size_t e) {
  if (e - b >= 4) {
    size_t cut = b + 2;
    for (size_t k = b + 3; k + 2 <= e; ++k) {
      if (sorted_[k] / sorted_[k - 1] > sorted_[cut] / sorted_[cut - 1]) cut = k;
    }
    if (SortedMedian(cut, e) > SortedMedian(b, cut) * o_.calibrate_classes) {
      Split(b, cut);
      Split(cut, e);
      return;
    }
  }
  for (size_t j = b; j < e; ++j) class_of_[order_[j]] = b;
}

// Snaps the class sorted_[b, e): its fits within calibrate_tolerance of its median are given
// its median rate and overhead (an outlying fit keeps its own). One class is the whole fleet
// and the fleet median.
void SpeedClasses::Snap(size_t b, size_t e) {
  const double median_rate = SortedMedian(b, e);
  scratch_.clear();
  for (size_t j = b; j < e; ++j) scratch_.push_back(overhead_[order_[j]]);
  const double median_overhead = MedianInPlace(scratch_);
  for (size_t j = b; j < e; ++j) {
    const size_t i = order_[j];
    if (std::abs(rate_[i] / median_rate - 1) <= o_.calibrate_tolerance) {
      rate_[i] = median_rate;
      overhead_[i] = median_overhead;
    }
  }
}

double SpeedClasses::SortedMedian(size_t b, size_t e) const {
  return MedianOfSorted(std::span<const double>(sorted_).subspan(b, e - b));
}

}  // namespace kvr
