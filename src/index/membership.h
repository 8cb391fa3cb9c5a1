// Membership: which workers hold each block, keyed by the router's chained BlockHash.
//
// Layout: one absl::flat_hash_map<BlockHash, Node> (24 bytes a slot). A Node carries workers
// 0..63 inline as a bit word; workers >= 64 spill into a shared word arena row, allocated only
// for blocks that such a worker holds. The common fleet (<= 64 workers per pool) therefore costs
// one cache miss per lookup and no extra memory; larger fleets pay a second miss.
//
// Not thread-safe; owned by a TierStore or PredictedStore under their owner's lock.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/ids.h"

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
  struct Node {
    uint64_t lo = 0;           // workers 0..63
    uint32_t hi_row = kNoRow;  // arena row for workers >= 64, or kNoRow
  };
  static constexpr uint32_t kNoRow = ~uint32_t{0};

  // `hi_words` = arena words per row (0 when no worker id is >= 64).
  explicit Membership(uint32_t hi_words) : hi_words_(hi_words) {}

  // Sets `worker` on `block`; returns false if it was already set.
  bool Set(BlockHash block, uint32_t worker);
  // Clears `worker` on `block`, dropping the node when no worker remains; returns false if unset.
  bool Clear(BlockHash block, uint32_t worker);
  bool Contains(BlockHash block, uint32_t worker) const;

  const Node* Find(BlockHash block) const {
    auto it = nodes_.find(block);
    return it == nodes_.end() ? nullptr : &it->second;
  }
  void Prefetch(BlockHash block) const { nodes_.prefetch(block); }
  const uint64_t* HiWords(const Node& n) const {
    return n.hi_row == kNoRow ? nullptr : &arena_[size_t{n.hi_row} * hi_words_];
  }
  uint32_t hi_words() const { return hi_words_; }

  size_t blocks() const { return nodes_.size(); }
  // Bytes held by the table and arena (capacity, not size: what the process really pays).
  size_t MemoryBytes() const;
  void Reserve(size_t n) { nodes_.reserve(n); }

 private:
  uint32_t AllocRow();
  void FreeRow(uint32_t row);
  bool RowEmpty(uint32_t row) const;

  uint32_t hi_words_;
  absl::flat_hash_map<BlockHash, Node> nodes_;
  std::vector<uint64_t> arena_;
  std::vector<uint32_t> free_rows_;
};

// Leading-run length of every worker over `blocks` in `a` (or a ∪ b when b is given), written to
// depth[w] for each worker that holds blocks[0]; other entries are left untouched. `nw` = words to
// examine (1 + hi words in use); depth must have room for every worker id present.
void LeadingRuns(std::span<const BlockHash> blocks, const Membership& a, const Membership* b,
                 uint32_t nw, uint32_t* depth);

// Words needed for worker ids < num_workers.
inline uint32_t WordsForWorkers(uint32_t num_workers) {
  return num_workers <= 64 ? 1 : 1 + (num_workers - 64 + 63) / 64;
}

}  // namespace kvr
