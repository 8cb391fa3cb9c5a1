#include "scheduler/worker.h"

#include <algorithm>

namespace kvr {

PrefillRateModel::PrefillRateModel(double prior_rate_tok_s)
    : prior_rate_(prior_rate_tok_s), rate_(prior_rate_tok_s) {}

void PrefillRateModel::Observe(double tokens, double ttft_s) {
  sw_ = sw_ * kDecay + 1;
  sx_ = sx_ * kDecay + tokens;
  sy_ = sy_ * kDecay + ttft_s;
  sxx_ = sxx_ * kDecay + tokens * tokens;
  sxy_ = sxy_ * kDecay + tokens * ttft_s;
  ++samples_;
  Refit();
}

void PrefillRateModel::Refit() {
  // Until the samples span a range of sizes the slope is undetermined: keep the prior rate and
  // fit only the overhead. A prior point far from the data would bias a joint fit (leverage),
  // so the prior is never mixed into the regression.
  const double var = sxx_ * sw_ - sx_ * sx_;
  double rate = prior_rate_;
  if (samples_ >= kMinSamples && var > kMinRelVar * sxx_ * sw_) {
    const double slope = (sxy_ * sw_ - sx_ * sy_) / var;
    // A non-positive slope is noise (a longer queue cannot be faster); clamp to [prior/20,
    // prior·20]: a calibration outside that range is a measurement problem, not an engine.
    if (slope > 0) rate = std::clamp(1.0 / slope, prior_rate_ / 20, prior_rate_ * 20);
  }
  rate_ = rate;
  overhead_s_ = std::max(0.0, (sy_ - sx_ / rate_) / sw_);
}

void DecodeStepModel::Observe(double tokens, double seconds) {
  if (!(tokens > 0) || !(seconds >= 0)) return;
  tokens_ = tokens_ * kDecay + tokens;
  seconds_ = seconds_ * kDecay + seconds;
}

}  // namespace kvr
