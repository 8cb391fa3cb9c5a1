// The simulator's input: a list of requests (token ids, arrival time, output length) sorted by
// arrival. Produced by trace readers (trace.h) and synthetic generators (generators.h); consumed
// by the event loop. Plain data: no I/O here.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "common/clock.h"
#include "common/ids.h"

namespace kvr::sim {

// Synthetic token ids (traces, generators) are uniform in [0, kSyntheticVocab): a Llama-3-sized
// vocabulary.
inline constexpr TokenId kSyntheticVocab = 128000;

struct SimRequest {
  uint64_t id = 0;              // dense 0..n-1 in arrival order
  TimeNs arrival = 0;           // ns from workload start
  std::vector<TokenId> prompt;  // never empty
  uint32_t output_tokens = 1;   // >= 1
  uint64_t session = 0;         // generator session / conversation id (0 if unknown)
};

struct Workload {
  std::string name;                  // "mooncake_conversation", "chat", "system_prompts", ...
  std::vector<SimRequest> requests;  // sorted by arrival, ids dense
};

// Sorts by arrival (stable, so equal arrivals keep their input order) and renumbers ids 0..n-1.
void SortAndNumber(Workload& workload);

// Total prompt tokens over all requests.
uint64_t TotalPromptTokens(const Workload& workload);

// Fraction of prompt tokens an infinite single prefix cache would serve. For each request in
// arrival order: its leading full blocks whose chained hash (kvr::SequenceHashes) was seen in an
// earlier request are hits, capped at prompt_len - 1 tokens (an engine always computes at least
// the last prompt token to produce logits); then all its full blocks become "seen". Returns
// hit tokens / prompt tokens (0 for an empty workload). O(total tokens).
double OracleHitRate(const Workload& workload, uint32_t block_size);

// That infinite cache, fed prompts in arrival order: Add returns how many leading blocks of
// this prompt (its chained hashes) an earlier prompt had, then remembers all of them.
class SeenPrefixes {
 public:
  uint32_t Add(std::span<const BlockHash> blocks);

 private:
  absl::flat_hash_set<BlockHash> seen_;
};

// Bursty arrivals from any workload: time is cut into periods of `period_s` seconds, and the
// arrivals of each period are squeezed (linearly, order kept) into its first `duty` fraction.
// The mean rate and the request order are unchanged; the peak rate is 1/duty times the
// original. Names the workload "<name>+burst". InvalidArgument unless period_s > 0 and
// 0 < duty <= 1.
absl::Status CompressIntoBursts(Workload& workload, double period_s, double duty);

// Every arrival time divided by `factor` (a generator's session starts and think times alike):
// the same requests `factor` times as fast. The caller checks factor > 0.
void CompressTime(Workload& workload, double factor);

}  // namespace kvr::sim
