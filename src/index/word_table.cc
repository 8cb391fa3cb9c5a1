#include "index/word_table.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace kvr {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// Uninitialized storage for `n` words; 2 MiB-aligned and huge-page backed when that large.
uint64_t* Alloc(size_t n) {
  const size_t bytes = n * sizeof(uint64_t);
  if (bytes < kHugePage) {
    void* p = std::malloc(bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<uint64_t*>(p);
  }
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (p == nullptr) throw std::bad_alloc();
  madvise(p, rounded, MADV_HUGEPAGE);  // a hint: failure only costs speed
  return static_cast<uint64_t*>(p);
}

}  // namespace

void WordTable::Free::operator()(uint64_t* p) const { std::free(p); }

std::pair<uint64_t*, bool> WordTable::FindOrInsertSlow(uint64_t key) {
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
    if (InsertAt(s, key)) {
      ++size_;
      return {s + 1, true};
    }
    Rehash(Grown(cap_), stride_);  // a run reached the padding: grow (rare)
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

// Backward-shift deletion: the entries after `hole` that sit past their home move back one
// slot; the first empty slot or entry at its home ends the shift (the order puts every later
// entry's home at or after that one).
void WordTable::ShiftBack(size_t hole) {
  size_t end = hole + 1;
  for (uint64_t* s = Slot(end); s[0] != 0 && Home(s[0]) < end; s += width_) ++end;
  if (end > hole + 1) {
    std::memmove(Slot(hole), Slot(hole + 1), (end - hole - 1) * width_ * sizeof(uint64_t));
  }
  std::memset(Slot(end - 1), 0, width_ * sizeof(uint64_t));
}

bool WordTable::Valid() const {
  size_t n = 0;
  uint64_t prev = 0;  // scrambled key of the previous entry: the whole array is sorted
  for (size_t i = 0; i < slots(); ++i) {
    const uint64_t* s = Slot(i);
    if (s[0] == 0) {
      for (uint32_t k = 1; k < width_; ++k) {
        if (s[k] != 0) return false;
      }
      continue;
    }
    const uint64_t x = Scramble(s[0]);
    if (HomeOf(x) > i || (n > 0 && x <= prev)) return false;
    prev = x;
    ++n;
  }
  return n == size_ && (cap_ == 0 || Slot(slots() - 1)[0] == 0);
}

void WordTable::Reserve(size_t n) {
  if (!NeedsGrowth(n)) return;
  size_t cap = std::max<size_t>(16, Grown(cap_));
  while (n * 100 > cap * max_load_pct_) cap = Grown(cap);
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

// Moves every entry into fresh slots of capacity `cap` (or more, if the entries would reach the
// last slot) with `stride` words each; new words are zero. The old array is sorted by scrambled
// key, hence by new home: one sequential pass places each entry at max(home, next free slot)
// and writes the gaps as zeros.
void WordTable::Rehash(size_t cap, uint32_t stride) {
  std::unique_ptr<uint64_t[], Free> old = std::move(slots_);
  const size_t old_slots = slots();
  const uint32_t old_width = width_;
  const uint32_t copy = std::min(old_width, stride + 1);
  stride_ = stride;
  width_ = stride + 1;
  for (cap_ = cap;; cap_ = Grown(cap_)) {
    if (cap_ == 0) return;
    slots_.reset(Alloc(slots() * width_));
    const size_t last = slots() - 1;
    size_t next = 0;  // first slot not yet written
    bool placed = true;
    for (size_t i = 0; i < old_slots && placed; ++i) {
      const uint64_t* o = old.get() + i * old_width;
      if (o[0] == 0) continue;
      const size_t pos = std::max(Home(o[0]), next);
      placed = pos < last;
      if (!placed) break;
      for (uint64_t* z = Slot(next); z < Slot(pos); ++z) *z = 0;  // gaps are short: no call
      uint64_t* s = Slot(pos);
      std::memcpy(s, o, copy * sizeof(uint64_t));
      for (uint32_t k = copy; k < width_; ++k) s[k] = 0;
      next = pos + 1;
    }
    if (placed) {
      std::memset(Slot(next), 0, (slots() - next) * width_ * sizeof(uint64_t));
      return;
    }
  }
}

}  // namespace kvr
