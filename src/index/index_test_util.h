// Helpers shared by the index tests and benchmarks: build engine events from token runs.
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "index/block_hash.h"
#include "index/kv_event.h"

namespace kvr::testing {

// Engine hashes for a worker: prefix-dependent like vLLM's, but deliberately different from the
// router's keys (a per-worker xor), so a test that confused the two would fail.
inline std::vector<EngineHash> EngineHashes(uint32_t worker, std::span<const TokenId> tokens,
                                            uint32_t block_size) {
  std::vector<EngineHash> out;
  for (BlockHash h : SequenceHashes(tokens, block_size)) {
    out.emplace_back(h.value() ^ (0x9e3779b97f4a7c15ULL * (worker + 1)));
  }
  return out;
}

// A BlockStored for blocks [first, last) of `tokens` on `worker`, parented on block first-1.
inline KvStored StoredRange(uint32_t worker, std::span<const TokenId> tokens, uint32_t bs,
                            size_t first, size_t last, Tier tier = Tier::kDevice) {
  auto eh = EngineHashes(worker, tokens, bs);
  KvStored e{.worker = WorkerId(worker), .tier = tier, .block_size = bs};
  if (first > 0) e.parent = eh[first - 1];
  e.block_hashes.assign(eh.begin() + first, eh.begin() + last);
  e.token_ids.assign(tokens.begin() + first * bs, tokens.begin() + last * bs);
  return e;
}

inline KvStored StoredAll(uint32_t worker, std::span<const TokenId> tokens, uint32_t bs,
                          Tier tier = Tier::kDevice) {
  return StoredRange(worker, tokens, bs, 0, tokens.size() / bs, tier);
}

}  // namespace kvr::testing
