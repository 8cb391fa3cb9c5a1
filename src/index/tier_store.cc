#include "index/tier_store.h"

#include <algorithm>
#include <span>

#include "index/block_hash.h"

namespace kvr {

WordTable& TierStore::Lookup(uint32_t w) {
  if (w >= lookups_.size()) lookups_.resize(w + 1);
  return lookups_[w];
}

void TierStore::Acquire(uint32_t w, BlockHash block) {
  if (m_.Set(block, w)) {
    ++distinct_[w];
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
    --distinct_[w];
    --entries_;
  }
}

bool TierStore::Validate(const KvStored& e, RejectCounts* rejects) const {
  if (e.block_size != block_size_) {
    ++rejects->wrong_block_size;
    return false;
  }
  if (!e.block_keys.empty()) {
    if (e.block_keys.size() == e.block_hashes.size()) return true;
    ++rejects->malformed;
    return false;
  }
  if (e.token_ids.size() != e.block_hashes.size() * size_t{block_size_}) {
    ++rejects->malformed;
    return false;
  }
  return true;
}

// Chained hashes of the event's blocks into chain_, continuing from `parent` (null: root);
// prefetches each block's membership slot.
void TierStore::HashBlocks(const KvStored& e, const uint64_t* parent) {
  if (!e.block_keys.empty()) {
    chain_.resize(e.block_keys.size());
    for (size_t i = 0; i < chain_.size(); ++i) {
      chain_[i] = e.block_keys[i].value();
      m_.Prefetch(e.block_keys[i]);
    }
    return;
  }
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

// The DRAM misses of an event overlap: the lookup slots are prefetched before hashing, each
// membership slot as soon as its hash is known; the lookup then changes while those lines
// arrive, and Commit() finds them warm.
std::optional<uint64_t> TierStore::StageStore(uint32_t w, const KvStored& e,
                                              RejectCounts* rejects) {
  staged_.clear();
  retired_.Reset();
  if (!Validate(e, rejects)) return std::nullopt;
  WordTable& lookup = Lookup(w);
  const size_t n = e.block_hashes.size();
  lookup.Reserve(lookup.size() + n);  // no rehash mid-event: the prefetches stay valid
  for (EngineHash h : e.block_hashes) lookup.Prefetch(h.value());
  uint64_t parent = 0;
  if (e.parent.has_value()) {
    const uint64_t* p = lookup.Find(e.parent->value());
    if (p == nullptr) {
      ++rejects->parent_unknown;
      return std::nullopt;
    }
    parent = *p;
  }
  HashBlocks(e, e.parent.has_value() ? &parent : nullptr);
  uint64_t added = 0;
  for (size_t i = 0; i < n; ++i) added += StageOne(lookup, e.block_hashes[i], chain_[i]);
  // Room for every reference the event adds. Growing is a pass over the whole membership: done
  // here, beside queries, not in Commit.
  if (m_.NeedsReserve(m_.blocks() + added)) grown_ = m_.ReservedCopy(m_.blocks() + added);
  return added;
}

// Maps engine hash `h` to `block`; returns 1 if that adds a reference.
uint64_t TierStore::StageOne(WordTable& lookup, EngineHash h, uint64_t block) {
  auto [value, inserted] = lookup.FindOrInsert(h.value());
  if (!inserted) {
    if (*value == block) return 0;                           // the same block again: idempotent
    staged_.push_back({.block = *value, .acquire = false});  // engine hash reused for new content
  }
  *value = block;
  staged_.push_back({.block = block, .acquire = true});
  return 1;
}

// The lookup slots first, then (once those lines are in) the membership slots of the blocks
// they name, which Commit() then finds warm.
uint64_t TierStore::StageRemove(uint32_t w, const KvRemoved& e, RejectCounts* rejects) {
  staged_.clear();
  retired_.Reset();
  WordTable& lookup = Lookup(w);
  for (EngineHash h : e.block_hashes) lookup.Prefetch(h.value());
  uint64_t removed = 0;
  for (EngineHash h : e.block_hashes) {
    uint64_t* value = lookup.Find(h.value());
    if (value == nullptr) {
      ++rejects->remove_unknown;
      continue;
    }
    m_.Prefetch(BlockHash(*value));
    staged_.push_back({.block = *value, .acquire = false});
    lookup.EraseAt(value);
    ++removed;
  }
  return removed;
}

// The membership has room for the event before its first change (StageStore sized it, or built
// the grown copy adopted here, a pointer swap), so no rehash moves a slot mid-event.
bool TierStore::Commit(uint32_t w, size_t max_changes) {
  if (committed_ == 0) {
    if (grown_.has_value()) {
      retired_ = m_.Adopt(std::move(*grown_));
      grown_.reset();
    }
    if (w >= distinct_.size()) distinct_.resize(w + 1, 0);
  }
  const size_t end = std::min(staged_.size(), committed_ + max_changes);
  for (; committed_ < end; ++committed_) {
    const Ref& r = staged_[committed_];
    if (r.acquire) {
      Acquire(w, BlockHash(r.block));
    } else {
      Release(w, BlockHash(r.block));
    }
  }
  if (committed_ < staged_.size()) return false;
  staged_.clear();
  committed_ = 0;
  return true;
}

void TierStore::ClearWorker(uint32_t w) {
  if (w >= lookups_.size()) return;
  WordTable& lookup = lookups_[w];
  lookup.ForEach([&](uint64_t, const uint64_t* block) { Release(w, BlockHash(*block)); });
  if (w < reserved_.size() && reserved_[w] > 0) {
    lookup.Clear();  // keep the declared capacity: the engine refills it
  } else {
    lookup.Reset();  // give the memory back, not just the entries
  }
}

void TierStore::ForgetWorker(uint32_t w) {
  if (w < reserved_.size()) {
    reserved_total_ -= reserved_[w];
    reserved_[w] = 0;
  }
  ClearWorker(w);
}

void TierStore::Reserve(uint32_t w, uint64_t blocks, uint64_t max_total) {
  Lookup(w).Reserve(blocks);
  if (w >= distinct_.size()) distinct_.resize(w + 1, 0);
  if (w >= reserved_.size()) reserved_.resize(w + 1, 0);
  reserved_total_ += blocks - std::min(blocks, reserved_[w]);
  reserved_[w] = std::max(reserved_[w], blocks);
  m_.Reserve(std::min(reserved_total_, max_total));
}

size_t TierStore::MemoryBytes() const {
  size_t bytes = m_.MemoryBytes() + lookups_.capacity() * sizeof(WordTable) +
                 (distinct_.capacity() + chain_.capacity()) * sizeof(uint64_t) +
                 staged_.capacity() * sizeof(Ref) + retired_.MemoryBytes();
  for (const auto& lookup : lookups_) bytes += lookup.MemoryBytes();
  bytes +=
      extra_refs_.capacity() * (sizeof(std::pair<std::pair<uint32_t, BlockHash>, uint32_t>) + 1);
  return bytes;
}

}  // namespace kvr
