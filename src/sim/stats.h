// Per-policy metrics of a simulation run: latency summaries and the aggregate counters the
// report prints. The event loop records one RequestOutcome per completed request plus engine
// busy times; PolicyStatsCollector turns them into a PolicyResult.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "scheduler/scheduler.h"

namespace kvr::sim {

struct LatencyStats {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};

// Percentile rule: linear interpolation between closest ranks (NumPy's default "linear", Hyndman
// & Fan type 7): for sorted x[0..n-1], the p-quantile is at rank h = (n-1)*p, i.e. with
// k = floor(h): x[k] + (h-k)*(x[k+1] - x[k]). One sample: every percentile is that sample.
// Empty -> all zeros.
LatencyStats Summarize(std::vector<double> samples);

// The p-quantile (p in [0, 1]) of already-sorted samples by the rule above; 0 when empty.
double QuantileSorted(std::span<const double> sorted, double p);

// What the event loop knows about one completed request.
struct RequestOutcome {
  TimeNs arrival = 0;
  TimeNs first_token = 0;  // time the first output token was produced
  TimeNs finish = 0;       // time the last output token was produced
  uint64_t prompt_tokens = 0;
  uint64_t cached_tokens = 0;  // prompt tokens served from the prefix cache at (last) admission
  uint32_t output_tokens = 1;
};

// One request of a run, as `simulate --requests-out` writes it (SimConfig::record_requests).
struct RequestRecord {
  uint64_t id = 0;        // the request's index in the workload (arrival order)
  uint32_t worker = 0;    // the engine it was routed to
  TimeNs dispatched = 0;  // routed to its engine (later than arrival if held at the router)
  // As the statistics got it; a request the engine rejected has first_token and finish -1 and
  // no cached tokens.
  RequestOutcome outcome;
  // At dispatch, against what the engines held then (the report's totals, per request): its
  // prefix an earlier request had that no engine held, and what another engine held beyond the
  // chosen one.
  uint64_t cached_nowhere_tokens = 0;
  uint64_t cached_elsewhere_tokens = 0;
  // Its routing decision, every candidate worker with the policy's cost and terms (named by
  // PolicyResult::term_names), when asked for (SimConfig::explain_requests); else empty.
  std::vector<ExplainedCandidate> candidates;
};

struct PolicyResult {
  std::string policy;
  LatencyStats ttft_ms, itl_ms, e2e_ms;
  double hit_rate = 0;                  // prompt tokens served from cache / prompt tokens
  uint64_t prefill_tokens = 0;          // prompt tokens computed (incl. recompute after preemption)
  double throughput_tok_s = 0;          // output tokens / makespan
  double load_imbalance = 0;            // max / mean engine busy time
  uint64_t requests = 0;                // completed
  std::vector<double> ttft_samples_ms;  // for the CDF plot (not in JSON)
  // Anything else worth a column (preemptions, decision time, ...): printed into JSON, the
  // table and the HTML as numbers, in this order.
  std::vector<std::pair<std::string, double>> extra;
  // Every request in completion order, when asked for (SimConfig::record_requests); else empty.
  std::vector<RequestRecord> records;
  std::vector<std::string> term_names;  // the policy's (Policy::TermNames), with candidates
};

// Accumulates outcomes of one policy's run. Definitions:
//   TTFT  = first_token - arrival;   E2E = finish - arrival;
//   ITL   = (finish - first_token) / (output_tokens - 1) per request with >= 2 output tokens
//           (the request's mean inter-token latency, i.e. TPOT);
//   throughput = total output tokens / (last finish - first arrival);
//   hit rate   = cached / prompt tokens over completed requests;
//   load imbalance = max / mean of engine busy times (1 when every engine was idle).
// Not thread-safe.
class PolicyStatsCollector {
 public:
  explicit PolicyStatsCollector(std::string policy) : policy_(std::move(policy)) {}

  void Add(const RequestOutcome& outcome);

  // prefill_tokens: prompt tokens the engines computed; engine_busy: per-engine busy time.
  PolicyResult Finish(uint64_t prefill_tokens, std::span<const TimeNs> engine_busy) &&;

 private:
  std::string policy_;
  std::vector<double> ttft_ms_, tpot_ms_, e2e_ms_;
  uint64_t prompt_tokens_ = 0, cached_tokens_ = 0, output_tokens_ = 0;
  TimeNs first_arrival_ = INT64_MAX, last_finish_ = INT64_MIN;
};

// max / mean of busy times; 1 for an all-zero or empty input.
double LoadImbalance(std::span<const TimeNs> engine_busy);

}  // namespace kvr::sim
