#include "engine/block_pool.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvr::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(BlockPoolTest, StartsFreeInIdOrderAndAllocatesFromTheFront) {
  BlockPool pool(4);
  EXPECT_EQ(pool.num_free(), 4u);
  EXPECT_THAT(pool.FreeQueueForTest(), ElementsAre(0, 1, 2, 3));
  std::vector<uint64_t> evicted;
  EXPECT_EQ(pool.Allocate(&evicted), 0u);
  EXPECT_EQ(pool.Allocate(&evicted), 1u);
  EXPECT_EQ(pool.num_used(), 2u);
  EXPECT_THAT(evicted, IsEmpty());
  pool.Release(1);
  pool.Release(0);
  EXPECT_THAT(pool.FreeQueueForTest(), ElementsAre(2, 3, 1, 0));
}

TEST(BlockPoolTest, FreedCachedBlockStaysFindableUntilReallocated) {
  BlockPool pool(2);
  std::vector<uint64_t> evicted;
  const uint32_t a = pool.Allocate(&evicted);
  EXPECT_TRUE(pool.Cache(a, 111));
  pool.Release(a);
  EXPECT_EQ(pool.Lookup(111), a);
  EXPECT_TRUE(pool.IsFree(a));
  // A prefix hit reuses it: it leaves the free queue but keeps its hash.
  pool.Touch(a);
  EXPECT_FALSE(pool.IsFree(a));
  EXPECT_THAT(pool.FreeQueueForTest(), ElementsAre(1));
  pool.Release(a);
  EXPECT_THAT(pool.FreeQueueForTest(), ElementsAre(1, a));
  EXPECT_EQ(pool.Allocate(&evicted), 1u);
  EXPECT_THAT(evicted, IsEmpty());
  EXPECT_EQ(pool.Allocate(&evicted), a);
  EXPECT_THAT(evicted, ElementsAre(111));
  EXPECT_EQ(pool.Lookup(111), BlockPool::kNone);
}

TEST(BlockPoolTest, CopiesOfOneHashAreEvictedAsOneEntry) {
  BlockPool pool(3);
  std::vector<uint64_t> evicted;
  const uint32_t a = pool.Allocate(&evicted);
  const uint32_t b = pool.Allocate(&evicted);
  EXPECT_TRUE(pool.Cache(a, 7));
  EXPECT_FALSE(pool.Cache(b, 7));  // a second copy: nothing new to announce
  EXPECT_EQ(pool.num_cached_hashes(), 1u);
  EXPECT_EQ(pool.Lookup(7), a);
  pool.Release(a);
  pool.Release(b);
  EXPECT_EQ(pool.Allocate(&evicted), 2u);
  EXPECT_EQ(pool.Allocate(&evicted), a);
  EXPECT_THAT(evicted, IsEmpty());  // b still holds hash 7
  EXPECT_EQ(pool.Lookup(7), b);
  EXPECT_EQ(pool.Allocate(&evicted), b);
  EXPECT_THAT(evicted, ElementsAre(7));
  EXPECT_EQ(pool.num_cached_hashes(), 0u);
}

TEST(BlockPoolTest, AnyCopyCanBeEvictedFirst) {
  BlockPool pool(3);
  std::vector<uint64_t> evicted;
  for (uint32_t b = 0; b < 3; ++b) pool.Allocate(&evicted);
  EXPECT_TRUE(pool.Cache(0, 9));
  EXPECT_FALSE(pool.Cache(1, 9));
  EXPECT_FALSE(pool.Cache(2, 9));
  for (uint32_t b : {2u, 0u, 1u}) pool.Release(b);  // evicted in this order
  EXPECT_EQ(pool.Allocate(&evicted), 2u);           // a middle copy of the chain
  EXPECT_EQ(pool.Lookup(9), 0u);
  EXPECT_EQ(pool.Allocate(&evicted), 0u);  // the representative
  EXPECT_EQ(pool.Lookup(9), 1u);
  EXPECT_THAT(evicted, IsEmpty());
  EXPECT_EQ(pool.Allocate(&evicted), 1u);
  EXPECT_THAT(evicted, ElementsAre(9));
}

TEST(BlockPoolTest, DropAllHashesFreesNothing) {
  BlockPool pool(2);
  std::vector<uint64_t> evicted;
  const uint32_t a = pool.Allocate(&evicted);
  pool.Cache(a, 5);
  pool.DropAllHashes();
  EXPECT_EQ(pool.Lookup(5), BlockPool::kNone);
  EXPECT_FALSE(pool.IsCached(a));
  EXPECT_EQ(pool.num_used(), 1u);
  pool.Release(a);
  pool.Allocate(&evicted);
  pool.Allocate(&evicted);
  EXPECT_THAT(evicted, IsEmpty());
}

}  // namespace
}  // namespace kvr::engine
