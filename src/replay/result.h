// What a replay measured: one RequestRecord per request sent, summarized into the shape of a
// `kvrouter simulate` policy entry (sim::PolicyResult) plus the live run's own counts. Pure.
//
// Definitions (times on the client's clock, from the moment the request was sent):
//   TTFT = first token chunk - sent;  E2E = last byte - sent;
//   ITL  = (last token chunk - first token chunk) / (output tokens - 1) per request (its TPOT);
//   hit rate = cached / prompt tokens as the engines report them in `usage`, over completed
//   requests; prefill tokens = prompt - cached; throughput = output tokens / (last finish -
//   first send); load imbalance = max / mean of completed requests per worker.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "nlohmann/json.hpp"
#include "sim/stats.h"

namespace kvr::replay {

enum class Outcome {
  kCompleted,        // [DONE] after a 200
  kFailed,           // no token arrived: connection error, HTTP error, error event first
  kFailedMidStream,  // failed after at least one token chunk
  kCancelled,        // cut by a stop (Ctrl-C) or the drain bound
};

struct RequestRecord {
  uint64_t id = 0;
  Outcome outcome = Outcome::kCompleted;
  std::string error;   // why, unless completed
  std::string worker;  // x-kvrouter-worker, or empty
  TimeNs sent = 0, first_token = 0, finish = 0;
  TimeNs send_lag = 0;     // sent - due (the client fell behind the trace)
  bool held_back = false;  // due while every slot of the concurrency limit was taken
  bool usage_reported = false;
  uint64_t prompt_tokens = 0, cached_tokens = 0, output_tokens = 0;
};

struct ReplayResult {
  sim::PolicyResult summary;  // `policy` is the run's label; `requests` = completed
  uint64_t total = 0;         // requests in the workload
  uint64_t sent = 0, completed = 0, failed = 0, failed_mid_stream = 0, cancelled = 0;
  uint64_t prompt_tokens = 0, cached_tokens = 0, output_tokens = 0;
  uint64_t missing_usage = 0;  // completed without usage: counted with 0 cached tokens
  uint64_t held_back = 0;      // sent late because the concurrency limit was reached
  double max_send_lag_ms = 0;
  double duration_s = 0;
  bool interrupted = false;                              // stopped early (Ctrl-C)
  std::map<std::string, uint64_t> workers;               // completed requests per serving worker
  std::vector<std::pair<std::string, uint64_t>> errors;  // most frequent first, at most 10
};

// Accumulates records. Not thread-safe.
class ReplayCollector {
 public:
  void Add(const RequestRecord& record);
  ReplayResult Finish(std::string label, uint64_t total, double duration_s, bool interrupted) &&;

 private:
  std::vector<RequestRecord> records_;
};

// The simulate policy entry's fields (ttft_ms, itl_ms, e2e_ms, hit_rate, prefill_tokens,
// throughput_tok_s, load_imbalance), then requests (sent), total, completed, failed,
// failed_mid_stream, cancelled, not_sent, prompt_tokens, cached_tokens, output_tokens,
// missing_usage, held_back, max_send_lag_ms, duration_s, interrupted, workers {name: completed},
// errors {message: count}, ttft_samples_ms [...] (completed requests, in completion order).
nlohmann::ordered_json ReplayJsonValue(const ReplayResult& result);
std::string ReplayJson(const ReplayResult& result);  // indented, ends with a newline

// One sentence on the requests the concurrency limit held back (call when held_back > 0).
std::string HeldBackNote(const ReplayResult& result);

// A few human-readable lines for stdout.
std::string ReplaySummary(const ReplayResult& result);

}  // namespace kvr::replay
