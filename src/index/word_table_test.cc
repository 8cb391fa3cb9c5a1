// WordTable against absl::flat_hash_map on random, sequential and zero keys, with inserts,
// erases (backward shift), widening, clears and resets.
#include "index/word_table.h"

#include <gtest/gtest.h>

#include "absl/container/flat_hash_map.h"
#include "common/random.h"

namespace kvr {
namespace {

// Checks that `t` holds exactly `ref` (key -> first word).
void ExpectSame(const WordTable& t, const absl::flat_hash_map<uint64_t, uint64_t>& ref) {
  ASSERT_EQ(t.size(), ref.size());
  for (const auto& [k, v] : ref) {
    const uint64_t* w = t.Find(k);
    ASSERT_NE(w, nullptr) << k;
    EXPECT_EQ(w[0], v) << k;
  }
  size_t seen = 0;
  t.ForEach([&](uint64_t k, const uint64_t* w) {
    ++seen;
    auto it = ref.find(k);
    ASSERT_NE(it, ref.end()) << k;
    EXPECT_EQ(w[0], it->second);
  });
  EXPECT_EQ(seen, ref.size());
}

// Random operations over a key space of `keys` values drawn by `key_of`.
template <typename KeyOf>
void RunOps(uint64_t seed, size_t ops, size_t keys, KeyOf key_of) {
  Rng rng(seed);
  WordTable t(1);
  absl::flat_hash_map<uint64_t, uint64_t> ref;
  for (size_t i = 0; i < ops; ++i) {
    const uint64_t k = key_of(rng.Uniform(keys));
    if (rng.Uniform(3) != 0) {
      auto [w, inserted] = t.FindOrInsert(k);
      ASSERT_EQ(inserted, !ref.contains(k));
      if (inserted) {
        ASSERT_EQ(w[0], 0u);
      }
      w[0] = i + 1;
      ref[k] = i + 1;
    } else if (uint64_t* w = t.Find(k)) {
      ASSERT_TRUE(ref.contains(k));
      t.EraseAt(w);
      ref.erase(k);
    } else {
      ASSERT_FALSE(ref.contains(k));
    }
    if (i % 5000 == 0) {
      ExpectSame(t, ref);
      ASSERT_TRUE(t.Valid());
    }
  }
  ExpectSame(t, ref);
  ASSERT_TRUE(t.Valid());
  EXPECT_GE(t.MemoryBytes(), t.size() * 16);
}

TEST(WordTableTest, RandomKeys) {
  RunOps(1, 200000, 20000, [](uint64_t x) { return x * 0xD6E8FEB86659FD93ULL + 1; });
}

TEST(WordTableTest, SequentialKeysIncludingZero) {
  RunOps(2, 200000, 30000, [](uint64_t x) { return x; });
}

TEST(WordTableTest, StridedKeys) {
  RunOps(3, 200000, 30000, [](uint64_t x) { return x * 7919 + 1; });
  RunOps(4, 200000, 30000, [](uint64_t x) { return x << 20; });
}

TEST(WordTableTest, WidenKeepsWordsAndZeroesNewOnes) {
  WordTable t(1);
  for (uint64_t k = 0; k < 1000; ++k) t.FindOrInsert(k).first[0] = k + 7;
  t.Widen(3);
  ASSERT_EQ(t.stride(), 3u);
  ASSERT_TRUE(t.Valid());
  for (uint64_t k = 0; k < 1000; ++k) {
    const uint64_t* w = t.Find(k);
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w[0], k + 7);
    EXPECT_EQ(w[1], 0u);
    EXPECT_EQ(w[2], 0u);
  }
  t.Reset();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.MemoryBytes(), 0u);
  EXPECT_EQ(t.Find(5), nullptr);
}

TEST(WordTableTest, ReserveAvoidsGrowth) {
  WordTable t(1);
  t.Reserve(10000);
  const size_t cap = t.capacity();
  for (uint64_t k = 1; k <= 10000; ++k) t.FindOrInsert(k * 0x9E3779B97F4A7C15ULL);
  EXPECT_EQ(t.capacity(), cap);
  EXPECT_LE(10000 * 20, cap * 17);  // at most 85% full
}

TEST(WordTableTest, ClearKeepsCapacity) {
  WordTable t(2);
  for (uint64_t k = 0; k < 5000; ++k) t.FindOrInsert(k).first[1] = k + 1;
  const size_t cap = t.capacity();
  t.Clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.capacity(), cap);
  EXPECT_EQ(t.Find(0), nullptr);
  EXPECT_EQ(t.Find(17), nullptr);
  ASSERT_TRUE(t.Valid());  // every word zeroed
  for (uint64_t k = 0; k < 5000; ++k) {
    auto [w, inserted] = t.FindOrInsert(k);
    EXPECT_TRUE(inserted);
    EXPECT_EQ(w[1], 0u);
  }
  EXPECT_EQ(t.capacity(), cap);
}

TEST(WordTableTest, ReservedCopyHoldsTheSameEntriesWithRoom) {
  WordTable t(1);
  absl::flat_hash_map<uint64_t, uint64_t> ref;
  for (uint64_t k = 0; k < 3000; ++k) {  // key 0 included: it lives in the side slot
    t.FindOrInsert(k * 0x9E3779B97F4A7C15ULL).first[0] = k + 1;
    ref[k * 0x9E3779B97F4A7C15ULL] = k + 1;
  }
  const size_t cap = t.capacity();
  WordTable copy = t.ReservedCopy(20000);
  EXPECT_EQ(t.capacity(), cap);  // the original is untouched
  ExpectSame(t, ref);
  ExpectSame(copy, ref);
  ASSERT_TRUE(copy.Valid());
  EXPECT_FALSE(copy.NeedsGrowth(20000));
  const size_t copy_cap = copy.capacity();
  for (uint64_t k = 3000; k < 20000; ++k) copy.FindOrInsert(k * 0x9E3779B97F4A7C15ULL);
  EXPECT_EQ(copy.capacity(), copy_cap);  // room for 20000 without growing
}

}  // namespace
}  // namespace kvr
