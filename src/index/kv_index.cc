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
  MutexLock writer(write_mu_);
  for (const KvEvent& event : events) {
    const uint32_t w = std::visit([](const auto& e) { return e.worker.value(); }, event);
    if (w >= worker_limit_) {
      SpinWriterLock lock(mu_);
      ++rejected_worker_ids_;
    } else if (const auto* s = std::get_if<KvStored>(&event)) {
      ApplyStored(w, *s);
    } else if (const auto* r = std::get_if<KvRemoved>(&event)) {
      ApplyRemoved(w, *r);
    } else {
      SpinWriterLock lock(mu_);
      ++CountersFor(w).cleared_events;
      for (auto& t : tiers_) t->ClearWorker(w);
    }
  }
}

void KvIndex::ApplyStored(uint32_t w, const KvStored& e) {
  TierStore& tier = StagingTier(e.tier);
  RejectCounts rejects;
  const std::optional<uint64_t> added = tier.StageStore(w, e, &rejects);
  SpinWriterLock lock(mu_);
  Counters& c = CountersFor(w);
  ++c.stored_events;
  c.rejects += rejects;
  if (added.has_value()) {
    c.blocks_stored += *added;
    Commit(tier, w);
  }
}

void KvIndex::ApplyRemoved(uint32_t w, const KvRemoved& e) {
  TierStore& tier = StagingTier(e.tier);
  RejectCounts rejects;
  const uint64_t removed = tier.StageRemove(w, e, &rejects);
  SpinWriterLock lock(mu_);
  Counters& c = CountersFor(w);
  ++c.removed_events;
  c.rejects += rejects;
  c.blocks_removed += removed;
  Commit(tier, w);
}

void KvIndex::Commit(TierStore& tier, uint32_t w) {
  while (!tier.Commit(w, kCommitChunk)) {
    mu_.unlock();
    mu_.YieldToReaders();
    mu_.lock();
  }
}

void KvIndex::RemoveWorker(WorkerId worker) {
  const uint32_t w = worker.value();
  {
    MutexLock writer(write_mu_);
    SpinWriterLock lock(mu_);
    for (auto& t : tiers_) t->ForgetWorker(w);
    if (w < counters_.size()) counters_[w] = Counters{};
  }
  SpinWriterLock lock(pred_mu_);
  predicted_.ClearWorker(w);
}

void KvIndex::Reserve(WorkerId worker, uint64_t device_blocks) {
  const uint32_t w = worker.value();
  if (w >= worker_limit_) return;
  MutexLock writer(write_mu_);
  SpinWriterLock lock(mu_);
  tiers_[static_cast<int>(Tier::kDevice)]->Reserve(
      w, std::min(device_blocks, kMaxReservedBlocksPerWorker), kMaxReservedBlocks);
}

void KvIndex::Predict(WorkerId worker, std::span<const BlockHash> blocks) {
  const uint32_t w = worker.value();
  if (w >= worker_limit_) return;
  const TimeNs now = clock_.Now();
  SpinWriterLock lock(pred_mu_);
  predicted_.Expire(now);  // before the insert: a due trim counts only what came before
  pred_workers_ = std::max(pred_workers_, w + 1);
  predicted_.Insert(w, blocks, now);
}

void KvIndex::SweepExpired() {
  const TimeNs now = clock_.Now();
  {
    SpinReaderLock lock(pred_mu_);
    if (!predicted_.ExpiryDue(now)) return;
  }
  SpinWriterLock lock(pred_mu_);
  predicted_.Expire(now);
}

void KvIndex::Query(std::span<const BlockHash> blocks, OverlapScores* out) const {
  const TimeNs now = clock_.Now();
  SpinReaderLock lock(mu_);
  SpinReaderLock plock(pred_mu_);
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
    DropExpired(blocks, device.membership(), now, out);
  }
  for (Tier t : {Tier::kHost, Tier::kStorage}) {
    const TierStore& store = *tiers_[static_cast<int>(t)];
    if (store.entries() == 0) continue;
    LeadingRuns(blocks, store.membership(), nullptr, nw,
                (t == Tier::kHost ? out->host : out->storage).data());
  }
  if (predicted_.empty()) out->predicted = out->device;
}

// A worker's run counting predictions extends its device run through blocks held on device or
// predicted; only the predicted-only ones in that stretch can have expired, and only on a worker
// whose oldest prediction has. Between sweeps that is about one worker per query (the sweep runs
// at every Predict), so the lookups stay few.
void KvIndex::DropExpired(std::span<const BlockHash> blocks, const Membership& device, TimeNs now,
                          OverlapScores* out) const {
  for (uint32_t w = 0; w < out->predicted.size(); ++w) {
    uint32_t& run = out->predicted[w];
    if (run <= out->device[w] || !predicted_.MayHaveExpired(w, now)) continue;
    for (uint32_t i = out->device[w]; i < run; ++i) {
      if (!device.Contains(blocks[i], w) && !predicted_.IsLive(w, blocks[i], now)) {
        run = i;
        break;
      }
    }
  }
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
    SpinReaderLock lock(mu_);
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
  SpinReaderLock plock(pred_mu_);
  s.predicted_blocks = predicted_.blocks(w);
  return s;
}

uint64_t KvIndex::rejected_worker_ids() const {
  SpinReaderLock lock(mu_);
  return rejected_worker_ids_;
}

uint64_t KvIndex::Entries() const {
  SpinReaderLock lock(mu_);
  uint64_t n = 0;
  for (const auto& t : tiers_) n += t->entries();
  return n;
}

size_t KvIndex::MemoryBytes() const {
  size_t bytes = 0;
  {
    MutexLock writer(write_mu_);  // the engine-hash lookups change outside mu_
    SpinReaderLock lock(mu_);
    for (const auto& t : tiers_) bytes += t->MemoryBytes();
  }
  SpinReaderLock plock(pred_mu_);
  return bytes + predicted_.MemoryBytes();
}

}  // namespace kvr
