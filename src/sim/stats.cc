#include "sim/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kvr::sim {
namespace {

double NsToMs(TimeNs ns) { return static_cast<double>(ns) / kNsPerMs; }

}  // namespace

double QuantileSorted(std::span<const double> sorted, double p) {
  if (sorted.empty()) return 0;
  const double h = (static_cast<double>(sorted.size()) - 1) * std::clamp(p, 0.0, 1.0);
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

LatencyStats Summarize(std::vector<double> samples) {
  LatencyStats s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / samples.size();
  s.p50 = QuantileSorted(samples, 0.50);
  s.p90 = QuantileSorted(samples, 0.90);
  s.p99 = QuantileSorted(samples, 0.99);
  return s;
}

double LoadImbalance(std::span<const TimeNs> engine_busy) {
  if (engine_busy.empty()) return 1;
  double sum = 0, max = 0;
  for (TimeNs b : engine_busy) {
    sum += static_cast<double>(b);
    max = std::max(max, static_cast<double>(b));
  }
  if (sum <= 0) return 1;
  return max / (sum / engine_busy.size());
}

void PolicyStatsCollector::Add(const RequestOutcome& o) {
  ttft_ms_.push_back(NsToMs(o.first_token - o.arrival));
  e2e_ms_.push_back(NsToMs(o.finish - o.arrival));
  if (o.output_tokens >= 2) {
    tpot_ms_.push_back(NsToMs(o.finish - o.first_token) / (o.output_tokens - 1));
  }
  prompt_tokens_ += o.prompt_tokens;
  cached_tokens_ += o.cached_tokens;
  output_tokens_ += o.output_tokens;
  first_arrival_ = std::min(first_arrival_, o.arrival);
  last_finish_ = std::max(last_finish_, o.finish);
}

PolicyResult PolicyStatsCollector::Finish(uint64_t prefill_tokens,
                                          std::span<const TimeNs> engine_busy) && {
  PolicyResult r;
  r.policy = std::move(policy_);
  r.requests = ttft_ms_.size();
  r.ttft_ms = Summarize(ttft_ms_);
  r.e2e_ms = Summarize(e2e_ms_);
  r.itl_ms = Summarize(std::move(tpot_ms_));
  r.hit_rate = prompt_tokens_ == 0 ? 0 : static_cast<double>(cached_tokens_) / prompt_tokens_;
  r.prefill_tokens = prefill_tokens;
  const TimeNs makespan = r.requests == 0 ? 0 : last_finish_ - first_arrival_;
  r.throughput_tok_s =
      makespan <= 0 ? 0 : output_tokens_ / (static_cast<double>(makespan) / kNsPerSec);
  r.load_imbalance = LoadImbalance(engine_busy);
  r.ttft_samples_ms = std::move(ttft_ms_);
  return r;
}

}  // namespace kvr::sim
