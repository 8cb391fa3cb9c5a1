#include "replay/result.h"

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "replay/request.h"

namespace kvr::replay {
namespace {

RequestRecord Completed(std::string worker, TimeNs sent, uint64_t prompt, uint64_t cached) {
  RequestRecord r;
  r.worker = std::move(worker);
  r.sent = sent;
  r.first_token = sent + 10 * kNsPerMs;
  r.finish = sent + 30 * kNsPerMs;
  r.usage_reported = true;
  r.prompt_tokens = prompt;
  r.cached_tokens = cached;
  r.output_tokens = 3;
  return r;
}

TEST(ReplayCollectorTest, CountsOutcomesTokensAndWorkers) {
  ReplayCollector c;
  c.Add(Completed("w0", 0, 100, 0));
  c.Add(Completed("w1", 10 * kNsPerMs, 100, 64));
  c.Add(Completed("w1", 20 * kNsPerMs, 100, 96));
  RequestRecord failed{.outcome = Outcome::kFailed, .error = "HTTP 503: busy"};
  RequestRecord mid{.outcome = Outcome::kFailedMidStream, .error = "upstream reset"};
  RequestRecord cancelled{.outcome = Outcome::kCancelled, .error = "cancelled"};
  c.Add(failed);
  c.Add(failed);
  c.Add(mid);
  c.Add(cancelled);
  const ReplayResult r = std::move(c).Finish("kvrouter", 10, 1.5, true);
  EXPECT_EQ(r.total, 10u);
  EXPECT_EQ(r.sent, 7u);
  EXPECT_EQ(r.completed, 3u);
  EXPECT_EQ(r.failed, 3u);
  EXPECT_EQ(r.failed_mid_stream, 1u);
  EXPECT_EQ(r.cancelled, 1u);
  EXPECT_EQ(r.summary.policy, "kvrouter");
  EXPECT_EQ(r.summary.requests, 3u);
  EXPECT_DOUBLE_EQ(r.summary.hit_rate, 160.0 / 300);
  EXPECT_EQ(r.summary.prefill_tokens, 140u);
  EXPECT_DOUBLE_EQ(r.summary.ttft_ms.p50, 10);
  EXPECT_DOUBLE_EQ(r.summary.itl_ms.mean, 10);             // (30 - 10) ms over 2 gaps
  EXPECT_DOUBLE_EQ(r.summary.throughput_tok_s, 9 / 0.05);  // 9 tokens, first send to last end
  EXPECT_DOUBLE_EQ(r.summary.load_imbalance, 2 / 1.5);
  EXPECT_EQ(r.workers, (std::map<std::string, uint64_t>{{"w0", 1}, {"w1", 2}}));
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0], std::make_pair(std::string("HTTP 503: busy"), uint64_t{2}));
}

TEST(ReplayCollectorTest, CountsTheRequestsTheConcurrencyLimitHeldBack) {
  ReplayCollector c;
  RequestRecord on_time = Completed("w0", 0, 100, 0);
  RequestRecord held = Completed("w0", 50 * kNsPerMs, 100, 0);
  held.send_lag = 40 * kNsPerMs;
  held.held_back = true;
  c.Add(on_time);
  c.Add(held);
  const ReplayResult r = std::move(c).Finish("kvrouter", 2, 0.1, false);
  EXPECT_EQ(r.held_back, 1u);
  EXPECT_DOUBLE_EQ(r.max_send_lag_ms, 40);
  EXPECT_EQ(nlohmann::json::parse(ReplayJson(r))["held_back"], 1);
  EXPECT_NE(ReplaySummary(r).find("1 request waited for a free slot"), std::string::npos);
}

TEST(ReplayJsonTest, HasTheSimulateShapeAndTheLiveCounts) {
  ReplayCollector c;
  c.Add(Completed("w0", 0, 100, 50));
  const auto j = nlohmann::json::parse(ReplayJson(std::move(c).Finish("replay", 1, 0.1, false)));
  for (const char* key : {"ttft_ms", "itl_ms", "e2e_ms"}) {
    for (const char* stat : {"mean", "p50", "p90", "p99"}) {
      EXPECT_TRUE(j[key][stat].is_number()) << key << "." << stat;
    }
  }
  EXPECT_DOUBLE_EQ(j["hit_rate"].get<double>(), 0.5);
  EXPECT_EQ(j["prefill_tokens"], 50);
  for (const char* key : {"throughput_tok_s", "requests", "completed", "failed",
                          "failed_mid_stream", "cancelled", "duration_s"}) {
    EXPECT_TRUE(j[key].is_number()) << key;
  }
  EXPECT_EQ(j["workers"]["w0"], 1);
  EXPECT_TRUE(j["errors"].is_object());
  EXPECT_EQ(j["ttft_samples_ms"].size(), 1u);
  EXPECT_FALSE(j["interrupted"].get<bool>());
  EXPECT_NE(ReplaySummary(std::move(ReplayCollector()).Finish("x", 0, 0, false)), "");
}

TEST(CompletionBodyTest, TokenIdPromptStreamedWithUsage) {
  sim::SimRequest r{.prompt = {1, 127999, 0}, .output_tokens = 7};
  const auto j = nlohmann::json::parse(CompletionBody("m\"odel", r));
  EXPECT_EQ(j["model"], "m\"odel");
  EXPECT_EQ(j["prompt"], nlohmann::json::parse("[1,127999,0]"));
  EXPECT_EQ(j["max_tokens"], 7);
  EXPECT_EQ(j["ignore_eos"], true);
  EXPECT_EQ(j["stream"], true);
  EXPECT_EQ(j["stream_options"]["include_usage"], true);
}

}  // namespace
}  // namespace kvr::replay
