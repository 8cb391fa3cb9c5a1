// WordTable: an open-addressing hash table from a u64 key to `stride` u64 words, built for the
// index's two big maps (block -> worker bit words, engine hash -> block hash).
//
// Why not absl::flat_hash_map: its control bytes live apart from the slots (two cache misses per
// cold lookup), and its power-of-two capacities with growth x2 leave a table at 44-87% load
// (per-worker maps at 1M entries sat near 48%). Here a slot is the key followed by its words in
// one array, so a lookup is one miss (two adjacent lines at most), and the capacity is any
// integer: growth x1.5 at 85% load keeps every table between 57% and 85% full.
//
// Layout: slots_ = capacity x (1 + stride) words; word 0 of a slot is the key, 0 = empty. The
// real key 0 lives in a side slot (zero_). Home slot = high 64 bits of (key * phi) * capacity
// (Fibonacci hashing, then multiply-shift range reduction): sequential keys spread too.
//
// Ordered linear probing (Amble and Knuth's ordered hash table): the entries of a run of
// occupied slots are sorted by their scrambled key (key * phi, a bijection on u64), and every
// entry sits at or after its home. Home is monotone in the scrambled key, so the whole slot array
// is sorted, which gives:
//  - lookups that stop at the first larger entry: a miss costs about what a hit costs (plain
//    linear probing at 85% load scans ~22 slots per miss, here ~4);
//  - inserts that shift the rest of the run up one slot (one memmove), and erases that shift
//    back only the displaced entries after the hole;
//  - growth as one sequential pass: old entries arrive in new-home order, so each lands at
//    max(its home, the slot after the previous one), with no probing and no pre-zeroing.
// Runs never wrap: kPad spare slots follow the last home, and the last slot is always empty.
//
// Tables of 2 MiB and more ask for transparent huge pages: a cold lookup then costs one DRAM
// miss instead of a miss plus a page walk, and growing faults in 2 MiB at a time.
//
// Invariant: an empty slot's words are all zero (FindOrInsert hands out zeroed words).
// Pointers returned by Find/FindOrInsert stay valid until the next insert, erase or Reserve.
// Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

namespace kvr {

class WordTable {
 public:
  // `max_load_pct`: the load past which the table grows (x1.5). 85 suits big, memory-bound
  // tables; small tables with heavy insert/erase churn (the scheduler's in-flight sets) run
  // cheaper at ~50, where runs, and so the shifts of an ordered insert, stay short.
  explicit WordTable(uint32_t stride = 1, uint32_t max_load_pct = kDefaultMaxLoadPct)
      : stride_(stride), width_(stride + 1), max_load_pct_(max_load_pct) {}
  static constexpr uint32_t kDefaultMaxLoadPct = 85;

  uint32_t stride() const { return stride_; }
  size_t size() const { return size_ + (has_zero_ ? 1 : 0); }
  bool empty() const { return size() == 0; }
  size_t capacity() const { return cap_; }

  uint64_t* Find(uint64_t key) { return const_cast<uint64_t*>(std::as_const(*this).Find(key)); }
  const uint64_t* Find(uint64_t key) const;
  // The key's words, and true when the key was absent (its words are then zero).
  std::pair<uint64_t*, bool> FindOrInsert(uint64_t key);
  // Erases the entry whose words `words` points to (from Find/FindOrInsert).
  void EraseAt(uint64_t* words);
  void Prefetch(uint64_t key) const { (void)PrefetchHome(key); }
  // Prefetches `key`'s home slot and returns it (null when the table has no slots), for a
  // later FindFrom: walks that prefetch ahead compute each home once.
  const uint64_t* PrefetchHome(uint64_t key) const {
    if (cap_ == 0) return nullptr;
    const uint64_t* s = Slot(Home(key));
    __builtin_prefetch(s);
    __builtin_prefetch(s + 7);  // the run may go on into the next line (s is 8-byte aligned)
    return s;
  }
  // Find, starting from `home` = PrefetchHome(key) of the unchanged table.
  const uint64_t* FindFrom(const uint64_t* home, uint64_t key) const {
    if (key == 0) return has_zero_ ? zero_.data() : nullptr;
    if (home == nullptr) return nullptr;
    const uint64_t* s = ProbeFrom(home, Scramble(key));
    return s[0] == key ? s + 1 : nullptr;
  }

  // Makes room for `n` entries without growing on insert.
  void Reserve(size_t n);
  // Whether `n` entries would make the table grow (load past max_load_pct).
  bool NeedsGrowth(size_t n) const { return n * 100 > cap_ * max_load_pct_; }
  // A copy of this table with room for `n` entries: Reserve(n) in two steps, the copy (which
  // only reads this table) and a move-assignment over it, so that readers of this table can go
  // on while the copy is built.
  WordTable ReservedCopy(size_t n) const;
  // Grows every entry to `stride` words (new words zero). No-op if not wider.
  void Widen(uint32_t stride);
  // Drops every entry and frees the memory.
  void Reset();
  // Drops every entry and keeps the capacity.
  void Clear();
  // Checks the probing invariants (order within runs, empty slots zeroed, size); for tests.
  bool Valid() const;

  // fn(key, const uint64_t* words) for every entry, in no particular order.
  template <typename Fn>
  void ForEach(Fn fn) const {
    if (has_zero_) fn(uint64_t{0}, zero_.data());
    for (size_t i = 0; i < slots(); ++i) {
      const uint64_t* s = slots_.get() + i * width_;
      if (s[0] != 0) fn(s[0], s + 1);
    }
  }

  // Bytes held: the whole slot array (capacity, not size) plus the zero slot.
  size_t MemoryBytes() const {
    return slots() * width_ * sizeof(uint64_t) + zero_.capacity() * sizeof(uint64_t);
  }

 private:
  static constexpr uint64_t kPhi = 0x9E3779B97F4A7C15ULL;
  // Slots past the last home slot, so probe runs never wrap; an insert that would land in the
  // very last one grows the table instead (rare: runs are short below 85% load).
  static constexpr size_t kPad = 64;
  static uint64_t Scramble(uint64_t key) { return key * kPhi; }
  size_t HomeOf(uint64_t scrambled) const {
    return static_cast<size_t>((static_cast<unsigned __int128>(scrambled) * cap_) >> 64);
  }
  size_t Home(uint64_t key) const { return HomeOf(Scramble(key)); }
  size_t slots() const { return cap_ == 0 ? 0 : cap_ + kPad; }
  uint64_t* Slot(size_t i) const { return slots_.get() + i * width_; }
  static size_t Grown(size_t cap) { return cap + cap / 2; }
  // The slot holding `key`, or where it would be inserted: the first empty slot or entry with
  // a larger scrambled key. The last slot is always empty, so every probe ends in bounds.
  uint64_t* Probe(uint64_t key) const;
  // Probe from `s` = the home slot of the key whose scrambled value is `x`.
  uint64_t* ProbeFrom(const uint64_t* s, uint64_t x) const {
    while (s[0] != 0 && Scramble(s[0]) < x) s += width_;
    return const_cast<uint64_t*>(s);
  }
  // Inserts absent `key` at `s` (from Probe); false if the run would reach the last slot.
  bool InsertAt(uint64_t* s, uint64_t key);
  // FindOrInsert's rare paths: key 0, growth, a run reaching the padding.
  std::pair<uint64_t*, bool> FindOrInsertSlow(uint64_t key);
  uint64_t* Last() const { return Slot(slots() - 1); }
  // Capacity for `n` entries when growing from the current one.
  size_t CapacityFor(size_t n) const;
  void Rehash(size_t cap, uint32_t stride);
  // Allocates slots_ for capacity `cap` (or more, if the entries would reach the last slot)
  // and places the `old_slots` sorted slots of `old_width` words of `old` in it.
  void Fill(size_t cap, const uint64_t* old, size_t old_slots, uint32_t old_width);
  template <uint32_t kWidth>
  bool PlaceSorted(const uint64_t* old, size_t old_slots, uint32_t old_width);
  void ShiftBack(size_t hole);

  uint32_t stride_;
  uint32_t width_;  // 1 + stride_
  uint32_t max_load_pct_;
  size_t cap_ = 0;
  size_t size_ = 0;  // entries in slots_ (the zero key not counted)
  struct Free {
    void operator()(uint64_t* p) const;
  };
  std::unique_ptr<uint64_t[], Free> slots_;
  bool has_zero_ = false;
  std::vector<uint64_t> zero_;  // words of key 0 while has_zero_
};

// Lookups are inline: they sit in the index's hottest loops (query walk, batched inserts).
inline uint64_t* WordTable::Probe(uint64_t key) const {
  const uint64_t x = Scramble(key);
  return ProbeFrom(Slot(HomeOf(x)), x);
}

// The common case inline (callers insert in loops): no growth due, nonzero key, room in the run.
inline std::pair<uint64_t*, bool> WordTable::FindOrInsert(uint64_t key) {
  if (key != 0 && !NeedsGrowth(size_ + 1)) [[likely]] {
    uint64_t* s = Probe(key);
    if (s[0] == key) return {s + 1, false};
    if (InsertAt(s, key)) {
      ++size_;
      return {s + 1, true};
    }
  }
  return FindOrInsertSlow(key);
}

// Shifts the entries from `s` to the end of its run up one slot and puts `key` (zeroed words)
// at `s`. Every shifted entry had a home at or before its old slot, so order is kept.
inline bool WordTable::InsertAt(uint64_t* s, uint64_t key) {
  uint64_t* end = s;
  while (end[0] != 0) end += width_;
  if (end >= Last()) return false;
  if (end != s) std::memmove(s + width_, s, static_cast<size_t>(end - s) * sizeof(uint64_t));
  s[0] = key;
  if (stride_ == 1) {
    s[1] = 0;  // the common width, without a memset call
  } else {
    std::memset(s + 1, 0, stride_ * sizeof(uint64_t));
  }
  return true;
}

inline const uint64_t* WordTable::Find(uint64_t key) const {
  return FindFrom(cap_ == 0 ? nullptr : Slot(Home(key)), key);
}

}  // namespace kvr
