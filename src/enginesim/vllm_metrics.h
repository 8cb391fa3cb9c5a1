// engine-sim's /metrics: vLLM V1's metric names, types and buckets (vLLM's
// vllm/v1/metrics/loggers.py), labelled model_name and engine (the DP rank), through
// prometheus-cpp. Counter names carry their `_total` suffix themselves: prometheus-cpp exposes
// names as given, where vLLM's Python client appends it.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/metrics.h"
#include "engine/engine.h"

namespace kvr::enginesim {

class VllmMetrics {
 public:
  VllmMetrics(const std::string& model, int64_t dp_rank, const engine::EngineConfig& config);

  void Admitted(uint32_t prompt_tokens, uint32_t cached_tokens);
  void FirstToken(double ttft_s);
  void Token(double inter_token_s);  // < 0: the first token (no interval)
  // finished_reason: "stop", "length" or "abort".
  void Finished(std::string_view finished_reason, double e2e_s);
  void Preempted(uint32_t n) { preemptions_.Increment(n); }
  // Gauges are read from the engine when scraped.
  std::string Serialize(const engine::EngineStats& stats);

 private:
  MetricsRegistry registry_;
  MetricsRegistry::Labels labels_;
  prometheus::Gauge& running_;
  prometheus::Gauge& waiting_;
  prometheus::Gauge& kv_usage_;
  prometheus::Counter& queries_;
  prometheus::Counter& hits_;
  prometheus::Counter& prompt_tokens_;
  prometheus::Counter& generation_tokens_;
  prometheus::Counter& preemptions_;
  prometheus::Histogram& ttft_;
  prometheus::Histogram& itl_;
  prometheus::Histogram& e2e_;
  // vllm:request_success_total by finished_reason, created up front as vLLM does.
  std::vector<std::pair<std::string_view, prometheus::Counter*>> success_;
};

}  // namespace kvr::enginesim
