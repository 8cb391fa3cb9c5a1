#include "index/membership.h"

#include <algorithm>
#include <bit>

namespace kvr {

bool Membership::Set(BlockHash block, uint32_t worker) {
  const uint32_t k = worker >> 6;
  if (k >= table_.stride()) table_.Widen(k + 1);  // once per new range of 64 ids: O(blocks)
  uint64_t* words = table_.FindOrInsert(block.value()).first;
  const uint64_t bit = uint64_t{1} << (worker & 63);
  if (words[k] & bit) return false;
  words[k] |= bit;
  return true;
}

bool Membership::Clear(BlockHash block, uint32_t worker) {
  const uint32_t k = worker >> 6;
  uint64_t* words = table_.Find(block.value());
  if (words == nullptr || k >= table_.stride()) return false;
  const uint64_t bit = uint64_t{1} << (worker & 63);
  if (!(words[k] & bit)) return false;
  words[k] &= ~bit;
  if (std::all_of(words, words + table_.stride(), [](uint64_t x) { return x == 0; })) {
    table_.EraseAt(words);
  }
  return true;
}

bool Membership::Contains(BlockHash block, uint32_t worker) const {
  const uint32_t k = worker >> 6;
  const uint64_t* words = Find(block);
  return words != nullptr && k < table_.stride() && ((words[k] >> (worker & 63)) & 1);
}

namespace {

constexpr uint32_t kMaxQueryWords = WorkerSet::kMaxWords;
// How far ahead the walk prefetches slots: a DRAM miss (~100 ns, more on a busy machine) over
// a few ns of work per block needs ~16 lines in flight to keep the walk compute-bound.
constexpr size_t kPrefetchAhead = 16;

// OR of the worker bits of `block` in `m` into `out[0..nw)`.
inline void OrBits(const Membership& m, BlockHash block, uint32_t nw, uint64_t* out) {
  const uint64_t* words = m.Find(block);
  if (words == nullptr) return;
  const uint32_t n = std::min(nw, m.words());
  for (uint32_t k = 0; k < n; ++k) out[k] |= words[k];
}

void PrefetchBlock(const Membership& a, const Membership* b, BlockHash block) {
  a.Prefetch(block);
  if (b != nullptr) b->Prefetch(block);
}

// Writes `depth` for every worker in `dropped` (bit k = worker base + k).
inline void WriteDepth(uint64_t dropped, uint32_t base, uint32_t value, uint32_t* depth) {
  for (; dropped != 0; dropped &= dropped - 1) depth[base + std::countr_zero(dropped)] = value;
}

// The one-word walks keep each block's home slots from the prefetch pass in a ring, so a block's
// home is computed once. kRing is a power of two above kPrefetchAhead.
constexpr size_t kRing = 32;
static_assert(kRing > kPrefetchAhead && (kRing & (kRing - 1)) == 0);

// Worker bits (word 0) of a block in `m`, from its prefetched home slot.
inline uint64_t Bits0(const Membership& m, const uint64_t* home, BlockHash block) {
  const uint64_t* words = m.FindFrom(home, block);
  return words == nullptr ? 0 : words[0];
}

// LeadingRuns of one table for worker ids < 64 (the common fleet): one word, kept in a register,
// no per-block zeroing or word loops. (Two tables at once: LeadingRunsPair1.)
void LeadingRuns1(std::span<const BlockHash> blocks, const Membership& a, uint32_t* depth) {
  const uint64_t* home[kRing] = {};
  const size_t n = blocks.size();
  for (size_t i = 0; i < std::min(n, kPrefetchAhead + 1); ++i) home[i] = a.PrefetchHome(blocks[i]);
  uint64_t active = Bits0(a, home[0], blocks[0]);
  for (size_t i = 1; i < n && active != 0; ++i) {
    const size_t ahead = i + kPrefetchAhead;
    if (ahead < n) home[ahead % kRing] = a.PrefetchHome(blocks[ahead]);
    const uint64_t next = active & Bits0(a, home[i % kRing], blocks[i]);
    WriteDepth(active & ~next, 0, static_cast<uint32_t>(i), depth);
    active = next;
  }
  WriteDepth(active, 0, static_cast<uint32_t>(n), depth);
}

// LeadingRunsPair for worker ids < 64. The a-set is always a subset of the (a ∪ b)-set, so the
// walk ends when the latter empties.
void LeadingRunsPair1(std::span<const BlockHash> blocks, const Membership& a, const Membership& b,
                      uint32_t* depth_a, uint32_t* depth_ab) {
  const uint64_t* home_a[kRing] = {};
  const uint64_t* home_b[kRing] = {};
  auto issue = [&](size_t i) {
    home_a[i % kRing] = a.PrefetchHome(blocks[i]);
    home_b[i % kRing] = b.PrefetchHome(blocks[i]);
  };
  const size_t n = blocks.size();
  for (size_t i = 0; i < std::min(n, kPrefetchAhead + 1); ++i) issue(i);
  uint64_t act_a = Bits0(a, home_a[0], blocks[0]);
  uint64_t act_ab = act_a | Bits0(b, home_b[0], blocks[0]);
  for (size_t i = 1; i < n && act_ab != 0; ++i) {
    if (i + kPrefetchAhead < n) issue(i + kPrefetchAhead);
    const uint64_t in_a = Bits0(a, home_a[i % kRing], blocks[i]);
    const uint64_t next_a = act_a & in_a;
    const uint64_t next_ab = act_ab & (in_a | Bits0(b, home_b[i % kRing], blocks[i]));
    WriteDepth(act_a & ~next_a, 0, static_cast<uint32_t>(i), depth_a);
    WriteDepth(act_ab & ~next_ab, 0, static_cast<uint32_t>(i), depth_ab);
    act_a = next_a;
    act_ab = next_ab;
  }
  WriteDepth(act_a, 0, static_cast<uint32_t>(n), depth_a);
  WriteDepth(act_ab, 0, static_cast<uint32_t>(n), depth_ab);
}

}  // namespace

void LeadingRunsPair(std::span<const BlockHash> blocks, const Membership& a, const Membership& b,
                     uint32_t nw, uint32_t* depth_a, uint32_t* depth_ab) {
  if (blocks.empty()) return;
  if (nw == 1) return LeadingRunsPair1(blocks, a, b, depth_a, depth_ab);
  LeadingRuns(blocks, a, nullptr, nw, depth_a);
  LeadingRuns(blocks, a, &b, nw, depth_ab);
}

// Workers are only ever dropped from the active set, so each worker's depth is written once:
// O(n·nw) lookups+ANDs plus O(workers) writes, and the walk ends when the set empties.
void LeadingRuns(std::span<const BlockHash> blocks, const Membership& a, const Membership* b,
                 uint32_t nw, uint32_t* depth) {
  if (blocks.empty()) return;
  if (nw == 1 && b == nullptr) return LeadingRuns1(blocks, a, depth);
  const size_t n = blocks.size();
  for (size_t i = 0; i < std::min(n, kPrefetchAhead + 1); ++i) PrefetchBlock(a, b, blocks[i]);
  uint64_t active[kMaxQueryWords] = {};
  OrBits(a, blocks[0], nw, active);
  if (b != nullptr) OrBits(*b, blocks[0], nw, active);
  for (size_t i = 1; i < n; ++i) {
    if (i + kPrefetchAhead < n) PrefetchBlock(a, b, blocks[i + kPrefetchAhead]);
    uint64_t cur[kMaxQueryWords];
    std::fill_n(cur, nw, 0);  // only the words in use: zeroing all 16 per block showed up
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
