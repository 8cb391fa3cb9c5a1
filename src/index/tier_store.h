// TierStore: the confirmed content of one storage tier across all workers, built from engine KV
// events. Keyed by the router's chained hashes; each worker's engine hashes are kept only to
// resolve its BlockRemoved events and the parents of its BlockStored events.
//
// Invariants:
//  - (block, w) is in membership_ iff w's lookup maps at least one engine hash to block; the
//    count beyond the first lives in extra_refs_ (engines may store one block twice under two
//    engine hashes, e.g. vLLM duplicates), so removals are exact.
//  - distinct_[w] == number of blocks with w's bit set.
//  (Both hold between events: an event's lookup changes are staged before its membership ones.)
//
// Two phases per event, so that queries are held off only while the membership changes:
//  - Stage* (writers excluded, readers not): validates, hashes a store's blocks, updates the
//    worker's engine-hash lookup (queries never read it) and records the membership changes
//    the event makes; the membership slots they touch are prefetched on the way.
//    If the membership must grow for the event, the grown copy is built here too.
//  - Commit (exclusive): swaps in the grown membership, if any, and applies the recorded
//    changes, in order, on warm lines; in chunks if the caller wants readers in between.
// Not thread-safe; KvIndex serializes writers and excludes readers from Commit and ClearWorker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "index/kv_event.h"
#include "index/membership.h"
#include "index/word_table.h"

namespace kvr {

// Why an event (or part of it) was skipped. Counted per worker, never fatal.
struct RejectCounts {
  uint64_t parent_unknown = 0;    // BlockStored whose parent this worker never stored
  uint64_t remove_unknown = 0;    // BlockRemoved hash this worker does not hold
  uint64_t wrong_block_size = 0;  // BlockStored with another block size than the pool's
  uint64_t malformed = 0;         // token count != blocks × block size

  RejectCounts& operator+=(const RejectCounts& o) {
    parent_unknown += o.parent_unknown;
    remove_unknown += o.remove_unknown;
    wrong_block_size += o.wrong_block_size;
    malformed += o.malformed;
    return *this;
  }
};

class TierStore {
 public:
  TierStore(uint32_t block_size, uint32_t hi_words) : block_size_(block_size), m_(hi_words) {}

  // Phase 1 of a store: the blocks it adds, or nullopt for a rejected event (counted in
  // `rejects`; nothing staged).
  std::optional<uint64_t> StageStore(uint32_t w, const KvStored& e, RejectCounts* rejects);
  // Phase 1 of a removal: the blocks it removes (unknown hashes counted in `rejects`).
  uint64_t StageRemove(uint32_t w, const KvRemoved& e, RejectCounts* rejects);
  // Phase 2: applies the next (up to) `max_changes` membership changes staged for `w`, in
  // order; true when the event is fully applied. Queries between two calls see a prefix of
  // the event's changes.
  bool Commit(uint32_t w, size_t max_changes = SIZE_MAX);
  // Drops w's blocks (an engine's cache reset); a reserved worker keeps its reservation.
  void ClearWorker(uint32_t w);
  // Drops w's blocks and its reservation (the worker left the fleet).
  void ForgetWorker(uint32_t w);
  // Sizes the tables for `w` holding up to `blocks` blocks (its KV capacity): w's lookup, and
  // the membership for the sum of every reserved worker's capacity (an upper bound on the
  // distinct blocks), at most `max_total`. The allocation and first touch happen here, not on
  // the event path.
  void Reserve(uint32_t w, uint64_t blocks, uint64_t max_total);

  const Membership& membership() const { return m_; }
  uint64_t distinct_blocks(uint32_t w) const { return w < distinct_.size() ? distinct_[w] : 0; }
  // (block, worker) pairs held: the index's entry count.
  uint64_t entries() const { return entries_; }
  // Reads the lookups: callers exclude writers.
  size_t MemoryBytes() const;

 private:
  // A membership change staged by phase 1: +1 or -1 reference of (worker, block).
  struct Ref {
    uint64_t block;
    bool acquire;
  };
  WordTable& Lookup(uint32_t w);
  bool Validate(const KvStored& e, RejectCounts* rejects) const;
  void HashBlocks(const KvStored& e, const uint64_t* parent);
  uint64_t StageOne(WordTable& lookup, EngineHash h, uint64_t block);
  void Acquire(uint32_t w, BlockHash block);
  void Release(uint32_t w, BlockHash block);

  uint32_t block_size_;
  Membership m_;
  // Per worker, engine hash -> block hash. Writer-only: changed outside the exclusive lock.
  std::vector<WordTable> lookups_;
  std::vector<uint64_t> distinct_;  // per worker: blocks held (queries read it)
  std::vector<uint64_t> chain_;     // scratch: the chained hashes of the event being stored
  std::vector<Ref> staged_;         // scratch: membership changes awaiting Commit
  size_t committed_ = 0;            // staged_[0, committed_) applied already
  // A membership grown aside for the staged event (Commit swaps it in), and the table it
  // replaced (freed at the next staging, outside the exclusive lock).
  std::optional<WordTable> grown_;
  WordTable retired_;
  absl::flat_hash_map<std::pair<uint32_t, BlockHash>, uint32_t> extra_refs_;
  uint64_t entries_ = 0;
  std::vector<uint64_t> reserved_;  // per worker: blocks reserved
  uint64_t reserved_total_ = 0;
};

}  // namespace kvr
