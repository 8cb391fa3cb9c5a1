// KvIndex: the router's global view of which worker holds which KV blocks.
//
// Confirmed content comes from engine events (one TierStore per tier); predicted content from the
// router's own routing decisions (PredictedStore). Query() returns, for every worker, how many
// leading blocks of a prompt it holds per tier, and how many it holds counting predictions.
//
// Worker ids are dense small integers handed out by the router's worker registry; they must be
// < IndexConfig::max_workers (events for larger ids are counted and skipped).
//
// Thread-safety: safe for concurrent use; the locks are annotated for clang's -Wthread-safety.
// Queries are readers only: they share mu_ and pred_mu_ and never write. Writers are serialized
// among themselves (write_mu_) and take mu_ exclusively only for the membership changes of each
// event, a few at a time, letting waiting queries in between: a store's hashing and the
// engine-hash bookkeeping run beside queries, and a query never waits out a whole large event.
// mu_ is writer-preferring and spins briefly before sleeping (spin_shared_mutex.h), so the one
// event writer cannot be starved by many routing threads. Predictions have their own lock, so
// routing never waits on event application to record a prediction.
//
// Expired predictions: a query ignores predicted entries past their TTL by their timestamps;
// removing them (and the total-capacity trim) is a write, done by Predict() and SweepExpired().
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "common/spin_shared_mutex.h"
#include "index/kv_event.h"
#include "index/predicted_store.h"
#include "index/tier_store.h"

namespace kvr {

struct IndexConfig {
  uint32_t block_size = 64;    // must equal the engines'
  uint32_t max_workers = 256;  // worker ids in [0, max_workers); at most WorkerSet::kMaxWorkers
  PredictConfig predict;       // TTL / capacity of predicted entries
};

// Per-worker answers of one Query, indexed by WorkerId::value(); every vector has
// num_workers() entries (1 + the highest worker id the index has seen).
struct OverlapScores {
  std::vector<uint32_t> device;         // leading blocks confirmed on device
  std::vector<uint32_t> host;           // leading blocks confirmed in host memory
  std::vector<uint32_t> storage;        // leading blocks confirmed on disk / remote storage
  std::vector<uint32_t> predicted;      // leading blocks confirmed on device OR predicted
  std::vector<uint64_t> cached_blocks;  // total device blocks the worker holds (tree size)

  size_t num_workers() const { return device.size(); }
  uint32_t device_or_zero(WorkerId w) const {
    return w.value() < device.size() ? device[w.value()] : 0;
  }
  uint32_t predicted_or_zero(WorkerId w) const {
    return w.value() < predicted.size() ? predicted[w.value()] : 0;
  }
};

struct WorkerIndexStats {
  uint64_t stored_events = 0, removed_events = 0, cleared_events = 0;
  uint64_t blocks_stored = 0, blocks_removed = 0;
  RejectCounts rejects;
  uint64_t blocks[kNumTiers] = {};
  uint64_t predicted_blocks = 0;
};

class KvIndex {
 public:
  KvIndex(IndexConfig config, const Clock& clock);
  ~KvIndex();
  KvIndex(const KvIndex&) = delete;
  KvIndex& operator=(const KvIndex&) = delete;

  // Applies events in order. A query may run between two events, and within one: it then sees
  // the event's first blocks applied (a store parent-first), as if the engine had split it.
  void Apply(std::span<const KvEvent> events);
  void Apply(const KvEvent& event) { Apply(std::span<const KvEvent>(&event, 1)); }
  // Forgets everything about `worker` (all tiers, predictions, stats).
  void RemoveWorker(WorkerId worker);

  // Sizes the index for `worker` holding up to `device_blocks` blocks on device (its KV
  // capacity, known when it registers): tables grow here, not while events arrive, so no
  // rehash stalls queries on the event path. Optional: tables grow on demand regardless.
  // A declared capacity is taken up to kMaxReservedBlocksPerWorker, and the fleet's sum up to
  // kMaxReservedBlocks, so a mistyped capacity cannot take the host's memory up front.
  void Reserve(WorkerId worker, uint64_t device_blocks);
  static constexpr uint64_t kMaxReservedBlocksPerWorker = uint64_t{1} << 22;  // ~80 MB
  static constexpr uint64_t kMaxReservedBlocks = uint64_t{1} << 25;           // ~630 MB

  // Records that `worker` will hold these blocks (routing decision). Sweeps expired predictions
  // first (as SweepExpired), so a router that routes needs no other sweep.
  void Predict(WorkerId worker, std::span<const BlockHash> blocks);

  // Removes the predictions whose TTL has passed, and trims all workers' predictions to
  // PredictConfig::total_capacity_blocks when a trim is due. Queries are right without it (they
  // skip expired entries by timestamp); sweeping frees their memory and keeps queries from
  // checking them one by one. A live router calls it periodically (every second or so) so that
  // an idle spell with no Predict() does not leave them behind. Cheap when nothing is due.
  void SweepExpired();

  // REQUIRES: `blocks` are chained sequence hashes of the prompt's full blocks (block_hash.h).
  // O(depth · words) hash lookups; stops as soon as no worker matches. Predictions count only
  // while live (their TTL not passed at the clock's Now()); a worker with unswept expired ones
  // costs one lookup per block it holds only by prediction.
  void Query(std::span<const BlockHash> blocks, OverlapScores* out) const;
  OverlapScores Query(std::span<const BlockHash> blocks) const;

  WorkerIndexStats Stats(WorkerId worker) const;
  uint64_t rejected_worker_ids() const;
  // (block, worker) pairs confirmed across tiers, and the bytes the index holds.
  uint64_t Entries() const;
  size_t MemoryBytes() const;
  const IndexConfig& config() const { return config_; }
  // Worker ids accepted: [0, worker_limit()) = min(max_workers, WorkerSet::kMaxWorkers).
  uint32_t worker_limit() const { return worker_limit_; }

 private:
  struct Counters {
    uint64_t stored_events = 0, removed_events = 0, cleared_events = 0;
    uint64_t blocks_stored = 0, blocks_removed = 0;
    RejectCounts rejects;
  };
  Counters& CountersFor(uint32_t w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The tier for a writer's staging phase, which runs under write_mu_ alone: staging changes only
  // what queries never read (tier_store.h), the membership waits for Commit under mu_. The one
  // access the analysis cannot see through.
  TierStore& StagingTier(Tier t)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return *tiers_[static_cast<int>(t)];
  }
  void ApplyStored(uint32_t w, const KvStored& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  void ApplyRemoved(uint32_t w, const KvRemoved& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Membership changes per exclusive section: ~0.5 µs of a removal's (the slower kind).
  static constexpr size_t kCommitChunk = 8;
  // Applies `tier`'s staged changes for `w`, releasing mu_ between chunks (held again on return).
  void Commit(TierStore& tier, uint32_t w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_, mu_);
  // Shortens out->predicted[w] where its run went through predictions expired at `now`.
  void DropExpired(std::span<const BlockHash> blocks, const Membership& device, TimeNs now,
                   OverlapScores* out) const ABSL_SHARED_LOCKS_REQUIRED(pred_mu_);

  const IndexConfig config_;
  const Clock& clock_;
  const uint32_t worker_limit_;
  const uint32_t hi_words_;

  // Writers (Apply, RemoveWorker, Reserve) hold write_mu_ throughout: they may read the tables
  // and change what queries never read (the engine-hash lookups) without mu_, and take mu_
  // exclusively only to change the rest. Readers take mu_ shared. Order: write_mu_, mu_, pred_mu_.
  mutable Mutex write_mu_;
  mutable SpinSharedMutex mu_ ABSL_ACQUIRED_AFTER(write_mu_);
  std::unique_ptr<TierStore> tiers_[kNumTiers] ABSL_GUARDED_BY(mu_);
  std::vector<Counters> counters_ ABSL_GUARDED_BY(mu_);
  uint32_t num_workers_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rejected_worker_ids_ ABSL_GUARDED_BY(mu_) = 0;

  // Queries share pred_mu_; Predict() and SweepExpired() take it exclusively.
  mutable SpinSharedMutex pred_mu_ ABSL_ACQUIRED_AFTER(mu_);
  PredictedStore predicted_ ABSL_GUARDED_BY(pred_mu_);
  uint32_t pred_workers_ ABSL_GUARDED_BY(pred_mu_) = 0;
};

}  // namespace kvr
