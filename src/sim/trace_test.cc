#include "sim/trace.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace kvr::sim {
namespace {

using ::testing::HasSubstr;

std::vector<TokenId> Block(uint64_t hash_id, size_t n, uint64_t seed = 0) {
  std::vector<TokenId> out(n);
  SynthesizeBlockTokens(hash_id, seed, out);
  return out;
}

std::vector<TokenId> Slice(const std::vector<TokenId>& v, size_t from, size_t n) {
  return std::vector<TokenId>(v.begin() + from, v.begin() + from + n);
}

constexpr char kSmallTrace[] =
    "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 3, \"hash_ids\": [7, 8, 9]}\n"
    "\n"
    "{\"timestamp\": 250, \"input_length\": 9, \"output_length\": 0, \"hash_ids\": [7, 8, 5]}\r\n"
    "{\"hash_ids\": [7, 8], \"timestamp\": 100.5, \"output_length\": 1, \"input_length\": 8}";

TraceOptions Blocks4() {
  TraceOptions options;
  options.trace_block_tokens = 4;
  return options;
}

TEST(TraceTest, ParsesAndSynthesizesSharedBlocks) {
  auto w = ParseMooncakeTrace(kSmallTrace, Blocks4());
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->requests.size(), 3u);
  // Sorted by arrival: the 100.5 ms line comes second.
  const SimRequest& a = w->requests[0];
  const SimRequest& b = w->requests[1];
  const SimRequest& c = w->requests[2];
  EXPECT_EQ(a.arrival, 0);
  EXPECT_EQ(b.arrival, 100'500'000);
  EXPECT_EQ(c.arrival, 250'000'000);
  EXPECT_EQ(a.id, 0u);
  EXPECT_EQ(b.id, 1u);
  EXPECT_EQ(c.id, 2u);
  ASSERT_EQ(a.prompt.size(), 10u);
  ASSERT_EQ(b.prompt.size(), 8u);
  ASSERT_EQ(c.prompt.size(), 9u);
  EXPECT_EQ(a.output_tokens, 3u);
  EXPECT_EQ(c.output_tokens, 1u);  // 0 clamps to 1
  // Hash id 7 and 8 are the same 4 tokens everywhere; the last block is partial.
  EXPECT_EQ(Slice(a.prompt, 0, 4), Block(7, 4));
  EXPECT_EQ(Slice(a.prompt, 4, 4), Block(8, 4));
  EXPECT_EQ(Slice(a.prompt, 8, 2), Block(9, 2));
  EXPECT_EQ(b.prompt, Slice(a.prompt, 0, 8));
  EXPECT_EQ(Slice(c.prompt, 0, 8), Slice(a.prompt, 0, 8));
  EXPECT_EQ(Slice(c.prompt, 8, 1), Block(5, 1));
  for (TokenId t : a.prompt) EXPECT_LT(t, kSyntheticVocab);
}

TEST(TraceTest, PartialBlockFirstThenFullBlockAgree) {
  const std::string text =
      "{\"timestamp\": 0, \"input_length\": 2, \"output_length\": 1, \"hash_ids\": [3]}\n"
      "{\"timestamp\": 1, \"input_length\": 4, \"output_length\": 1, \"hash_ids\": [3]}\n"
      "{\"timestamp\": 2, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [3, 4]}\n";
  auto w = ParseMooncakeTrace(text, Blocks4());
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->requests[0].prompt, Block(3, 2));
  EXPECT_EQ(w->requests[1].prompt, Block(3, 4));
  EXPECT_EQ(Slice(w->requests[2].prompt, 0, 4), Block(3, 4));
}

TEST(TraceTest, SeedChangesTokensButNotStructure) {
  TraceOptions seeded = Blocks4();
  seeded.seed = 42;
  auto w0 = ParseMooncakeTrace(kSmallTrace, Blocks4());
  auto w1 = ParseMooncakeTrace(kSmallTrace, seeded);
  ASSERT_TRUE(w0.ok() && w1.ok());
  EXPECT_NE(w0->requests[0].prompt, w1->requests[0].prompt);
  EXPECT_EQ(Slice(w1->requests[0].prompt, 0, 4), Block(7, 4, 42));
}

TEST(TraceTest, RateScaleCompressesArrivals) {
  TraceOptions options = Blocks4();
  options.rate_scale = 2.0;
  auto w = ParseMooncakeTrace(kSmallTrace, options);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->requests[1].arrival, 50'250'000);
  EXPECT_EQ(w->requests[2].arrival, 125'000'000);
  options.rate_scale = 0.5;
  w = ParseMooncakeTrace(kSmallTrace, options);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->requests[2].arrival, 500'000'000);
  for (double bad : {0.0, -1.0}) {
    options.rate_scale = bad;
    EXPECT_EQ(ParseMooncakeTrace(kSmallTrace, options).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(TraceTest, MaxRequestsTakesTheFirstLines) {
  TraceOptions options = Blocks4();
  options.max_requests = 2;
  auto w = ParseMooncakeTrace(kSmallTrace, options);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->requests.size(), 2u);
  EXPECT_EQ(w->requests[1].arrival, 250'000'000);
}

TEST(TraceTest, EmptyInputIsAnEmptyWorkload) {
  auto w = ParseMooncakeTrace("\n\n", Blocks4());
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(w->requests.empty());
}

struct BadLine {
  std::string line;
  std::string message;
};

TEST(TraceTest, RejectsMalformedLinesNamingTheLine) {
  const std::string good =
      "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [1, 2]}\n";
  const std::vector<BadLine> cases = {
      {"{\"timestamp\": 0, \"input_length\": 5", "invalid JSON"},
      {"[1, 2]", "expected a JSON object"},
      {"{\"input_length\": 5, \"output_length\": 1, \"hash_ids\": [1, 2]}",
       "missing \"timestamp\""},
      {"{\"timestamp\": 0, \"output_length\": 1, \"hash_ids\": [1, 2]}",
       "missing \"input_length\""},
      {"{\"timestamp\": 0, \"input_length\": 5, \"hash_ids\": [1, 2]}",
       "missing \"output_length\""},
      {"{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1}", "missing \"hash_ids\""},
      {"{\"timestamp\": -1, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [1, 2]}",
       "\"timestamp\" must be >= 0"},
      {"{\"timestamp\": \"0\", \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [1, 2]}",
       "\"timestamp\" must be a number"},
      {"{\"timestamp\": 0, \"input_length\": 5.5, \"output_length\": 1, \"hash_ids\": [1, 2]}",
       "\"input_length\" must be a non-negative integer"},
      {"{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 1, \"hash_ids\": []}",
       "\"input_length\" must be >= 1"},
      {"{\"timestamp\": 0, \"input_length\": 5, \"output_length\": -3, \"hash_ids\": [1, 2]}",
       "\"output_length\" must be a non-negative integer"},
      {"{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": 1}",
       "\"hash_ids\" must be an array"},
      {"{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [1, -2]}",
       "entries must be non-negative integers"},
      {"{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [1]}",
       "\"hash_ids\" has 1 entries but input_length 5 needs 2 blocks of 4"},
      {"{\"timestamp\": 0, \"input_length\": 8, \"output_length\": 1, \"hash_ids\": [1, 2, 3]}",
       "needs 2 blocks"},
  };
  for (const BadLine& c : cases) {
    auto w = ParseMooncakeTrace(good + "\n" + c.line + "\n" + good, Blocks4());
    ASSERT_FALSE(w.ok()) << c.line;
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(w.status().message());
    EXPECT_THAT(message, HasSubstr("trace line 3: ")) << c.line;
    EXPECT_THAT(message, HasSubstr(c.message)) << c.line;
  }
}

TEST(TraceTest, MissingFileIsNotFound) {
  auto w = LoadMooncakeTrace("tests/data/no/such/trace.jsonl", {});
  EXPECT_EQ(w.status().code(), absl::StatusCode::kNotFound);
}

// The bundled Mooncake conversation trace (data/traces/README.md).
TEST(TraceTest, BundledConversationTrace) {
  auto w = LoadMooncakeTrace("data/traces/mooncake_conversation_trace.jsonl", {});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->name, "mooncake_conversation");
  ASSERT_EQ(w->requests.size(), 12031u);
  EXPECT_EQ(TotalPromptTokens(*w), 144'793'823u);
  EXPECT_EQ(w->requests.front().arrival, 0);
  EXPECT_EQ(w->requests.back().arrival, 3'536'999 * kNsPerMs);
  // Line 1 is hash ids 0..13 over 6758 tokens, line 2 starts with hash id 0 too.
  EXPECT_EQ(w->requests[0].prompt.size(), 6758u);
  EXPECT_EQ(w->requests[0].output_tokens, 500u);
  EXPECT_EQ(Slice(w->requests[0].prompt, 0, 512), Block(0, 512));
  EXPECT_EQ(Slice(w->requests[1].prompt, 0, 512), Block(0, 512));
  EXPECT_NE(Slice(w->requests[1].prompt, 512, 512), Slice(w->requests[0].prompt, 512, 512));
  // Measured: 54,063,104 of 144,793,823 prompt tokens (37.34%). The trace README's 36.64% counts
  // reused blocks (any position, partial blocks included); this counts leading full-block tokens.
  const double oracle = OracleHitRate(*w, 512);
  std::printf("oracle hit rate at 512: %.6f (%.0f tokens)\n", oracle, oracle * 144'793'823);
  EXPECT_NEAR(oracle, 0.3734, 0.0005);
  EXPECT_NEAR(oracle, 0.3664, 0.01);
}

// The bundled Mooncake synthetic trace (data/traces/README.md): the high-reuse regime.
TEST(TraceTest, BundledSyntheticTrace) {
  auto w = LoadMooncakeTrace("data/traces/mooncake_synthetic_trace.jsonl", {});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->name, "mooncake_synthetic");
  ASSERT_EQ(w->requests.size(), 3993u);
  EXPECT_EQ(TotalPromptTokens(*w), 61'194'628u);
  EXPECT_EQ(w->requests.back().arrival, 1'022'025 * kNsPerMs);
  EXPECT_EQ(w->requests[0].prompt.size(), 40160u);
  EXPECT_EQ(w->requests[0].output_tokens, 6u);
  // Line 50 continues line 43's conversation: its first 57 blocks are line 43's.
  EXPECT_EQ(Slice(w->requests[49].prompt, 0, 57 * 512), Slice(w->requests[42].prompt, 0, 57 * 512));
  const double oracle = OracleHitRate(*w, 512);
  std::printf("oracle hit rate at 512: %.6f (%.0f tokens)\n", oracle, oracle * 61'194'628);
  EXPECT_NEAR(oracle, 0.6504, 0.0005);  // 39,802,880 tokens
}

}  // namespace
}  // namespace kvr::sim
