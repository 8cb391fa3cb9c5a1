#include "index/kv_index.h"

#include <gtest/gtest.h>

#include <numeric>
#include <optional>

#include "index/index_test_util.h"
#include "index/tier_store.h"

namespace kvr {
namespace {

using testing::EngineHashes;
using testing::StoredAll;
using testing::StoredRange;

constexpr uint32_t kBs = 4;

std::vector<TokenId> Tokens(size_t n, TokenId start = 100) {
  std::vector<TokenId> t(n);
  std::iota(t.begin(), t.end(), start);
  return t;
}

class KvIndexTest : public ::testing::Test {
 protected:
  KvIndexTest() : index_(IndexConfig{.block_size = kBs, .max_workers = 200}, clock_) {}
  OverlapScores Query(std::span<const TokenId> prompt) {
    return index_.Query(SequenceHashes(prompt, kBs));
  }
  ManualClock clock_;
  KvIndex index_;
};

TEST_F(KvIndexTest, LeadingBlocksPerWorker) {
  auto prompt = Tokens(40);  // 10 blocks
  index_.Apply(StoredRange(0, prompt, kBs, 0, 6));
  index_.Apply(StoredRange(2, prompt, kBs, 0, 10));
  index_.Apply(StoredRange(1, Tokens(40, 7), kBs, 0, 10));  // other content
  auto q = Query(prompt);
  ASSERT_EQ(q.num_workers(), 3u);
  EXPECT_EQ(q.device[0], 6u);
  EXPECT_EQ(q.device[1], 0u);
  EXPECT_EQ(q.device[2], 10u);
  EXPECT_EQ(q.cached_blocks[1], 10u);
  EXPECT_EQ(q.predicted, q.device);  // no predictions
  EXPECT_EQ(index_.Entries(), 26u);
}

TEST_F(KvIndexTest, ChildStoredWithParentContinuesTheChain) {
  auto prompt = Tokens(24);
  index_.Apply(StoredRange(0, prompt, kBs, 0, 2));
  index_.Apply(StoredRange(0, prompt, kBs, 2, 6));
  EXPECT_EQ(Query(prompt).device[0], 6u);
  EXPECT_EQ(index_.Stats(WorkerId(0)).blocks_stored, 6u);
}

// The router's own synthetic events carry its keys: no tokens to hash.
TEST_F(KvIndexTest, StoredWithRouterKeysNeedsNoTokens) {
  auto prompt = Tokens(24);
  const std::vector<BlockHash> keys = SequenceHashes(prompt, kBs);
  KvStored head{.worker = WorkerId(3), .block_size = kBs};
  for (size_t i = 0; i < 2; ++i) {
    head.block_hashes.emplace_back(keys[i].value());
    head.block_keys.push_back(keys[i]);
  }
  KvStored tail{.worker = WorkerId(3), .parent = EngineHash(keys[1].value()), .block_size = kBs};
  for (size_t i = 2; i < 6; ++i) {
    tail.block_hashes.emplace_back(keys[i].value());
    tail.block_keys.push_back(keys[i]);
  }
  index_.Apply(head);
  index_.Apply(tail);
  EXPECT_EQ(Query(prompt).device[3], 6u);
  index_.Apply(KvRemoved{.worker = WorkerId(3), .block_hashes = {EngineHash(keys[4].value())}});
  EXPECT_EQ(Query(prompt).device[3], 4u);
  KvStored bad = tail;
  bad.block_keys.pop_back();
  index_.Apply(bad);
  EXPECT_EQ(index_.Stats(WorkerId(3)).rejects.malformed, 1u);
}

TEST_F(KvIndexTest, UnknownParentIsRejectedAndCounted) {
  auto prompt = Tokens(24);
  index_.Apply(StoredRange(0, prompt, kBs, 2, 6));  // parent block 1 never stored
  EXPECT_EQ(Query(prompt).device[0], 0u);
  EXPECT_EQ(index_.Entries(), 0u);
  EXPECT_EQ(index_.Stats(WorkerId(0)).rejects.parent_unknown, 1u);
}

TEST_F(KvIndexTest, WrongBlockSizeAndMalformedAreSkipped) {
  auto prompt = Tokens(32);
  index_.Apply(StoredAll(0, prompt, 8));  // engine uses 8, pool uses 4
  KvStored bad = StoredAll(1, prompt, kBs);
  bad.token_ids.pop_back();
  index_.Apply(bad);
  EXPECT_EQ(index_.Entries(), 0u);
  EXPECT_EQ(index_.Stats(WorkerId(0)).rejects.wrong_block_size, 1u);
  EXPECT_EQ(index_.Stats(WorkerId(1)).rejects.malformed, 1u);
}

TEST_F(KvIndexTest, RemovalOfMiddleBlockCutsTheRun) {
  auto prompt = Tokens(40);
  index_.Apply(StoredAll(0, prompt, kBs));
  auto eh = EngineHashes(0, prompt, kBs);
  index_.Apply(KvRemoved{.worker = WorkerId(0), .block_hashes = {eh[4], EngineHash(12345)}});
  EXPECT_EQ(Query(prompt).device[0], 4u);
  auto s = index_.Stats(WorkerId(0));
  EXPECT_EQ(s.rejects.remove_unknown, 1u);
  EXPECT_EQ(s.blocks_removed, 1u);
  EXPECT_EQ(s.blocks[0], 9u);
}

TEST_F(KvIndexTest, DuplicateStoresNeedMatchingRemovals) {
  auto prompt = Tokens(8);
  index_.Apply(StoredAll(0, prompt, kBs));
  index_.Apply(StoredAll(0, prompt, kBs));  // same engine hashes: idempotent
  KvStored alias = StoredAll(0, prompt, kBs);
  alias.block_hashes = {EngineHash(1), EngineHash(2)};  // same content, other engine hashes
  index_.Apply(alias);
  EXPECT_EQ(Query(prompt).device[0], 2u);
  index_.Apply(KvRemoved{.worker = WorkerId(0), .block_hashes = EngineHashes(0, prompt, kBs)});
  EXPECT_EQ(Query(prompt).device[0], 2u);  // still held under the alias hashes
  index_.Apply(KvRemoved{.worker = WorkerId(0), .block_hashes = {EngineHash(1), EngineHash(2)}});
  EXPECT_EQ(Query(prompt).device[0], 0u);
  EXPECT_EQ(index_.Entries(), 0u);
}

TEST_F(KvIndexTest, ClearedAndRemoveWorker) {
  auto prompt = Tokens(16);
  index_.Apply(StoredAll(0, prompt, kBs));
  index_.Apply(StoredAll(0, prompt, kBs, Tier::kHost));
  index_.Apply(StoredAll(1, prompt, kBs));
  index_.Apply(KvCleared{WorkerId(0)});
  auto q = Query(prompt);
  EXPECT_EQ(q.device[0], 0u);
  EXPECT_EQ(q.host[0], 0u);
  EXPECT_EQ(q.device[1], 4u);
  index_.RemoveWorker(WorkerId(1));
  EXPECT_EQ(Query(prompt).device[1], 0u);
  EXPECT_EQ(index_.Entries(), 0u);
  // A parent from before the clear is unknown now.
  index_.Apply(StoredRange(0, prompt, kBs, 1, 4));
  EXPECT_EQ(index_.Stats(WorkerId(0)).rejects.parent_unknown, 1u);
}

TEST_F(KvIndexTest, TiersAreSeparate) {
  auto prompt = Tokens(32);
  index_.Apply(StoredRange(0, prompt, kBs, 0, 3));
  index_.Apply(StoredAll(0, prompt, kBs, Tier::kHost));
  index_.Apply(StoredRange(0, prompt, kBs, 0, 1, Tier::kStorage));
  auto q = Query(prompt);
  EXPECT_EQ(q.device[0], 3u);
  EXPECT_EQ(q.host[0], 8u);
  EXPECT_EQ(q.storage[0], 1u);
  EXPECT_EQ(q.cached_blocks[0], 3u);
}

TEST_F(KvIndexTest, WorkersAboveSixtyFourUseTheArena) {
  auto prompt = Tokens(20);
  for (uint32_t w : {3u, 64u, 130u, 199u}) index_.Apply(StoredRange(w, prompt, kBs, 0, w % 5 + 1));
  index_.Apply(StoredAll(500, prompt, kBs));  // beyond max_workers
  auto q = Query(prompt);
  ASSERT_EQ(q.num_workers(), 200u);
  EXPECT_EQ(q.device[3], 4u);
  EXPECT_EQ(q.device[64], 5u);
  EXPECT_EQ(q.device[130], 1u);
  EXPECT_EQ(q.device[199], 5u);
  EXPECT_EQ(index_.rejected_worker_ids(), 1u);
  index_.Apply(KvCleared{WorkerId(130)});
  EXPECT_EQ(Query(prompt).device[130], 0u);
}

TEST_F(KvIndexTest, PredictionsExpireAndAreReportedSeparately) {
  auto prompt = Tokens(24);
  auto seq = SequenceHashes(prompt, kBs);
  index_.Apply(StoredRange(1, prompt, kBs, 0, 2));
  index_.Predict(WorkerId(1), seq);
  index_.Predict(WorkerId(0), std::span(seq).first(3));
  auto q = Query(prompt);
  EXPECT_EQ(q.device[1], 2u);
  EXPECT_EQ(q.predicted[1], 6u);
  EXPECT_EQ(q.device[0], 0u);
  EXPECT_EQ(q.predicted[0], 3u);
  clock_.Advance(2 * kNsPerSec);  // default TTL: 2 s
  q = Query(prompt);
  EXPECT_EQ(q.predicted[1], 2u);  // confirmed blocks survive
  EXPECT_EQ(q.predicted[0], 0u);
  // The query only read: the expired entries are still held until a sweep removes them.
  EXPECT_EQ(index_.Stats(WorkerId(0)).predicted_blocks, 3u);
  index_.SweepExpired();
  EXPECT_EQ(index_.Stats(WorkerId(0)).predicted_blocks, 0u);
  EXPECT_EQ(Query(prompt).predicted, q.predicted);
}

// Between sweeps a query must skip exactly the expired predictions: a run stops at the first
// block that is neither on device nor predicted and live, wherever the expired ones sit.
TEST_F(KvIndexTest, QueriesSkipExpiredPredictionsBeforeTheSweep) {
  auto prompt = Tokens(48);  // 12 blocks
  auto seq = SequenceHashes(prompt, kBs);
  index_.Apply(StoredRange(0, prompt, kBs, 0, 2));           // device: blocks 0-1
  index_.Predict(WorkerId(0), std::span(seq).subspan(2, 4));  // predicted at t=0: blocks 2-5
  clock_.Advance(kNsPerSec);
  index_.Predict(WorkerId(0), std::span(seq).subspan(4, 8));  // at t=1 s: blocks 4-11 (refresh)
  index_.Predict(WorkerId(1), std::span(seq).subspan(0, 3));  // at t=1 s
  EXPECT_EQ(Query(prompt).predicted[0], 12u);
  clock_.Set(2 * kNsPerSec);  // blocks 2-3 on worker 0 expire; nothing else
  auto q = Query(prompt);
  EXPECT_EQ(q.device[0], 2u);
  EXPECT_EQ(q.predicted[0], 2u);
  EXPECT_EQ(q.predicted[1], 3u);
  EXPECT_EQ(index_.Stats(WorkerId(0)).predicted_blocks, 10u);  // not swept yet
  index_.Apply(StoredRange(0, prompt, kBs, 2, 3));  // block 2 confirmed: the run reaches 3
  EXPECT_EQ(Query(prompt).predicted[0], 3u);
  index_.SweepExpired();
  EXPECT_EQ(index_.Stats(WorkerId(0)).predicted_blocks, 8u);
  EXPECT_EQ(Query(prompt).predicted[0], 3u);
}

TEST(KvIndexPredict, CapacityEvictsLeastRecentlyInserted) {
  ManualClock clock;
  KvIndex index({.block_size = kBs, .predict = {.ttl = 10 * kNsPerSec, .capacity_blocks = 4}},
                clock);
  auto a = SequenceHashes(Tokens(12, 0), kBs);    // 3 blocks
  auto b = SequenceHashes(Tokens(8, 5000), kBs);  // 2 blocks
  index.Predict(WorkerId(0), a);
  clock.Advance(1);
  index.Predict(WorkerId(0), std::span(a).first(1));  // refresh a[0]
  index.Predict(WorkerId(0), b);                      // 5 > 4: evicts a[1] (oldest live)
  EXPECT_EQ(index.Query(a).predicted[0], 1u);
  EXPECT_EQ(index.Query(b).predicted[0], 2u);
  EXPECT_EQ(index.Stats(WorkerId(0)).predicted_blocks, 4u);
}

// SGLang's approximate tree: no age expiry; every trim interval the entries of all workers
// together are cut back to the total cap, least recently inserted first.
TEST(KvIndexPredict, NoTtlAndPeriodicTotalTrim) {
  ManualClock clock;
  KvIndex index({.block_size = kBs,
                 .predict = {.ttl = PredictConfig::kNoTtl,
                             .capacity_blocks = 100,
                             .total_capacity_blocks = 4,
                             .trim_interval = 10 * kNsPerSec}},
                clock);
  auto a = SequenceHashes(Tokens(12, 0), kBs);    // 3 blocks
  auto b = SequenceHashes(Tokens(8, 5000), kBs);  // 2 blocks
  auto c = SequenceHashes(Tokens(8, 9000), kBs);  // 2 blocks
  index.Predict(WorkerId(0), a);  // its sweep runs the first trim (of nothing): next at 10 s
  EXPECT_EQ(index.Query(a).predicted[0], 3u);
  clock.Advance(1);
  index.Predict(WorkerId(1), b);
  clock.Advance(1);
  index.Predict(WorkerId(0), c);
  clock.Set(5 * kNsPerSec);  // 7 > 4, but the next trim is not due before t = 10 s
  EXPECT_EQ(index.Query(a).predicted[0], 3u);
  EXPECT_EQ(index.Query(b).predicted[1], 2u);
  clock.Set(1000 * kNsPerSec);  // long past any TTL: only the trim removes entries
  EXPECT_EQ(index.Query(a).predicted[0], 3u);  // a trim is a write: queries do not run it
  index.SweepExpired();
  // 7 > 4: the three oldest (a, on worker 0) go, across workers.
  EXPECT_EQ(index.Query(a).predicted[0], 0u);
  EXPECT_EQ(index.Query(b).predicted[1], 2u);
  EXPECT_EQ(index.Query(c).predicted[0], 2u);
  EXPECT_EQ(index.Stats(WorkerId(0)).predicted_blocks + index.Stats(WorkerId(1)).predicted_blocks,
            4u);
}

TEST(KvIndexMemory, ReportsBytesAndEntries) {
  ManualClock clock;
  KvIndex index({.block_size = 16}, clock);
  auto prompt = Tokens(16 * 100);
  for (uint32_t w = 0; w < 4; ++w) index.Apply(StoredAll(w, prompt, 16));
  EXPECT_EQ(index.Entries(), 400u);
  EXPECT_GT(index.MemoryBytes(), 400u * 16);
}

// A worker's declared capacity sizes the tables up front: events within it never grow them
// (no rehash on the event path), and events beyond it still apply.
TEST_F(KvIndexTest, ReservedCapacityAbsorbsEventsWithoutGrowing) {
  constexpr uint64_t kBlocks = 100;
  for (uint32_t w = 0; w < 3; ++w) index_.Reserve(WorkerId(w), kBlocks);
  const size_t reserved = index_.MemoryBytes();
  index_.Reserve(WorkerId(1), kBlocks);  // declaring the same capacity again reserves nothing
  EXPECT_EQ(index_.MemoryBytes(), reserved);

  std::vector<std::vector<TokenId>> prompts;
  for (uint32_t w = 0; w < 3; ++w) prompts.push_back(Tokens(kBlocks * kBs, 1000 * (w + 1)));
  index_.Apply(StoredAll(0, prompts[0], kBs));
  // The first event allocates only the scratch that holds one event (its hashes, its staged
  // membership changes); from then on, events within the reservation allocate nothing.
  const size_t steady = index_.MemoryBytes();
  EXPECT_LE(steady - reserved, 2 * kBlocks * (sizeof(uint64_t) + 16));
  for (uint32_t w = 1; w < 3; ++w) index_.Apply(StoredAll(w, prompts[w], kBs));
  EXPECT_EQ(index_.MemoryBytes(), steady);
  EXPECT_EQ(index_.Entries(), 3 * kBlocks);
  for (uint32_t w = 0; w < 3; ++w) EXPECT_EQ(Query(prompts[w]).device[w], kBlocks);

  // An engine's cache reset keeps the reservation: refilling grows nothing.
  index_.Apply(KvCleared{.worker = WorkerId(2)});
  EXPECT_EQ(index_.Entries(), 2 * kBlocks);
  index_.Apply(StoredAll(2, prompts[2], kBs));
  EXPECT_EQ(index_.MemoryBytes(), steady);
  // A worker that leaves takes its reservation with it: declaring it again reserves the same.
  index_.RemoveWorker(WorkerId(2));
  EXPECT_LT(index_.MemoryBytes(), steady);
  index_.Reserve(WorkerId(2), kBlocks);
  index_.Apply(StoredAll(2, prompts[2], kBs));
  EXPECT_EQ(index_.MemoryBytes(), steady);

  auto more = Tokens(2 * kBlocks * kBs, 50000);  // past worker 0's capacity: the tables grow
  index_.Apply(StoredAll(0, more, kBs));
  EXPECT_EQ(index_.Entries(), 5 * kBlocks);
  EXPECT_EQ(Query(more).device[0], 2 * kBlocks);
  EXPECT_EQ(Query(prompts[0]).device[0], kBlocks);
}

// A mistyped capacity reserves at most the caps, not the host's memory.
TEST_F(KvIndexTest, ReservationIsCapped) {
  index_.Reserve(WorkerId(0), uint64_t{1} << 40);
  const size_t cap = KvIndex::kMaxReservedBlocksPerWorker;
  // The worker's lookup and the membership, each 16-byte slots at >= 57% load.
  EXPECT_LE(index_.MemoryBytes(), 2 * cap * 16 * 100 / 57);
  auto prompt = Tokens(8 * kBs);
  index_.Apply(StoredAll(0, prompt, kBs));
  EXPECT_EQ(Query(prompt).device[0], 8u);
}

// A store is staged (lookup updated, membership untouched, even its growth built aside), then
// committed a chunk at a time; between chunks the membership holds a parent-first prefix of the
// event's blocks.
TEST(TierStoreTest, ChunkedCommitAppliesAParentFirstPrefix) {
  TierStore tier(kBs, /*hi_words=*/0);
  auto prompt = Tokens(10 * kBs);
  auto seq = SequenceHashes(prompt, kBs);
  RejectCounts rejects;
  ASSERT_EQ(tier.StageStore(0, StoredAll(0, prompt, kBs), &rejects), std::optional<uint64_t>(10));
  EXPECT_EQ(tier.entries(), 0u);
  EXPECT_EQ(tier.membership().MemoryBytes(), 0u);  // grown aside: swapped in by the commit
  EXPECT_FALSE(tier.Commit(0, 4));
  EXPECT_GT(tier.membership().MemoryBytes(), 0u);
  EXPECT_EQ(tier.entries(), 4u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(tier.membership().Contains(seq[i], 0), i < 4) << i;
  EXPECT_FALSE(tier.Commit(0, 4));
  EXPECT_TRUE(tier.Commit(0, 4));
  EXPECT_EQ(tier.entries(), 10u);
  EXPECT_EQ(tier.distinct_blocks(0), 10u);
  // A removal stages the same way; nothing leaves the membership before its commit.
  KvRemoved removed{.worker = WorkerId(0), .block_hashes = EngineHashes(0, prompt, kBs)};
  EXPECT_EQ(tier.StageRemove(0, removed, &rejects), 10u);
  EXPECT_EQ(tier.entries(), 10u);
  EXPECT_TRUE(tier.Commit(0));
  EXPECT_EQ(tier.entries(), 0u);
  EXPECT_EQ(rejects.remove_unknown, 0u);
}

}  // namespace
}  // namespace kvr
