// Randomized differential test: KvIndex against NaiveIndex on millions of mixed operations
// (stores with and without known parents, duplicate and aliased stores, removals of known and
// unknown hashes, clears, worker removal, predictions with TTL and capacity, queries). Half the
// seeds use 40 workers (the one-word walks), half 70 (the multi-word walks). Every query must
// agree exactly.
#include <gtest/gtest.h>

#include "common/random.h"
#include "index/index_test_util.h"
#include "index/kv_index.h"
#include "index/naive_index.h"

namespace kvr {
namespace {

constexpr uint32_t kBs = 4;

// A pool of prompts that share prefixes like real traffic: each prompt copies a random prefix
// of an earlier one and continues with fresh tokens.
std::vector<std::vector<TokenId>> MakePrompts(Rng& rng, size_t n) {
  std::vector<std::vector<TokenId>> prompts;
  for (size_t i = 0; i < n; ++i) {
    std::vector<TokenId> p;
    if (!prompts.empty() && rng.Uniform(4) != 0) {
      const auto& base = prompts[rng.Uniform(prompts.size())];
      p.assign(base.begin(), base.begin() + kBs * rng.Uniform(base.size() / kBs + 1));
    }
    const size_t blocks = 1 + rng.Uniform(16);
    while (p.size() < blocks * kBs) p.push_back(static_cast<TokenId>(rng.Uniform(50)));
    prompts.push_back(std::move(p));
  }
  return prompts;
}

class Harness {
 public:
  Harness(uint64_t seed, uint32_t workers)
      : workers_(workers),
        rng_(seed),
        config_{.block_size = kBs, .max_workers = 100,
                .predict = {.ttl = 50, .capacity_blocks = 24}},
        index_(config_, clock_),
        naive_(config_),
        prompts_(MakePrompts(rng_, 300)) {}

  void Step() {
    // A few ids past the fleet (still < max_workers) and past max_workers.
    const uint32_t w = rng_.Uniform(50) == 0 ? 100 + static_cast<uint32_t>(rng_.Uniform(2))
                                             : static_cast<uint32_t>(rng_.Uniform(workers_ + 2));
    const auto& p = prompts_[rng_.Uniform(prompts_.size())];
    const size_t nb = p.size() / kBs;
    const uint64_t op = rng_.Uniform(1000);
    if (op < 450) {
      Both(Store(w, p, nb));
    } else if (op < 750) {
      Both(Remove(w, p, nb));
    } else if (op < 753) {
      Both(KvCleared{WorkerId(w)});
    } else if (op < 755) {
      index_.RemoveWorker(WorkerId(w));
      naive_.RemoveWorker(WorkerId(w));
    } else if (op < 850) {
      auto seq = SequenceHashes(p, kBs);
      auto part = std::span(seq).first(rng_.Uniform(seq.size() + 1));
      index_.Predict(WorkerId(w), part);
      naive_.Predict(WorkerId(w), part, clock_.Now());
    } else if (op < 900) {
      clock_.Advance(static_cast<TimeNs>(rng_.Uniform(10)));
    } else {
      Compare(SequenceHashes(p, kBs));
    }
  }

  void Compare(const std::vector<BlockHash>& q) {
    OverlapScores a = index_.Query(q);
    OverlapScores b = naive_.Query(q, clock_.Now());
    ASSERT_EQ(a.device, b.device);
    ASSERT_EQ(a.host, b.host);
    ASSERT_EQ(a.storage, b.storage);
    ASSERT_EQ(a.predicted, b.predicted);
    ASSERT_EQ(a.cached_blocks, b.cached_blocks);
    ++queries_;
  }

  void CheckEntries() { ASSERT_EQ(index_.Entries(), naive_.Entries()); }
  uint64_t queries() const { return queries_; }

 private:
  void Both(const KvEvent& e) {
    index_.Apply(e);
    naive_.Apply(e);
  }

  KvEvent Store(uint32_t w, const std::vector<TokenId>& p, size_t nb) {
    const size_t first = rng_.Uniform(nb);  // first > 0: the parent may or may not be known
    const size_t last = first + 1 + rng_.Uniform(nb - first);
    const Tier tier = rng_.Uniform(8) == 0 ? Tier::kHost : Tier::kDevice;
    KvStored e = testing::StoredRange(w, p, kBs, first, last, tier);
    const uint64_t twist = rng_.Uniform(100);
    if (twist < 3) e.block_hashes[0] = EngineHash(rng_.Uniform(64));  // alias / reuse
    if (twist == 3) e.block_size = 2 * kBs;
    if (twist == 4) e.token_ids.pop_back();
    if (twist == 5) e.lora_name = "adapter";
    return e;
  }

  KvEvent Remove(uint32_t w, const std::vector<TokenId>& p, size_t nb) {
    auto eh = testing::EngineHashes(w, p, kBs);
    KvRemoved e{.worker = WorkerId(w), .tier = rng_.Uniform(8) == 0 ? Tier::kHost : Tier::kDevice};
    const size_t k = 1 + rng_.Uniform(3);
    for (size_t i = 0; i < k; ++i) {
      e.block_hashes.push_back(rng_.Uniform(10) == 0 ? EngineHash(rng_.Uniform(64))
                                                     : eh[rng_.Uniform(nb)]);
    }
    return e;
  }

  uint32_t workers_;
  Rng rng_;
  ManualClock clock_;
  IndexConfig config_;
  KvIndex index_;
  NaiveIndex naive_;
  std::vector<std::vector<TokenId>> prompts_;
  uint64_t queries_ = 0;
};

TEST(KvIndexDifferential, MillionsOfMixedOperationsAgreeWithNaive) {
  constexpr int kSeeds = 4;
  constexpr int kOpsPerSeed = 500'000;  // 2M operations in all
  uint64_t queries = 0;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    Harness h(seed, seed % 2 == 0 ? 40 : 70);
    for (int i = 0; i < kOpsPerSeed; ++i) {
      h.Step();
      if (::testing::Test::HasFatalFailure()) {
        FAIL() << "seed " << seed << " op " << i;
      }
      if (i % 50'000 == 0) h.CheckEntries();
    }
    h.CheckEntries();
    queries += h.queries();
  }
  EXPECT_GT(queries, 150'000u);
}

}  // namespace
}  // namespace kvr
