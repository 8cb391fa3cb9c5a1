// What the scheduler knows about one worker (an engine endpoint + data-parallel rank).
#pragma once

#include <cstdint>
#include <string>

#include "common/clock.h"
#include "common/ids.h"

namespace kvr {

// Static facts, from configuration or the engine's advertised runtime config. (The model is
// not among them: a scheduler serves one model pool.)
struct WorkerSpec {
  WorkerId id;
  uint32_t block_size = 64;
  uint64_t kv_capacity_blocks = 16384;
  double prefill_rate_prior = 20000;  // uncached prompt tokens per second, before calibration
  uint32_t max_batched_tokens = 8192;
};

// What the engine itself reports (vLLM /metrics, SGLang get_load), when it reports it.
struct EngineMetrics {
  bool valid = false;
  TimeNs at = 0;
  uint32_t running = 0, waiting = 0;
  uint64_t waiting_prefill_tokens = 0;
  double kv_usage = 0;  // fraction of KV blocks in use
  // The engine's KV cache size in tokens, where it reports one (vLLM's cache_config_info, SGLang's
  // max_total_num_tokens); 0: not reported.
  uint64_t kv_capacity_tokens = 0;
};

// Online fit of TTFT = overhead + tokens / rate from observed (tokens, TTFT) pairs, where
// tokens = uncached prefill work queued ahead of and including the request at routing time.
// Exponentially decayed least squares: recent behaviour dominates; a fresh worker, or one whose
// samples all have the same size, keeps its configured prior rate.
class PrefillRateModel {
 public:
  explicit PrefillRateModel(double prior_rate_tok_s);
  void Observe(double tokens, double ttft_s);
  double PredictSeconds(double tokens) const { return overhead_s_ + tokens / rate_; }
  double rate() const { return rate_; }
  double overhead_s() const { return overhead_s_; }
  uint64_t samples() const { return samples_; }
  // Whether the rate is the prior (too few samples for a fit) or a fit of enough samples to
  // tell engines of different speeds apart; the first fits scatter by a factor of two.
  bool settled() const { return samples_ < kMinSamples || samples_ >= kSettledSamples; }
  // Whether the fit has had enough samples to settle, whatever it found (a rate, or the prior
  // where the samples' sizes did not vary).
  bool fit_settled() const { return samples_ >= kSettledSamples; }

 private:
  void Refit();
  static constexpr double kDecay = 0.995;  // ~200-sample memory
  static constexpr uint64_t kMinSamples = 8;
  static constexpr uint64_t kSettledSamples = 32;
  static constexpr double kMinRelVar = 0.01;  // coefficient of variation of x >= ~10%
  double sw_ = 0, sx_ = 0, sy_ = 0, sxx_ = 0, sxy_ = 0;
  double prior_rate_;
  double rate_;
  double overhead_s_ = 0;
  uint64_t samples_ = 0;
};

// A worker's decode step time: its inter-token latency, from the answers it streamed (time
// from the first token to the last over the tokens after the first), exponentially decayed
// per answer. 0 until the first answer: unknown.
class DecodeStepModel {
 public:
  void Observe(double tokens, double seconds);
  double step_s() const { return tokens_ > 0 ? seconds_ / tokens_ : 0.0; }

 private:
  static constexpr double kDecay = 0.98;  // ~50-answer memory
  double tokens_ = 0, seconds_ = 0;
};

}  // namespace kvr
