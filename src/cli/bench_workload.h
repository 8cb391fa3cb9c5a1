// A synthetic prefix-sharing workload for the index and routing benchmarks: a few shared system
// prompts with Zipf-like popularity, and conversations that branch off them and grow turn by
// turn on a home worker (sometimes a second one), as multi-turn chat does.
#pragma once

#include <cstdint>
#include <vector>

#include "common/random.h"
#include "index/kv_event.h"

namespace kvr::cli {

struct SyntheticOptions {
  uint32_t workers = 64;
  uint32_t block_size = 16;
  uint64_t target_entries = 1'000'000;  // (block, worker) pairs to reach
  uint32_t system_prompts = 32;
  uint32_t system_blocks = 64;  // blocks per system prompt
  uint32_t max_blocks = 512;    // a conversation's maximum length
  uint64_t seed = 42;
};

struct SyntheticWorkload {
  std::vector<KvEvent> events;                      // BlockStored events, in order
  std::vector<std::vector<TokenId>> conversations;  // token streams, for queries
  uint64_t blocks = 0;                              // blocks in all events
};

// Generates stored events until the (block, worker) entries they create reach target_entries.
SyntheticWorkload MakeSyntheticWorkload(const SyntheticOptions& o);

// A prompt of `blocks` full blocks: a conversation prefix, extended with fresh tokens.
std::vector<TokenId> QueryPrompt(const SyntheticWorkload& w, uint32_t block_size, uint32_t blocks,
                                 Rng& rng);

struct Percentiles {
  double p50 = 0, p99 = 0, mean = 0;
};
// Nearest-rank percentiles of `samples` (sorted in place).
Percentiles ComputePercentiles(std::vector<double>* samples);

}  // namespace kvr::cli
