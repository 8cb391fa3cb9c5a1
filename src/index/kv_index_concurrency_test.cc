// Queries racing with event application, predictions and their sweeps (run under TSan in CI):
// readers must never see a torn state — every answer is bounded by the prompt length — and after
// the writer finishes, the index equals a naive replay of the same events.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/random.h"
#include "index/index_test_util.h"
#include "index/kv_index.h"
#include "index/naive_index.h"

namespace kvr {
namespace {

TEST(KvIndexConcurrency, ReadersDuringWrites) {
  constexpr uint32_t kBs = 8, kWorkers = 80;
  ManualClock clock;
  IndexConfig cfg{.block_size = kBs, .max_workers = 128};
  KvIndex index(cfg, clock);
  NaiveIndex naive(cfg);
  Rng rng(7);
  std::vector<std::vector<TokenId>> prompts(64);
  for (auto& p : prompts) {
    p.resize(kBs * (1 + rng.Uniform(32)));
    for (auto& t : p) t = static_cast<TokenId>(rng.Uniform(20));
  }
  std::vector<KvEvent> events;
  for (int i = 0; i < 20'000; ++i) {
    const uint32_t w = static_cast<uint32_t>(rng.Uniform(kWorkers));
    const auto& p = prompts[rng.Uniform(prompts.size())];
    if (rng.Uniform(3) != 0) {
      events.push_back(testing::StoredAll(w, p, kBs));
    } else {
      auto eh = testing::EngineHashes(w, p, kBs);
      events.push_back(KvRemoved{.worker = WorkerId(w), .block_hashes = {eh.back()}});
    }
  }
  std::atomic<bool> done{false};
  std::atomic<uint64_t> queries{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      Rng local(100 + r);
      OverlapScores out;
      while (!done.load(std::memory_order_acquire) || queries.load() < 300) {
        const auto& p = prompts[local.Uniform(prompts.size())];
        auto seq = SequenceHashes(p, kBs);
        index.Query(seq, &out);
        for (uint32_t d : out.device) ASSERT_LE(d, seq.size());
        for (uint32_t d : out.predicted) ASSERT_LE(d, seq.size());
        if (local.Uniform(4) == 0) index.Predict(WorkerId(local.Uniform(kWorkers)), seq);
        // Predictions expire (2 s TTL) while queries skip them and sweeps remove them.
        if (local.Uniform(16) == 0) clock.Advance(kNsPerSec / 4);
        if (local.Uniform(32) == 0) index.SweepExpired();
        if (local.Uniform(8) == 0) {  // the stats readers, which see every table
          const WorkerIndexStats s = index.Stats(WorkerId(local.Uniform(kWorkers)));
          ASSERT_LE(s.blocks[0], index.Entries());
          // Read beside the writer (its value is 0 until the first store lands: not asserted).
          (void)index.MemoryBytes();
        }
        queries.fetch_add(1);
      }
    });
  }
  for (size_t i = 0; i < events.size(); i += 16) {
    auto batch = std::span(events).subspan(i, std::min<size_t>(16, events.size() - i));
    index.Apply(batch);
  }
  done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  for (const auto& e : events) naive.Apply(e);
  EXPECT_EQ(index.Entries(), naive.Entries());
  for (const auto& p : prompts) {
    auto seq = SequenceHashes(p, kBs);
    EXPECT_EQ(index.Query(seq).device, naive.Query(seq, clock.Now()).device);
  }
  EXPECT_GE(queries.load(), 300u);
}

}  // namespace
}  // namespace kvr
