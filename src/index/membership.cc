#include "index/membership.h"

#include <algorithm>

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

}  // namespace kvr
