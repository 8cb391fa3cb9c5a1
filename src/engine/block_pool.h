// The KV block pool of a vLLM-like engine (vLLM v1 BlockPool semantics):
//  - every block has a reference count; blocks with ref 0 sit in one LRU free queue (an
//    intrusive doubly-linked list over the block array: O(1) push, pop and unlink);
//  - a full block may carry a prefix-chained hash and is then findable through the cache map;
//    freeing keeps the hash, so a free block is still a cache hit until it is reallocated;
//  - allocation pops the queue's front (least recently freed) and evicts its hash.
// Deviation from vLLM, on purpose: a hash cached by several physical blocks (two requests
// computed the same prefix concurrently) is tracked as one entry with a chain of copies, so the
// pool reports a hash as stored when its first copy appears and as evicted when its last copy
// goes. vLLM emits one BlockStored/BlockRemoved per copy, which an index keyed by hash cannot
// apply exactly; ours can.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace kvr::engine {

class BlockPool {
 public:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

  // All blocks start free and uncached, queued in id order.
  explicit BlockPool(uint32_t num_blocks);

  uint32_t num_blocks() const { return static_cast<uint32_t>(blocks_.size()); }
  uint32_t num_free() const { return free_count_; }
  uint32_t num_used() const { return num_blocks() - free_count_; }
  size_t num_cached_hashes() const { return cached_.size(); }

  // A block holding `hash`, or kNone. O(1).
  uint32_t Lookup(uint64_t hash) const;
  bool IsFree(uint32_t block) const { return blocks_[block].ref == 0; }
  bool IsCached(uint32_t block) const { return blocks_[block].cached; }

  // Takes a reference; a free block leaves the free queue (it stays cached). O(1).
  void Touch(uint32_t block);

  // Pops the least recently freed block and takes a reference. If it was cached its hash is
  // dropped; when that was the hash's last copy the hash is appended to *evicted.
  // REQUIRES: num_free() > 0. O(1).
  uint32_t Allocate(std::vector<uint64_t>* evicted);

  // Registers a full, uncached block under `hash`. Returns true when the hash was not cached
  // before (the caller announces it), false when it became one more copy.
  bool Cache(uint32_t block, uint64_t hash);

  // Drops a reference; at zero the block joins the tail of the free queue (most recently
  // used). Callers free a request's blocks tail first, so its deepest blocks are evicted first.
  void Release(uint32_t block);

  // Forgets every hash (in use or free); nothing is freed. O(num_blocks).
  void DropAllHashes();

  // Calls f(hash) for every cached hash, in unspecified order.
  template <typename F>
  void ForEachCachedHash(F&& f) const {
    for (const auto& [hash, block] : cached_) f(hash);
  }

  // Free-queue order from front (next evicted) to back; O(num_free), for tests.
  std::vector<uint32_t> FreeQueueForTest() const;

 private:
  struct Block {
    uint64_t hash = 0;
    uint32_t ref = 0;
    uint32_t prev = kNone;  // free-queue links, valid while ref == 0
    uint32_t next = kNone;
    uint32_t dup_prev = kNone;  // copies of the same hash: a doubly-linked chain, first copy
    uint32_t dup_next = kNone;  // (the map's) has no prev, so unlinking any copy is O(1)
    bool cached = false;
  };

  void PushBack(uint32_t block);
  void Unlink(uint32_t block);
  // Removes the block from its hash's copy chain; true when it was the last copy.
  bool Uncache(uint32_t block);

  std::vector<Block> blocks_;
  uint32_t head_ = kNone;  // least recently freed: evicted first
  uint32_t tail_ = kNone;
  uint32_t free_count_ = 0;
  absl::flat_hash_map<uint64_t, uint32_t> cached_;  // hash -> first copy
};

}  // namespace kvr::engine
