#include "engine/perf_model.h"

#include <algorithm>
#include <cmath>

namespace kvr::engine {

double PerfModel::PrefillMs(uint64_t new_tokens) const {
  if (new_tokens == 0) return 0.0;
  const double n = static_cast<double>(new_tokens);
  return prefill_a * n * n + prefill_b * n + prefill_c;
}

double PerfModel::DecodeMs(uint32_t decoding_requests, double kv_usage) const {
  if (decoding_requests == 0) return 0.0;
  const double p = std::clamp(kv_usage, 0.0, 1.0);
  return std::max(decode_floor_ms, decode_a * p * p + decode_b * p + decode_c);
}

TimeNs PerfModel::StepTime(uint64_t prefill_tokens, uint32_t decoding_requests, double kv_usage,
                           double speed) const {
  const double ms = PrefillMs(prefill_tokens) + DecodeMs(decoding_requests, kv_usage);
  return static_cast<TimeNs>(std::llround(ms * static_cast<double>(kNsPerMs) / speed));
}

}  // namespace kvr::engine
