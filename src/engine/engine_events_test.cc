// Differential tests over random workloads: the KV events replayed into a reference index must
// describe exactly the engine's cache, and the same inputs must give the same outputs.
#include <cstdint>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/clock.h"
#include "common/random.h"
#include "engine/engine.h"
#include "gtest/gtest.h"
#include "index/block_hash.h"
#include "index/kv_index.h"

namespace kvr::engine {
namespace {

// The simplest index that can apply engine events: engine hash -> router hash, the router hash
// recomputed from the event's token ids and its parent (as the production index must).
class ReferenceIndex {
 public:
  explicit ReferenceIndex(uint32_t block_size) : block_size_(block_size) {}

  void Apply(const KvEvent& event) {
    if (const auto* s = std::get_if<KvStored>(&event)) {
      ApplyStored(*s);
    } else if (const auto* r = std::get_if<KvRemoved>(&event)) {
      for (EngineHash h : r->block_hashes) EXPECT_EQ(blocks_.erase(h), 1u) << "unknown removal";
      ++removals_;
    } else {
      blocks_.clear();
      ++clears_;
    }
  }

  const absl::flat_hash_map<EngineHash, BlockHash>& blocks() const { return blocks_; }
  int removals() const { return removals_; }
  int clears() const { return clears_; }

 private:
  void ApplyStored(const KvStored& s) {
    ASSERT_EQ(s.block_size, block_size_);
    ASSERT_EQ(s.token_ids.size(), s.block_hashes.size() * block_size_);
    BlockHash parent;
    if (s.parent.has_value()) {
      auto it = blocks_.find(*s.parent);
      ASSERT_NE(it, blocks_.end()) << "BlockStored with an unknown parent";
      parent = it->second;
    }
    const auto local = LocalBlockHashes(s.token_ids, block_size_);
    const auto router = SequenceHashesFrom(s.parent.has_value() ? &parent : nullptr, local);
    for (size_t i = 0; i < router.size(); ++i) {
      EXPECT_TRUE(blocks_.emplace(s.block_hashes[i], router[i]).second) << "stored twice";
    }
  }

  uint32_t block_size_;
  absl::flat_hash_map<EngineHash, BlockHash> blocks_;
  int removals_ = 0, clears_ = 0;
};

// Requests share prefixes of random length from a few groups, so hits, copies, evictions and
// (with a small pool) preemptions all happen.
class Workload {
 public:
  explicit Workload(uint64_t seed) : rng_(seed) {
    for (uint32_t g = 0; g < 6; ++g) {
      std::vector<TokenId> p(200);
      for (auto& t : p) t = static_cast<TokenId>(rng_.Uniform(50000));
      prefixes_.push_back(std::move(p));
    }
  }

  EngineRequest Next() {
    const auto& prefix = prefixes_[rng_.Uniform(prefixes_.size())];
    EngineRequest r;
    r.id = next_id_++;
    r.prompt.assign(prefix.begin(), prefix.begin() + rng_.Uniform(prefix.size() + 1));
    const uint64_t suffix = 1 + rng_.Uniform(80);
    for (uint64_t i = 0; i < suffix; ++i) r.prompt.push_back(50000 + next_token_++);
    r.max_output_tokens = 1 + static_cast<uint32_t>(rng_.Uniform(60));
    return r;
  }

  Rng& rng() { return rng_; }

 private:
  Rng rng_;
  std::vector<std::vector<TokenId>> prefixes_;
  uint64_t next_id_ = 1;
  uint32_t next_token_ = 0;
};

EngineConfig SmallConfig() {
  EngineConfig c;
  c.worker = WorkerId(7);
  c.num_blocks = 96;
  c.block_size = 16;
  c.max_num_seqs = 8;
  c.max_num_batched_tokens = 128;
  return c;
}

// Runs `requests` random requests through an engine; calls on_step after every step.
// Returns each request's max_output_tokens by id.
template <typename F>
absl::flat_hash_map<uint64_t, uint32_t> RunRandom(uint64_t seed, int requests, bool clear_sometimes,
                                                  Engine& e, F&& on_step) {
  absl::flat_hash_map<uint64_t, uint32_t> max_output;
  Workload w(seed);
  int added = 0, step = 0;
  while (added < requests || e.HasWork()) {
    for (uint64_t k = w.rng().Uniform(3); k > 0 && added < requests; --k, ++added) {
      EngineRequest r = w.Next();
      max_output[r.id] = r.max_output_tokens;
      e.Add(std::move(r));
    }
    if (clear_sometimes && ++step % 97 == 0) e.ClearCache();
    if (e.HasWork()) on_step(e.Step());
  }
  return max_output;
}

void ExpectSameCache(const Engine& e, const ReferenceIndex& index) {
  const auto cached = e.CachedBlockHashes();
  ASSERT_EQ(cached.size(), index.blocks().size());
  for (EngineHash h : cached) {
    auto it = index.blocks().find(h);
    ASSERT_NE(it, index.blocks().end());
    // The router hash rebuilt from token ids and parents is the engine's own block.
    EXPECT_EQ(it->second, e.ToRouterHash(h));
  }
}

struct Shape {
  uint32_t num_blocks, block_size, max_seqs, budget;
};

class ReplayTest : public ::testing::TestWithParam<Shape> {};

TEST_P(ReplayTest, ReplayedEventsMatchTheCache) {
  EngineConfig config = SmallConfig();
  config.num_blocks = GetParam().num_blocks;
  config.block_size = GetParam().block_size;
  config.max_num_seqs = GetParam().max_seqs;
  config.max_num_batched_tokens = GetParam().budget;
  Engine e(config);
  ReferenceIndex index(config.block_size);
  absl::flat_hash_map<uint64_t, int> tokens, firsts, finishes;
  int steps = 0;
  const auto max_output = RunRandom(42, 400, /*clear_sometimes=*/true, e, [&](const StepOutput& s) {
    for (const KvEvent& ev : s.events) index.Apply(ev);
    ASSERT_EQ(e.CachedBlockHashes().size(), index.blocks().size()) << "step " << steps;
    if (++steps % 25 == 0) ExpectSameCache(e, index);
    for (uint64_t id : s.tokens) ++tokens[id];
    for (uint64_t id : s.first_token) ++firsts[id];
    for (uint64_t id : s.finished) ++finishes[id];
    EXPECT_TRUE(s.rejected.empty());
  });
  ExpectSameCache(e, index);
  // The workload really exercised eviction, preemption, hits and clears.
  const EngineStats stats = e.Stats();
  EXPECT_GT(stats.preemptions, 0u);
  EXPECT_GT(stats.cached_prompt_tokens, 0u);
  EXPECT_GT(index.removals(), 10);
  EXPECT_GE(index.clears(), 2);
  EXPECT_EQ(stats.used_blocks, 0u);
  EXPECT_EQ(stats.waiting_prefill_tokens, 0u);
  EXPECT_EQ(finishes.size(), 400u);
  for (const auto& [id, n] : firsts) EXPECT_EQ(n, 1) << id;
  for (const auto& [id, n] : finishes) EXPECT_EQ(n, 1) << id;
  ASSERT_EQ(tokens.size(), max_output.size());
  for (const auto& [id, n] : tokens) EXPECT_EQ(n, static_cast<int>(max_output.at(id))) << id;
}

// Prompts are up to 280 tokens with up to 60 output tokens: every shape fits one request.
INSTANTIATE_TEST_SUITE_P(Shapes, ReplayTest,
                         ::testing::Values(Shape{96, 16, 8, 128}, Shape{48, 8, 4, 64},
                                           Shape{100, 4, 16, 37}, Shape{30, 16, 256, 8192}));

// The production index, fed the same events, must agree with the engine on every prompt's
// cached prefix (the number the router routes by).
TEST(EngineEventsTest, ProductionIndexAgreesWithTheEngine) {
  Engine e(SmallConfig());
  ManualClock clock;
  KvIndex index(IndexConfig{.block_size = 16}, clock);
  Workload probes(43);  // the run's seed: same prefix groups, so probes hit
  std::vector<std::vector<BlockHash>> queries;
  for (int i = 0; i < 50; ++i) queries.push_back(SequenceHashes(probes.Next().prompt, 16));
  int steps = 0, hits = 0;
  RunRandom(43, 300, /*clear_sometimes=*/true, e, [&](const StepOutput& s) {
    index.Apply(s.events);
    if (++steps % 5 != 0) return;
    for (const auto& q : queries) {
      uint32_t engine_prefix = 0;
      while (engine_prefix < q.size() && e.IsCached(e.ToEngineHash(q[engine_prefix]))) {
        ++engine_prefix;
      }
      ASSERT_EQ(index.Query(q).device_or_zero(WorkerId(7)), engine_prefix) << "step " << steps;
      hits += engine_prefix > 0;
    }
  });
  const WorkerIndexStats stats = index.Stats(WorkerId(7));
  EXPECT_EQ(stats.blocks[0], e.CachedBlockHashes().size());
  EXPECT_EQ(stats.rejects.parent_unknown, 0u);
  EXPECT_EQ(stats.rejects.remove_unknown, 0u);
  EXPECT_EQ(stats.rejects.malformed, 0u);
  EXPECT_GT(stats.blocks_removed, 0u);
  EXPECT_GT(hits, 100);
}

// Digest of everything a step reports, to compare runs.
void Digest(const StepOutput& s, std::vector<uint64_t>* d) {
  d->push_back(static_cast<uint64_t>(s.duration));
  d->push_back(s.prefill_tokens * 1000003ULL + s.decode_tokens);
  for (const auto* ids : {&s.first_token, &s.tokens, &s.finished}) {
    d->push_back(ids->size());
    d->insert(d->end(), ids->begin(), ids->end());
  }
  for (const KvEvent& ev : s.events) {
    d->push_back(ev.index());
    if (const auto* st = std::get_if<KvStored>(&ev)) {
      d->push_back(st->parent ? st->parent->value() : 0);
      for (EngineHash h : st->block_hashes) d->push_back(h.value());
      for (TokenId t : st->token_ids) d->push_back(t);
    } else if (const auto* r = std::get_if<KvRemoved>(&ev)) {
      for (EngineHash h : r->block_hashes) d->push_back(h.value());
    }
  }
}

std::vector<uint64_t> RunDigest(uint64_t seed) {
  Engine e(SmallConfig());
  std::vector<uint64_t> d;
  RunRandom(seed, 200, /*clear_sometimes=*/true, e, [&](const StepOutput& s) { Digest(s, &d); });
  return d;
}

TEST(EngineEventsTest, Deterministic) {
  const auto a = RunDigest(7);
  EXPECT_EQ(a, RunDigest(7));
  EXPECT_NE(a, RunDigest(8));
  EXPECT_GT(a.size(), 1000u);
}

}  // namespace
}  // namespace kvr::engine
