// PredictedStore: blocks the router believes a worker holds because it routed a prompt there,
// before (or instead of) any engine event saying so.
//  - approximate mode (engines publish no events): the only source of overlap. Dynamo keeps
//    entries for a long TTL (120 s); SGLang's gateway keeps them with no TTL and instead trims
//    the whole tree (all workers together) back to a size cap every eviction interval.
//  - predict-on-route in event mode: covers the gap between routing a request and its
//    BlockStored event arriving (sibling requests racing ahead); short TTL.
// Each (block, worker) entry expires `ttl` after its last insertion (never, with kNoTtl); past
// `capacity` blocks per worker the least recently inserted entry goes first; with a
// `total_capacity_blocks`, every `trim_interval` the least recently inserted entries of all
// workers go until the total fits.
// Not thread-safe; KvIndex guards it with its own lock (readers: the const methods only).
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/clock.h"
#include "index/membership.h"

namespace kvr {

struct PredictConfig {
  static constexpr TimeNs kNoTtl = std::numeric_limits<TimeNs>::max();
  TimeNs ttl = 2 * kNsPerSec;
  uint32_t capacity_blocks = 1 << 16;  // per worker, enforced on every insert
  // > 0: all workers' entries together are trimmed to this many, oldest first, at most once
  // per `trim_interval` (between trims the total may exceed it, as in a periodic sweep).
  uint64_t total_capacity_blocks = 0;
  TimeNs trim_interval = 0;
};

class PredictedStore {
 public:
  PredictedStore(PredictConfig config, uint32_t hi_words) : config_(config), m_(hi_words) {}

  void Insert(uint32_t w, std::span<const BlockHash> blocks, TimeNs now);
  // Drops entries whose TTL has passed, and trims to the total capacity when a trim is due.
  // Cheap to call often: it sweeps only when ExpiryDue().
  void Expire(TimeNs now);
  bool ExpiryDue(TimeNs now) const { return !empty() && now >= next_expiry_check_; }
  void ClearWorker(uint32_t w);

  // For readers between sweeps, which see expired entries still in the membership: whether `w`
  // may hold one at `now` (its oldest insertion record has expired; conservative, since that
  // record may be a refreshed entry's stale one), and whether (block, w) is held and live.
  bool MayHaveExpired(uint32_t w, TimeNs now) const {
    return w < workers_.size() && !workers_[w].fifo.empty() &&
           workers_[w].fifo.front().expiry <= now;
  }
  bool IsLive(uint32_t w, BlockHash block, TimeNs now) const;

  const Membership& membership() const { return m_; }
  bool empty() const { return m_.blocks() == 0; }
  uint64_t blocks(uint32_t w) const { return w < workers_.size() ? workers_[w].expiry.size() : 0; }
  uint64_t total_blocks() const;
  size_t MemoryBytes() const;
  const PredictConfig& config() const { return config_; }

 private:
  // A fifo record is live iff its seq equals the block's current seq: a refresh re-inserts the
  // block with a new seq, leaving the old record stale (skipped when popped).
  struct Entry {
    BlockHash block;
    TimeNs expiry;
    uint64_t seq;
  };
  struct Live {
    TimeNs expiry;
    uint64_t seq;
  };
  struct WorkerState {
    absl::flat_hash_map<BlockHash, Live> expiry;  // authoritative
    std::deque<Entry> fifo;                       // insertion order
  };
  // Pops fifo entries while `pred` holds for the front, evicting the live ones.
  template <typename Pred>
  void PopWhile(uint32_t w, Pred pred);
  // Pops the front fifo record of `w`; returns whether it was live (and is now evicted).
  bool PopFront(uint32_t w);
  // Evicts the least recently inserted entries, across workers, until at most `cap` remain.
  void TrimTotal(uint64_t cap);

  PredictConfig config_;
  Membership m_;
  std::vector<WorkerState> workers_;
  TimeNs next_expiry_check_ = 0;
  TimeNs next_trim_ = 0;
  uint64_t next_seq_ = 0;
};

}  // namespace kvr
