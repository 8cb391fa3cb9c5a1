// Block hashing, bit-compatible with NVIDIA Dynamo (lib/kv-router protocols.rs):
//   local[i] = XXH3-64(u32le(tokens[i*B .. (i+1)*B]) ‖ sorted u64le(mm hashes of block i), seed)
//   seed     = 1337 (+ XXH3-64(lora_name, seed 0) if a LoRA adapter is set)
//                   (+ XXH3-64(cache_salt, seed 1) if a cache salt is set), wrapping u64 adds
//   seq[0]   = local[0];  seq[i] = XXH3-64(u64le(seq[i-1]) ‖ u64le(local[i]), 1337)
// Only full blocks are hashed; a trailing partial block is ignored. The index is keyed by seq[]
// (prefix-dependent), so one u64 comparison decides "same prefix up to and including block i".
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/ids.h"

namespace kvr {

inline constexpr uint64_t kBlockHashSeed = 1337;

// Extra inputs that change what a block means to an engine.
struct HashContext {
  std::string_view lora_name;   // empty: base model
  std::string_view cache_salt;  // empty: no tenant isolation
  // Optional per-block multimodal content hashes: mm_hashes[i] applies to block i (may be
  // shorter than the block count; missing entries mean "no multimodal content").
  std::span<const std::vector<uint64_t>> mm_hashes;
};

// The seed after mixing in LoRA name and cache salt.
uint64_t HashSeed(const HashContext& ctx);

// Content hash of one block (no prefix): Dynamo's LocalBlockHash.
uint64_t LocalBlockHash(std::span<const TokenId> block, uint64_t seed,
                        std::span<const uint64_t> mm_hashes = {});

// Chains a local hash onto its parent's sequence hash.
uint64_t ChainHash(uint64_t parent_seq, uint64_t local);

// Local hashes of every full block of `tokens`.
std::vector<uint64_t> LocalBlockHashes(std::span<const TokenId> tokens, uint32_t block_size,
                                       const HashContext& ctx = {});

// Sequence hashes (the index keys) of every full block of `tokens`.
std::vector<BlockHash> SequenceHashes(std::span<const TokenId> tokens, uint32_t block_size,
                                      const HashContext& ctx = {});

// Sequence hashes continuing from a known parent (or from the root when parent is null):
// used for BlockStored events whose parent block is already indexed.
std::vector<BlockHash> SequenceHashesFrom(const BlockHash* parent,
                                          std::span<const uint64_t> local_hashes);

}  // namespace kvr
