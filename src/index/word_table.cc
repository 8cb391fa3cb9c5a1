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

void WordTable::Clear() {
  if (cap_ != 0) std::memset(slots_.get(), 0, slots() * width_ * sizeof(uint64_t));
  size_ = 0;
  has_zero_ = false;
  std::vector<uint64_t>().swap(zero_);
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

size_t WordTable::CapacityFor(size_t n) const {
  size_t cap = std::max<size_t>(16, Grown(cap_));
  while (n * 100 > cap * max_load_pct_) cap = Grown(cap);
  return cap;
}

void WordTable::Reserve(size_t n) {
  if (NeedsGrowth(n)) Rehash(CapacityFor(n), stride_);
}

WordTable WordTable::ReservedCopy(size_t n) const {
  WordTable t(stride_, max_load_pct_);
  t.size_ = size_;
  t.has_zero_ = has_zero_;
  t.zero_ = zero_;
  t.Fill(NeedsGrowth(n) ? CapacityFor(n) : cap_, slots_.get(), slots(), width_);
  return t;
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
  stride_ = stride;
  width_ = stride + 1;
  Fill(cap, old.get(), old_slots, old_width);
}

void WordTable::Fill(size_t cap, const uint64_t* old, size_t old_slots, uint32_t old_width) {
  for (cap_ = cap;; cap_ = Grown(cap_)) {
    if (cap_ == 0) return;
    slots_.reset(Alloc(slots() * width_));
    const bool placed = old_width == 2 && width_ == 2 ? PlaceSorted<2>(old, old_slots, old_width)
                                                      : PlaceSorted<0>(old, old_slots, old_width);
    if (placed) return;
  }
}

// The placement pass of Fill over `old_slots` sorted slots of `old_width` words: writes every
// slot of the new array; false when an entry would land in the last slot. kWidth = 2 (both
// widths one-word rows, the common case) compiles to straight-line moves; 0 = any widths.
template <uint32_t kWidth>
bool WordTable::PlaceSorted(const uint64_t* old, size_t old_slots, uint32_t old_width) {
  const uint32_t width = kWidth != 0 ? kWidth : width_;
  const uint32_t copy = kWidth != 0 ? kWidth : std::min(old_width, width);
  const size_t last = slots() - 1;
  uint64_t* const base = slots_.get();
  size_t next = 0;  // first slot not yet written
  for (size_t i = 0; i < old_slots; ++i) {
    const uint64_t* o = old + i * (kWidth != 0 ? kWidth : old_width);
    if (o[0] == 0) continue;
    const size_t pos = std::max(Home(o[0]), next);
    if (pos >= last) return false;
    for (uint64_t* z = base + next * width; z < base + pos * width; ++z) *z = 0;  // short gaps
    uint64_t* s = base + pos * width;
    for (uint32_t k = 0; k < copy; ++k) s[k] = o[k];
    for (uint32_t k = copy; k < width; ++k) s[k] = 0;
    next = pos + 1;
  }
  std::memset(base + next * width, 0, (slots() - next) * width * sizeof(uint64_t));
  return true;
}

}  // namespace kvr
