#include "index/predicted_store.h"

#include <functional>
#include <queue>
#include <utility>

namespace kvr {
namespace {

// now + ttl without overflow (kNoTtl: never).
TimeNs ExpiryOf(TimeNs now, TimeNs ttl) {
  return ttl > std::numeric_limits<TimeNs>::max() - now ? std::numeric_limits<TimeNs>::max()
                                                        : now + ttl;
}

}  // namespace

bool PredictedStore::PopFront(uint32_t w) {
  WorkerState& ws = workers_[w];
  const Entry e = ws.fifo.front();
  ws.fifo.pop_front();
  auto it = ws.expiry.find(e.block);
  // A refreshed entry has a later expiry than this stale fifo record: keep it.
  if (it == ws.expiry.end() || it->second.seq != e.seq) return false;
  ws.expiry.erase(it);
  m_.Clear(e.block, w);
  return true;
}

template <typename Pred>
void PredictedStore::PopWhile(uint32_t w, Pred pred) {
  WorkerState& ws = workers_[w];
  while (!ws.fifo.empty() && pred(ws)) PopFront(w);
}

void PredictedStore::TrimTotal(uint64_t cap) {
  uint64_t total = total_blocks();
  if (total <= cap) return;
  // A min-heap of each worker's oldest live record: seqs are global, so popping the least
  // evicts in insertion order across workers.
  auto live_front = [this](uint32_t w) {
    WorkerState& ws = workers_[w];
    while (!ws.fifo.empty()) {
      auto it = ws.expiry.find(ws.fifo.front().block);
      if (it != ws.expiry.end() && it->second.seq == ws.fifo.front().seq) return true;
      ws.fifo.pop_front();  // stale
    }
    return false;
  };
  using Item = std::pair<uint64_t, uint32_t>;  // (seq, worker)
  std::priority_queue<Item, std::vector<Item>, std::greater<>> heap;
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    if (live_front(w)) heap.emplace(workers_[w].fifo.front().seq, w);
  }
  while (total > cap && !heap.empty()) {
    const uint32_t w = heap.top().second;
    heap.pop();
    total -= PopFront(w) ? 1 : 0;
    if (live_front(w)) heap.emplace(workers_[w].fifo.front().seq, w);
  }
}

uint64_t PredictedStore::total_blocks() const {
  uint64_t total = 0;
  for (const WorkerState& ws : workers_) total += ws.expiry.size();
  return total;
}

void PredictedStore::Insert(uint32_t w, std::span<const BlockHash> blocks, TimeNs now) {
  if (w >= workers_.size()) workers_.resize(w + 1);
  WorkerState& ws = workers_[w];
  const TimeNs expiry = ExpiryOf(now, config_.ttl);
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
  TimeNs earliest = ExpiryOf(now, config_.ttl);
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    PopWhile(w, [now](const WorkerState& s) { return s.fifo.front().expiry <= now; });
    if (!workers_[w].fifo.empty()) earliest = std::min(earliest, workers_[w].fifo.front().expiry);
  }
  if (config_.total_capacity_blocks > 0 && config_.trim_interval > 0) {
    if (now >= next_trim_) {
      TrimTotal(config_.total_capacity_blocks);
      next_trim_ = ExpiryOf(now, config_.trim_interval);
    }
    earliest = std::min(earliest, next_trim_);
  }
  next_expiry_check_ = earliest;
}

bool PredictedStore::IsLive(uint32_t w, BlockHash block, TimeNs now) const {
  if (w >= workers_.size()) return false;
  auto it = workers_[w].expiry.find(block);
  return it != workers_[w].expiry.end() && it->second.expiry > now;
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
