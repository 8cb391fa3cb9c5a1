#include "index/kv_index.h"

#include <algorithm>
#include <bit>
#include <optional>

namespace kvr {
KvIndex::KvIndex(IndexConfig config, const Clock& clock)
    : config_(config),
      clock_(clock),
      worker_limit_(std::min(config.max_workers, WorkerSet::kMaxWorkers)),
      hi_words_(WordsForWorkers(worker_limit_) - 1),
      predicted_(config.predict, hi_words_) {
  for (auto& t : tiers_) t = std::make_unique<TierStore>(config_.block_size, hi_words_);
}

KvIndex::~KvIndex() = default;

KvIndex::Counters& KvIndex::CountersFor(uint32_t w) {
  if (w >= counters_.size()) counters_.resize(w + 1);
  num_workers_ = std::max(num_workers_, w + 1);
  return counters_[w];
}

// Per event: the staging phase (hashing a store's blocks, changing the worker's engine-hash
// lookup, prefetching) runs under write_mu_ alone, beside queries; only the membership changes
// take mu_ exclusively, kCommitChunk at a time, so a query waits out at most one chunk (well
// under a microsecond) however large the event.
void KvIndex::Apply(std::span<const KvEvent> events) {
  std::lock_guard writer(write_mu_);
  for (const KvEvent& event : events) {
    const uint32_t w = std::visit([](const auto& e) { return e.worker.value(); }, event);
    if (w >= worker_limit_) {
      std::unique_lock lock(mu_);
      ++rejected_worker_ids_;
    } else if (const auto* s = std::get_if<KvStored>(&event)) {
      TierStore& tier = *tiers_[static_cast<int>(s->tier)];
      RejectCounts rejects;
      const std::optional<uint64_t> added = tier.StageStore(w, *s, rejects);
      std::unique_lock lock(mu_);
      Counters& c = CountersFor(w);
      ++c.stored_events;
      c.rejects += rejects;
      if (added.has_value()) {
        c.blocks_stored += *added;
        Commit(tier, w, lock);
      }
    } else if (const auto* r = std::get_if<KvRemoved>(&event)) {
      TierStore& tier = *tiers_[static_cast<int>(r->tier)];
      RejectCounts rejects;
      const uint64_t removed = tier.StageRemove(w, *r, rejects);
      std::unique_lock lock(mu_);
      Counters& c = CountersFor(w);
      ++c.removed_events;
      c.rejects += rejects;
      c.blocks_removed += removed;
      Commit(tier, w, lock);
    } else {
      std::unique_lock lock(mu_);
      ++CountersFor(w).cleared_events;
      for (auto& t : tiers_) t->ClearWorker(w);
    }
  }
}

// REQUIRES: `lock` holds mu_. Releases it between chunks (and leaves it held).
void KvIndex::Commit(TierStore& tier, uint32_t w, std::unique_lock<SpinSharedMutex>& lock) {
  while (!tier.Commit(w, kCommitChunk)) {
    lock.unlock();
    mu_.YieldToReaders();
    lock.lock();
  }
}

void KvIndex::RemoveWorker(WorkerId worker) {
  const uint32_t w = worker.value();
  {
    std::lock_guard writer(write_mu_);
    std::unique_lock lock(mu_);
    for (auto& t : tiers_) t->ForgetWorker(w);
    if (w < counters_.size()) counters_[w] = Counters{};
  }
  std::unique_lock lock(pred_mu_);
  predicted_.ClearWorker(w);
}

void KvIndex::Reserve(WorkerId worker, uint64_t device_blocks) {
  const uint32_t w = worker.value();
  if (w >= worker_limit_) return;
  std::lock_guard writer(write_mu_);
  std::unique_lock lock(mu_);
  tiers_[static_cast<int>(Tier::kDevice)]->Reserve(
      w, std::min(device_blocks, kMaxReservedBlocksPerWorker), kMaxReservedBlocks);
}

void KvIndex::Predict(WorkerId worker, std::span<const BlockHash> blocks) {
  const uint32_t w = worker.value();
  if (w >= worker_limit_) return;
  std::unique_lock lock(pred_mu_);
  pred_workers_ = std::max(pred_workers_, w + 1);
  predicted_.Insert(w, blocks, clock_.Now());
}

void KvIndex::Query(std::span<const BlockHash> blocks, OverlapScores* out) const {
  const TimeNs now = clock_.Now();
  bool expiry_due;
  {
    std::shared_lock plock(pred_mu_);
    expiry_due = predicted_.ExpiryDue(now);
  }
  if (expiry_due) {
    std::unique_lock plock(pred_mu_);
    predicted_.Expire(now);
  }
  std::shared_lock lock(mu_);
  std::shared_lock plock(pred_mu_);
  const uint32_t workers = std::max(num_workers_, pred_workers_);
  const uint32_t nw = WordsForWorkers(workers);
  for (auto* v : {&out->device, &out->host, &out->storage, &out->predicted}) v->assign(workers, 0);
  out->cached_blocks.resize(workers);
  const TierStore& device = *tiers_[static_cast<int>(Tier::kDevice)];
  for (uint32_t w = 0; w < workers; ++w) out->cached_blocks[w] = device.distinct_blocks(w);
  if (workers == 0) return;
  if (predicted_.empty()) {
    LeadingRuns(blocks, device.membership(), nullptr, nw, out->device.data());
  } else {
    LeadingRunsPair(blocks, device.membership(), predicted_.membership(), nw, out->device.data(),
                    out->predicted.data());
  }
  for (Tier t : {Tier::kHost, Tier::kStorage}) {
    const TierStore& store = *tiers_[static_cast<int>(t)];
    if (store.entries() == 0) continue;
    LeadingRuns(blocks, store.membership(), nullptr, nw,
                (t == Tier::kHost ? out->host : out->storage).data());
  }
  if (predicted_.empty()) out->predicted = out->device;
}

OverlapScores KvIndex::Query(std::span<const BlockHash> blocks) const {
  OverlapScores out;
  Query(blocks, &out);
  return out;
}

WorkerIndexStats KvIndex::Stats(WorkerId worker) const {
  const uint32_t w = worker.value();
  WorkerIndexStats s;
  {
    std::shared_lock lock(mu_);
    if (w < counters_.size()) {
      const Counters& c = counters_[w];
      s.stored_events = c.stored_events;
      s.removed_events = c.removed_events;
      s.cleared_events = c.cleared_events;
      s.blocks_stored = c.blocks_stored;
      s.blocks_removed = c.blocks_removed;
      s.rejects = c.rejects;
    }
    for (int t = 0; t < kNumTiers; ++t) s.blocks[t] = tiers_[t]->distinct_blocks(w);
  }
  std::shared_lock lock(pred_mu_);
  s.predicted_blocks = predicted_.blocks(w);
  return s;
}

uint64_t KvIndex::rejected_worker_ids() const {
  std::shared_lock lock(mu_);
  return rejected_worker_ids_;
}

uint64_t KvIndex::Entries() const {
  std::shared_lock lock(mu_);
  uint64_t n = 0;
  for (const auto& t : tiers_) n += t->entries();
  return n;
}

size_t KvIndex::MemoryBytes() const {
  size_t bytes = 0;
  {
    std::lock_guard writer(write_mu_);  // the engine-hash lookups change outside mu_
    std::shared_lock lock(mu_);
    for (const auto& t : tiers_) bytes += t->MemoryBytes();
  }
  std::shared_lock lock(pred_mu_);
  return bytes + predicted_.MemoryBytes();
}

}  // namespace kvr
