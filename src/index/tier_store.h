// TierStore: the confirmed content of one storage tier across all workers, built from engine KV
// events. Keyed by the router's chained hashes; each worker's engine hashes are kept only to
// resolve its BlockRemoved events and the parents of its BlockStored events.
//
// Invariants:
//  - (block, w) is in membership_ iff w's lookup maps at least one engine hash to block; the
//    count beyond the first lives in extra_refs_ (engines may store one block twice under two
//    engine hashes, e.g. vLLM duplicates), so removals are exact.
//  - workers_[w].distinct == number of blocks with w's bit set.
// PrepareStore() prefetches an event's lookup slots, hashes its blocks (prefetching their
// membership slots); CommitStore() then inserts: the DRAM misses of a batch overlap instead of
// queueing. Not thread-safe; KvIndex serializes writers, runs the read-only phases beside
// readers, and excludes readers from the rest.
#pragma once

#include <cstdint>
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

  // A store in two phases, so the expensive half runs while queries go on:
  //  - PrepareStore only reads (validates, resolves the parent, hashes the blocks into a
  //    scratch chain, prefetches every slot it will write). It needs writers excluded but not
  //    readers: queries never read the per-worker lookups, and nothing else changes.
  //  - CommitStore (exclusive) does the inserts. Returns blocks added.
  // PrepareStore returns false for a rejected event (counted in `rejects`); then no commit.
  bool PrepareStore(uint32_t w, const KvStored& e, RejectCounts& rejects);
  uint64_t CommitStore(uint32_t w, const KvStored& e);
  // A removal in two phases likewise: PrefetchRemove only reads (it brings in the lookup and
  // membership slots Remove will touch); Remove (exclusive) releases and erases. Returns blocks
  // removed.
  void PrefetchRemove(uint32_t w, const KvRemoved& e) const;
  uint64_t Remove(uint32_t w, const KvRemoved& e, RejectCounts& rejects);
  // Drops w's blocks (an engine's cache reset); a reserved worker keeps its reservation.
  void ClearWorker(uint32_t w);
  // Drops w's blocks and its reservation (the worker left the fleet).
  void ForgetWorker(uint32_t w);
  // Sizes the tables for `w` holding up to `blocks` blocks (its KV capacity): w's lookup, and
  // the membership for the sum of every reserved worker's capacity (an upper bound on the
  // distinct blocks). The allocation and first touch happen here, not on the event path.
  void Reserve(uint32_t w, uint64_t blocks);

  const Membership& membership() const { return m_; }
  uint64_t distinct_blocks(uint32_t w) const {
    return w < workers_.size() ? workers_[w].distinct : 0;
  }
  // (block, worker) pairs held: the index's entry count.
  uint64_t entries() const { return entries_; }
  size_t MemoryBytes() const;

 private:
  struct WorkerState {
    WordTable lookup{1};  // engine hash -> block hash
    uint64_t distinct = 0;
  };
  WorkerState& Worker(uint32_t w);
  bool Validate(const KvStored& e, RejectCounts& rejects) const;
  void HashBlocks(const KvStored& e, const uint64_t* parent);
  uint64_t StoreOne(uint32_t w, WorkerState& ws, EngineHash h, BlockHash block);
  void Acquire(uint32_t w, BlockHash block);
  void Release(uint32_t w, BlockHash block);

  uint32_t block_size_;
  Membership m_;
  std::vector<WorkerState> workers_;
  std::vector<uint64_t> chain_;  // scratch: the chained hashes of the event being stored
  absl::flat_hash_map<std::pair<uint32_t, BlockHash>, uint32_t> extra_refs_;
  uint64_t entries_ = 0;
  std::vector<uint64_t> reserved_;  // per worker: blocks reserved
  uint64_t reserved_total_ = 0;
};

}  // namespace kvr
