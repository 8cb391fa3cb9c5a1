#include "index/naive_index.h"

#include "index/block_hash.h"

#include <algorithm>

namespace kvr {

bool NaiveIndex::Held(uint32_t w, int tier, BlockHash b) const {
  auto it = refs_.find({w, tier, b.value()});
  return it != refs_.end() && it->second > 0;
}

bool NaiveIndex::PredictedLive(uint32_t w, BlockHash b, TimeNs now) const {
  auto wit = pred_.find(w);
  if (wit == pred_.end()) return false;
  auto it = wit->second.find(b.value());
  return it != wit->second.end() && it->second.expiry > now;
}

void NaiveIndex::Drop(uint32_t w, int tier, BlockHash b) {
  auto it = refs_.find({w, tier, b.value()});
  if (--it->second == 0) {
    refs_.erase(it);
    if (tier == 0) --device_blocks_[w];
  }
}

void NaiveIndex::Store(uint32_t w, const KvStored& e) {
  const uint32_t bs = config_.block_size;
  if (e.block_size != bs || e.token_ids.size() != e.block_hashes.size() * size_t{bs}) return;
  auto& lookup = lookup_[{w, static_cast<int>(e.tier)}];
  std::vector<uint64_t> local;
  const uint64_t seed = HashSeed({.lora_name = e.lora_name, .cache_salt = e.cache_salt});
  for (size_t i = 0; i < e.block_hashes.size(); ++i) {
    local.push_back(LocalBlockHash(std::span(e.token_ids).subspan(i * bs, bs), seed));
  }
  std::vector<BlockHash> seq;
  if (e.parent) {
    auto it = lookup.find(e.parent->value());
    if (it == lookup.end()) return;
    BlockHash parent(it->second);
    seq = SequenceHashesFrom(&parent, local);
  } else {
    seq = SequenceHashesFrom(nullptr, local);
  }
  for (size_t i = 0; i < seq.size(); ++i) {
    const uint64_t eh = e.block_hashes[i].value();
    auto it = lookup.find(eh);
    if (it != lookup.end()) {
      if (it->second == seq[i].value()) continue;
      Drop(w, static_cast<int>(e.tier), BlockHash(it->second));
    }
    lookup[eh] = seq[i].value();
    if (++refs_[{w, static_cast<int>(e.tier), seq[i].value()}] == 1 && e.tier == Tier::kDevice) {
      ++device_blocks_[w];
    }
  }
}

void NaiveIndex::Apply(const KvEvent& event) {
  const uint32_t w = std::visit([](const auto& e) { return e.worker.value(); }, event);
  if (w >= config_.max_workers) return;
  num_workers_ = std::max(num_workers_, w + 1);
  if (const auto* s = std::get_if<KvStored>(&event)) {
    Store(w, *s);
  } else if (const auto* r = std::get_if<KvRemoved>(&event)) {
    auto& lookup = lookup_[{w, static_cast<int>(r->tier)}];
    for (EngineHash h : r->block_hashes) {
      auto it = lookup.find(h.value());
      if (it == lookup.end()) continue;
      Drop(w, static_cast<int>(r->tier), BlockHash(it->second));
      lookup.erase(it);
    }
  } else {
    for (int t = 0; t < kNumTiers; ++t) {
      for (const auto& [eh, b] : lookup_[{w, t}]) Drop(w, t, BlockHash(b));
      lookup_[{w, t}].clear();
    }
  }
}

void NaiveIndex::RemoveWorker(WorkerId worker) {
  // Like KvIndex: forgetting a worker never registers it (a Cleared event would).
  const uint32_t w = worker.value();
  const uint32_t known = num_workers_;
  Apply(KvCleared{worker});
  num_workers_ = known;
  pred_.erase(w);
}

void NaiveIndex::Predict(WorkerId worker, std::span<const BlockHash> blocks, TimeNs now) {
  const uint32_t w = worker.value();
  if (w >= config_.max_workers) return;
  num_workers_ = std::max(num_workers_, w + 1);
  auto& mine = pred_[w];
  for (BlockHash b : blocks) mine[b.value()] = {now + config_.predict.ttl, seq_++};
  // Drop expired entries, then the least recently inserted ones beyond capacity.
  std::vector<std::pair<uint64_t, uint64_t>> live;  // (seq, block)
  for (auto it = mine.begin(); it != mine.end();) {
    if (it->second.expiry <= now) {
      it = mine.erase(it);
      continue;
    }
    live.emplace_back(it->second.seq, it->first);
    ++it;
  }
  std::sort(live.begin(), live.end());
  for (size_t i = 0; i + config_.predict.capacity_blocks < live.size(); ++i) {
    mine.erase(live[i].second);
  }
}

OverlapScores NaiveIndex::Query(std::span<const BlockHash> blocks, TimeNs now) const {
  OverlapScores out;
  for (auto* v : {&out.device, &out.host, &out.storage, &out.predicted}) v->assign(num_workers_, 0);
  out.cached_blocks.assign(num_workers_, 0);
  for (uint32_t w = 0; w < num_workers_; ++w) {
    auto run = [&](auto held) {
      uint32_t n = 0;
      while (n < blocks.size() && held(blocks[n])) ++n;
      return n;
    };
    out.device[w] = run([&](BlockHash b) { return Held(w, 0, b); });
    out.host[w] = run([&](BlockHash b) { return Held(w, 1, b); });
    out.storage[w] = run([&](BlockHash b) { return Held(w, 2, b); });
    out.predicted[w] =
        run([&](BlockHash b) { return Held(w, 0, b) || PredictedLive(w, b, now); });
    auto it = device_blocks_.find(w);
    out.cached_blocks[w] = it == device_blocks_.end() ? 0 : it->second;
  }
  return out;
}

uint64_t NaiveIndex::Entries() const { return refs_.size(); }

}  // namespace kvr
