#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "index/block_hash.h"

namespace kvr::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;

EngineConfig Config(uint32_t num_blocks, uint32_t block_size, uint32_t max_seqs = 256,
                    uint32_t budget = 8192) {
  EngineConfig c;
  c.worker = WorkerId(3);
  c.num_blocks = num_blocks;
  c.block_size = block_size;
  c.max_num_seqs = max_seqs;
  c.max_num_batched_tokens = budget;
  return c;
}

std::vector<TokenId> Tokens(uint32_t n, uint32_t first) {
  std::vector<TokenId> t(n);
  for (uint32_t i = 0; i < n; ++i) t[i] = first + i;
  return t;
}

std::vector<TokenId> Concat(std::vector<TokenId> a, const std::vector<TokenId>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The formulas, written out independently of PerfModel.
double PrefillMs(double n) { return 4.209989e-7 * n * n + 0.01518344 * n + 16.50142; }
double DecodeMs(double p) { return std::max(1.0, -25.74 * p * p + 54.01 * p + 5.74); }
TimeNs Ns(double ms) { return static_cast<TimeNs>(std::llround(ms * 1e6)); }

std::vector<EngineHash> EngineHashes(const Engine& e, const std::vector<TokenId>& tokens) {
  std::vector<EngineHash> out;
  for (BlockHash h : SequenceHashes(tokens, e.config().block_size)) {
    out.push_back(e.ToEngineHash(h));
  }
  return out;
}

TEST(EnginePresetTest, NamedPresets) {
  auto d = EnginePreset("default");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->num_blocks, 16384u);
  EXPECT_EQ(d->block_size, 64u);
  EXPECT_EQ(d->max_num_seqs, 256u);
  EXPECT_EQ(d->max_num_batched_tokens, 8192u);
  EXPECT_EQ(d->speed, 1.0);
  EXPECT_EQ(EnginePreset("fast")->speed, 2.0);
  EXPECT_EQ(EnginePreset("slow")->speed, 0.5);
  EXPECT_EQ(EnginePreset("small-memory")->num_blocks, 4096u);
  EXPECT_EQ(EnginePreset("test")->block_size, 16u);
  EXPECT_EQ(EnginePreset("warp").status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* name : {"default", "fast", "slow", "small-memory", "test"}) {
    EXPECT_TRUE(ValidateEngineConfig(*EnginePreset(name)).ok()) << name;
  }
}

TEST(EnginePresetTest, AnotherBlockSizeKeepsTheCapacityInTokens) {
  EngineConfig c = *EnginePreset("default");
  SetBlockSize(c, 16);
  EXPECT_EQ(c.block_size, 16u);
  EXPECT_EQ(c.num_blocks, 65536u);  // 16,384 x 64 tokens
}

TEST(EnginePresetTest, ValidationRejectsNonsense) {
  EngineConfig c;
  c.block_size = 0;
  EXPECT_FALSE(ValidateEngineConfig(c).ok());
  c = EngineConfig();
  c.speed = 0;
  EXPECT_FALSE(ValidateEngineConfig(c).ok());
  c.speed = std::nan("");
  EXPECT_FALSE(ValidateEngineConfig(c).ok());
}

TEST(EngineTest, PrefillThenDecodeStepTimes) {
  Engine e(Config(10, 16));
  const auto prompt = Tokens(40, 1000);
  e.Add({.id = 1, .prompt = prompt, .max_output_tokens = 3});
  ASSERT_TRUE(e.HasWork());

  StepOutput s1 = e.Step();  // 40 prompt tokens, 3 blocks, 2 of them full
  EXPECT_EQ(s1.duration, Ns(PrefillMs(40)));
  EXPECT_EQ(s1.prefill_tokens, 40u);
  EXPECT_EQ(s1.decode_tokens, 0u);
  EXPECT_THAT(s1.first_token, ElementsAre(1));
  EXPECT_THAT(s1.tokens, ElementsAre(1));
  ASSERT_EQ(s1.events.size(), 1u);
  const auto& stored = std::get<KvStored>(s1.events[0]);
  EXPECT_FALSE(stored.parent.has_value());
  EXPECT_EQ(stored.worker, WorkerId(3));
  EXPECT_EQ(stored.block_size, 16u);
  EXPECT_EQ(stored.block_hashes, EngineHashes(e, prompt));
  EXPECT_EQ(stored.token_ids, std::vector<TokenId>(prompt.begin(), prompt.begin() + 32));
  EXPECT_EQ(e.Stats().used_blocks, 3u);

  StepOutput s2 = e.Step();  // decode at p = 3/10, no new block
  EXPECT_EQ(s2.duration, Ns(DecodeMs(0.3)));
  EXPECT_EQ(s2.decode_tokens, 1u);
  EXPECT_EQ(s2.prefill_tokens, 0u);
  EXPECT_THAT(s2.first_token, IsEmpty());
  EXPECT_THAT(s2.tokens, ElementsAre(1));
  EXPECT_THAT(s2.finished, IsEmpty());

  StepOutput s3 = e.Step();
  EXPECT_EQ(s3.duration, Ns(DecodeMs(0.3)));
  EXPECT_THAT(s3.finished, ElementsAre(1));
  EXPECT_FALSE(e.HasWork());
  EXPECT_EQ(e.Stats().free_blocks, 10u);
  EXPECT_EQ(e.Stats().prompt_tokens, 40u);
}

TEST(EngineTest, SpeedDividesStepTime) {
  EngineConfig c = Config(10, 16);
  c.speed = 2.5;
  Engine e(c);
  e.Add({.id = 1, .prompt = Tokens(40, 0), .max_output_tokens = 1});
  EXPECT_EQ(e.Step().duration, Ns(PrefillMs(40) / 2.5));
}

TEST(EngineTest, CacheHitShortensPrefill) {
  Engine e(Config(64, 16));
  const auto prompt = Tokens(64, 500);
  e.Add({.id = 1, .prompt = prompt, .max_output_tokens = 1});
  EXPECT_EQ(e.Step().duration, Ns(PrefillMs(64)));

  // Four cached blocks, 16 new tokens; only the new block is announced, under its parent.
  const auto longer = Concat(prompt, Tokens(16, 9000));
  e.Add({.id = 2, .prompt = longer, .max_output_tokens = 1});
  StepOutput s = e.Step();
  EXPECT_EQ(s.duration, Ns(PrefillMs(16)));
  EXPECT_EQ(s.prefill_tokens, 16u);
  EXPECT_EQ(e.CachedTokens(2), 64u);
  ASSERT_EQ(s.admitted.size(), 1u);
  EXPECT_EQ(s.admitted[0].id, 2u);
  EXPECT_EQ(s.admitted[0].cached_tokens, 64u);
  ASSERT_EQ(s.events.size(), 1u);
  const auto& stored = std::get<KvStored>(s.events[0]);
  const auto hashes = EngineHashes(e, longer);
  EXPECT_EQ(stored.parent, hashes[3]);
  EXPECT_THAT(stored.block_hashes, ElementsAre(hashes[4]));

  // A fully cached prompt still computes one token: its last block is recomputed, and the
  // recomputed copy is not announced again.
  e.Add({.id = 3, .prompt = prompt, .max_output_tokens = 1});
  s = e.Step();
  EXPECT_EQ(s.duration, Ns(PrefillMs(16)));
  EXPECT_EQ(e.CachedTokens(3), 48u);
  EXPECT_THAT(s.events, IsEmpty());
  const EngineStats stats = e.Stats();
  EXPECT_EQ(stats.prompt_tokens, 64u + 80u + 64u);
  EXPECT_EQ(stats.cached_prompt_tokens, 64u + 48u);
}

TEST(EngineTest, NoPrefixCachingMeansNoHitsAndNoEvents) {
  EngineConfig c = Config(64, 16);
  c.enable_prefix_caching = false;
  Engine e(c);
  for (uint64_t id = 1; id <= 2; ++id) {
    e.Add({.id = id, .prompt = Tokens(64, 0), .max_output_tokens = 1});
    StepOutput s = e.Step();
    EXPECT_EQ(s.duration, Ns(PrefillMs(64)));
    EXPECT_THAT(s.events, IsEmpty());
  }
  EXPECT_EQ(e.CachedTokens(2), 0u);
}

TEST(EngineTest, ChunkedPrefillSplitsAtTheTokenBudgetAndMixesWithDecode) {
  Engine e(Config(64, 16, 256, /*budget=*/32));
  e.Add({.id = 1, .prompt = Tokens(80, 0), .max_output_tokens = 5});
  e.Add({.id = 2, .prompt = Tokens(8, 5000), .max_output_tokens = 10});

  StepOutput s = e.Step();  // request 1 takes the whole budget; 2 waits
  EXPECT_EQ(s.prefill_tokens, 32u);
  EXPECT_EQ(s.duration, Ns(PrefillMs(32)));
  EXPECT_THAT(s.tokens, IsEmpty());
  EXPECT_EQ(e.Stats().running, 1u);
  EXPECT_EQ(e.Stats().waiting_prefill_tokens, 48u + 8u);

  s = e.Step();
  EXPECT_EQ(s.prefill_tokens, 32u);
  EXPECT_THAT(s.tokens, IsEmpty());

  s = e.Step();  // the last 16 tokens of 1, then 2 is admitted into the remaining 16
  EXPECT_EQ(s.prefill_tokens, 24u);
  EXPECT_EQ(s.duration, Ns(PrefillMs(24)));
  EXPECT_THAT(s.first_token, ElementsAre(1, 2));
  EXPECT_EQ(e.Stats().waiting_prefill_tokens, 0u);

  // Both decode while a third request prefills: prefill time + decode time.
  e.Add({.id = 3, .prompt = Tokens(20, 7000), .max_output_tokens = 1});
  s = e.Step();
  EXPECT_EQ(s.decode_tokens, 2u);
  EXPECT_EQ(s.prefill_tokens, 20u);
  // Blocks after this step's allocations: ceil(81/16) + ceil(9/16) + ceil(20/16) = 6 + 1 + 2.
  EXPECT_EQ(s.duration, Ns(PrefillMs(20) + DecodeMs(9.0 / 64)));
  EXPECT_THAT(s.tokens, ElementsAre(1, 2, 3));
  EXPECT_THAT(s.finished, ElementsAre(3));
}

TEST(EngineTest, EvictionIsLruWithTailBlocksFirst) {
  Engine e(Config(8, 16));
  const auto a = Tokens(64, 100);
  e.Add({.id = 1, .prompt = a, .max_output_tokens = 1});
  e.Step();
  // Request 1 held blocks 0..3; freeing tail first queues 3 before 0.
  EXPECT_THAT(e.FreeQueueForTest(), ElementsAre(4, 5, 6, 7, 3, 2, 1, 0));

  const auto b = Tokens(96, 9000);
  e.Add({.id = 2, .prompt = b, .max_output_tokens = 1});
  StepOutput s = e.Step();  // six blocks: the four never used, then request 1's deepest two
  const auto ha = EngineHashes(e, a);
  ASSERT_EQ(s.events.size(), 2u);
  EXPECT_THAT(std::get<KvRemoved>(s.events[0]).block_hashes, ElementsAre(ha[3], ha[2]));
  EXPECT_EQ(std::get<KvStored>(s.events[1]).block_hashes, EngineHashes(e, b));
  EXPECT_TRUE(e.IsCached(ha[0]));
  EXPECT_TRUE(e.IsCached(ha[1]));
  EXPECT_FALSE(e.IsCached(ha[2]));

  // The surviving shared prefix still hits.
  e.Add({.id = 3, .prompt = a, .max_output_tokens = 1});
  s = e.Step();
  EXPECT_EQ(e.CachedTokens(3), 32u);
  EXPECT_EQ(s.prefill_tokens, 32u);
}

TEST(EngineTest, PreemptsTheLastAdmittedAndRecomputes) {
  // 6 blocks of 16. Two 32-token prompts decoding 40 tokens each cannot both grow to 4 blocks.
  Engine e(Config(6, 16));
  const auto pa = Tokens(32, 0), pb = Tokens(32, 5000);
  e.Add({.id = 1, .prompt = pa, .max_output_tokens = 40});
  e.Add({.id = 2, .prompt = pb, .max_output_tokens = 40});
  std::vector<StepOutput> steps;
  while (e.HasWork()) steps.push_back(e.Step());

  // Step s >= 2 computes position 30 + s of each request. Step 18 computes position 48, which
  // needs a 4th block each: request 2 (admitted last) is preempted and its blocks freed tail
  // first; request 1 takes the first of them, evicting 2's output block (positions 32..47).
  for (int s = 0; s < 17; ++s) EXPECT_EQ(steps[s].preempted, 0u) << s;
  const StepOutput& p = steps[17];
  EXPECT_EQ(p.preempted, 1u);
  EXPECT_THAT(p.tokens, ElementsAre(1));
  ASSERT_EQ(p.events.size(), 1u);
  const auto& removed = std::get<KvRemoved>(p.events[0]);
  ASSERT_EQ(removed.block_hashes.size(), 1u);
  // Step 17 filled block 2 (positions 32..47) of both requests: one BlockStored each.
  ASSERT_EQ(steps[16].events.size(), 2u);
  const auto& stored_b = std::get<KvStored>(steps[16].events[1]);
  EXPECT_EQ(stored_b.parent, EngineHashes(e, pb)[1]);
  EXPECT_THAT(removed.block_hashes, ElementsAre(stored_b.block_hashes[0]));
  // Request 1 runs alone until it finishes at step 40 (one token per step).
  EXPECT_THAT(steps[39].finished, ElementsAre(1));
  // Step 41 readmits request 2 (49 tokens: 32 prompt + 17 output). Of its cached blocks only the
  // first survived (request 1 evicted the second at step 34), so 33 tokens are recomputed.
  const StepOutput& r = steps[40];
  EXPECT_EQ(r.prefill_tokens, 33u);
  EXPECT_EQ(r.duration, Ns(PrefillMs(33)));
  EXPECT_THAT(r.tokens, ElementsAre(2));
  EXPECT_THAT(r.first_token, IsEmpty());
  EXPECT_THAT(r.admitted, IsEmpty());  // a readmission is not reported again
  ASSERT_EQ(steps.size(), 63u);
  EXPECT_THAT(steps.back().finished, ElementsAre(2));

  int tokens_of_2 = 0, firsts_of_2 = 0;
  for (const StepOutput& s : steps) {
    tokens_of_2 += static_cast<int>(std::count(s.tokens.begin(), s.tokens.end(), 2u));
    firsts_of_2 += static_cast<int>(std::count(s.first_token.begin(), s.first_token.end(), 2u));
  }
  EXPECT_EQ(tokens_of_2, 40);
  EXPECT_EQ(firsts_of_2, 1);
  EXPECT_EQ(e.Stats().preemptions, 1u);
  EXPECT_EQ(e.CachedTokens(2), 0u);  // the first admission's hit
}

TEST(EngineTest, RespectsMaxNumSeqs) {
  Engine e(Config(64, 16, /*max_seqs=*/2));
  for (uint64_t id = 1; id <= 3; ++id) {
    e.Add({.id = id, .prompt = Tokens(16, 100 * id), .max_output_tokens = 2});
  }
  StepOutput s = e.Step();
  EXPECT_THAT(s.first_token, ElementsAre(1, 2));
  EXPECT_EQ(e.Stats().running, 2u);
  EXPECT_EQ(e.Stats().waiting, 1u);
  s = e.Step();
  EXPECT_THAT(s.finished, ElementsAre(1, 2));
  s = e.Step();
  EXPECT_THAT(s.first_token, ElementsAre(3));
}

TEST(EngineTest, RejectsRequestsThatCanNeverFit) {
  Engine e(Config(4, 16));
  e.Add({.id = 1, .prompt = {}, .max_output_tokens = 1});
  e.Add({.id = 2, .prompt = Tokens(60, 0), .max_output_tokens = 6});  // 65 KV tokens > 64
  e.Add({.id = 3, .prompt = Tokens(60, 0), .max_output_tokens = 5});  // exactly 64
  e.Add({.id = 4, .prompt = Tokens(8, 0), .max_output_tokens = 0});
  StepOutput s = e.Step();
  EXPECT_THAT(s.rejected, ElementsAre(1, 2, 4));
  EXPECT_THAT(s.first_token, ElementsAre(3));
  while (e.HasWork()) s = e.Step();
  EXPECT_THAT(s.finished, ElementsAre(3));
}

TEST(EngineTest, OutputBlocksAreCachedWithTheGeneratedTokens) {
  Engine e(Config(16, 16));
  const auto prompt = Tokens(16, 40);
  const auto output = Tokens(17, 800);
  e.Add({.id = 1, .prompt = prompt, .max_output_tokens = 18, .output = output});
  std::vector<KvEvent> events;
  while (e.HasWork()) {
    StepOutput s = e.Step();
    events.insert(events.end(), s.events.begin(), s.events.end());
  }
  // Block 1 (positions 16..31) is full once output token 16 is computed, in the 17th step.
  ASSERT_EQ(events.size(), 2u);
  const auto& second = std::get<KvStored>(events[1]);
  EXPECT_EQ(second.token_ids, std::vector<TokenId>(output.begin(), output.begin() + 16));
  const auto hashes = EngineHashes(e, Concat(prompt, output));
  EXPECT_EQ(second.parent, hashes[0]);
  EXPECT_THAT(second.block_hashes, ElementsAre(hashes[1]));
}

TEST(EngineAbortTest, RunningRequestFreesItsBlocksAndKeepsTheirHashes) {
  Engine e(Config(/*num_blocks=*/8, /*block_size=*/4));
  e.Add({.id = 1, .prompt = Tokens(10, 100), .max_output_tokens = 5});
  e.Add({.id = 2, .prompt = Tokens(6, 500), .max_output_tokens = 5});
  StepOutput first = e.Step();
  ASSERT_THAT(first.admitted, ::testing::SizeIs(2));
  EXPECT_EQ(e.Stats().running, 2u);
  const uint32_t used = e.Stats().used_blocks;
  EXPECT_TRUE(e.Abort(1));
  EXPECT_EQ(e.Stats().running, 1u);
  EXPECT_EQ(e.Stats().used_blocks, used - 3);  // 10 prompt tokens + 1 = 3 blocks of 4
  // Its two full blocks stay cached: an identical prompt hits them.
  for (EngineHash h : EngineHashes(e, Tokens(10, 100))) EXPECT_TRUE(e.IsCached(h));
  EXPECT_FALSE(e.Abort(1));
  e.Add({.id = 3, .prompt = Tokens(10, 100), .max_output_tokens = 1});
  StepOutput next = e.Step();
  ASSERT_THAT(next.admitted, ::testing::SizeIs(1));
  EXPECT_EQ(next.admitted[0].cached_tokens, 8u);
  for (uint64_t id : next.tokens) EXPECT_NE(id, 1u);
}

TEST(EngineAbortTest, WaitingAndRejectedRequestsLeaveNoTrace) {
  Engine e(Config(/*num_blocks=*/4, /*block_size=*/4, /*max_seqs=*/1));
  e.Add({.id = 1, .prompt = Tokens(4, 1), .max_output_tokens = 2});
  e.Add({.id = 2, .prompt = Tokens(4, 9), .max_output_tokens = 2});
  e.Add({.id = 3, .prompt = Tokens(400, 9), .max_output_tokens = 2});  // can never fit
  e.Step();
  EXPECT_EQ(e.Stats().waiting, 1u);
  EXPECT_TRUE(e.Abort(2));
  EXPECT_EQ(e.Stats().waiting, 0u);
  EXPECT_EQ(e.Stats().waiting_prefill_tokens, 0u);
  EXPECT_FALSE(e.Abort(3));  // its rejection was already reported by the first step
  e.Add({.id = 4, .prompt = Tokens(400, 9), .max_output_tokens = 2});
  EXPECT_TRUE(e.Abort(4));
  while (e.HasWork()) EXPECT_THAT(e.Step().rejected, IsEmpty());
  e.Forget(1);
  EXPECT_FALSE(e.Abort(1));
}

}  // namespace
}  // namespace kvr::engine
