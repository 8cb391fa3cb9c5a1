#include "index/block_hash.h"

#include "index/xxh3_simd.h"

// Inlined: ChainHash's constant 16-byte input compiles to a few instructions, and a block's
// tokens skip the library's call and length dispatch (hashing is on every event's hot path).
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace kvr {
namespace {

// Token ids are hashed as u32 little-endian. On a little-endian host that is the in-memory
// representation, so the span is hashed in place (no copy): the hot path of every request.
static_assert(std::endian::native == std::endian::little, "big-endian hosts need a byte swap");

}  // namespace

uint64_t HashSeed(const HashContext& ctx) {
  uint64_t seed = kBlockHashSeed;
  if (!ctx.lora_name.empty()) seed += XXH3_64bits_withSeed(ctx.lora_name.data(), ctx.lora_name.size(), 0);
  if (!ctx.cache_salt.empty()) seed += XXH3_64bits_withSeed(ctx.cache_salt.data(), ctx.cache_salt.size(), 1);
  return seed;
}

uint64_t LocalBlockHash(std::span<const TokenId> block, uint64_t seed,
                        std::span<const uint64_t> mm_hashes) {
  if (mm_hashes.empty()) {
    // Up to 240 bytes XXH3 has scalar short-input paths (inlined here); longer blocks (64+
    // tokens) stripe through the vector unit: take the widest this CPU has.
    if (block.size_bytes() <= 240) {
      return XXH3_64bits_withSeed(block.data(), block.size_bytes(), seed);
    }
    static const internal::Xxh3Fn vector_hash = internal::Xxh3Best();
    return vector_hash(block.data(), block.size_bytes(), seed);
  }
  // Dynamo appends the block's multimodal hashes, sorted, as u64le after the tokens.
  std::vector<uint64_t> sorted(mm_hashes.begin(), mm_hashes.end());
  std::sort(sorted.begin(), sorted.end());
  XXH3_state_t state;
  XXH3_64bits_reset_withSeed(&state, seed);
  XXH3_64bits_update(&state, block.data(), block.size_bytes());
  XXH3_64bits_update(&state, sorted.data(), sorted.size() * sizeof(uint64_t));
  return XXH3_64bits_digest(&state);
}

uint64_t ChainHash(uint64_t parent_seq, uint64_t local) {
  uint64_t buf[2] = {parent_seq, local};
  return XXH3_64bits_withSeed(buf, sizeof(buf), kBlockHashSeed);
}

std::vector<uint64_t> LocalBlockHashes(std::span<const TokenId> tokens, uint32_t block_size,
                                       const HashContext& ctx) {
  std::vector<uint64_t> out;
  if (block_size == 0) return out;
  const size_t n = tokens.size() / block_size;
  out.reserve(n);
  const uint64_t seed = HashSeed(ctx);
  for (size_t i = 0; i < n; ++i) {
    std::span<const uint64_t> mm;
    if (i < ctx.mm_hashes.size()) mm = ctx.mm_hashes[i];
    out.push_back(LocalBlockHash(tokens.subspan(i * block_size, block_size), seed, mm));
  }
  return out;
}

std::vector<BlockHash> SequenceHashesFrom(const BlockHash* parent,
                                          std::span<const uint64_t> local_hashes) {
  std::vector<BlockHash> out;
  out.reserve(local_hashes.size());
  bool has_prev = parent != nullptr;
  uint64_t prev = has_prev ? parent->value() : 0;
  for (uint64_t local : local_hashes) {
    prev = has_prev ? ChainHash(prev, local) : local;
    has_prev = true;
    out.emplace_back(prev);
  }
  return out;
}

std::vector<BlockHash> SequenceHashes(std::span<const TokenId> tokens, uint32_t block_size,
                                      const HashContext& ctx) {
  auto local = LocalBlockHashes(tokens, block_size, ctx);
  return SequenceHashesFrom(nullptr, local);
}

}  // namespace kvr
