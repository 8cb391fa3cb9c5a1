#include "index/predicted_store.h"

namespace kvr {

template <typename Pred>
void PredictedStore::PopWhile(uint32_t w, Pred pred) {
  WorkerState& ws = workers_[w];
  while (!ws.fifo.empty() && pred(ws)) {
    Entry e = ws.fifo.front();
    ws.fifo.pop_front();
    auto it = ws.expiry.find(e.block);
    // A refreshed entry has a later expiry than this stale fifo record: keep it.
    if (it == ws.expiry.end() || it->second.seq != e.seq) continue;
    ws.expiry.erase(it);
    m_.Clear(e.block, w);
  }
}

void PredictedStore::Insert(uint32_t w, std::span<const BlockHash> blocks, TimeNs now) {
  if (w >= workers_.size()) workers_.resize(w + 1);
  WorkerState& ws = workers_[w];
  const TimeNs expiry = now + config_.ttl;
  for (BlockHash b : blocks) {
    const uint64_t seq = next_seq_++;
    auto [it, inserted] = ws.expiry.try_emplace(b, Live{expiry, seq});
    if (inserted) {
      m_.Set(b, w);
    } else {
      it->second = Live{expiry, seq};
    }
    ws.fifo.push_back({b, expiry, seq});
  }
  const size_t cap = config_.capacity_blocks;
  PopWhile(w, [cap](const WorkerState& s) { return s.expiry.size() > cap; });
  // Refreshes leave stale fifo records; bound them so the deque stays O(capacity).
  if (ws.fifo.size() > 2 * cap + 1024) {
    std::deque<Entry> live;
    for (const Entry& e : ws.fifo) {
      auto it = ws.expiry.find(e.block);
      if (it != ws.expiry.end() && it->second.seq == e.seq) live.push_back(e);
    }
    ws.fifo.swap(live);
  }
}

void PredictedStore::Expire(TimeNs now) {
  if (now < next_expiry_check_) return;
  TimeNs earliest = now + config_.ttl;
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    PopWhile(w, [now](const WorkerState& s) { return s.fifo.front().expiry <= now; });
    if (!workers_[w].fifo.empty()) earliest = std::min(earliest, workers_[w].fifo.front().expiry);
  }
  next_expiry_check_ = earliest;
}

void PredictedStore::ClearWorker(uint32_t w) {
  if (w >= workers_.size()) return;
  WorkerState& ws = workers_[w];
  for (const auto& [block, expiry] : ws.expiry) m_.Clear(block, w);
  ws = WorkerState{};
}

size_t PredictedStore::MemoryBytes() const {
  size_t bytes = m_.MemoryBytes();
  for (const auto& ws : workers_) {
    bytes += ws.expiry.capacity() * (sizeof(std::pair<BlockHash, Live>) + 1) +
             ws.fifo.size() * sizeof(Entry);
  }
  return bytes;
}

}  // namespace kvr
