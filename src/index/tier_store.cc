#include "index/tier_store.h"

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

uint64_t TierStore::Store(uint32_t w, const KvStored& e, RejectCounts& rejects) {
  if (e.block_size != block_size_) {
    ++rejects.wrong_block_size;
    return 0;
  }
  if (e.token_ids.size() != e.block_hashes.size() * size_t{block_size_}) {
    ++rejects.malformed;
    return 0;
  }
  WorkerState& ws = Worker(w);
  uint64_t prev = 0;
  bool has_prev = false;
  if (e.parent.has_value()) {
    auto it = ws.lookup.find(*e.parent);
    if (it == ws.lookup.end()) {
      ++rejects.parent_unknown;
      return 0;
    }
    prev = it->second.value();
    has_prev = true;
  }
  const uint64_t seed = HashSeed({.lora_name = e.lora_name, .cache_salt = e.cache_salt});
  std::span<const TokenId> tokens(e.token_ids);
  uint64_t added = 0;
  for (size_t i = 0; i < e.block_hashes.size(); ++i) {
    uint64_t local = LocalBlockHash(tokens.subspan(i * block_size_, block_size_), seed);
    prev = has_prev ? ChainHash(prev, local) : local;
    has_prev = true;
    const BlockHash block(prev);
    auto [it, inserted] = ws.lookup.try_emplace(e.block_hashes[i], block);
    if (!inserted) {
      if (it->second == block) continue;  // duplicate store of the same block: idempotent
      Release(w, it->second);             // engine hash reused for other content
      it->second = block;
    }
    Acquire(w, block);
    ++added;
  }
  return added;
}

uint64_t TierStore::Remove(uint32_t w, const KvRemoved& e, RejectCounts& rejects) {
  WorkerState& ws = Worker(w);
  uint64_t removed = 0;
  for (EngineHash h : e.block_hashes) {
    auto it = ws.lookup.find(h);
    if (it == ws.lookup.end()) {
      ++rejects.remove_unknown;
      continue;
    }
    Release(w, it->second);
    ws.lookup.erase(it);
    ++removed;
  }
  return removed;
}

void TierStore::ClearWorker(uint32_t w) {
  if (w >= workers_.size()) return;
  WorkerState& ws = workers_[w];
  for (const auto& [engine_hash, block] : ws.lookup) Release(w, block);
  ws.lookup = {};  // give the memory back, not just the entries
}

size_t TierStore::MemoryBytes() const {
  size_t bytes = m_.MemoryBytes() + workers_.capacity() * sizeof(WorkerState);
  for (const auto& ws : workers_) {
    bytes += ws.lookup.capacity() * (sizeof(std::pair<EngineHash, BlockHash>) + 1);
  }
  bytes += extra_refs_.capacity() * (sizeof(std::pair<std::pair<uint32_t, BlockHash>, uint32_t>) + 1);
  return bytes;
}

}  // namespace kvr
