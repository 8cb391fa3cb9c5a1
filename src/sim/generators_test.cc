#include "sim/generators.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_map.h"

namespace kvr::sim {
namespace {

GeneratorOptions Small(uint64_t seed = 7, size_t requests = 300) {
  GeneratorOptions o;
  o.seed = seed;
  o.requests = requests;
  o.rate_per_s = 4.0;
  return o;
}

bool SameWorkload(const Workload& a, const Workload& b) {
  if (a.name != b.name || a.requests.size() != b.requests.size()) return false;
  for (size_t i = 0; i < a.requests.size(); ++i) {
    const SimRequest& x = a.requests[i];
    const SimRequest& y = b.requests[i];
    if (x.id != y.id || x.arrival != y.arrival || x.prompt != y.prompt ||
        x.output_tokens != y.output_tokens || x.session != y.session) {
      return false;
    }
  }
  return true;
}

bool IsPrefix(const std::vector<TokenId>& a, const std::vector<TokenId>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

class GeneratorTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GeneratorTest, DeterministicExactCountSortedDense) {
  auto a = GenerateWorkload(GetParam(), Small());
  auto b = GenerateWorkload(GetParam(), Small());
  auto c = GenerateWorkload(GetParam(), Small(8));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << a.status();
  EXPECT_EQ(a->name, GetParam());
  EXPECT_TRUE(SameWorkload(*a, *b));
  EXPECT_FALSE(SameWorkload(*a, *c));
  ASSERT_EQ(a->requests.size(), 300u);
  for (size_t i = 0; i < a->requests.size(); ++i) {
    const SimRequest& r = a->requests[i];
    EXPECT_EQ(r.id, i);
    EXPECT_FALSE(r.prompt.empty());
    EXPECT_GE(r.output_tokens, 1u);
    EXPECT_NE(r.session, 0u);
    if (i > 0) {
      EXPECT_GE(r.arrival, a->requests[i - 1].arrival);
    }
    for (TokenId t : r.prompt) ASSERT_LT(t, kSyntheticVocab);
  }
}

TEST_P(GeneratorTest, MeanRateIsRoughlyTheRequested) {
  GeneratorOptions o = Small(3, 1500);
  auto w = GenerateWorkload(GetParam(), o);
  ASSERT_TRUE(w.ok());
  const double span_s = static_cast<double>(w->requests.back().arrival) / kNsPerSec;
  const double rate = (w->requests.size() - 1) / span_s;
  EXPECT_GT(rate, o.rate_per_s * 0.6) << GetParam();
  EXPECT_LT(rate, o.rate_per_s * 1.6) << GetParam();
}

TEST_P(GeneratorTest, FirstRequestsDoNotDependOnTheCount) {
  // The first N by arrival are those of the unbounded process: a longer run extends a shorter.
  auto shorter = GenerateWorkload(GetParam(), Small(5, 100));
  auto longer = GenerateWorkload(GetParam(), Small(5, 400));
  ASSERT_TRUE(shorter.ok() && longer.ok());
  for (size_t i = 0; i < 100; ++i) {
    EXPECT_EQ(shorter->requests[i].arrival, longer->requests[i].arrival) << i;
    EXPECT_EQ(shorter->requests[i].prompt, longer->requests[i].prompt) << i;
  }
}

TEST_P(GeneratorTest, SharesPrefixes) {
  auto w = GenerateWorkload(GetParam(), Small());
  ASSERT_TRUE(w.ok());
  EXPECT_GT(OracleHitRate(*w, 16), 0.3) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(All, GeneratorTest, ::testing::ValuesIn(WorkloadNames()));

TEST(GeneratorsTest, SessionsGrowByAppending) {
  for (const char* name : {"chat", "agentic"}) {
    auto w = GenerateWorkload(name, Small());
    ASSERT_TRUE(w.ok());
    absl::flat_hash_map<uint64_t, const SimRequest*> last;
    size_t follow_ups = 0;
    for (const SimRequest& r : w->requests) {
      auto it = last.find(r.session);
      if (it != last.end()) {
        // The previous turn's prompt, then its answer (output_tokens long), then new text.
        EXPECT_TRUE(IsPrefix(it->second->prompt, r.prompt)) << name;
        EXPECT_GT(r.prompt.size(), it->second->prompt.size() + it->second->output_tokens);
        ++follow_ups;
      }
      last[r.session] = &r;
    }
    EXPECT_GT(follow_ups, 100u) << name;
  }
}

TEST(GeneratorsTest, SystemPromptsFollowZipf) {
  auto w = GenerateWorkload("system_prompts", Small(11, 2000));
  ASSERT_TRUE(w.ok());
  // Group by the first 64 tokens (the system prompt); the most popular should dominate.
  std::map<std::vector<TokenId>, size_t> counts;
  for (const SimRequest& r : w->requests) {
    counts[std::vector<TokenId>(r.prompt.begin(), r.prompt.begin() + 64)]++;
  }
  EXPECT_EQ(counts.size(), 8u);
  std::vector<size_t> sorted;
  for (const auto& [prefix, n] : counts) sorted.push_back(n);
  std::sort(sorted.rbegin(), sorted.rend());
  // Zipf(1.1) over 8: P(rank 0) = 0.392, P(rank 7) = 0.040.
  EXPECT_NEAR(sorted.front() / 2000.0, 0.392, 0.05);
  EXPECT_NEAR(sorted.back() / 2000.0, 0.040, 0.02);
}

TEST(GeneratorsTest, RagAsksSeveralQuestionsAboutLongDocuments) {
  auto w = GenerateWorkload("rag", Small(13, 400));
  ASSERT_TRUE(w.ok());
  absl::flat_hash_map<uint64_t, const SimRequest*> first;
  size_t same_doc = 0;
  for (const SimRequest& r : w->requests) {
    EXPECT_GE(r.prompt.size(), 300u + 7500 + 20);
    EXPECT_LE(r.prompt.size(), 300u + 31500 + 200);
    EXPECT_GE(r.output_tokens, 50u);
    EXPECT_LE(r.output_tokens, 250u);
    auto [it, inserted] = first.try_emplace(r.session, &r);
    if (inserted) continue;
    // A later question of the session: the same system prompt and document, a new question
    // (no history), so the prompts share all but their last few hundred tokens.
    const SimRequest& a = *it->second;
    const size_t common =
        std::mismatch(a.prompt.begin(), a.prompt.end(), r.prompt.begin(), r.prompt.end()).first -
        a.prompt.begin();
    EXPECT_GE(common + 200, a.prompt.size());
    EXPECT_GE(common + 200, r.prompt.size());
    ++same_doc;
  }
  EXPECT_GT(same_doc, 100u);
  // Every prompt opens with the one shared system prompt.
  for (const SimRequest& r : w->requests) {
    EXPECT_TRUE(
        std::equal(r.prompt.begin(), r.prompt.begin() + 300, w->requests.front().prompt.begin()));
  }
  const double oracle = OracleHitRate(*w, 64);
  EXPECT_GT(oracle, 0.4);
  EXPECT_LT(oracle, 0.8);
}

TEST(GeneratorsTest, ZipfSamplerInverseCdf) {
  const ZipfSampler zipf(3, 1.0);  // weights 1, 1/2, 1/3 -> cdf 6/11, 9/11, 1
  EXPECT_EQ(zipf.Pick(0.0), 0u);
  EXPECT_EQ(zipf.Pick(6.0 / 11 - 1e-9), 0u);
  EXPECT_EQ(zipf.Pick(6.0 / 11 + 1e-9), 1u);
  EXPECT_EQ(zipf.Pick(9.0 / 11 + 1e-9), 2u);
  EXPECT_EQ(zipf.Pick(0.999999), 2u);
}

TEST(GeneratorsTest, RejectsUnknownNameAndBadRate) {
  auto w = GenerateWorkload("nope", Small());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(w.status().message().find("chat, system_prompts, agentic"), std::string::npos);
  GeneratorOptions o = Small();
  o.rate_per_s = 0;
  EXPECT_EQ(GenerateWorkload("chat", o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Small(1, 0);
  auto empty = GenerateWorkload("agentic", o);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->requests.empty());
}

}  // namespace
}  // namespace kvr::sim
