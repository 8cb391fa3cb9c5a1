// PredictedStore: blocks the router believes a worker holds because it routed a prompt there,
// before (or instead of) any engine event saying so.
//  - approximate mode (engines publish no events): the only source of overlap; long TTL
//    (SGLang and Dynamo default to 120 s) and a per-worker capacity.
//  - predict-on-route in event mode: covers the gap between routing a request and its
//    BlockStored event arriving (sibling requests racing ahead); short TTL.
// Each (block, worker) entry expires `ttl` after its last insertion; past `capacity` blocks
// per worker the least recently inserted entry goes first.
// Not thread-safe; KvIndex guards it with its own mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/clock.h"
#include "index/membership.h"

namespace kvr {

struct PredictConfig {
  TimeNs ttl = 2 * kNsPerSec;
  uint32_t capacity_blocks = 1 << 16;  // per worker
};

class PredictedStore {
 public:
  PredictedStore(PredictConfig config, uint32_t hi_words) : config_(config), m_(hi_words) {}

  void Insert(uint32_t w, std::span<const BlockHash> blocks, TimeNs now);
  // Drops entries whose TTL has passed. Cheap to call often: it sweeps only when ExpiryDue().
  void Expire(TimeNs now);
  bool ExpiryDue(TimeNs now) const { return !empty() && now >= next_expiry_check_; }
  void ClearWorker(uint32_t w);

  const Membership& membership() const { return m_; }
  bool empty() const { return m_.blocks() == 0; }
  uint64_t blocks(uint32_t w) const { return w < workers_.size() ? workers_[w].expiry.size() : 0; }
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

  PredictConfig config_;
  Membership m_;
  std::vector<WorkerState> workers_;
  TimeNs next_expiry_check_ = 0;
  uint64_t next_seq_ = 0;
};

}  // namespace kvr
