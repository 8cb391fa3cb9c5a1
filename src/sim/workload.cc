#include "sim/workload.h"

#include <algorithm>
#include <cmath>

#include "index/block_hash.h"

namespace kvr::sim {

void SortAndNumber(Workload& workload) {
  std::stable_sort(workload.requests.begin(), workload.requests.end(),
                   [](const SimRequest& a, const SimRequest& b) { return a.arrival < b.arrival; });
  for (size_t i = 0; i < workload.requests.size(); ++i) workload.requests[i].id = i;
}

uint64_t TotalPromptTokens(const Workload& workload) {
  uint64_t total = 0;
  for (const SimRequest& r : workload.requests) total += r.prompt.size();
  return total;
}

double OracleHitRate(const Workload& workload, uint32_t block_size) {
  if (block_size == 0) return 0;
  SeenPrefixes seen;
  uint64_t hit_tokens = 0;
  uint64_t prompt_tokens = 0;
  for (const SimRequest& r : workload.requests) {
    const uint64_t leading = seen.Add(SequenceHashes(r.prompt, block_size));
    const uint64_t len = r.prompt.size();
    const uint64_t cap = len == 0 ? 0 : len - 1;
    hit_tokens += std::min<uint64_t>(leading * uint64_t{block_size}, cap);
    prompt_tokens += len;
  }
  return prompt_tokens == 0 ? 0 : static_cast<double>(hit_tokens) / prompt_tokens;
}

uint32_t SeenPrefixes::Add(std::span<const BlockHash> blocks) {
  uint32_t leading = 0;
  while (leading < blocks.size() && seen_.contains(blocks[leading])) ++leading;
  // A block is seen with its whole prefix (chained hashes): the leading ones are there already.
  seen_.insert(blocks.begin() + leading, blocks.end());
  return leading;
}

absl::Status CompressIntoBursts(Workload& workload, double period_s, double duty) {
  if (!(period_s > 0) || !std::isfinite(period_s) || !(duty > 0) || !(duty <= 1)) {
    return absl::InvalidArgumentError("bursts need period > 0 and 0 < duty <= 1");
  }
  const auto period = static_cast<TimeNs>(std::llround(period_s * kNsPerSec));
  if (period <= 0) return absl::InvalidArgumentError("burst period below one nanosecond");
  for (SimRequest& r : workload.requests) {
    const TimeNs start = r.arrival - r.arrival % period;
    r.arrival = start + static_cast<TimeNs>(std::floor(double(r.arrival - start) * duty));
  }
  workload.name += "+burst";
  return absl::OkStatus();
}

void CompressTime(Workload& workload, double factor) {
  for (SimRequest& r : workload.requests) {
    r.arrival = static_cast<TimeNs>(static_cast<double>(r.arrival) / factor);
  }
}

}  // namespace kvr::sim
