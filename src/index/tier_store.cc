#include "index/tier_store.h"

#include <algorithm>
#include <span>

#include "index/block_hash.h"

namespace kvr {

TierStore::WorkerState& TierStore::Worker(uint32_t w) {
  if (w >= workers_.size()) workers_.resize(w + 1);
  return workers_[w];
}

void TierStore::Acquire(uint32_t w, BlockHash block) {
  if (m_.Set(block, w)) {
    ++workers_[w].distinct;
    ++entries_;
  } else {
    ++extra_refs_[{w, block}];
  }
}

void TierStore::Release(uint32_t w, BlockHash block) {
  if (!extra_refs_.empty()) {
    auto it = extra_refs_.find(std::pair{w, block});
    if (it != extra_refs_.end()) {
      if (--it->second == 0) extra_refs_.erase(it);
      return;
    }
  }
  if (m_.Clear(block, w)) {
    --workers_[w].distinct;
    --entries_;
  }
}

bool TierStore::Validate(const KvStored& e, RejectCounts& rejects) const {
  if (e.block_size != block_size_) {
    ++rejects.wrong_block_size;
    return false;
  }
  if (e.token_ids.size() != e.block_hashes.size() * size_t{block_size_}) {
    ++rejects.malformed;
    return false;
  }
  return true;
}

// Chained hashes of the event's blocks into chain_, continuing from `parent` (null: root);
// prefetches each block's membership slot.
void TierStore::HashBlocks(const KvStored& e, const uint64_t* parent) {
  const uint64_t seed = HashSeed({.lora_name = e.lora_name, .cache_salt = e.cache_salt});
  std::span<const TokenId> tokens(e.token_ids);
  chain_.resize(e.block_hashes.size());
  for (size_t i = 0; i < chain_.size(); ++i) {
    const uint64_t local = LocalBlockHash(tokens.subspan(i * block_size_, block_size_), seed);
    chain_[i] = parent != nullptr ? ChainHash(*parent, local) : local;
    m_.Prefetch(BlockHash(chain_[i]));
    parent = &chain_[i];
  }
}

// The DRAM misses of a batch overlap: the lookup slots are prefetched before hashing, each
// membership slot as soon as its hash is known, and the inserts come last (CommitStore).
bool TierStore::PrepareStore(uint32_t w, const KvStored& e, RejectCounts& rejects) {
  if (!Validate(e, rejects)) return false;
  const WordTable* lookup = w < workers_.size() ? &workers_[w].lookup : nullptr;
  if (lookup != nullptr) {
    for (EngineHash h : e.block_hashes) lookup->Prefetch(h.value());
  }
  uint64_t parent = 0;
  if (e.parent.has_value()) {
    const uint64_t* p = lookup != nullptr ? lookup->Find(e.parent->value()) : nullptr;
    if (p == nullptr) {
      ++rejects.parent_unknown;
      return false;
    }
    parent = *p;
  }
  HashBlocks(e, e.parent.has_value() ? &parent : nullptr);
  return true;
}

// Both tables grow up front, so no rehash moves a slot mid-batch.
uint64_t TierStore::CommitStore(uint32_t w, const KvStored& e) {
  WorkerState& ws = Worker(w);
  const size_t n = e.block_hashes.size();
  ws.lookup.Reserve(ws.lookup.size() + n);
  m_.Reserve(m_.blocks() + n);
  uint64_t added = 0;
  for (size_t i = 0; i < n; ++i) {
    added += StoreOne(w, ws, e.block_hashes[i], BlockHash(chain_[i]));
  }
  return added;
}

// The lookup slots first, then (once those lines are in) the membership slots of the blocks
// they name: Remove() then runs on warm lines.
void TierStore::PrefetchRemove(uint32_t w, const KvRemoved& e) const {
  if (w >= workers_.size()) return;
  const WordTable& lookup = workers_[w].lookup;
  for (EngineHash h : e.block_hashes) lookup.Prefetch(h.value());
  for (EngineHash h : e.block_hashes) {
    if (const uint64_t* value = lookup.Find(h.value())) m_.Prefetch(BlockHash(*value));
  }
}

// Maps engine hash `h` to `block` for `w`; returns 1 if that added a reference.
uint64_t TierStore::StoreOne(uint32_t w, WorkerState& ws, EngineHash h, BlockHash block) {
  auto [value, inserted] = ws.lookup.FindOrInsert(h.value());
  if (!inserted) {
    if (*value == block.value()) return 0;  // duplicate store of the same block: idempotent
    Release(w, BlockHash(*value));          // engine hash reused for other content
  }
  *value = block.value();
  Acquire(w, block);
  return 1;
}

// Callers run PrefetchRemove() first (outside the exclusive lock).
uint64_t TierStore::Remove(uint32_t w, const KvRemoved& e, RejectCounts& rejects) {
  WorkerState& ws = Worker(w);
  uint64_t removed = 0;
  for (EngineHash h : e.block_hashes) {
    uint64_t* value = ws.lookup.Find(h.value());
    if (value == nullptr) {
      ++rejects.remove_unknown;
      continue;
    }
    Release(w, BlockHash(*value));
    ws.lookup.EraseAt(value);
    ++removed;
  }
  return removed;
}

void TierStore::ClearWorker(uint32_t w) {
  if (w >= workers_.size()) return;
  WorkerState& ws = workers_[w];
  ws.lookup.ForEach([&](uint64_t, const uint64_t* block) { Release(w, BlockHash(*block)); });
  if (w < reserved_.size() && reserved_[w] > 0) {
    ws.lookup.Clear();  // keep the declared capacity: the engine refills it
  } else {
    ws.lookup.Reset();  // give the memory back, not just the entries
  }
}

void TierStore::ForgetWorker(uint32_t w) {
  if (w < reserved_.size()) {
    reserved_total_ -= reserved_[w];
    reserved_[w] = 0;
  }
  ClearWorker(w);
}

void TierStore::Reserve(uint32_t w, uint64_t blocks) {
  Worker(w).lookup.Reserve(blocks);
  if (w >= reserved_.size()) reserved_.resize(w + 1, 0);
  reserved_total_ += blocks - std::min(blocks, reserved_[w]);
  reserved_[w] = std::max(reserved_[w], blocks);
  m_.Reserve(reserved_total_);
}

size_t TierStore::MemoryBytes() const {
  size_t bytes = m_.MemoryBytes() + workers_.capacity() * sizeof(WorkerState) +
                 chain_.capacity() * sizeof(uint64_t);
  for (const auto& ws : workers_) bytes += ws.lookup.MemoryBytes();
  bytes +=
      extra_refs_.capacity() * (sizeof(std::pair<std::pair<uint32_t, BlockHash>, uint32_t>) + 1);
  return bytes;
}

}  // namespace kvr
