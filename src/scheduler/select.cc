#include <cmath>
#include <limits>

#include "scheduler/policy.h"

namespace kvr {

size_t ArgMin(std::span<const Candidate> c, std::span<const double> tiebreak, Rng& rng) {
  double best = std::numeric_limits<double>::infinity();
  double best_tb = best;
  size_t chosen = 0, ties = 0;
  // Relative epsilon: costs computed along different paths may differ in the last ulp.
  auto eq = [](double a, double b) {
    return std::fabs(a - b) <= 1e-9 * std::max(1.0, std::fabs(a));
  };
  for (size_t i = 0; i < c.size(); ++i) {
    if (!c[i].eligible) continue;
    const double tb = tiebreak.empty() ? 0 : tiebreak[i];
    const bool better = ties == 0 || (!eq(c[i].cost, best) && c[i].cost < best) ||
                        (eq(c[i].cost, best) && !eq(tb, best_tb) && tb < best_tb);
    if (better) {
      best = c[i].cost;
      best_tb = tb;
      chosen = i;
      ties = 1;
    } else if (eq(c[i].cost, best) && eq(tb, best_tb)) {
      // Reservoir sampling over exact ties: uniform without a second pass.
      if (rng.Uniform(++ties) == 0) chosen = i;
    }
  }
  return chosen;
}

size_t SoftmaxSample(std::span<const Candidate> c, double temperature, Rng& rng) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& x : c) {
    if (!x.eligible) continue;
    lo = std::min(lo, x.cost);
    hi = std::max(hi, x.cost);
  }
  const double range = hi - lo;
  std::vector<double> w(c.size(), 0);
  double total = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    if (!c[i].eligible) continue;
    // All-equal costs give a uniform choice; subtracting lo keeps exp() in range.
    w[i] = range > 0 ? std::exp(-((c[i].cost - lo) / range) / temperature) : 1.0;
    total += w[i];
  }
  double u = rng.UniformDouble() * total;
  size_t last = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    if (w[i] == 0) continue;
    last = i;
    if (u < w[i]) return i;
    u -= w[i];
  }
  return last;
}

}  // namespace kvr
