#include "sim/report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

namespace kvr::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

size_t Count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = s.find(needle); pos != std::string::npos; pos = s.find(needle, pos + 1)) ++n;
  return n;
}

PolicyResult Policy(std::string name, double ttft_scale) {
  PolicyResult p;
  p.policy = std::move(name);
  for (int i = 1; i <= 100; ++i) p.ttft_samples_ms.push_back(ttft_scale * i);
  p.ttft_ms = Summarize(p.ttft_samples_ms);
  p.itl_ms = {20, 19, 25, 40};
  p.e2e_ms = {900, 800, 1500, 3000};
  p.hit_rate = 0.42;
  p.prefill_tokens = 123456;
  p.throughput_tok_s = 987.5;
  p.load_imbalance = 1.25;
  p.requests = 100;
  return p;
}

Report Sample() {
  Report r;
  r.workload_name = "mooncake_conversation";
  r.requests = 100;
  r.oracle_hit_rate = 0.3734;
  r.settings = {{"workers", "8"}, {"rate_scale", "2.5"}, {"preset", "h100-llama8b"}};
  r.policies = {Policy("round_robin", 10), Policy("kv_aware", 4)};
  r.policies[1].extra = {{"preemptions", 3}, {"decision_us_p99", 12.5}};
  return r;
}

TEST(ReportJsonTest, SchemaFieldsPresentAndParseable) {
  const nlohmann::json j = nlohmann::json::parse(ReportJson(Sample()));
  const auto& w = j.at("workload");
  EXPECT_EQ(w.at("name"), "mooncake_conversation");
  EXPECT_EQ(w.at("requests"), 100);
  EXPECT_DOUBLE_EQ(w.at("oracle_hit_rate").get<double>(), 0.3734);
  EXPECT_EQ(w.at("workers"), 8);
  EXPECT_DOUBLE_EQ(w.at("rate_scale").get<double>(), 2.5);
  EXPECT_EQ(w.at("preset"), "h100-llama8b");
  ASSERT_EQ(j.at("policies").size(), 2u);
  for (const char* name : {"round_robin", "kv_aware"}) {
    const auto& p = j.at("policies").at(name);
    for (const char* lat : {"ttft_ms", "itl_ms", "e2e_ms"}) {
      for (const char* stat : {"mean", "p50", "p90", "p99"}) {
        EXPECT_TRUE(p.at(lat).at(stat).is_number()) << name << lat << stat;
      }
    }
    for (const char* field :
         {"hit_rate", "prefill_tokens", "throughput_tok_s", "load_imbalance", "requests"}) {
      EXPECT_TRUE(p.at(field).is_number()) << name << field;
    }
    EXPECT_FALSE(p.contains("ttft_samples_ms"));
  }
  const auto& kv = j.at("policies").at("kv_aware");
  EXPECT_DOUBLE_EQ(kv.at("ttft_ms").at("p50").get<double>(), 4 * 50.5);
  EXPECT_EQ(kv.at("prefill_tokens"), 123456);
  EXPECT_EQ(kv.at("preemptions"), 3);
  EXPECT_DOUBLE_EQ(kv.at("decision_us_p99").get<double>(), 12.5);
}

TEST(ReportJsonTest, KeepsRunOrderAndSurvivesOddNames) {
  Report r = Sample();
  r.policies[0].policy = "z\xff";  // invalid UTF-8 must not throw
  r.policies[0].hit_rate = std::numeric_limits<double>::quiet_NaN();
  const std::string text = ReportJson(r);
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(text);
  EXPECT_LT(text.find("\"z"), text.find("\"kv_aware\""));
  EXPECT_TRUE(j.at("policies").begin().value().at("hit_rate").is_null());
}

TEST(DescribeWorkloadTest, FillsTheWorkloadHeader) {
  Workload w;
  w.name = "tiny";
  for (int i = 0; i < 3; ++i) {
    SimRequest r;
    r.id = i;
    r.arrival = i * kNsPerSec;
    r.prompt = {1, 2, 3, 4, 5};
    r.output_tokens = 2 + i;
    w.requests.push_back(r);
  }
  Report report;
  DescribeWorkload(w, 4, &report);
  EXPECT_EQ(report.workload_name, "tiny");
  EXPECT_EQ(report.requests, 3u);
  EXPECT_DOUBLE_EQ(report.oracle_hit_rate, 8.0 / 15);  // requests 2 and 3 hit one 4-token block
  const nlohmann::json j = nlohmann::json::parse(ReportJson(report)).at("workload");
  EXPECT_EQ(j.at("oracle_block_size"), 4);
  EXPECT_EQ(j.at("prompt_tokens"), 15);
  EXPECT_DOUBLE_EQ(j.at("mean_input_tokens").get<double>(), 5);
  EXPECT_DOUBLE_EQ(j.at("mean_output_tokens").get<double>(), 3);
  EXPECT_DOUBLE_EQ(j.at("duration_s").get<double>(), 2);
  EXPECT_DOUBLE_EQ(j.at("arrival_rate_per_s").get<double>(), 1);
}

TEST(RequestRecordsJsonlTest, OneLinePerRecordAndRejectionsAsNulls) {
  PolicyResult p = Policy("kvrouter[work_weight=2]", 1);
  p.records = {
      {.id = 7,
       .worker = 3,
       .dispatched = 2 * kNsPerSec + 5 * kNsPerMs,
       .outcome = {.arrival = 2 * kNsPerSec,
                   .first_token = 2 * kNsPerSec + 45 * kNsPerMs,
                   .finish = 3 * kNsPerSec,
                   .prompt_tokens = 1000,
                   .cached_tokens = 640,
                   .output_tokens = 20},
       .cached_nowhere_tokens = 128,
       .cached_elsewhere_tokens = 64},
      {.id = 8,
       .worker = 0,
       .dispatched = kNsPerSec,
       .outcome = {.arrival = kNsPerSec, .first_token = -1, .finish = -1, .prompt_tokens = 9}}};
  const std::vector<double> speeds = {1, 0.5};
  const std::string out = RequestRecordsJsonl(p, 2.5, speeds);
  ASSERT_EQ(Count(out, "\n"), 2u);
  const auto first = nlohmann::json::parse(out.substr(0, out.find('\n')));
  EXPECT_EQ(first["rate_scale"], 2.5);
  EXPECT_EQ(first["policy"], "kvrouter[work_weight=2]");
  EXPECT_EQ(first["id"], 7);
  EXPECT_EQ(first["worker"], 3);
  EXPECT_EQ(first["speed"], 0.5);
  EXPECT_EQ(first["arrival_s"], 2.0);
  EXPECT_EQ(first["router_wait_ms"], 5.0);
  EXPECT_EQ(first["ttft_ms"], 45.0);
  EXPECT_EQ(first["e2e_ms"], 1000.0);
  EXPECT_EQ(first["cached_tokens"], 640);
  EXPECT_EQ(first["cached_nowhere_tokens"], 128);
  EXPECT_EQ(first["cached_elsewhere_tokens"], 64);
  EXPECT_FALSE(first.contains("rejected"));
  const auto second = nlohmann::json::parse(out.substr(out.find('\n') + 1));
  EXPECT_EQ(second["rejected"], true);
  EXPECT_TRUE(second["ttft_ms"].is_null());
  EXPECT_TRUE(second["e2e_ms"].is_null());
  EXPECT_EQ(second["speed"], 1.0);
  EXPECT_EQ(RequestRecordsJsonl(p, 1, {}).find("\"speed\":0.5"), std::string::npos);
}

TEST(RequestRecordsJsonlTest, ExplainedDecisionsNameTheirTerms) {
  PolicyResult p = Policy("kvrouter", 1);
  p.term_names = {"cached_tokens", "ttft_s"};
  Candidate chosen{.worker = WorkerId(1), .cost = 0.25, .terms = {128, 0.2}};
  Candidate filtered{.worker = WorkerId(0), .cost = 0.5, .terms = {0, 0.4}, .eligible = false};
  p.records = {{.id = 0,
                .worker = 1,
                .outcome = {.first_token = kNsPerMs, .finish = kNsPerMs, .prompt_tokens = 300},
                .candidates = {{.worker = WorkerId(0), .candidate = filtered},
                               {.worker = WorkerId(1),
                                .device = 2,
                                .predicted = 3,
                                .active_overlap = 1,
                                .candidate = chosen}}},
               {.id = 1, .worker = 0, .outcome = {.first_token = 1, .finish = 1}}};
  const std::string out = RequestRecordsJsonl(p, 1, {});
  const auto first = nlohmann::json::parse(out.substr(0, out.find('\n')));
  ASSERT_EQ(first["candidates"].size(), 2u);
  const auto& c0 = first["candidates"][0];
  EXPECT_EQ(c0["worker"], 0);
  EXPECT_EQ(c0["eligible"], false);
  EXPECT_EQ(c0["cost"], 0.5);
  const auto& c1 = first["candidates"][1];
  EXPECT_EQ(c1["worker"], 1);
  EXPECT_EQ(c1["eligible"], true);
  EXPECT_EQ(c1["device_blocks"], 2);
  EXPECT_EQ(c1["host_blocks"], 0);
  EXPECT_EQ(c1["predicted_blocks"], 3);
  EXPECT_EQ(c1["in_flight_blocks"], 1);
  EXPECT_EQ(c1["terms"], nlohmann::json::parse(R"({"cached_tokens":128.0,"ttft_s":0.2})"));
  // A record without a decision has no candidates key.
  const auto second = nlohmann::json::parse(out.substr(out.find('\n') + 1));
  EXPECT_FALSE(second.contains("candidates"));
}

TEST(ReportHtmlTest, OneSvgPerPolicyAndATable) {
  Report r = Sample();
  r.policies.push_back(Policy("<script>", 1));
  const std::string html = ReportHtml(r);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_THAT(html, HasSubstr("</html>\n"));
  EXPECT_EQ(Count(html, "<svg"), 3u);
  EXPECT_EQ(Count(html, "</svg>"), 3u);
  EXPECT_EQ(Count(html, "<polyline class=\"cdf\""), 3u);    // each policy in color...
  EXPECT_EQ(Count(html, "<polyline class=\"other\""), 6u);  // ...over the other two in gray
  EXPECT_EQ(Count(html, "<table>"), 1u);
  EXPECT_EQ(Count(html, "<tr>"), Count(html, "</tr>"));
  EXPECT_THAT(html, HasSubstr("<th>round_robin</th>"));
  EXPECT_THAT(html, HasSubstr("<td>42.00</td>"));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;"));
  EXPECT_THAT(html, Not(HasSubstr("<script>")));
  EXPECT_THAT(html, Not(HasSubstr("<link")));  // self-contained
  EXPECT_THAT(html, Not(HasSubstr(" src=")));
}

TEST(ReportHtmlTest, EmptyPolicyStillHasItsSvg) {
  Report r;
  r.workload_name = "empty";
  PolicyResult idle;
  idle.policy = "idle";
  r.policies = {idle};
  const std::string html = ReportHtml(r);
  EXPECT_EQ(Count(html, "<svg"), 1u);
  EXPECT_EQ(Count(html, "<polyline"), 0u);
}

TEST(ReportTableTest, SideBySideColumns) {
  const std::string table = ReportTable(Sample());
  EXPECT_THAT(table,
              HasSubstr("workload mooncake_conversation: 100 requests, oracle hit rate 37.34%"));
  EXPECT_THAT(table, HasSubstr("round_robin"));
  EXPECT_THAT(table, HasSubstr("kv_aware"));
  EXPECT_THAT(table, HasSubstr("TTFT p99 ms"));
  EXPECT_THAT(table, HasSubstr("preemptions"));
  // Every metric row has the same width.
  size_t width = 0;
  size_t start = table.find("requests  ");
  for (size_t pos = start; pos < table.size();) {
    const size_t end = table.find('\n', pos);
    if (width == 0) width = end - pos;
    EXPECT_EQ(end - pos, width) << table.substr(pos, end - pos);
    pos = end + 1;
  }
}

}  // namespace
}  // namespace kvr::sim
