#include "scheduler/policy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "scheduler/speed_classes.h"

namespace kvr {
namespace {

struct Fixture {
  std::vector<WorkerSpec> specs;
  std::vector<PrefillRateModel> rates;
  std::vector<WorkerView> views;
  explicit Fixture(size_t n, double rate = 10000) {
    for (size_t i = 0; i < n; ++i) {
      specs.push_back({.id = WorkerId(uint32_t(i)), .block_size = 16});
      rates.emplace_back(rate);
    }
    for (size_t i = 0; i < n; ++i) views.push_back({.spec = &specs[i], .rate = &rates[i]});
  }
  size_t Choose(std::string_view policy, const RequestInfo& req, PolicyOptions o = {},
                uint64_t seed = 1) {
    auto p = *MakePolicy(policy, o);
    return Choose(*p, req, seed);
  }
  // With a policy that lives across decisions (one that learns from them).
  size_t Choose(Policy& p, const RequestInfo& req, uint64_t seed = 1) {
    cands.assign(views.size(), {});
    for (size_t i = 0; i < views.size(); ++i) cands[i].worker = views[i].spec->id;
    Rng rng(seed);
    return p.Choose(req, views, cands, rng);
  }
  std::vector<Candidate> cands;
};

std::vector<BlockHash> Blocks(size_t n) {
  std::vector<BlockHash> b;
  for (size_t i = 0; i < n; ++i) b.emplace_back(i + 1);
  return b;
}

TEST(Policy, UnknownNameIsAnError) {
  auto p = MakePolicy("nope");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("kvrouter"), std::string::npos);
  for (const auto& n : PolicyNames()) EXPECT_TRUE(MakePolicy(n).ok()) << n;
}

TEST(Policy, DynamoDocumentedExamplePicksTheSecond) {
  // Dynamo's router docs: costs (8+10)=18, (5+5)=10, (2+9)=11 → the second worker.
  Fixture f(3);
  auto blocks = Blocks(10);
  RequestInfo req{blocks, 160, 16};
  f.views[0].device = 2;  // prefill (160 − 32)/16 = 8
  f.views[0].active_blocks = 10;
  f.views[0].active_overlap = 10;  // decode 10 + (10 − 10) = 10
  f.views[1].device = 5;           // prefill 5
  f.views[1].active_blocks = 5;
  f.views[1].active_overlap = 10;  // decode 5
  f.views[2].device = 8;           // prefill 2
  f.views[2].active_blocks = 9;
  f.views[2].active_overlap = 10;  // decode 9
  EXPECT_EQ(f.Choose("dynamo", req), 1u);
  EXPECT_DOUBLE_EQ(f.cands[0].cost, 18);
  EXPECT_DOUBLE_EQ(f.cands[1].cost, 10);
  EXPECT_DOUBLE_EQ(f.cands[2].cost, 11);
}

TEST(Policy, DynamoCountsQueuedPrefillAndTieBreaksOnSmallerTree) {
  Fixture f(2);
  auto blocks = Blocks(4);
  RequestInfo req{blocks, 64, 16};
  f.views[0].booked_prefill_tokens = 32;  // +2 blocks
  f.views[1].active_blocks = 2;           // +2 decode blocks: equal cost 8
  f.views[0].cached_blocks = 100;
  f.views[1].cached_blocks = 5;
  EXPECT_EQ(f.Choose("dynamo", req), 1u);
  f.views[1].cached_blocks = 500;
  EXPECT_EQ(f.Choose("dynamo", req), 0u);
}

TEST(Policy, LeastLoadedAndTieBreakOnRunning) {
  Fixture f(3);
  RequestInfo req{{}, 100, 16};
  f.views[0].booked_prefill_tokens = 50;
  f.views[1].booked_prefill_tokens = 10;
  f.views[2].booked_prefill_tokens = 10;
  f.views[1].running = 4;
  f.views[2].running = 2;
  EXPECT_EQ(f.Choose("least_loaded", req), 2u);
}

TEST(Policy, RoundRobinCyclesAndRandomIsSeeded) {
  Fixture f(3);
  RequestInfo req{{}, 10, 16};
  auto p = *MakePolicy("round_robin");
  std::vector<Candidate> c(3);
  Rng rng(1);
  EXPECT_EQ(p->Choose(req, f.views, c, rng), 0u);
  EXPECT_EQ(p->Choose(req, f.views, c, rng), 1u);
  EXPECT_EQ(p->Choose(req, f.views, c, rng), 2u);
  EXPECT_EQ(p->Choose(req, f.views, c, rng), 0u);
  EXPECT_EQ(f.Choose("random", req, {}, 9), f.Choose("random", req, {}, 9));
}

TEST(Policy, PowerOfTwoPicksTheLessBusyOfTwo) {
  Fixture f(2);
  RequestInfo req{{}, 10, 16};
  f.views[0].running = 9;
  f.views[1].running = 1;
  for (uint64_t seed = 1; seed < 20; ++seed) EXPECT_EQ(f.Choose("p2c", req, {}, seed), 1u);
}

TEST(Policy, SglangThresholdsAndImbalance) {
  Fixture f(3);
  auto blocks = Blocks(10);
  RequestInfo req{blocks, 160, 16};
  f.views[0].approx = 5;  // match 0.5 > 0.3
  f.views[0].running = 10;
  f.views[1].running = 3;
  f.views[2].running = 4;
  EXPECT_EQ(f.Choose("sglang", req), 0u);
  f.views[0].approx = 4;  // 0.4: still a hit
  EXPECT_EQ(f.Choose("sglang", req), 0u);
  f.views[0].approx = 3;  // 0.3 is not > 0.3: least loaded
  EXPECT_EQ(f.Choose("sglang", req), 1u);
  f.views[0].approx = 10;
  f.views[0].running = 100;  // 100 − 3 > 64 and 100 > 1.5·3: imbalanced → least loaded
  EXPECT_EQ(f.Choose("sglang", req), 1u);
}

// The event-driven mode: any confirmed overlap wins (no match-rate threshold); equal overlaps go
// to the lower load, then the smaller cache; none anywhere, or an imbalanced pool: least loaded.
TEST(Policy, SglangEventsFollowsTheLongestConfirmedPrefix) {
  Fixture f(3);
  auto blocks = Blocks(10);
  RequestInfo req{blocks, 160, 16};
  f.views[0].running = 5;
  f.views[1].running = 3;
  f.views[2].running = 4;
  EXPECT_EQ(f.Choose("sglang_events", req), 1u);  // nothing held: least loaded
  f.views[2].device = 1;                          // one block of ten: still followed
  EXPECT_EQ(f.Choose("sglang_events", req), 2u);
  f.views[0].device = 1;
  f.views[0].running = 4;  // equal overlap and load: the smaller cache
  f.views[0].cached_blocks = 100;
  f.views[2].cached_blocks = 200;
  EXPECT_EQ(f.Choose("sglang_events", req), 0u);
  f.views[2].running = 3;  // equal overlap: the lower load first
  EXPECT_EQ(f.Choose("sglang_events", req), 2u);
  f.views[2].running = 100;  // 100 − 3 > 64 and 100 > 1.5·3: imbalanced → least loaded
  EXPECT_EQ(f.Choose("sglang_events", req), 1u);
}

// llm-d's default prefix producer learns from its own routing: a prompt routed to a worker
// counts there at once (in flight or predicted), before any engine event confirms it.
TEST(Policy, LlmdCountsWhatItRoutedBeforeTheEngineConfirmsIt) {
  Fixture f(3);
  auto blocks = Blocks(10);
  RequestInfo req{blocks, 160, 16};
  f.views[0].active_overlap = 10;  // the first request of this prompt, still prefilling
  f.views[0].booked_prefill_tokens = 160;
  f.views[1].predicted = 9;  // routed here a moment ago, predicted on route
  f.views[1].booked_prefill_tokens = 200;
  for (const char* policy : {"llmd_optimized", "llmd_weighted"}) {
    EXPECT_EQ(f.Choose(policy, req), 0u) << policy;  // the whole prompt, and less load
  }
  auto spec = ParsePolicySpec("llmd_optimized[llmd_routing_history=0]");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(f.Choose(spec->name, req, spec->options), 2u);  // nothing confirmed: least load
}

TEST(Policy, LlmdAffinityFilterAndGate) {
  Fixture f(3);
  auto blocks = Blocks(10);
  RequestInfo req{blocks, 160, 16};
  f.views[0].device = 8;  // 0.8 hit ratio: sticky
  f.views[0].booked_prefill_tokens = 100000;
  f.views[1].device = 2;
  f.views[2].booked_prefill_tokens = 50;
  EXPECT_EQ(f.Choose("llmd_optimized", req), 0u);  // only the sticky worker is eligible
  // Its estimated TTFT exceeds the best non-sticky one by > 18 s: everyone is eligible.
  f.views[0].booked_prefill_tokens = uint64_t(19 * 15928);
  EXPECT_EQ(f.Choose("llmd_optimized", req), 1u);
  // The gate is an option too (it was not settable before).
  auto spec = ParsePolicySpec("llmd[llmd_gate_s=20]");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(f.Choose(spec->name, req, spec->options), 0u);
}

TEST(Policy, LlmdTokenLoadCountsThisRequestsUncachedTokens) {
  Fixture f(2);
  auto blocks = Blocks(10);
  RequestInfo req{blocks, 160, 16};
  // No worker reaches the 0.8 affinity threshold, so the token-load scorer decides alone.
  f.views[0].device = 5;  // 80 of 160 tokens cached
  f.views[0].booked_prefill_tokens = 100;
  f.views[1].booked_prefill_tokens = 50;
  // Committed load alone would pick worker 1 (50 < 100); with this request's uncached tokens
  // worker 0 carries 100 + 80 = 180 < 50 + 160 = 210.
  EXPECT_EQ(f.Choose("llmd_optimized", req), 0u);
  EXPECT_DOUBLE_EQ(f.cands[0].terms[2], 180);
  EXPECT_DOUBLE_EQ(f.cands[1].terms[2], 210);
  // The TTFT estimate reads committed work only.
  EXPECT_DOUBLE_EQ(f.cands[0].terms[1], 100 / 15928.0);
}

TEST(Policy, LlmdWeightedSumsQueueKvAndPrefixScores) {
  Fixture f(3);
  auto blocks = Blocks(10);
  RequestInfo req{blocks, 160, 16};
  for (auto& v : f.views) v.metrics.valid = true;
  f.views[0].device = 10;             // full hit: prefix 3
  f.views[0].metrics.waiting = 4;     // the longest queue: queue 0
  f.views[0].metrics.kv_usage = 0.6;  // 3 + 0 + 0.8 = 3.8
  f.views[1].metrics.waiting = 0;     // queue 1, kv 1: 2 + 2 = 4
  f.views[2].metrics.waiting = 2;
  EXPECT_EQ(f.Choose("llmd_weighted", req), 1u);
  EXPECT_DOUBLE_EQ(f.cands[0].cost, -(2 * 0 + 2 * 0.4 + 3 * 1.0));
  EXPECT_DOUBLE_EQ(f.cands[2].cost, -(2 * 0.5 + 2 * 1.0));
  f.views[0].metrics.kv_usage = 0;  // 3 + 0 + 2 = 5 > 4
  EXPECT_EQ(f.Choose("llmd_weighted", req), 0u);
  // Without metrics every worker scores 1 on queue and KV: the prefix decides.
  for (auto& v : f.views) v.metrics.valid = false;
  f.views[0].metrics.kv_usage = 0.9;
  EXPECT_EQ(f.Choose("llmd_weighted", req), 0u);
  auto spec = ParsePolicySpec("llmd_weighted[llmd_prefix_weight=0,llmd_queue_weight=1]");
  ASSERT_TRUE(spec.ok());
  EXPECT_DOUBLE_EQ(spec->options.llmd_prefix_weight, 0);
  EXPECT_DOUBLE_EQ(spec->options.llmd_queue_weight, 1);
}

TEST(Policy, KvrouterTradesOverlapAgainstQueueInSeconds) {
  Fixture f(2, 10000);
  auto blocks = Blocks(100);
  RequestInfo req{blocks, 1600, 16};
  f.views[0].device = 100;                   // everything cached
  f.views[0].booked_prefill_tokens = 1000;   // but 1000 tokens queued
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);  // 1000 < 1600 uncached elsewhere
  f.views[0].booked_prefill_tokens = 5000;
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);      // hot worker saturated: spread
  EXPECT_NEAR(f.cands[1].terms[5], 0.16, 1e-6);  // ttft_s = 1600 / 10000
}

TEST(Policy, KvrouterPrefersTheFasterEngine) {
  Fixture f(2, 10000);
  f.rates[1] = PrefillRateModel(20000);
  RequestInfo req{{}, 4000, 16};
  f.views[1].booked_prefill_tokens = 3000;  // 7000/20000 = 0.35 s < 4000/10000 = 0.4 s
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
}

TEST(Policy, KvrouterCountsInFlightPromptsAsSoonCached) {
  Fixture f(2, 10000);
  auto blocks = Blocks(100);
  RequestInfo req{blocks, 1600, 16};
  // A sibling with the same prompt is still queued on worker 0 (its prediction expired, its
  // blocks not yet stored): 1000 tokens ahead, then a hit.
  f.views[0].active_overlap = 100;
  f.views[0].booked_prefill_tokens = 1000;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_DOUBLE_EQ(f.cands[0].booked_uncached, 1);  // books what the engine will compute
  EXPECT_EQ(f.Choose("kvrouter", req, {.inflight_overlap = false}), 1u);
}

TEST(Policy, KvrouterWorkWeightFollowsTheQueuedRequestsAndTheBacklog) {
  Fixture f(2, 10000);
  auto blocks = Blocks(100);
  RequestInfo req{blocks, 1600, 16};
  f.views[0].device = 50;                   // 800 tokens to compute here, 1600 there
  f.views[0].booked_prefill_tokens = 3000;  // ttft 0.38 s vs 0.16 s
  // Idle fleet: weight 1, costs 0.38 + 0.08 > 0.16 + 0.16: the shorter TTFT wins.
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  // Two requests waiting per worker: weight 1 + 4·2 = 9, 0.38 + 0.72 < 0.16 + 1.44: saving
  // 800 tokens of prefill is worth 0.22 s of this request's TTFT.
  for (WorkerView& v : f.views) v.prefilling = 2;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_EQ(f.Choose("kvrouter", req, {.load_work_weight = 0}), 1u);

  // Past saturation the weight per waiting request is backlog_work_weight instead.
  f.views[0].booked_prefill_tokens = 4000;  // ttft 0.48 s vs 0.16 s
  f.views[0].prefilling = 1;                // half a request waiting per worker
  f.views[1].prefilling = 0;
  // Weight 1 + 4·0.5 = 3: 0.48 + 0.24 > 0.16 + 0.48, the shorter TTFT wins.
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  // Requests waited at the router 30 s ago (within lifetime_backlog_s): weight 1 + 16·0.5 = 9,
  // 0.48 + 0.72 < 0.16 + 1.44: the cached prefix wins.
  req.backlog_age_s = 30;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_EQ(f.Choose("kvrouter", req, {.backlog_work_weight = 4}), 1u);
  EXPECT_EQ(f.Choose("kvrouter", req, {.lifetime_backlog_s = 20}), 1u);  // the window has passed
}

TEST(Policy, KvrouterWorkWeightIsHeavierOnSeveralSpeedClasses) {
  Fixture f(4, 20000);
  f.rates[2] = f.rates[3] = PrefillRateModel(10000);  // two speed classes
  auto blocks = Blocks(100);
  RequestInfo req{blocks, 1600, 16};
  f.views[2].device = 50;                   // a half-speed engine holds half the prompt
  f.views[2].booked_prefill_tokens = 2000;  // ttft 0.28 s, against 0.08 s on a fast idle one
  f.views[2].prefilling = 1;                // a quarter of a request waiting per worker
  f.views[1].booked_prefill_tokens = 100;   // of the fast engines, worker 0 is the idle one
  // At the mean rate of 15,000 tokens/s, weight 1 + 16·0.25 = 5: 0.28 + 0.27 < 0.08 + 0.53,
  // the cached prefix wins; with one class's weight, 1 + 4·0.25 = 2, the faster TTFT does.
  EXPECT_EQ(f.Choose("kvrouter", req), 2u);
  EXPECT_EQ(f.Choose("kvrouter", req, {.classes_work_weight = 4}), 0u);
  EXPECT_EQ(f.Choose("kvrouter", req, {.calibrate_classes = 0}), 0u);  // one class
}

TEST(Policy, KvrouterChargesTheRunningDecodesForPrefill) {
  Fixture f(4, 20000);
  f.rates[2] = f.rates[3] = PrefillRateModel(10000);  // two speed classes
  RequestInfo req{{}, 1600, 16};
  for (size_t i : {0, 1, 3}) {
    f.views[i].booked_prefill_tokens = 4000;  // ttft 0.28 s on the fast ones, 0.56 s on 3
    f.views[i].prefilling = f.views[i].running = 1;
  }
  // The idle half-speed engine has the shortest TTFT (0.16 s)...
  EXPECT_EQ(f.Choose("kvrouter", req), 2u);
  // ...until 40 requests decode there: 0.16 s of prefill delays each of them, and at weight 0.03
  // the cost is 0.16 + 0.03·40·0.16 = 0.35 s > 0.28 s.
  f.views[2].running = 40;
  // On two speed classes the weight is 0.03 + 0.17 / (1 + 3/4 requests prefilling per worker).
  EXPECT_LT(f.Choose("kvrouter", req), 2u);
  EXPECT_DOUBLE_EQ(f.cands[2].terms[9], (0.03 + 0.17 / 1.75) * 40 * 0.16);
  EXPECT_EQ(f.Choose("kvrouter", req, {.decode_weight = 0, .classes_decode_weight = 0}), 2u);
  f.views[2].running = 12;  // 0.16 + 0.127·12·0.16 = 0.40 s > 0.28 s; one class's 0.03: 0.22 s
  EXPECT_LT(f.Choose("kvrouter", req), 2u);
  EXPECT_EQ(f.Choose("kvrouter", req, {.classes_decode_weight = 0.03}), 2u);
  EXPECT_EQ(f.Choose("kvrouter", req, {.calibrate_classes = 0}), 2u);
  f.views[2].running = 40;
  req.backlog_age_s = 30;  // requests waited at the router 30 s ago: no term
  EXPECT_EQ(f.Choose("kvrouter", req), 2u);
}

TEST(Policy, KvrouterChargesTheRunningDecodesOnEqualEnginesToo) {
  Fixture f(2, 20000);
  RequestInfo req{{}, 2000, 16};
  f.views[0].running = 30;                 // decoding, nothing booked: ttft 0.10 s
  f.views[1].booked_prefill_tokens = 200;  // one small prefill ahead: ttft 0.11 s
  f.views[1].prefilling = f.views[1].running = 1;
  // 30 decodes would wait 0.10 s each: 0.10 + 0.03·30·0.10 = 0.19 s > 0.11 s.
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  EXPECT_DOUBLE_EQ(f.cands[0].terms[9], 0.03 * 30 * 0.1);
  EXPECT_EQ(f.Choose("kvrouter", req, {.decode_weight = 0}), 0u);
}

TEST(Policy, KvrouterCalibrationIgnoresFitNoiseBetweenEqualEngines) {
  Fixture f(3, 10000);
  f.rates[2] = PrefillRateModel(11000);  // a 10% faster fit: noise on equal engines
  RequestInfo req{{}, 1600, 16};
  f.views[2].booked_prefill_tokens = 100;
  EXPECT_EQ(f.Choose("kvrouter", req, {.calibrate_tolerance = 0}), 2u);  // 0.155 s < 0.16 s
  EXPECT_NE(f.Choose("kvrouter", req), 2u);  // all at the median: the idle ones win
  f.rates[2] = PrefillRateModel(20000);      // a real difference is kept
  f.views[2].booked_prefill_tokens = 1000;   // 0.13 s < 0.16 s
  EXPECT_EQ(f.Choose("kvrouter", req), 2u);
}

// A fit of `rate` tokens per second from `samples` observations of varied sizes.
PrefillRateModel Fitted(double rate, int samples) {
  PrefillRateModel m(20000);
  for (int i = 0; i < samples; ++i) {
    const double tokens = 1000.0 * (1 + i % 8);
    m.Observe(tokens, 0.01 + tokens / rate);
  }
  return m;
}

// hit_delay_w: each hit the cache draws while the prefill runs waits for it, at most c (half
// of recomputing its 2,000 tokens: 0.1 s at 10,000 tokens/s); a queue already ahead is time
// the hits wait anyway, and past c they would recompute elsewhere.
TEST(Policy, KvrouterChargesTheDelayAPrefillAddsToTheHitsItsCacheDraws) {
  Fixture f(3);
  for (WorkerView& v : f.views) v.hit_tokens = 2000;
  f.views[0].hit_rate = 2;  // idle
  f.views[1].hit_rate = 2;  // 0.05 s queued: below c
  f.views[1].booked_prefill_tokens = 500;
  f.views[1].running = f.views[1].prefilling = 1;
  f.views[2].hit_rate = 0.5;  // idle, a cache asked for less
  const auto blocks = Blocks(10);
  const RequestInfo req{.blocks = blocks, .prompt_tokens = 3000, .block_size = 16};  // 0.3 s
  const auto F = [](double x) { return x <= 0.1 ? x * x / 2 : 0.005 + 0.1 * (x - 0.1); };
  EXPECT_EQ(f.Choose("kvrouter", req), 2u);
  EXPECT_NEAR(f.cands[0].terms[11], 2 * F(0.3), 1e-12);
  EXPECT_NEAR(f.cands[1].terms[11], 2 * (F(0.35) - F(0.05)), 1e-12);
  EXPECT_NEAR(f.cands[2].terms[11], 0.5 * F(0.3), 1e-12);
  // A prefill shorter than c delays each hit by its length at most.
  const RequestInfo small{.blocks = blocks, .prompt_tokens = 500, .block_size = 16};  // 0.05 s
  f.Choose("kvrouter", small);
  EXPECT_NEAR(f.cands[0].terms[11], 2 * 0.05 * 0.05 / 2, 1e-12);
  f.Choose("kvrouter", req, {.hit_delay_weight = 0});
  for (const Candidate& c : f.cands) EXPECT_EQ(c.terms[11], 0.0);
}

TEST(Policy, KvrouterChargesWhatATimeToFirstTokenHasBeyondTheRecentTail) {
  // Two equal engines with settled fits of 20,000 tokens/s (and 10 ms of overhead).
  Fixture f(2);
  for (PrefillRateModel& r : f.rates) r = Fitted(20000, 40);
  const std::vector<BlockHash> blocks = Blocks(1250);  // 20,000 tokens
  const RequestInfo small{{}, 2000, 16};
  // A prompt held on worker 0 but for 1,008 tokens, behind 30,000 tokens of prefill there:
  // 1.56 s to its first token, against 1.01 s to compute it all on idle worker 1, whose
  // recomputation costs the fleet 1.0 s more (work_weight). Alone, the holder is cheaper.
  RequestInfo held{blocks, 20000, 16};
  auto place = [&](Policy& p) {
    f.views[0].device = 1187;
    f.views[0].booked_prefill_tokens = 30000;
    const size_t chosen = f.Choose(p, held);
    f.views[0].device = 0;
    f.views[0].booked_prefill_tokens = 0;
    return chosen;
  };
  auto p = *MakePolicy("kvrouter");
  RequestInfo dry = small;
  dry.dry_run = true;
  for (int i = 0; i < 200; ++i) f.Choose(*p, dry);   // dry runs are not measured
  for (int i = 0; i < 99; ++i) f.Choose(*p, small);  // 0.11 s at best, every time
  EXPECT_EQ(place(*p), 0u);                        // 99 decisions: no tail measured yet
  EXPECT_EQ(f.cands[0].terms[10], 0);
  // From 100 on, the 97th percentile of the soonest TTFTs is 0.11 s: beyond it each worker is
  // charged its TTFT's excess again (1.45 s and 0.90 s), and the request goes to the idle one.
  for (int i = 0; i < 100; ++i) f.Choose(*p, small);
  EXPECT_EQ(place(*p), 1u);
  EXPECT_NEAR(f.cands[0].terms[10], 0.01 + 31008.0 / 20000 - 0.11, 1e-3);
  EXPECT_NEAR(f.cands[1].terms[10], 0.01 + 20000.0 / 20000 - 0.11, 1e-3);
  // Not within a router backlog's window, nor before every fit has settled.
  held.backlog_age_s = 1;
  EXPECT_EQ(place(*p), 0u);
  held.backlog_age_s = std::numeric_limits<double>::infinity();
  f.rates[1] = Fitted(20000, 20);
  EXPECT_EQ(place(*p), 0u);
  f.rates[1] = Fitted(20000, 40);
  EXPECT_EQ(place(*p), 1u);
  auto off = *MakePolicy("kvrouter", {.tail_weight = 0});
  for (int i = 0; i < 200; ++i) f.Choose(*off, small);
  EXPECT_EQ(place(*off), 0u);
}

TEST(Policy, KvrouterCalibratesEachSpeedClassToItsOwnMedian) {
  // Four full-speed engines and four at half speed, one fit of each a little off.
  const double fits[] = {52000, 50000, 50000, 44000, 31000, 26000, 25000, 25000};
  Fixture f(8);
  for (size_t i = 0; i < 8; ++i) f.rates[i] = Fitted(fits[i], 40);
  RequestInfo req{{}, 1600, 16};
  auto rate_of = [&](size_t i) { return f.cands[i].terms[3]; };
  // The fleet median (37,500) lies between the classes, and both near fits were given it: the
  // half-speed engine fitted at 31,000 was costed at 37,500, the full-speed one at 44,000 too.
  f.Choose("kvrouter", req, {.calibrate_classes = 0});
  EXPECT_NEAR(rate_of(3), 37500, 1);
  EXPECT_NEAR(rate_of(4), 37500, 1);
  EXPECT_NEAR(rate_of(0), 52000, 1);  // out of the tolerance: its own fit
  // Two classes, each at its own median.
  f.Choose("kvrouter", req);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(rate_of(i), 50000, 1) << i;
  for (size_t i = 4; i < 8; ++i) EXPECT_NEAR(rate_of(i), 25500, 1) << i;
  // Fits not yet settled are one class, as are equal engines whatever their spread...
  for (size_t i = 0; i < 8; ++i) f.rates[i] = Fitted(fits[i], 20);
  f.Choose("kvrouter", req);
  EXPECT_NEAR(rate_of(4), 37500, 1);
  // (configured rates, before any sample, are not noise: two classes)
  for (size_t i = 0; i < 8; ++i) f.rates[i] = PrefillRateModel(fits[i]);
  f.Choose("kvrouter", req);
  EXPECT_NEAR(rate_of(3), 50000, 1);
  EXPECT_NEAR(rate_of(4), 25500, 1);
  // ... and a single outlying fit is not a class: it keeps its own fit.
  const double equal[] = {50000, 50000, 48000, 52000, 51000, 49000, 50000, 80000};
  for (size_t i = 0; i < 8; ++i) f.rates[i] = Fitted(equal[i], 40);
  f.Choose("kvrouter", req);
  for (size_t i = 0; i < 7; ++i) EXPECT_NEAR(rate_of(i), 50000, 1) << i;
  EXPECT_NEAR(rate_of(7), 80000, 1);
}

TEST(Policy, KvrouterCreditsAnIdleEngineItsDecodeSteps) {
  Fixture f(2, 10000);
  auto blocks = Blocks(100);
  RequestInfo req{blocks, 1600, 16};
  f.views[0].device = 4;   // a shared system prompt: 64 tokens cached
  f.views[0].running = 2;  // its prefill will share steps with two decoding answers
  for (WorkerView& v : f.views) v.decode_step_s = 0.02;
  // 0.1536 + 0.1536 against 0.16 − 0.02 (one 8192-token step) + 0.16: the idle engine.
  EXPECT_EQ(f.Choose("kvrouter", req, {.step_in_flight = 0}), 1u);
  EXPECT_NEAR(f.cands[1].terms[5], 0.14, 1e-9);
  EXPECT_EQ(f.Choose("kvrouter", req, {.idle_decode_weight = 0, .step_in_flight = 0}), 0u);
  f.views[1].running = 1;  // neither is idle: the cached blocks decide
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  f.views[1].running = 0;
  for (WorkerView& v : f.views) v.decode_step_s = 0;  // no answer observed yet: no credit
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
}

TEST(Policy, KvrouterCreditsAnIdleEngineTheStepInFlightUnlessThePrefixIsHot) {
  Fixture f(2, 10000);
  auto blocks = Blocks(100);
  RequestInfo req{blocks, 1600, 16};
  f.views[0].device = 8;  // 128 tokens cached on a busy engine
  f.views[0].running = 1;
  for (WorkerView& v : f.views) v.decode_step_s = 0.02;
  // Busy holder: 0.1472 + 0.1472 = 0.2944. Idle: 0.16 − (1 step + half the step in flight) ·
  // 0.02 + 0.16 = 0.29; without the half step 0.30.
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  EXPECT_NEAR(f.cands[1].terms[5], 0.13, 1e-9);
  EXPECT_EQ(f.Choose("kvrouter", req, {.step_in_flight = 0}), 0u);
  // The prefix is hot (55% of recent requests on two workers; too few to copy, at most 1.4 ×
  // its holder's 50%): its placement is the copy rule's, and the half step is not credited.
  req.fleet_prefix_blocks = 8;
  req.fleet_prefix_share = 0.55;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_NEAR(f.cands[1].terms[5], 0.14, 1e-9);
  req.fleet_prefix_share = 0.5;  // one worker's fair share: not hot
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
}

TEST(Policy, KvrouterCopiesAPrefixItsHoldersCannotServeAtAFairShare) {
  Fixture f(2, 10000);
  auto blocks = Blocks(100);
  RequestInfo req{blocks, 1600, 16};
  req.fleet_prefix_blocks = 80;  // a 1,280-token system prompt, held by worker 0 only
  req.fleet_prefix_share = 0.8;  // 80% of recent requests, against its holder's 50% of the fleet
  f.views[0].device = 80;
  f.views[0].running = 2;
  for (WorkerView& v : f.views) v.decode_step_s = 0.02;
  // Holder: 0.032 + 0.032. Worker 1 costed as holding it: 0.032 − 0.02 (idle) + 0.032.
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  EXPECT_EQ(f.cands[1].terms[1], 320);
  EXPECT_EQ(f.cands[1].terms[7], 80);           // copy_blocks
  EXPECT_EQ(f.cands[1].booked_uncached, 1600);  // it books what it will compute
  EXPECT_EQ(f.cands[0].terms[7], 0);
  // The holder idle as well: the costs tie, and the holder goes first (a copy must gain).
  f.views[0].running = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) EXPECT_EQ(f.Choose("kvrouter", req, {}, seed), 0u);
  f.views[0].running = 2;
  // Under 1.4 × its holders' share: no copy (worker 1 would recompute 1,280 tokens).
  req.fleet_prefix_share = 0.65;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  req.fleet_prefix_share = 0.8;
  EXPECT_EQ(f.Choose("kvrouter", req, {.replicate_share = 0}), 0u);
  // Held by both (worker 1 by prediction): nothing to copy, the idle holder is chosen as ever.
  f.views[1].predicted = 80;
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  EXPECT_EQ(f.cands[1].booked_uncached, 320);
}

TEST(Policy, KvrouterPlacesFreshContentWhereTheCacheTurnsOverSlowest) {
  Fixture f(2, 10000);
  auto blocks = Blocks(100);
  RequestInfo req{blocks, 1600, 16};
  // Worker 0 took 75% of the recently booked new tokens (mean 800 per request), worker 1 25%:
  // turnover 1.5 and 0.5 of the mean; 2 · min(1600, 800) / 10000 = 0.16 s · (±0.5).
  f.views[0].inflow_share = 0.75;
  f.views[1].inflow_share = 0.25;
  for (WorkerView& v : f.views) v.inflow_mean_tokens = 800;
  f.views[1].booked_prefill_tokens = 1000;  // ttft 0.26 s against 0.16 s
  // 0.16 + 0.16 + 0.08 against 0.26 + 0.16 − 0.08: the slower-turning cache.
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  EXPECT_NEAR(f.cands[0].terms[6], 0.08, 1e-9);
  EXPECT_NEAR(f.cands[1].terms[6], -0.08, 1e-9);
  EXPECT_EQ(f.Choose("kvrouter", req, {.turnover_weight = 0}), 0u);
  // No cache is full and the prompt is fresh: placed all the same...
  f.views[0].cached_blocks = f.specs[0].kv_capacity_blocks * 89 / 100;
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  // ... but not when only full caches count.
  EXPECT_EQ(f.Choose("kvrouter", req, {.turnover_cached = 0}), 0u);
  EXPECT_EQ(f.cands[0].terms[6], 0.0);
  // 60% of the prompt cached on worker 1 (a conversation's history): the term waits for a cache
  // to fill (90%, the default turnover_fill).
  f.views[1].device = 60;
  f.views[1].booked_prefill_tokens = 0;
  f.views[0].inflow_share = 0.25;
  f.views[1].inflow_share = 0.75;
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  EXPECT_EQ(f.cands[0].terms[6], 0.0);
  f.views[0].cached_blocks = f.specs[0].kv_capacity_blocks - f.specs[0].kv_capacity_blocks / 10;
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  EXPECT_NEAR(f.cands[1].terms[6], 0.064, 1e-9);  // 2 · 640 new / 10000 · 0.5
  f.views[1].device = 0;
  f.views[1].booked_prefill_tokens = 1000;
  f.views[0].inflow_share = 0.75;
  f.views[1].inflow_share = 0.25;
  // Only content new to the fleet is priced: a prompt cached on worker 0 but for its last 64
  // tokens is charged ±2 · 64 / 10000 and stays with its prefix.
  f.views[0].device = 96;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_NEAR(f.cands[1].terms[6], -0.0064, 1e-9);
  // No booking seen yet: no term.
  for (WorkerView& v : f.views) v.inflow_mean_tokens = v.inflow_share = 0;
  f.views[0].device = 0;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_EQ(f.cands[1].terms[6], 0.0);
}

// Four workers, two fast (0, 1) and two at half their rate (mean rate 15,000), loaded as the
// turnover cap's tests want them: the fast engines took 30% each of the recently booked new
// tokens (mean 800 per request), the slow ones 20%: turnover 1.2 and 0.8 of the mean; one
// request per worker waits for its first token, and each fast engine has 1,000 tokens booked
// (TTFT 0.21 s, against 0.32 s on an idle slow one).
void LoadForTurnoverCap(Fixture& f) {
  for (size_t i = 0; i < 4; ++i) {
    f.views[i].inflow_share = i < 2 ? 0.3 : 0.2;
    f.views[i].inflow_mean_tokens = 800;
    f.views[i].prefilling = 1;
  }
  f.views[0].booked_prefill_tokens = f.views[1].booked_prefill_tokens = 1000;
}
// The turnover charge of a 3,200-token prompt new to that fleet, on the fast engines: capped
// at 4 · 800 (wide) or at 800 (narrow), 2 · min(3200, k · 800) / 15000 · 0.2.
constexpr double kWideTurnover = 2.0 * 3200 / 15000 * 0.2,
                 kNarrowTurnover = 2.0 * 800 / 15000 * 0.2;

TEST(Policy, KvrouterCountsMoreOfALongNewPromptOnALoadedFleetOfSeveralSpeeds) {
  Fixture f(4, 20000);
  f.rates[2] = f.rates[3] = PrefillRateModel(10000);  // two speed classes
  auto blocks = Blocks(200);
  RequestInfo req{blocks, 3200, 16};  // new to the fleet
  LoadForTurnoverCap(f);
  // Loaded, on several classes: ±0.0853 s, and the slow engine's 0.32 − 0.0853 beats the fast
  // one's 0.21 + 0.0853.
  EXPECT_EQ(f.Choose("kvrouter", req), 2u);
  EXPECT_NEAR(f.cands[0].terms[6], kWideTurnover, 1e-9);
  EXPECT_NEAR(f.cands[2].terms[6], -kWideTurnover, 1e-9);
  // Capped at the mean new tokens, ±0.0213 s: the fast engine.
  EXPECT_EQ(f.Choose("kvrouter", req, {.classes_turnover_cap = 1}), 0u);
  EXPECT_NEAR(f.cands[0].terms[6], kNarrowTurnover, 1e-9);
  EXPECT_EQ(f.Choose("kvrouter", req, {.calibrate_classes = 0}), 0u);  // one class
  // Past saturation (requests waited at the router within lifetime_backlog_s) the charge weighs
  // classes_backlog_turnover_weight (1.25), not turnover_weight (2): ±0.0533 s, and the fast
  // engine's 0.21 + 0.0533 beats the slow one's 0.32 − 0.0533.
  req.backlog_age_s = 1;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_NEAR(f.cands[0].terms[6], kWideTurnover * 1.25 / 2, 1e-9);
  EXPECT_NEAR(f.cands[2].terms[6], -kWideTurnover * 1.25 / 2, 1e-9);
  EXPECT_EQ(f.Choose("kvrouter", req, {.classes_backlog_turnover_weight = 2}), 2u);
  // One class: turnover_weight, capped once; turnover_weight 0: no term.
  EXPECT_EQ(f.Choose("kvrouter", req, {.calibrate_classes = 0}), 0u);
  EXPECT_NEAR(f.cands[0].terms[6], kNarrowTurnover, 1e-9);
  EXPECT_EQ(f.Choose("kvrouter", req, {.turnover_weight = 0}), 0u);
  EXPECT_EQ(f.cands[0].terms[6], 0.0);
  req.backlog_age_s = std::numeric_limits<double>::infinity();
  // Half a request waiting per worker still counts; a quarter does not.
  f.views[2].prefilling = f.views[3].prefilling = 0;
  EXPECT_EQ(f.Choose("kvrouter", req), 2u);
  f.views[1].prefilling = 0;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_NEAR(f.cands[0].terms[6], kNarrowTurnover, 1e-9);
}

// The rules for several speed classes (here the wider turnover cap) wait until the same split
// has held for classes_persist first tokens per worker; a split of configured rates, before any
// first token, acts at once (the test above).
TEST(Policy, KvrouterActsOnSpeedClassesOnceTheSplitHolds) {
  Fixture f(4);
  auto blocks = Blocks(200);
  RequestInfo req{blocks, 3200, 16};  // new to the fleet
  LoadForTurnoverCap(f);
  auto fit = [&](double fast, double slow, int samples) {
    for (size_t i = 0; i < 4; ++i) f.rates[i] = Fitted(i < 2 ? fast : slow, samples);
  };
  auto p = *MakePolicy("kvrouter");
  fit(20000, 10000, 40);  // the split first seen at 160 first tokens: not yet
  EXPECT_EQ(f.Choose(*p, req), 0u);
  EXPECT_NEAR(f.cands[0].terms[6], kNarrowTurnover, 1e-9);
  fit(20000, 10000, 55);  // 60 more, of the 4 · 16 = 64 it needs
  EXPECT_EQ(f.Choose(*p, req), 0u);
  fit(20000, 10000, 56);  // 64 more
  EXPECT_EQ(f.Choose(*p, req), 2u);
  EXPECT_NEAR(f.cands[0].terms[6], kWideTurnover, 1e-9);
  // Another split (the engines' speeds swapped) starts again; so does one class in between.
  fit(10000, 20000, 60);
  f.Choose(*p, req);
  EXPECT_NEAR(f.cands[0].terms[6], kNarrowTurnover, 1e-9);
  fit(10000, 20000, 76);
  f.Choose(*p, req);
  EXPECT_NEAR(f.cands[0].terms[6], kWideTurnover, 1e-9);
  fit(20000, 20000, 80);
  f.Choose(*p, req);
  fit(10000, 20000, 96);  // the split of before, but seen anew after one class
  f.Choose(*p, req);
  EXPECT_NEAR(f.cands[0].terms[6], kNarrowTurnover, 1e-9);
  // classes_persist 0: at once.
  auto at_once = *MakePolicy("kvrouter", {.classes_persist = 0});
  f.Choose(*at_once, req);
  EXPECT_NEAR(f.cands[0].terms[6], kWideTurnover, 1e-9);
  // Counted from the first fits, before they settle (32 first tokens each).
  auto q = *MakePolicy("kvrouter");
  fit(20000, 10000, 20);  // split, but not yet told apart: one class
  f.Choose(*q, req);
  EXPECT_NEAR(f.cands[0].terms[6], kNarrowTurnover, 1e-9);
  fit(20000, 10000, 36);  // settled, 64 first tokens after the split was first seen
  EXPECT_EQ(f.Choose(*q, req), 2u);
  EXPECT_NEAR(f.cands[0].terms[6], kWideTurnover, 1e-9);
}

TEST(Policy, KvrouterChargesWhatAFastTurningCacheWillHaveEvicted) {
  Fixture f(2, 10000);
  f.rates[0] = PrefillRateModel(20000);  // twice as fast as worker 1: the rates differ
  auto blocks = Blocks(100);
  RequestInfo req{blocks, 1600, 16};
  // A prompt used at t = 0 and asked for again at 100 s: half of the tokens used were asked for
  // again later than worker 0's cache keeps them (10 s), none later than worker 1's (1,000 s):
  // 10 · 1600 · 0.5 / 15000 = 0.533 s against 0.08 s of TTFT.
  ReuseGaps gaps;
  gaps.Book(blocks, 16, 0);
  gaps.Book(blocks, 16, 100 * kNsPerSec);
  gaps.Refresh(400 * kNsPerSec);
  req.reuse_gaps = &gaps;
  f.views[0].cache_life_s = 10;
  f.views[1].cache_life_s = 1000;
  EXPECT_EQ(f.Choose("kvrouter", req), 1u);
  EXPECT_NEAR(f.cands[0].terms[8], 10 * 1600 * 0.5 / 15000, 1e-9);
  EXPECT_EQ(f.cands[1].terms[8], 0.0);
  EXPECT_EQ(f.Choose("kvrouter", req, {.lifetime_weight = 0}), 0u);
  // Requests waited at the router less than lifetime_backlog_s ago: the recomputation at face
  // value, 1 · 1600 · 0.5 / 15000 (backlog_lifetime_weight), which the fast engine outweighs.
  req.backlog_age_s = 30;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_NEAR(f.cands[0].terms[8], 1600 * 0.5 / 15000, 1e-9);
  EXPECT_EQ(f.Choose("kvrouter", req, {.backlog_lifetime_weight = 0}), 0u);
  EXPECT_EQ(f.cands[0].terms[8], 0.0);
  EXPECT_EQ(f.Choose("kvrouter", req, {.backlog_lifetime_weight = 4}), 1u);
  EXPECT_EQ(f.Choose("kvrouter", req, {.lifetime_backlog_s = 20}), 1u);
  req.backlog_age_s = std::numeric_limits<double>::infinity();
  // Only the tokens the worker would compute are charged: with all but 64 tokens cached there,
  // 10 · 64 · 0.5 / 15000.
  f.views[0].device = 96;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_NEAR(f.cands[0].terms[8], 10 * 64 * 0.5 / 15000, 1e-9);
  // On an equal fleet the lifetimes differ by noise: no term.
  f.views[0].device = 0;
  f.rates[1] = PrefillRateModel(20000);
  f.views[1].booked_prefill_tokens = 100;
  EXPECT_EQ(f.Choose("kvrouter", req), 0u);
  EXPECT_EQ(f.cands[0].terms[8], 0.0);
}

TEST(Select, SoftmaxMatchesItsDistribution) {
  std::vector<Candidate> c(3);
  c[0].cost = 0;
  c[1].cost = 1;
  c[2].cost = 2;
  Rng rng(3);
  std::vector<int> n(3);
  constexpr int kDraws = 100000;
  for (int i = 0; i < kDraws; ++i) ++n[SoftmaxSample(c, 0.5, rng)];
  // p ∝ exp(−(c/2)/0.5) = {1, e^-1, e^-2}; sd of a share over 100k draws < 0.0016.
  const double z = 1 + std::exp(-1.0) + std::exp(-2.0);
  EXPECT_NEAR(n[0] / double(kDraws), 1 / z, 0.01);
  EXPECT_NEAR(n[1] / double(kDraws), std::exp(-1.0) / z, 0.01);
  EXPECT_NEAR(n[2] / double(kDraws), std::exp(-2.0) / z, 0.01);
}

TEST(Select, ArgMinBreaksExactTiesUniformly) {
  std::vector<Candidate> c(4);
  c[3].cost = 1;
  c[2].eligible = false;
  Rng rng(5);
  std::vector<int> n(4);
  for (int i = 0; i < 30000; ++i) ++n[ArgMin(c, {}, rng)];
  EXPECT_EQ(n[2], 0);
  EXPECT_EQ(n[3], 0);
  EXPECT_NEAR(n[0] / 30000.0, 0.5, 0.02);
}

TEST(RateModel, LearnsRateAndOverhead) {
  PrefillRateModel m(5000);
  for (int i = 0; i < 2000; ++i) {
    const double tokens = 1000 + (i % 10) * 1000;
    m.Observe(tokens, 0.02 + tokens / 20000);
  }
  EXPECT_NEAR(m.rate(), 20000, 200);
  EXPECT_NEAR(m.overhead_s(), 0.02, 0.002);
  EXPECT_NEAR(m.PredictSeconds(10000), 0.52, 0.01);
}

TEST(DecodeStepModel, TokenWeightedInterTokenLatency) {
  DecodeStepModel m;
  EXPECT_EQ(m.step_s(), 0);
  m.Observe(100, 1.0);  // 10 ms per token
  m.Observe(0, 5.0);    // no tokens: ignored
  EXPECT_NEAR(m.step_s(), 0.01, 1e-12);
  for (int i = 0; i < 1000; ++i) m.Observe(50, 0.4);  // recent answers dominate: 8 ms
  EXPECT_NEAR(m.step_s(), 0.008, 1e-6);
}

}  // namespace
}  // namespace kvr

namespace kvr {
namespace {

TEST(PolicySpec, ParsesOverridesAndRejectsNonsense) {
  auto s = ParsePolicySpec("kvrouter[decay_oldest=0,host_hit_cost=0.5]");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->name, "kvrouter");
  EXPECT_EQ(s->label, "kvrouter[decay_oldest=0,host_hit_cost=0.5]");
  EXPECT_FALSE(s->options.decay_oldest);
  EXPECT_DOUBLE_EQ(s->options.host_hit_cost, 0.5);
  EXPECT_TRUE(ParsePolicySpec("dynamo").ok());
  // `llmd` is the optimized baseline's former name: accepted, reported canonically.
  auto llmd = ParsePolicySpec("llmd[llmd_max_tokens=1000,llmd_rate_tok_s=5]");
  ASSERT_TRUE(llmd.ok());
  EXPECT_EQ(llmd->name, "llmd_optimized");
  EXPECT_EQ(llmd->label, "llmd_optimized[llmd_max_tokens=1000,llmd_rate_tok_s=5]");
  EXPECT_DOUBLE_EQ(llmd->options.llmd_max_tokens, 1000);
  EXPECT_DOUBLE_EQ(llmd->options.llmd_rate_tok_s, 5);
  EXPECT_EQ((*MakePolicy("llmd"))->name(), "llmd_optimized");
  EXPECT_FALSE(ParsePolicySpec("kvrouter[nope=1]").ok());
  EXPECT_FALSE(ParsePolicySpec("kvrouter[decay_oldest=x]").ok());
  EXPECT_FALSE(ParsePolicySpec("kvrouter[decay_oldest=1").ok());
  EXPECT_FALSE(ParsePolicySpec("bogus[x=1]").ok());
}

// SpeedClasses: `n` first tokens on each worker of `f`, at its rate in `rates` and a 20 ms
// overhead.
void Observe(Fixture& f, const std::vector<double>& rates, int n) {
  for (int k = 0; k < n; ++k) {
    const double tokens = 1000.0 * (1 + k % 8);
    for (size_t i = 0; i < rates.size(); ++i) f.rates[i].Observe(tokens, 0.02 + tokens / rates[i]);
  }
}

TEST(SpeedClasses, FitsWithinTheToleranceOfTheMedianAreTheMedian) {
  Fixture f(4);
  Observe(f, {9000, 10000, 11000, 12000}, 40);
  SpeedClasses s(PolicyOptions{});
  s.Fit(f.views);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(s.rate(i), 10500, 1e-3) << i;
  EXPECT_NEAR(s.overhead(0), 0.02, 1e-9);
  EXPECT_FALSE(s.several());
  EXPECT_FALSE(s.RatesDiffer());
}

TEST(SpeedClasses, ASingleOutlierIsNoClassAndKeepsItsOwnFit) {
  Fixture f(4);
  Observe(f, {10000, 10000, 10000, 5000}, 40);
  SpeedClasses s(PolicyOptions{});
  s.Fit(f.views);
  EXPECT_NEAR(s.rate(0), 10000, 1e-3);
  EXPECT_NEAR(s.rate(3), 5000, 1e-3);  // beyond the tolerance of the fleet median
  EXPECT_FALSE(s.several());
  EXPECT_TRUE(s.RatesDiffer());
}

// Two classes: each snapped to its own median (one class would rate the slow engines at the
// fleet median), and the rules for several classes wait for the split to hold.
TEST(SpeedClasses, TwoClassesEachTheirOwnMedianOnceTheSplitHolds) {
  Fixture f(8);
  const std::vector<double> rates = {10000, 10400, 9800, 10200, 5000, 5200, 4900, 5100};
  Observe(f, rates, 40);
  PolicyOptions o;
  o.classes_persist = 4;
  SpeedClasses s(o);
  s.Fit(f.views);  // the split is first seen here
  EXPECT_NEAR(s.rate(0), 10100, 1e-3);
  EXPECT_NEAR(s.rate(7), 5050, 1e-3);
  EXPECT_FALSE(s.several());
  Observe(f, rates, 3);  // 24 first tokens: fewer than 4 per worker
  s.Fit(f.views);
  EXPECT_FALSE(s.several());
  Observe(f, rates, 1);
  s.Fit(f.views);
  EXPECT_TRUE(s.several());
  EXPECT_TRUE(s.RatesDiffer());

  o.calibrate_classes = 0;  // one class: a fit within the tolerance of the fleet median has it
  SpeedClasses one(o);
  one.Fit(f.views);
  EXPECT_FALSE(one.several());
  EXPECT_NEAR(one.rate(4), 5000, 1e-3);  // 5,000 is 33% below the median 7,500: its own
}

TEST(SpeedClasses, WithoutCalibrationThePriors) {
  Fixture f(2);
  Observe(f, {4000, 4000}, 40);
  PolicyOptions o;
  o.calibrate_rate = false;
  SpeedClasses s(o);
  s.Fit(f.views);
  EXPECT_EQ(s.rate(0), WorkerSpec{}.prefill_rate_prior);
  EXPECT_EQ(s.overhead(1), 0);
  EXPECT_FALSE(s.several());
}

}  // namespace
}  // namespace kvr
