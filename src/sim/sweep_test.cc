#include "sim/sweep.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace kvr::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

size_t Count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = s.find(needle); pos != std::string::npos; pos = s.find(needle, pos + 1)) ++n;
  return n;
}

PolicyResult Policy(std::string name, double mean, double p99, double hit_rate) {
  PolicyResult p;
  p.policy = std::move(name);
  p.ttft_ms = {mean, mean, mean, p99};
  p.hit_rate = hit_rate;
  p.requests = 30;
  return p;
}

Report RunAt(double rate, double ttft) {
  Report r;
  r.workload_name = "chat";
  r.requests = 30;
  r.oracle_hit_rate = 0.5;
  r.settings = {{"workers", "2"},
                {"rate_scale", absl::StrFormat("%g", rate)},
                {"arrival_rate_per_s", absl::StrFormat("%.3f", 4 * rate)}};
  r.policies = {Policy("round_robin", 2 * ttft, 10 * ttft, 0.25),
                Policy("a<b>", ttft, 5 * ttft, 0.5)};
  return r;
}

SweepReport Sample() {
  SweepReport s{.spec = {.parameter = "rate", .values = {0.5, 2}}};
  s.runs = {RunAt(0.5, 100), RunAt(2, 300)};
  return s;
}

TEST(ParseSweepTest, AcceptsRateValuesInOrder) {
  auto s = ParseSweep("rate=0.5,1,2,4");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->parameter, "rate");
  EXPECT_THAT(s->values, ElementsAre(0.5, 1, 2, 4));
  ASSERT_TRUE(ParseSweep("rate=3").ok());
}

TEST(ParseSweepTest, RejectsMalformedWithTheFlagName) {
  for (const char* bad : {"", "rate", "rate=", "=1,2", "speed=1,2", "rate=1,,2", "rate=0,1",
                          "rate=-1", "rate=abc", "rate=1,inf", "rate=nan", "rate=1,2,1"}) {
    auto s = ParseSweep(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.status().message()), StartsWith("--sweep: ")) << bad;
  }
  EXPECT_THAT(std::string(ParseSweep("speed=1").status().message()), HasSubstr("'speed'"));
  EXPECT_THAT(std::string(ParseSweep("rate=1,x").status().message()), HasSubstr("'x'"));
}

TEST(SweepJsonTest, OneRunPerValueWithEveryPolicy) {
  const auto j = nlohmann::json::parse(SweepJson(Sample()));
  EXPECT_EQ(j["sweep"]["parameter"], "rate");
  EXPECT_EQ(j["sweep"]["values"], nlohmann::json({0.5, 2}));
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][1]["rate"], 2);
  EXPECT_EQ(j["runs"][1]["workload"]["name"], "chat");
  EXPECT_EQ(j["runs"][1]["workload"]["rate_scale"], 2);
  EXPECT_EQ(j["runs"][1]["policies"]["a<b>"]["ttft_ms"]["p99"], 1500);
  EXPECT_EQ(j["runs"][0]["policies"]["round_robin"]["hit_rate"], 0.25);
  // Each run is exactly the single-run document plus the swept value.
  const auto single = nlohmann::json::parse(ReportJson(Sample().runs[0]));
  EXPECT_EQ(j["runs"][0]["policies"], single["policies"]);
  EXPECT_EQ(j["runs"][0]["workload"], single["workload"]);
}

TEST(SweepTableTest, RowsAreLoadsColumnsArePolicies) {
  const std::string t = SweepTable(Sample());
  EXPECT_THAT(t, HasSubstr("arrival_rate_per_s"));  // varies between runs: a column
  EXPECT_THAT(t, Not(HasSubstr("workers")));        // the same in every run: not a column
  EXPECT_THAT(t, HasSubstr("round_robin"));
  EXPECT_THAT(t, HasSubstr("600.0 / 3000.0  25.0%"));
  EXPECT_THAT(t, HasSubstr("100.0 / 500.0  50.0%"));
  EXPECT_EQ(Count(t, "\n"), 4u);  // title, header, two loads
}

TEST(SweepHtmlTest, PlotsMeanAndP99AgainstLoadForEveryPolicy) {
  const std::string h = SweepHtml(Sample());
  EXPECT_THAT(h, StartsWith("<!DOCTYPE html>"));
  EXPECT_EQ(Count(h, "<svg"), 2u);
  EXPECT_EQ(Count(h, "<polyline"), 4u);  // two plots x two policies
  EXPECT_EQ(Count(h, "<circle"), 8u);    // one point per load
  EXPECT_THAT(h, HasSubstr("a&lt;b&gt;"));
  EXPECT_THAT(h, Not(HasSubstr("a<b>")));
  EXPECT_THAT(h, Not(HasSubstr("<script")));
  EXPECT_THAT(h, HasSubstr("<li>workers: 2</li>"));
  EXPECT_EQ(Count(h, "<details>"), 2u);
}

TEST(SweepHtmlTest, OneLoadStillPlots) {
  SweepReport s{.spec = {.parameter = "rate", .values = {1}}};
  s.runs = {RunAt(1, 100)};
  const std::string h = SweepHtml(s);
  EXPECT_EQ(Count(h, "<svg"), 2u);
  EXPECT_THAT(h, Not(HasSubstr("nan")));
  EXPECT_THAT(h, Not(HasSubstr("inf")));
}

}  // namespace
}  // namespace kvr::sim
