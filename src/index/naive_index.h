// NaiveIndex: the obviously-correct oracle for KvIndex, for differential tests and the
// benchmark's baseline. Ordered maps, a linear scan per worker per query; same semantics as
// KvIndex (see tier_store.h and predicted_store.h), none of its data-structure cleverness.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <tuple>
#include <vector>

#include "common/clock.h"
#include "index/kv_event.h"
#include "index/kv_index.h"

namespace kvr {

class NaiveIndex {
 public:
  explicit NaiveIndex(IndexConfig config) : config_(config) {}

  void Apply(const KvEvent& event);
  void RemoveWorker(WorkerId worker);
  void Predict(WorkerId worker, std::span<const BlockHash> blocks, TimeNs now);
  OverlapScores Query(std::span<const BlockHash> blocks, TimeNs now) const;
  uint64_t Entries() const;

 private:
  using Key = std::tuple<uint32_t, int, uint64_t>;  // worker, tier, block
  bool Held(uint32_t w, int tier, BlockHash b) const;
  bool PredictedLive(uint32_t w, BlockHash b, TimeNs now) const;
  void Drop(uint32_t w, int tier, BlockHash b);
  void Store(uint32_t w, const KvStored& e);

  IndexConfig config_;
  uint32_t num_workers_ = 0;
  std::map<std::pair<uint32_t, int>, std::map<uint64_t, uint64_t>> lookup_;  // engine -> block
  std::map<Key, int> refs_;
  std::map<uint32_t, uint64_t> device_blocks_;  // distinct device blocks per worker
  struct Pred {
    TimeNs expiry;
    uint64_t seq;
  };
  std::map<uint32_t, std::map<uint64_t, Pred>> pred_;  // worker -> block -> entry
  uint64_t seq_ = 0;
};

}  // namespace kvr
