// ReuseGaps: how long after their last use prompt tokens are asked for again, learned from a
// router's own bookings (the kvrouter policy's cache-lifetime term, docs/POLICIES.md).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/clock.h"
#include "common/ids.h"

namespace kvr {

// How long after its last use a prompt's content is asked for again: a life table of reuse
// gaps, from the router's own bookings. Every kStride-th block of each booked prompt is
// remembered with the time it was last booked (direct-mapped, fixed in size: 4 MiB). A booking
// counts, for each remembered block of its prompt, kStride blocks reused after the gap since
// that block's last use, in the cohort (kCohortNs of time) of that last use; all its sampled
// blocks count as used in the current cohort. The share of used tokens next asked for more
// than T seconds later is estimated from the cohorts old enough to have seen each gap, so young
// cohorts, whose long gaps are still to come, do not bias long gaps down. Cohorts older than
// kCohorts · kCohortNs (43 min) are forgotten as their slots are reused.
class ReuseGaps {
 public:
  static constexpr uint32_t kStride = 16;
  // Bin 0 holds gaps below kFirst seconds; bin i ≥ 1 those in [kFirst·√2^(i−1), kFirst·√2^i).
  static constexpr int kBins = 40;
  static constexpr double kFirst = 0.1;
  static constexpr int kCohorts = 512;
  static constexpr TimeNs kCohortNs = 5 * kNsPerSec;

  // Records the booking of `blocks` at time `now` (block_size tokens each).
  void Book(std::span<const BlockHash> blocks, uint32_t block_size, TimeNs now) {
    const double tokens = double(kStride) * block_size;
    Cohort& current = CohortAt(now);
    for (size_t i = kStride - 1; i < blocks.size(); i += kStride) {
      const uint64_t key = blocks[i].value();
      Entry& e = slots_[key % kSlots];
      if (e.key == key) {
        Cohort* last_use = Find(e.at);
        if (last_use != nullptr) last_use->reused[Bin(double(now - e.at) * 1e-9)] += tokens;
      }
      e = Entry{key, now};
      current.used += tokens;
    }
  }
  // Brings the estimate up to `now` (recomputed once per cohort).
  void Refresh(TimeNs now) {
    const int64_t index = now / kCohortNs;
    if (index == refreshed_) return;
    refreshed_ = index;
    std::array<double, kBins> reused{}, used{};
    for (const Cohort& c : cohorts_) {
      if (c.index < 0 || c.index >= index) continue;
      const double age_s = double(now - (c.index + 1) * kCohortNs) * 1e-9;
      for (int b = 0; b < kBins && age_s >= Upper()[b]; ++b) {
        reused[b] += c.reused[b];
        used[b] += c.used;
      }
    }
    double tail = 0;
    for (int b = kBins; b-- > 0;) {
      if (used[b] > 0) tail += reused[b] / used[b];
      tail_[b] = tail;
    }
  }
  // The estimated share of used tokens next asked for more than `age_s` seconds after their
  // last use (the bin holding age_s counted in part, linearly), as of the last Refresh.
  double LaterThan(double age_s) const {
    if (!(age_s >= kFirst)) return tail_[0];
    const size_t b = Bin(age_s);
    if (age_s >= Upper()[b]) return 0;  // past the last bin
    const double lo = Upper()[b - 1], hi = Upper()[b];
    const double next = b + 1 < size_t(kBins) ? tail_[b + 1] : 0.0;
    return next + (tail_[b] - next) * (hi - age_s) / (hi - lo);
  }

 private:
  // Each bin's upper edge, kFirst·√2^b.
  static const std::array<double, kBins>& Upper() {
    static const std::array<double, kBins> upper = [] {
      std::array<double, kBins> u{};
      for (int b = 0; b < kBins; ++b) u[b] = kFirst * std::exp2(0.5 * b);
      return u;
    }();
    return upper;
  }
  // The bin holding a gap (the last one for every gap past it). No logarithm: a decision reads
  // one per worker.
  static size_t Bin(double gap_s) {
    const auto& u = Upper();
    return std::min<size_t>(kBins - 1,
                            size_t(std::upper_bound(u.begin(), u.end(), gap_s) - u.begin()));
  }
  struct Entry {
    uint64_t key = 0;
    TimeNs at = 0;
  };
  struct Cohort {
    int64_t index = -1;  // time / kCohortNs; -1: empty
    double used = 0;
    std::array<double, kBins> reused{};
  };
  Cohort& CohortAt(TimeNs t) {
    const int64_t index = t / kCohortNs;
    Cohort& c = cohorts_[size_t(index % kCohorts)];
    if (c.index != index) c = Cohort{.index = index};
    return c;
  }
  Cohort* Find(TimeNs t) {
    const int64_t index = t / kCohortNs;
    Cohort& c = cohorts_[size_t(index % kCohorts)];
    return c.index == index ? &c : nullptr;
  }
  static constexpr size_t kSlots = size_t{1} << 18;
  std::vector<Entry> slots_ = std::vector<Entry>(kSlots);
  std::vector<Cohort> cohorts_ = std::vector<Cohort>(kCohorts);
  std::array<double, kBins> tail_{};  // tail_[b]: estimated share next used in bin b or later
  int64_t refreshed_ = -1;
};

}  // namespace kvr
