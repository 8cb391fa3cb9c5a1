#include "index/word_table.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace kvr {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// Zeroed storage for `n` words; 2 MiB-aligned and huge-page backed when that large.
uint64_t* AllocZeroed(size_t n) {
  const size_t bytes = n * sizeof(uint64_t);
  if (bytes < kHugePage) {
    void* p = std::calloc(n, sizeof(uint64_t));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<uint64_t*>(p);
  }
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (p == nullptr) throw std::bad_alloc();
  madvise(p, rounded, MADV_HUGEPAGE);  // a hint: failure only costs speed
  std::memset(p, 0, bytes);
  return static_cast<uint64_t*>(p);
}

}  // namespace

void WordTable::Free::operator()(uint64_t* p) const { std::free(p); }

std::pair<uint64_t*, bool> WordTable::FindOrInsert(uint64_t key) {
  if (key == 0) {
    const bool inserted = !has_zero_;
    if (inserted) zero_.assign(stride_, 0);
    has_zero_ = true;
    return {zero_.data(), inserted};
  }
  if (NeedsGrowth(size_ + 1)) Reserve(size_ + 1);
  for (;;) {
    uint64_t* s = Probe(key);
    if (s[0] == key) return {s + 1, false};
    if (s < Last()) {
      s[0] = key;
      ++size_;
      return {s + 1, true};
    }
    Rehash(cap_ + cap_ / 2, stride_);  // a run reached the padding: grow (rare)
  }
}

void WordTable::EraseAt(uint64_t* words) {
  if (has_zero_ && words == zero_.data()) {
    has_zero_ = false;
    std::vector<uint64_t>().swap(zero_);
    return;
  }
  ShiftBack(static_cast<size_t>(words - 1 - slots_.get()) / width_);
  --size_;
}

// Backward-shift deletion: walks the probe run after `hole` and moves back every entry whose
// home is at or before the hole, so later lookups still reach it.
void WordTable::ShiftBack(size_t hole) {
  for (size_t j = hole + 1;; ++j) {
    uint64_t* s = Slot(j);
    if (s[0] == 0) break;
    if (Home(s[0]) <= hole) {
      std::memcpy(Slot(hole), s, width_ * sizeof(uint64_t));
      hole = j;
    }
  }
  std::memset(Slot(hole), 0, width_ * sizeof(uint64_t));
}

void WordTable::Reserve(size_t n) {
  if (!NeedsGrowth(n)) return;
  size_t cap = std::max<size_t>(16, cap_ + cap_ / 2);
  while (n * 20 > cap * 17) cap += cap / 2;
  Rehash(cap, stride_);
}

void WordTable::Widen(uint32_t stride) {
  if (stride <= stride_) return;
  if (has_zero_) zero_.resize(stride, 0);
  Rehash(cap_, stride);
}

void WordTable::Reset() {
  cap_ = size_ = 0;
  slots_.reset();
  has_zero_ = false;
  std::vector<uint64_t>().swap(zero_);
}

// Moves every entry into fresh slots of capacity `cap` (or more, if a run would reach the
// padding) with `stride` words each; new words are zero.
void WordTable::Rehash(size_t cap, uint32_t stride) {
  std::unique_ptr<uint64_t[], Free> old = std::move(slots_);
  const size_t old_slots = slots();
  const uint32_t old_width = width_;
  stride_ = stride;
  width_ = stride + 1;
  for (cap_ = cap;; cap_ += cap_ / 2) {
    slots_.reset(cap_ == 0 ? nullptr : AllocZeroed(slots() * width_));
    bool placed = true;
    for (size_t i = 0; i < old_slots && placed; ++i) {
      const uint64_t* o = old.get() + i * old_width;
      if (o[0] == 0) continue;
      uint64_t* s = Probe(o[0]);
      placed = s < Last();
      if (placed) std::memcpy(s, o, std::min(old_width, width_) * sizeof(uint64_t));
    }
    if (placed) return;
  }
}

}  // namespace kvr
