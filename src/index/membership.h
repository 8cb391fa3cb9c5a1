// Membership: which workers hold each block, keyed by the router's chained BlockHash.
//
// Layout: one WordTable (word_table.h) from block to its worker bit words, inline in the slot:
// 16 bytes a slot while every worker id is < 64, 8 more per further 64 ids. A lookup is one
// cache miss whatever the fleet size (a wide row spans at most one more, adjacent, line).
//
// Not thread-safe; owned by a TierStore or PredictedStore under their owner's lock.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/ids.h"
#include "index/word_table.h"

namespace kvr {

// A set of worker ids as bit words: word 0 = workers 0..63 (inline), word k = 64k..64k+63.
class WorkerSet {
 public:
  static constexpr uint32_t kMaxWords = 16;  // 1024 workers per index
  static constexpr uint32_t kMaxWorkers = kMaxWords * 64;

  uint64_t word(uint32_t i) const { return w_[i]; }
  void set_word(uint32_t i, uint64_t v) { w_[i] = v; }
  void Set(uint32_t worker) { w_[worker >> 6] |= uint64_t{1} << (worker & 63); }
  bool Test(uint32_t worker) const { return (w_[worker >> 6] >> (worker & 63)) & 1; }

 private:
  uint64_t w_[kMaxWords] = {};
};

class Membership {
 public:
  // `hi_words` = words beyond the first that worker ids may need (0 when all ids are < 64).
  // Rows start one word wide and widen when a higher worker id first appears, so a fleet whose
  // ids stay below 64 pays 16 bytes a slot whatever max_workers says.
  explicit Membership(uint32_t hi_words, uint32_t max_load_pct = WordTable::kDefaultMaxLoadPct)
      : hi_words_(hi_words), table_(1, max_load_pct) {}

  // Sets `worker` on `block`; returns false if it was already set.
  bool Set(BlockHash block, uint32_t worker);
  // Clears `worker` on `block`, dropping the block when no worker remains; returns false if unset.
  bool Clear(BlockHash block, uint32_t worker);
  bool Contains(BlockHash block, uint32_t worker) const;

  // The block's words() worker bit words (word k = workers 64k..64k+63), or nullptr when no
  // worker holds it.
  const uint64_t* Find(BlockHash block) const { return table_.Find(block.value()); }
  void Prefetch(BlockHash block) const { table_.Prefetch(block.value()); }
  // The two halves of a prefetched lookup (WordTable::PrefetchHome / FindFrom).
  const uint64_t* PrefetchHome(BlockHash block) const { return table_.PrefetchHome(block.value()); }
  const uint64_t* FindFrom(const uint64_t* home, BlockHash block) const {
    return table_.FindFrom(home, block.value());
  }
  uint32_t words() const { return table_.stride(); }
  uint32_t hi_words() const { return hi_words_; }

  size_t blocks() const { return table_.size(); }
  // Bytes held by the table (capacity, not size: what the process really pays).
  size_t MemoryBytes() const { return table_.MemoryBytes(); }
  void Reserve(size_t n) { table_.Reserve(n); }
  // Reserve in two steps (WordTable::ReservedCopy): the copy only reads this membership, so it
  // can be built beside readers; Adopt() then puts it in place and hands back the old table.
  bool NeedsReserve(size_t n) const { return table_.NeedsGrowth(n); }
  WordTable ReservedCopy(size_t n) const { return table_.ReservedCopy(n); }
  WordTable Adopt(WordTable&& table) {
    std::swap(table_, table);
    return std::move(table);
  }

 private:
  uint32_t hi_words_;
  WordTable table_;
};

// Leading-run length of every worker over `blocks` in `a` (or a ∪ b when b is given), written to
// depth[w] for each worker that holds blocks[0]; other entries are left untouched. `nw` = words to
// examine (1 + hi words in use); depth must have room for every worker id present.
void LeadingRuns(std::span<const BlockHash> blocks, const Membership& a, const Membership* b,
                 uint32_t nw, uint32_t* depth);

// Both walks a query needs in one pass over `blocks`: the leading runs in `a` alone into
// depth_a, and in a ∪ b into depth_ab (same contract as LeadingRuns for each). One probe of `a`
// per block instead of two.
void LeadingRunsPair(std::span<const BlockHash> blocks, const Membership& a, const Membership& b,
                     uint32_t nw, uint32_t* depth_a, uint32_t* depth_ab);

// Words needed for worker ids < num_workers.
inline uint32_t WordsForWorkers(uint32_t num_workers) {
  return num_workers <= 64 ? 1 : 1 + (num_workers - 64 + 63) / 64;
}

}  // namespace kvr
