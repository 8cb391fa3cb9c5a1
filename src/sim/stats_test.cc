#include "sim/stats.h"

#include <gtest/gtest.h>

namespace kvr::sim {
namespace {

TEST(SummarizeTest, LinearInterpolationBetweenRanks) {
  // Sorted {1,2,3,4}: h = 3p. p50: h=1.5 -> 2.5; p90: h=2.7 -> 3.7; p99: h=2.97 -> 3.97.
  const LatencyStats s = Summarize({4, 1, 3, 2});
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_DOUBLE_EQ(s.p50, 2.5);
  EXPECT_DOUBLE_EQ(s.p90, 3.7);
  EXPECT_DOUBLE_EQ(s.p99, 3.97);
}

TEST(SummarizeTest, ElevenSamplesHitExactRanks) {
  // 0,10,...,100: h = 10p, so p50 = 50 and p90 = 90 exactly; p99: h = 9.9 -> 99.
  std::vector<double> v;
  for (int i = 10; i >= 0; --i) v.push_back(10.0 * i);
  const LatencyStats s = Summarize(v);
  EXPECT_DOUBLE_EQ(s.mean, 50);
  EXPECT_DOUBLE_EQ(s.p50, 50);
  EXPECT_DOUBLE_EQ(s.p90, 90);
  EXPECT_DOUBLE_EQ(s.p99, 99);
}

TEST(SummarizeTest, OneAndZeroSamples) {
  const LatencyStats one = Summarize({7});
  EXPECT_EQ(one.mean, 7);
  EXPECT_EQ(one.p50, 7);
  EXPECT_EQ(one.p99, 7);
  const LatencyStats none = Summarize({});
  EXPECT_EQ(none.mean, 0);
  EXPECT_EQ(none.p50, 0);
  EXPECT_EQ(none.p90, 0);
  EXPECT_EQ(none.p99, 0);
}

TEST(SummarizeTest, QuantileEnds) {
  const std::vector<double> v = {1, 5, 9};
  EXPECT_EQ(QuantileSorted(v, 0), 1);
  EXPECT_EQ(QuantileSorted(v, 1), 9);
  EXPECT_EQ(QuantileSorted(v, 0.25), 3);
  EXPECT_EQ(QuantileSorted({}, 0.5), 0);
}

TEST(LoadImbalanceTest, MaxOverMean) {
  const std::vector<TimeNs> busy = {10, 10, 40};  // mean 20
  EXPECT_DOUBLE_EQ(LoadImbalance(busy), 2.0);
  EXPECT_DOUBLE_EQ(LoadImbalance(std::vector<TimeNs>{5, 5}), 1.0);
  EXPECT_DOUBLE_EQ(LoadImbalance(std::vector<TimeNs>{0, 0}), 1.0);
  EXPECT_DOUBLE_EQ(LoadImbalance({}), 1.0);
}

TEST(PolicyStatsCollectorTest, ComputesTheDefinedMetrics) {
  PolicyStatsCollector c("rr");
  // Request A: arrives 0, first token at 100 ms, done at 1100 ms with 11 tokens -> ITL 100 ms.
  c.Add({.arrival = 0,
         .first_token = 100 * kNsPerMs,
         .finish = 1100 * kNsPerMs,
         .prompt_tokens = 1000,
         .cached_tokens = 600,
         .output_tokens = 11});
  // Request B: arrives 1 s, first token at 1.3 s, one token only (no ITL sample), done 1.3 s...
  c.Add({.arrival = kNsPerSec,
         .first_token = 1300 * kNsPerMs,
         .finish = 1300 * kNsPerMs,
         .prompt_tokens = 1000,
         .cached_tokens = 0,
         .output_tokens = 1});
  // ...and C finishes last at 2 s with 3 tokens: ITL (2000 - 1600) / 2 = 200 ms.
  c.Add({.arrival = 1500 * kNsPerMs,
         .first_token = 1600 * kNsPerMs,
         .finish = 2 * kNsPerSec,
         .prompt_tokens = 2000,
         .cached_tokens = 400,
         .output_tokens = 3});
  const std::vector<TimeNs> busy = {3, 1};
  const PolicyResult r = std::move(c).Finish(2500, busy);
  EXPECT_EQ(r.policy, "rr");
  EXPECT_EQ(r.requests, 3u);
  EXPECT_DOUBLE_EQ(r.ttft_ms.mean, (100 + 300 + 100) / 3.0);
  EXPECT_DOUBLE_EQ(r.ttft_ms.p50, 100);
  EXPECT_DOUBLE_EQ(r.e2e_ms.p50, 500);  // {1100, 300, 500}
  EXPECT_DOUBLE_EQ(r.itl_ms.mean, 150);
  EXPECT_DOUBLE_EQ(r.itl_ms.p50, 150);
  EXPECT_DOUBLE_EQ(r.hit_rate, 1000.0 / 4000);
  EXPECT_EQ(r.prefill_tokens, 2500u);
  EXPECT_DOUBLE_EQ(r.throughput_tok_s, 15 / 2.0);  // 15 tokens over 0..2 s
  EXPECT_DOUBLE_EQ(r.load_imbalance, 1.5);
  EXPECT_EQ(r.ttft_samples_ms.size(), 3u);
}

TEST(PolicyStatsCollectorTest, EmptyRunIsAllZero) {
  const PolicyResult r = PolicyStatsCollector("none").Finish(0, {});
  EXPECT_EQ(r.requests, 0u);
  EXPECT_EQ(r.throughput_tok_s, 0);
  EXPECT_EQ(r.hit_rate, 0);
  EXPECT_EQ(r.ttft_ms.p99, 0);
}

}  // namespace
}  // namespace kvr::sim
