#include "enginesim/vllm_metrics.h"

#include <vector>

namespace kvr::enginesim {
namespace {

const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                          0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0,
                                          20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                         0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                         7.5,  10.0,  20.0, 40.0,  80.0};
const std::vector<double> kE2eBuckets = {0.3,  0.5,  0.8,  1.0,   1.5,   2.0,   2.5,
                                         5.0,  10.0, 15.0, 20.0,  30.0,  40.0,  50.0,
                                         60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

}  // namespace

VllmMetrics::VllmMetrics(const std::string& model, int64_t dp_rank,
                         const engine::EngineConfig& config)
    : labels_{{"model_name", model}, {"engine", std::to_string(dp_rank)}},
      running_(registry_.Gauge("vllm:num_requests_running",
                               "Number of requests in model execution batches.", labels_)),
      waiting_(registry_.Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                               labels_)),
      kv_usage_(registry_.Gauge("vllm:kv_cache_usage_perc",
                                "KV-cache usage. 1 means 100 percent usage.", labels_)),
      queries_(registry_.Counter("vllm:prefix_cache_queries_total",
                                 "Prefix cache queries, in terms of number of queried tokens.",
                                 labels_)),
      hits_(registry_.Counter("vllm:prefix_cache_hits_total",
                              "Prefix cache hits, in terms of number of cached tokens.", labels_)),
      prompt_tokens_(registry_.Counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.",
                                       labels_)),
      generation_tokens_(registry_.Counter("vllm:generation_tokens_total",
                                           "Number of generation tokens processed.", labels_)),
      preemptions_(registry_.Counter("vllm:num_preemptions_total",
                                     "Cumulative number of preemption from the engine.", labels_)),
      ttft_(registry_.Histogram("vllm:time_to_first_token_seconds",
                                "Histogram of time to first token in seconds.", kTtftBuckets,
                                labels_)),
      itl_(registry_.Histogram("vllm:inter_token_latency_seconds",
                               "Histogram of inter-token latency in seconds.", kItlBuckets,
                               labels_)),
      e2e_(registry_.Histogram("vllm:e2e_request_latency_seconds",
                               "Histogram of e2e request latency in seconds.", kE2eBuckets,
                               labels_)) {
  MetricsRegistry::Labels info = labels_;
  info["block_size"] = std::to_string(config.block_size);
  info["num_gpu_blocks"] = std::to_string(config.num_blocks);
  info["enable_prefix_caching"] = config.enable_prefix_caching ? "True" : "False";
  registry_.Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", info)
      .Set(1);
  for (std::string_view reason : {"stop", "length", "abort"}) {
    MetricsRegistry::Labels labels = labels_;
    labels["finished_reason"] = std::string(reason);
    success_.emplace_back(reason, &registry_.Counter("vllm:request_success_total",
                                                     "Count of successfully processed requests.",
                                                     labels));
  }
}

void VllmMetrics::Admitted(uint32_t prompt_tokens, uint32_t cached_tokens) {
  queries_.Increment(prompt_tokens);
  hits_.Increment(cached_tokens);
  prompt_tokens_.Increment(prompt_tokens);
}

void VllmMetrics::FirstToken(double ttft_s) { ttft_.Observe(ttft_s); }

void VllmMetrics::Token(double inter_token_s) {
  generation_tokens_.Increment();
  if (inter_token_s >= 0) itl_.Observe(inter_token_s);
}

void VllmMetrics::Finished(std::string_view finished_reason, double e2e_s) {
  for (auto& [reason, counter] : success_) {
    if (reason == finished_reason) counter->Increment();
  }
  e2e_.Observe(e2e_s);
}

std::string VllmMetrics::Serialize(const engine::EngineStats& stats) {
  running_.Set(stats.running);
  waiting_.Set(stats.waiting);
  kv_usage_.Set(stats.kv_usage);
  return registry_.Serialize();
}

}  // namespace kvr::enginesim
