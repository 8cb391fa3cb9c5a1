// The index's event vocabulary: what an engine says about its KV cache, already decoded from the
// wire (events/) or produced by the engine model (engine/). Plain data, no behaviour.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/ids.h"

namespace kvr {

// Where a cached block lives. Device hits skip prefill outright; host and storage hits cost a
// transfer (vLLM's `medium`: GPU, CPU*, DISK/NVME/...).
enum class Tier : uint8_t { kDevice = 0, kHost = 1, kStorage = 2 };
inline constexpr int kNumTiers = 3;

// BlockStored: consecutive full blocks extending `parent` (or starting at the root). As on the
// vLLM wire, token ids are flat: block i is token_ids[i*block_size, (i+1)*block_size).
struct KvStored {
  WorkerId worker;
  Tier tier = Tier::kDevice;
  std::optional<EngineHash> parent;
  std::vector<EngineHash> block_hashes;
  std::vector<TokenId> token_ids;
  uint32_t block_size = 0;
  std::string lora_name;   // empty: base model
  std::string cache_salt;  // empty: none
  // The router's chained hashes of the blocks, when the producer computed them already (the
  // router's own synthetic events, e.g. its model of a llama.cpp server's slots). Non-empty:
  // one per block hash, used as they are; token_ids may then be empty.
  std::vector<BlockHash> block_keys;
};

// BlockRemoved: the engine evicted these blocks from `tier`.
struct KvRemoved {
  WorkerId worker;
  Tier tier = Tier::kDevice;
  std::vector<EngineHash> block_hashes;
};

// AllBlocksCleared: the engine dropped its whole cache (all tiers).
struct KvCleared {
  WorkerId worker;
};

using KvEvent = std::variant<KvStored, KvRemoved, KvCleared>;

}  // namespace kvr
