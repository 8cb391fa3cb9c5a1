#include "index/membership.h"

#include <algorithm>
#include <bit>

namespace kvr {

uint32_t Membership::AllocRow() {
  if (!free_rows_.empty()) {
    uint32_t row = free_rows_.back();
    free_rows_.pop_back();
    return row;
  }
  uint32_t row = static_cast<uint32_t>(arena_.size() / hi_words_);
  arena_.resize(arena_.size() + hi_words_, 0);
  return row;
}

void Membership::FreeRow(uint32_t row) { free_rows_.push_back(row); }

bool Membership::RowEmpty(uint32_t row) const {
  const uint64_t* w = &arena_[size_t{row} * hi_words_];
  return std::all_of(w, w + hi_words_, [](uint64_t x) { return x == 0; });
}

bool Membership::Set(BlockHash block, uint32_t worker) {
  Node& n = nodes_[block];
  if (worker < 64) {
    uint64_t bit = uint64_t{1} << worker;
    if (n.lo & bit) return false;
    n.lo |= bit;
    return true;
  }
  if (n.hi_row == kNoRow) n.hi_row = AllocRow();
  const uint32_t hw = worker - 64;
  uint64_t& word = arena_[size_t{n.hi_row} * hi_words_ + (hw >> 6)];
  uint64_t bit = uint64_t{1} << (hw & 63);
  if (word & bit) return false;
  word |= bit;
  return true;
}

bool Membership::Clear(BlockHash block, uint32_t worker) {
  auto it = nodes_.find(block);
  if (it == nodes_.end()) return false;
  Node& n = it->second;
  if (worker < 64) {
    uint64_t bit = uint64_t{1} << worker;
    if (!(n.lo & bit)) return false;
    n.lo &= ~bit;
  } else {
    if (n.hi_row == kNoRow) return false;
    const uint32_t hw = worker - 64;
    uint64_t& word = arena_[size_t{n.hi_row} * hi_words_ + (hw >> 6)];
    uint64_t bit = uint64_t{1} << (hw & 63);
    if (!(word & bit)) return false;
    word &= ~bit;
    if (RowEmpty(n.hi_row)) {
      FreeRow(n.hi_row);
      n.hi_row = kNoRow;
    }
  }
  if (n.lo == 0 && n.hi_row == kNoRow) nodes_.erase(it);
  return true;
}

bool Membership::Contains(BlockHash block, uint32_t worker) const {
  const Node* n = Find(block);
  if (n == nullptr) return false;
  if (worker < 64) return (n->lo >> worker) & 1;
  const uint64_t* hi = HiWords(*n);
  if (hi == nullptr) return false;
  const uint32_t hw = worker - 64;
  return (hi[hw >> 6] >> (hw & 63)) & 1;
}

size_t Membership::MemoryBytes() const {
  // flat_hash_map: one control byte plus one slot per bucket.
  return nodes_.capacity() * (sizeof(std::pair<BlockHash, Node>) + 1) +
         arena_.capacity() * sizeof(uint64_t) + free_rows_.capacity() * sizeof(uint32_t);
}

namespace {

constexpr uint32_t kMaxQueryWords = WorkerSet::kMaxWords;
// How far ahead the walk prefetches hash-table slots: enough to cover a DRAM miss (~80-100 ns)
// with ~10 ns of work per block.
constexpr size_t kPrefetchAhead = 8;

// OR of the worker bits of `block` in `m` into `out[0..nw)`.
void OrBits(const Membership& m, BlockHash block, uint32_t nw, uint64_t* out) {
  const Membership::Node* n = m.Find(block);
  if (n == nullptr) return;
  out[0] |= n->lo;
  if (nw > 1) {
    if (const uint64_t* hi = m.HiWords(*n)) {
      for (uint32_t k = 1; k < nw; ++k) out[k] |= hi[k - 1];
    }
  }
}

}  // namespace

// Workers are only ever dropped from the active set, so each worker's depth is written once:
// O(n·nw) lookups+ANDs plus O(workers) writes, and the walk ends when the set empties.
void LeadingRuns(std::span<const BlockHash> blocks, const Membership& a, const Membership* b,
          uint32_t nw, uint32_t* depth) {
  if (blocks.empty()) return;
  uint64_t active[kMaxQueryWords] = {};
  OrBits(a, blocks[0], nw, active);
  if (b != nullptr) OrBits(*b, blocks[0], nw, active);
  const size_t n = blocks.size();
  for (size_t i = 1; i < n; ++i) {
    if (i + kPrefetchAhead < n) {
      a.Prefetch(blocks[i + kPrefetchAhead]);
      if (b != nullptr) b->Prefetch(blocks[i + kPrefetchAhead]);
    }
    uint64_t cur[kMaxQueryWords] = {};
    OrBits(a, blocks[i], nw, cur);
    if (b != nullptr) OrBits(*b, blocks[i], nw, cur);
    uint64_t any = 0;
    for (uint32_t k = 0; k < nw; ++k) {
      const uint64_t next = active[k] & cur[k];
      for (uint64_t dropped = active[k] & ~next; dropped != 0; dropped &= dropped - 1) {
        depth[k * 64 + std::countr_zero(dropped)] = static_cast<uint32_t>(i);
      }
      active[k] = next;
      any |= next;
    }
    if (any == 0) return;
  }
  for (uint32_t k = 0; k < nw; ++k) {
    for (uint64_t left = active[k]; left != 0; left &= left - 1) {
      depth[k * 64 + std::countr_zero(left)] = static_cast<uint32_t>(n);
    }
  }
}


}  // namespace kvr
