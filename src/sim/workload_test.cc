#include "sim/workload.h"

#include <gtest/gtest.h>

#include <numeric>

namespace kvr::sim {
namespace {

SimRequest Req(TimeNs arrival, std::vector<TokenId> prompt) {
  SimRequest r;
  r.arrival = arrival;
  r.prompt = std::move(prompt);
  return r;
}

std::vector<TokenId> Range(TokenId from, size_t n) {
  std::vector<TokenId> v(n);
  std::iota(v.begin(), v.end(), from);
  return v;
}

std::vector<TokenId> Concat(std::vector<TokenId> a, const std::vector<TokenId>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(WorkloadTest, SortAndNumberIsStable) {
  Workload w;
  w.requests = {Req(5, {1}), Req(1, {2}), Req(5, {3}), Req(0, {4})};
  SortAndNumber(w);
  std::vector<TokenId> order;
  for (size_t i = 0; i < w.requests.size(); ++i) {
    EXPECT_EQ(w.requests[i].id, i);
    order.push_back(w.requests[i].prompt[0]);
  }
  EXPECT_EQ(order, (std::vector<TokenId>{4, 2, 1, 3}));
  EXPECT_EQ(TotalPromptTokens(w), 4u);
}

TEST(WorkloadTest, OracleHitRateByHand) {
  // Block size 4. Tokens served from an infinite cache:
  //   r0 [0..8)            : nothing seen yet                      -> 0
  //   r1 [0..8) + [100]    : 2 leading blocks seen                  -> 8
  //   r2 [0..8)            : 2 blocks seen, capped at len-1         -> 7
  //   r3 [0..4) + [50..58) : block 0 seen, block 1 differs          -> 4
  //   r4 [50..54)          : same tokens as r3's block 1 but another prefix -> 0
  //   r5 [0..3)            : no full block                          -> 0
  Workload w;
  w.requests = {Req(0, Range(0, 8)),  Req(1, Concat(Range(0, 8), {100})),
                Req(2, Range(0, 8)),  Req(3, Concat(Range(0, 4), Range(50, 8))),
                Req(4, Range(50, 4)), Req(5, Range(0, 3))};
  const double total = 8 + 9 + 8 + 12 + 4 + 3;
  EXPECT_DOUBLE_EQ(OracleHitRate(w, 4), (8 + 7 + 4) / total);
  // With 2-token blocks r4's prefix [50,51] is still new (chained from the root, not from r3).
  EXPECT_GT(OracleHitRate(w, 2), 0);
}

TEST(WorkloadTest, OracleHitRateEdgeCases) {
  EXPECT_EQ(OracleHitRate(Workload{}, 4), 0);
  Workload w;
  w.requests = {Req(0, Range(0, 4)), Req(1, Range(0, 4))};
  EXPECT_EQ(OracleHitRate(w, 0), 0);
  EXPECT_DOUBLE_EQ(OracleHitRate(w, 4), 3.0 / 8);
}

TEST(WorkloadTest, BurstsSqueezeEachPeriodIntoItsFirstPart) {
  Workload w;
  w.name = "x";
  // One arrival per second for 20 s; bursts of 10 s at duty 0.2: each period's ten arrivals
  // land in its first 2 s, 0.2 s apart, in their original order.
  for (int i = 0; i < 20; ++i) w.requests.push_back(Req(i * kNsPerSec, {TokenId(i)}));
  SortAndNumber(w);
  ASSERT_TRUE(CompressIntoBursts(w, 10.0, 0.2).ok());
  EXPECT_EQ(w.name, "x+burst");
  ASSERT_EQ(w.requests.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    const SimRequest& r = w.requests[i];
    EXPECT_EQ(r.prompt.front(), TokenId(i));  // order kept
    EXPECT_EQ(r.arrival, (i / 10) * 10 * kNsPerSec + (i % 10) * kNsPerSec / 5) << i;
  }
  // Mean rate unchanged: the last period still starts at 10 s.
  EXPECT_EQ(w.requests[10].arrival, 10 * kNsPerSec);
}

TEST(WorkloadTest, CompressTimeDividesEveryArrival) {
  Workload w;
  for (int i = 0; i < 5; ++i) w.requests.push_back(Req(i * 3 * kNsPerSec, {TokenId(i)}));
  CompressTime(w, 4);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(w.requests[i].arrival, i * 3 * kNsPerSec / 4) << i;
}

TEST(WorkloadTest, BurstsRejectBadShapes) {
  Workload w;
  EXPECT_FALSE(CompressIntoBursts(w, 0, 0.5).ok());
  EXPECT_FALSE(CompressIntoBursts(w, 10, 0).ok());
  EXPECT_FALSE(CompressIntoBursts(w, 10, 1.5).ok());
  EXPECT_TRUE(CompressIntoBursts(w, 10, 1).ok());
}

}  // namespace
}  // namespace kvr::sim
