#include "gateway/slot_model.h"

#include <gtest/gtest.h>

#include <numeric>

#include "common/clock.h"
#include "index/block_hash.h"
#include "index/kv_index.h"

namespace kvr::gateway {
namespace {

constexpr uint32_t kBs = 16;
const WorkerId kWorker(2);

// A prompt: `shared` tokens from the common run, then `own` tokens of its own.
std::vector<TokenId> Tokens(size_t shared, size_t own, TokenId own_start) {
  std::vector<TokenId> t(shared + own);
  std::iota(t.begin(), t.begin() + shared, 1);
  std::iota(t.begin() + shared, t.end(), own_start);
  return t;
}

class SlotModelTest : public ::testing::Test {
 protected:
  void Make(uint32_t slots, uint64_t cache_tokens = 0) {
    model_ = std::make_unique<SlotModel>(SlotModelConfig{
        .worker = kWorker, .slots = slots, .block_size = kBs, .prompt_cache_tokens = cache_tokens});
  }
  // Arrives and applies the events to the index.
  uint64_t Arrive(const std::vector<TokenId>& tokens) {
    const std::vector<BlockHash> blocks = SequenceHashes(tokens, kBs);
    std::vector<KvEvent> events;
    const uint64_t id = model_->Arrive(blocks, uint32_t(tokens.size()), &events);
    index_.Apply(events);
    return id;
  }
  void Finish(uint64_t id) {
    std::vector<KvEvent> events;
    model_->Finish(id, &events);
    index_.Apply(events);
  }
  // Arrives and finishes: where it went.
  SlotPlacement Serve(const std::vector<TokenId>& tokens) {
    const uint64_t id = Arrive(tokens);
    const SlotPlacement p = Placed(id);
    Finish(id);
    return p;
  }
  SlotPlacement Placed(uint64_t id) {
    std::optional<SlotPlacement> p = model_->Placement(id);
    EXPECT_TRUE(p.has_value());
    return p.value_or(SlotPlacement{});
  }
  uint32_t Device(const std::vector<TokenId>& tokens) {
    return index_.Query(SequenceHashes(tokens, kBs)).device_or_zero(kWorker);
  }
  uint32_t Host(const std::vector<TokenId>& tokens) {
    OverlapScores q = index_.Query(SequenceHashes(tokens, kBs));
    return kWorker.value() < q.host.size() ? q.host[kWorker.value()] : 0;
  }
  uint64_t DeviceBlocks() { return index_.Stats(kWorker).blocks[0]; }
  uint64_t HostBlocks() { return index_.Stats(kWorker).blocks[1]; }

  ManualClock clock_;
  KvIndex index_{IndexConfig{.block_size = kBs}, clock_};
  std::unique_ptr<SlotModel> model_;
};

TEST_F(SlotModelTest, PicksTheSlotAsLlamaServerDoes) {
  Make(2);
  const auto a = Tokens(0, 160, 1000);
  const auto b = Tokens(0, 160, 2000);
  // All slots unused: the LRU rule's `<=` takes the last one.
  const SlotPlacement first = Serve(a);
  EXPECT_EQ(first.slot, 1u);
  EXPECT_FALSE(first.by_similarity);
  const uint64_t second = Arrive(b);
  EXPECT_EQ(Placed(second).slot, 0u);
  EXPECT_EQ(Placed(second).cached_blocks, 0u);
  Finish(second);
  // a's next turn finds its slot by the longest common prefix.
  std::vector<TokenId> a2 = a;
  a2.insert(a2.end(), 64, 7);
  const uint64_t third = Arrive(a2);
  EXPECT_EQ(Placed(third).slot, 1u);
  EXPECT_TRUE(Placed(third).by_similarity);
  EXPECT_EQ(Placed(third).cached_blocks, 10u);
  Finish(third);
  // One shared block of 20 is 5 %, under the 10 % threshold: the LRU slot (b's), not a's.
  const auto c = Tokens(16, 304, 3000);
  const auto d = Tokens(16, 304, 4000);
  Serve(c);  // the LRU slot is b's (slot 0)
  const uint64_t fifth = Arrive(d);
  EXPECT_FALSE(Placed(fifth).by_similarity);
  EXPECT_EQ(Placed(fifth).slot, 1u);  // a2's slot, least recently used now
  EXPECT_EQ(Placed(fifth).cached_blocks, 0u);
}

TEST_F(SlotModelTest, BusySlotsAreNeverChosenAndAWaitingRequestTakesTheFirstFreed) {
  Make(2);
  const auto a = Tokens(0, 160, 1000);
  const uint64_t x = Arrive(a);
  const uint64_t y = Arrive(Tokens(0, 160, 2000));
  const uint64_t z = Arrive(a);  // a's slot is busy: the request waits, as llama-server defers it
  EXPECT_FALSE(model_->Placement(z).has_value());
  const uint32_t y_slot = Placed(y).slot;
  Finish(y);
  EXPECT_EQ(Placed(z).slot, y_slot);
  EXPECT_EQ(Placed(z).cached_blocks, 0u);
  Finish(x);
  Finish(z);
  // A request that leaves while waiting is forgotten.
  const uint64_t p = Arrive(a), q = Arrive(a), r = Arrive(a);
  Finish(r);
  EXPECT_FALSE(model_->Placement(r).has_value());
  Finish(p);
  Finish(q);
  for (const SlotState& s : model_->Slots()) EXPECT_FALSE(s.busy);
}

TEST_F(SlotModelTest, IndexHoldsTheUnionOfTheSlotsCountingSharedBlocks) {
  Make(2);
  const auto a = Tokens(64, 96, 1000);   // 4 shared blocks + 6 of its own
  const auto b = Tokens(64, 160, 2000);  // 4 shared + 10
  const uint64_t x = Arrive(a);
  const uint64_t y = Arrive(b);  // a's slot is busy: b takes the other
  Finish(x);
  Finish(y);
  EXPECT_EQ(Device(a), 10u);
  EXPECT_EQ(Device(b), 14u);
  EXPECT_EQ(DeviceBlocks(), 20u);  // the 4 shared blocks once
  // c shares nothing and takes a's slot (LRU): the shared blocks stay, b still holds them.
  const auto c = Tokens(0, 80, 3000);
  Serve(c);
  EXPECT_EQ(Device(a), 4u);
  EXPECT_EQ(Device(b), 14u);
  EXPECT_EQ(Device(c), 5u);
  EXPECT_EQ(DeviceBlocks(), 19u);
  // and d takes b's: nothing of a or b is left.
  Serve(Tokens(0, 80, 4000));
  EXPECT_EQ(Device(a), 0u);
  EXPECT_EQ(Device(b), 0u);
  EXPECT_EQ(DeviceBlocks(), 10u);
  EXPECT_EQ(index_.Stats(kWorker).rejects.remove_unknown, 0u);
  EXPECT_EQ(index_.Stats(kWorker).rejects.parent_unknown, 0u);
}

TEST_F(SlotModelTest, ThreeConversationsOnTwoSlotsEvictTheLeastRecentlyUsed) {
  Make(2);
  std::vector<std::vector<TokenId>> conv = {Tokens(0, 320, 1000), Tokens(0, 320, 2000),
                                            Tokens(0, 320, 3000)};
  for (int turn = 0; turn < 3; ++turn) {
    for (auto& c : conv) {
      const uint64_t id = Arrive(c);
      // Each conversation's previous turn was evicted by the two others before it came back.
      EXPECT_EQ(Placed(id).cached_blocks, 0u) << "turn " << turn;
      Finish(id);
      EXPECT_EQ(Device(c), c.size() / kBs);
      c.insert(c.end(), 32, TokenId(turn + 5));
    }
  }
  EXPECT_EQ(DeviceBlocks(), 2u * 24);  // the last two conversations' 24-block prompts
}

TEST_F(SlotModelTest, PromptCacheSavesEvictedPromptsAndRestoresTheBest) {
  Make(1, /*cache_tokens=*/1000);
  const auto a = Tokens(0, 320, 1000);
  const auto b = Tokens(0, 320, 2000);
  Serve(a);
  EXPECT_EQ(HostBlocks(), 0u);
  Serve(b);  // LRU: a is saved to host memory before b takes the slot
  EXPECT_EQ(Device(a), 0u);
  EXPECT_EQ(Host(a), 20u);
  std::vector<TokenId> a2 = a;
  a2.insert(a2.end(), 64, 9);
  const uint64_t id = Arrive(a2);  // b's slot keeps nothing: b is saved, a is loaded back
  EXPECT_TRUE(Placed(id).restored);
  EXPECT_EQ(Placed(id).cached_blocks, 20u);
  Finish(id);
  EXPECT_EQ(Device(a2), 24u);
  EXPECT_EQ(Host(b), 20u);
  EXPECT_EQ(Host(a), 0u);  // loading takes the saved prompt out of the cache
  // The size bound: 1000 tokens hold three 320-token prompts, so saving a fourth drops the
  // oldest.
  Serve(Tokens(0, 320, 3000));  // saves a2 (384)
  Serve(Tokens(0, 320, 4000));  // saves the 3000 prompt: b (oldest) leaves
  EXPECT_EQ(Host(b), 0u);
  EXPECT_LE(model_->saved_tokens(), 1000u);
  // A saved prompt sharing less than 25 % of itself with the new one is not loaded.
  const uint64_t small = Arrive(Tokens(0, 48, 5000));
  EXPECT_FALSE(Placed(small).restored);
}

TEST_F(SlotModelTest, ObserveCorrectsAnOverPrediction) {
  Make(2);
  const auto a = Tokens(0, 320, 1000);
  const auto b = Tokens(0, 320, 2000);
  Serve(a);
  Serve(b);
  // A report within a block of the prediction is no misprediction (llama.cpp recomputes the
  // last prompt token; the model compares whole blocks).
  const uint64_t again = Arrive(a);
  std::vector<KvEvent> events;
  EXPECT_FALSE(model_->Observe(again, 319, &events));
  EXPECT_FALSE(model_->Observe(again, 305, &events));
  // The server restarted: it reports nothing cached against 20 blocks predicted. Every other
  // idle slot is forgotten; the slot serving this prompt holds it.
  EXPECT_TRUE(model_->Observe(again, 0, &events));
  index_.Apply(events);
  Finish(again);
  EXPECT_EQ(Device(b), 0u);
  EXPECT_EQ(Device(a), 20u);
  // A partial report cuts what the other slots share with this prompt to what was reported.
  Make(2);
  index_.RemoveWorker(kWorker);
  const uint64_t c = Arrive(Tokens(160, 160, 3000));
  const auto d = Tokens(160, 160, 4000);
  const uint64_t dd = Arrive(d);
  Finish(c);
  Finish(dd);
  const uint64_t e = Arrive(Tokens(160, 160, 5000));  // both share 10 blocks: the first wins
  EXPECT_EQ(Placed(e).cached_blocks, 10u);
  events.clear();
  EXPECT_TRUE(model_->Observe(e, 64, &events));
  index_.Apply(events);
  EXPECT_EQ(Device(d), 10u);  // still 10: the slot serving e holds them
  const uint32_t e_slot = Placed(e).slot;
  Finish(e);
  EXPECT_EQ(model_->Slots()[1 - e_slot].blocks, 4u);
}

TEST_F(SlotModelTest, ClearEmptiesEverySlotAndTheCache) {
  Make(2, 10000);
  Serve(Tokens(0, 320, 1000));
  Serve(Tokens(0, 320, 2000));
  Serve(Tokens(0, 320, 3000));
  EXPECT_GT(DeviceBlocks(), 0u);
  EXPECT_GT(HostBlocks(), 0u);
  std::vector<KvEvent> events;
  model_->Clear(&events);
  index_.Apply(events);
  EXPECT_EQ(DeviceBlocks(), 0u);
  EXPECT_EQ(HostBlocks(), 0u);
  EXPECT_EQ(model_->saved_prompts(), 0u);
}

}  // namespace
}  // namespace kvr::gateway
