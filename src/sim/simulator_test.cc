#include "sim/simulator.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "sim/generators.h"

namespace kvr::sim {
namespace {

SimConfig SmallFleet() {
  SimConfig c;
  c.workers = 4;
  c.engine = *engine::EnginePreset("default");
  c.engine.num_blocks = 4096;
  c.seed = 3;
  return c;
}

Workload Chat(size_t n, double rate) {
  return *GenerateWorkload("chat", {.seed = 5, .requests = n, .rate_per_s = rate});
}

double Extra(const PolicyResult& r, const std::string& name) {
  for (const auto& [k, v] : r.extra) {
    if (k == name) return v;
  }
  return -1;
}

TEST(Simulator, EveryRequestCompletesAndCountsAddUp) {
  Workload w = Chat(300, 4);
  auto r = RunPolicy(w, SmallFleet(), "round_robin", nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requests, 300u);
  EXPECT_EQ(Extra(*r, "rejected"), 0);
  uint64_t prompt = TotalPromptTokens(w);
  // Computed prefill + cache hits cover every prompt token (more with preemption recompute).
  EXPECT_GE(double(r->prefill_tokens) + r->hit_rate * double(prompt), 0.999 * double(prompt));
  EXPECT_GT(r->ttft_ms.p50, 16.0);  // at least one prefill step (16.5 ms base)
  EXPECT_LE(r->ttft_ms.p50, r->ttft_ms.p99);
  EXPECT_GT(r->throughput_tok_s, 0);
}

TEST(Simulator, DeterministicForASeed) {
  Workload w = Chat(200, 6);
  auto a = RunPolicy(w, SmallFleet(), "kvrouter", nullptr);
  auto b = RunPolicy(w, SmallFleet(), "kvrouter", nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->ttft_samples_ms, b->ttft_samples_ms);
  EXPECT_EQ(a->prefill_tokens, b->prefill_tokens);
  auto c = RunPolicy(w, SmallFleet(), "random", nullptr);
  SimConfig other = SmallFleet();
  other.seed = 99;
  auto d = RunPolicy(w, other, "random", nullptr);
  ASSERT_TRUE(c.ok() && d.ok());
  EXPECT_NE(c->ttft_samples_ms, d->ttft_samples_ms);
}

TEST(Simulator, CacheAwareRoutingBeatsRoundRobinOnMultiTurnChat) {
  Workload w = Chat(600, 8);
  auto hashes = HashWorkload(w, 64);
  auto rr = RunPolicy(w, SmallFleet(), "round_robin", &hashes);
  auto kv = RunPolicy(w, SmallFleet(), "kvrouter", &hashes);
  ASSERT_TRUE(rr.ok() && kv.ok());
  EXPECT_GT(kv->hit_rate, rr->hit_rate + 0.2);
  EXPECT_LT(kv->prefill_tokens, rr->prefill_tokens);
  EXPECT_LT(kv->ttft_ms.mean, rr->ttft_ms.mean);
}

TEST(Simulator, EventsReachTheIndexOnlyAfterTheirDelay) {
  // With prediction off, kvrouter's overlap comes only from engine events: delayed past the
  // end of the run, it is a pure load balancer and loses most of its hits.
  Workload w = Chat(300, 4);
  SimConfig late = SmallFleet();
  late.event_delay = 1000 * kNsPerSec;
  late.scheduler.predict_on_route = false;
  SimConfig timely = SmallFleet();
  timely.scheduler.predict_on_route = false;
  auto a = RunPolicy(w, late, "kvrouter", nullptr);
  auto b = RunPolicy(w, timely, "kvrouter", nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_GT(b->hit_rate, a->hit_rate + 0.05);
}

TEST(Simulator, RejectsBadConfig) {
  Workload w = Chat(10, 1);
  SimConfig c = SmallFleet();
  EXPECT_FALSE(RunPolicy(w, c, "nope", nullptr).ok());
  c.speeds = {1.0, 0.0};
  EXPECT_FALSE(RunPolicy(w, c, "kvrouter", nullptr).ok());
  c = SmallFleet();
  c.workers = 0;
  EXPECT_FALSE(RunPolicy(w, c, "kvrouter", nullptr).ok());
}

// Past saturation Dynamo holds requests at the router (its router queue) and routes them in
// arrival order as prefills finish, kvrouter shortest first; every request still completes.
TEST(Simulator, RouterQueuesHoldRequestsPastSaturation) {
  Workload w = *GenerateWorkload("rag", {.seed = 5, .requests = 200, .rate_per_s = 200});
  for (const char* policy : {"dynamo", "kvrouter"}) {
    auto held = RunPolicy(w, SmallFleet(), policy, nullptr);
    const std::string off_spec =
        std::string(policy) +
        (policy == std::string("dynamo") ? "[dynamo_queue_threshold=0]" : "[queue_threshold=0]");
    auto off = RunPolicy(w, SmallFleet(), off_spec, nullptr);
    ASSERT_TRUE(held.ok() && off.ok()) << held.status();
    EXPECT_EQ(held->requests, 200u) << policy;
    EXPECT_EQ(Extra(*held, "rejected"), 0) << policy;
    EXPECT_GT(Extra(*held, "held at the router"), 0) << policy;
    EXPECT_EQ(Extra(*off, "held at the router"), 0) << policy;
    EXPECT_NE(held->ttft_samples_ms, off->ttft_samples_ms) << policy;
  }
}

// The report splits the prefill a policy could have skipped: a conversation's history cached
// on another engine than the one chosen, or on none any more.
TEST(Simulator, ReportsPrefixesCachedElsewhereAndNowhere) {
  Workload w = Chat(300, 4);
  auto rr = RunPolicy(w, SmallFleet(), "round_robin", nullptr);
  auto kv = RunPolicy(w, SmallFleet(), "kvrouter", nullptr);
  SimConfig small = SmallFleet();
  small.engine.num_blocks = 512;
  auto tight = RunPolicy(w, small, "kvrouter", nullptr);
  ASSERT_TRUE(rr.ok() && kv.ok() && tight.ok());
  EXPECT_GT(Extra(*rr, "prefix cached elsewhere"), 10 * Extra(*kv, "prefix cached elsewhere"));
  EXPECT_GT(Extra(*tight, "prefix cached nowhere"), 2 * Extra(*kv, "prefix cached nowhere"));
  // Neither can exceed what was computed.
  for (const auto* r : {&*rr, &*kv, &*tight}) {
    EXPECT_LE(Extra(*r, "prefix cached elsewhere") + Extra(*r, "prefix cached nowhere"),
              double(r->prefill_tokens));
  }
}

TEST(Simulator, RecordsEveryRequestWhenAsked) {
  Workload w = Chat(300, 4);
  SimConfig c = SmallFleet();
  c.engine.num_blocks = 512;  // evictions: some prefix is cached nowhere
  auto off = RunPolicy(w, c, "round_robin", nullptr);
  c.record_requests = true;
  auto on = RunPolicy(w, c, "round_robin", nullptr);
  ASSERT_TRUE(off.ok() && on.ok());
  EXPECT_TRUE(off->records.empty());
  ASSERT_EQ(on->records.size(), 300u);
  // Recording changes nothing, and the records add up to the report's figures.
  EXPECT_EQ(on->ttft_samples_ms, off->ttft_samples_ms);
  std::vector<bool> seen(300);
  std::vector<uint32_t> per_worker(c.workers);
  double ttft_ms = 0;
  uint64_t prompt = 0, cached = 0, nowhere = 0, elsewhere = 0;
  for (const RequestRecord& rec : on->records) {
    const RequestOutcome& r = rec.outcome;
    ASSERT_LT(rec.id, 300u);
    EXPECT_FALSE(seen[rec.id]);
    seen[rec.id] = true;
    EXPECT_EQ(r.arrival, w.requests[rec.id].arrival);
    EXPECT_EQ(r.prompt_tokens, w.requests[rec.id].prompt.size());
    EXPECT_EQ(r.output_tokens, w.requests[rec.id].output_tokens);
    EXPECT_LE(r.arrival, rec.dispatched);
    EXPECT_LT(rec.dispatched, r.first_token);
    EXPECT_LE(r.first_token, r.finish);
    ASSERT_LT(rec.worker, c.workers);
    ++per_worker[rec.worker];
    ttft_ms += double(r.first_token - r.arrival) / kNsPerMs;
    prompt += r.prompt_tokens;
    cached += r.cached_tokens;
    nowhere += rec.cached_nowhere_tokens;
    elsewhere += rec.cached_elsewhere_tokens;
  }
  EXPECT_NEAR(ttft_ms / 300, on->ttft_ms.mean, 1e-6);
  EXPECT_NEAR(double(cached) / double(prompt), on->hit_rate, 1e-9);
  EXPECT_GT(nowhere, 0u);
  EXPECT_EQ(double(nowhere), Extra(*on, "prefix cached nowhere"));
  EXPECT_EQ(double(elsewhere), Extra(*on, "prefix cached elsewhere"));
  for (uint32_t n : per_worker) EXPECT_EQ(n, 75u);  // round robin
}

TEST(Simulator, ExplainsEveryRecordedDecision) {
  Workload w = Chat(200, 4);
  SimConfig c = SmallFleet();
  c.record_requests = true;
  auto plain = RunPolicy(w, c, "kvrouter", nullptr);
  c.explain_requests = true;
  auto explained = RunPolicy(w, c, "kvrouter", nullptr);
  ASSERT_TRUE(plain.ok() && explained.ok());
  // Explaining changes no decision.
  EXPECT_EQ(explained->ttft_samples_ms, plain->ttft_samples_ms);
  EXPECT_TRUE(plain->term_names.empty());
  ASSERT_EQ(explained->term_names.size(), 12u);
  EXPECT_EQ(explained->term_names[0], "cached_tokens");
  ASSERT_EQ(explained->records.size(), 200u);
  size_t hits = 0;
  for (const RequestRecord& rec : explained->records) {
    ASSERT_EQ(rec.candidates.size(), c.workers);
    // The chosen engine is a candidate of least cost (kvrouter draws no samples).
    double least = rec.candidates.front().candidate.cost;
    for (const ExplainedCandidate& x : rec.candidates) least = std::min(least, x.candidate.cost);
    const auto chosen = std::find_if(rec.candidates.begin(), rec.candidates.end(),
                                     [&](const auto& x) { return x.worker.value() == rec.worker; });
    ASSERT_NE(chosen, rec.candidates.end());
    EXPECT_EQ(chosen->candidate.cost, least);
    // Its cached_tokens term is what the router took it to hold, at most the prompt.
    EXPECT_LE(chosen->candidate.terms[0], double(rec.outcome.prompt_tokens));
    hits += chosen->candidate.terms[0] > 0 ? 1 : 0;
  }
  EXPECT_GT(hits, 100u);  // chat: later turns find their history
}

TEST(Simulator, HeterogeneousSpeedsAndEngineMetrics) {
  Workload w = Chat(300, 6);
  SimConfig c = SmallFleet();
  c.speeds = {1.0, 0.5};
  c.metrics_interval = 100 * kNsPerMs;
  auto r = RunPolicy(w, c, "kvrouter", nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->requests, 300u);
}

// Every output token of a decoding request waits for its whole step, prefill chunks included.
TEST(Simulator, SplitsTheTimePerOutputTokenIntoDecodeAndPrefill) {
  SimConfig c = SmallFleet();
  c.workers = 1;
  c.speeds = {0.5};
  Workload w;
  SimRequest decoding{.arrival = 0, .prompt = std::vector<TokenId>(64, 7), .output_tokens = 200};
  w.requests.push_back(decoding);
  auto alone = RunPolicy(w, c, "round_robin", nullptr);
  ASSERT_TRUE(alone.ok());
  EXPECT_GT(Extra(*alone, "decode step ms/token"), 0);
  EXPECT_EQ(Extra(*alone, "of it prefill ms/token"), 0);  // nothing else prefilled meanwhile
  // A 4,000-token prompt arrives while it decodes: one of its steps carries that prefill, at
  // half speed.
  w.requests.push_back({.arrival = 100 * kNsPerMs, .prompt = std::vector<TokenId>(4000, 9)});
  SortAndNumber(w);
  auto shared = RunPolicy(w, c, "round_robin", nullptr);
  ASSERT_TRUE(shared.ok());
  const double prefill_ms = c.engine.perf.PrefillMs(4000) / 0.5;
  EXPECT_NEAR(Extra(*shared, "of it prefill ms/token"), prefill_ms / 199, 1e-9);
  EXPECT_NEAR(Extra(*shared, "decode step ms/token") - Extra(*shared, "of it prefill ms/token"),
              Extra(*alone, "decode step ms/token"), 0.2);
}

}  // namespace
}  // namespace kvr::sim
