// The gateway's /metrics (prometheus-cpp, text format 0.0.4). Request metrics are updated on
// the request path through handles looked up once per model and worker; per-worker state
// (booked load, health, events) is read from the pools when scraped.
//
// Threading: Request* methods run on the I/O thread only (their handle caches are unlocked);
// Serialize runs there too.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/metrics.h"

namespace kvr::gateway {

class Pool;

// What one finished request adds to the metrics.
struct RequestRecord {
  std::string_view model;
  std::string worker;       // "" when none was chosen
  int status = 0;           // HTTP status answered (499: the client went away)
  double ttft_s = -1;       // < 0: no first token
  double e2e_s = 0;
  uint32_t router_prompt_tokens = 0;
  uint32_t router_cached_tokens = 0;  // what the router predicted the engine holds
  int64_t engine_prompt_tokens = -1;  // usage as the engine reported it; < 0: not reported
  int64_t engine_cached_tokens = -1;
};

class GatewayMetrics {
 public:
  GatewayMetrics();

  void Request(const RequestRecord& r);
  void Prepare(std::string_view model, double seconds);   // render + tokenize + hash
  void Decision(std::string_view model, double seconds);  // the scheduler's choice
  void Retry(std::string_view model);
  void TokenPrompt(std::string_view model);  // a text prompt forwarded as token ids
  void QueueWait(std::string_view model, double seconds);
  void Queued(std::string_view model, int delta);  // requests waiting for capacity now

  std::string Serialize(const std::vector<const Pool*>& pools) const;

 private:
  struct ModelHandles {
    prometheus::Histogram* ttft;
    prometheus::Histogram* e2e;
    prometheus::Histogram* prepare;
    prometheus::Histogram* decision;
    prometheus::Histogram* queue_wait;
    prometheus::Counter* retries;
    prometheus::Counter* token_prompts;
    prometheus::Gauge* queued;
    prometheus::Counter* prompt_router;
    prometheus::Counter* prompt_engine;
    prometheus::Counter* cached_router;
    prometheus::Counter* cached_engine;
    absl::flat_hash_map<std::string, prometheus::Counter*> requests;  // "worker\x1fstatus"
  };
  ModelHandles& For(std::string_view model);
  prometheus::Counter& Requests(ModelHandles& h, std::string_view model, std::string_view worker,
                                int status);

  MetricsRegistry registry_;
  std::map<std::string, ModelHandles, std::less<>> models_;
};

}  // namespace kvr::gateway
