#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <numeric>
#include <optional>

#include "index/block_hash.h"
#include "index/index_test_util.h"
#include "scheduler/reuse_gaps.h"

namespace kvr {
namespace {

constexpr uint32_t kBs = 16;

class SchedulerTest : public ::testing::Test {
 protected:
  void Make(const std::string& policy, int workers = 3, PolicyOptions options = {}) {
    sched_.reset();  // before the index it reads
    index_ = std::make_unique<KvIndex>(IndexConfig{.block_size = kBs}, clock_);
    auto sched =
        Scheduler::Create({.policy = policy, .options = options, .explain = true}, *index_, clock_);
    ASSERT_TRUE(sched.ok()) << sched.status();
    sched_ = *std::move(sched);
    for (int i = 0; i < workers; ++i) {
      ASSERT_TRUE(sched_->AddWorker({.id = WorkerId(uint32_t(i)), .block_size = kBs}).ok());
    }
  }
  std::vector<TokenId> Prompt(size_t n, TokenId start = 0) {
    std::vector<TokenId> t(n);
    std::iota(t.begin(), t.end(), start);
    return t;
  }
  // A request waits at the router now (as the router queue asks for its release): the charges
  // that step aside past saturation are off for lifetime_backlog_s from here.
  void Backlog(TokenId start) {
    const auto blocks = SequenceHashes(Prompt(1024, start), kBs);
    const std::vector<Scheduler::Waiting> waiting = {
        {.request = {.blocks = blocks, .prompt_tokens = 1024}}};
    ASSERT_TRUE(sched_->NextRelease(waiting).ok());
  }
  // A dry run decides and explains without booking anything.
  Decision Route(const std::vector<TokenId>& prompt, bool dry_run = false) {
    blocks_ = SequenceHashes(prompt, kBs);
    auto d = sched_->Route(
        {.blocks = blocks_, .prompt_tokens = uint32_t(prompt.size()), .dry_run = dry_run});
    EXPECT_TRUE(d.ok()) << d.status();
    return std::move(*d);
  }
  ManualClock clock_;
  std::unique_ptr<KvIndex> index_;
  std::unique_ptr<Scheduler> sched_;
  std::vector<BlockHash> blocks_;
};

TEST_F(SchedulerTest, FollowsTheCacheAndBooksLoad) {
  Make("kvrouter");
  auto prompt = Prompt(160);
  index_->Apply(testing::StoredAll(2, prompt, kBs));
  Decision d = Route(prompt);
  EXPECT_EQ(d.worker, WorkerId(2));
  EXPECT_EQ(d.overlap_blocks, 10u);
  EXPECT_EQ(d.uncached_tokens, 1u);  // fully cached: one token is still computed
  auto load = *sched_->Load(WorkerId(2));
  EXPECT_EQ(load.running, 1u);
  EXPECT_EQ(load.booked_prefill_tokens, 1u);
  EXPECT_EQ(load.active_blocks, 10u);
  d.ticket.FirstToken(50 * kNsPerMs);
  EXPECT_EQ(sched_->Load(WorkerId(2))->booked_prefill_tokens, 0u);
  EXPECT_EQ(sched_->Load(WorkerId(2))->running, 1u);
  d.ticket.Finish();
  load = *sched_->Load(WorkerId(2));
  EXPECT_EQ(load.running, 0u);
  EXPECT_EQ(load.active_blocks, 0u);
}

// A sibling routed after its prediction expired (TTL 2 s) still sees the first request's blocks
// through the in-flight table, follows it, and books only the tokens it will compute.
TEST_F(SchedulerTest, SiblingFollowsAnInFlightPromptPastThePredictionTtl) {
  Make("kvrouter");
  auto prompt = Prompt(1600);
  Decision first = Route(prompt);
  EXPECT_EQ(first.uncached_tokens, 1600u);
  clock_.Advance(10 * kNsPerSec);  // still queued: no first token, no KV event
  Decision second = Route(prompt);
  EXPECT_EQ(second.worker, first.worker);
  EXPECT_EQ(second.uncached_tokens, 1u);
  EXPECT_EQ(sched_->Load(first.worker)->booked_prefill_tokens, 1601u);
}

// A system prompt every request shares stays on the worker that first computed it until its
// demand outgrows that worker's fair share of the fleet (1.4 × 1/2 of the recent requests,
// counted over at least 16 bookings per worker); then it is copied to the other worker.
TEST_F(SchedulerTest, AHotPrefixIsCopiedOnceItsDemandOutgrowsItsHolder) {
  for (double replicate : {1.4, 0.0}) {
    Make("kvrouter", 2, {.replicate_share = replicate});
    std::vector<Decision> running;
    std::optional<WorkerId> holder;
    int copied_at = -1;
    for (int i = 0; i < 40 && copied_at < 0; ++i) {
      std::vector<TokenId> prompt = Prompt(80 * kBs);
      for (TokenId t = 0; t < 20 * kBs; ++t) prompt.push_back(100000 + 1000 * i + t);
      if (i % 2 == 1) {  // a dry run is not a request: it does not count as demand
        blocks_ = SequenceHashes(prompt, kBs);
        ASSERT_TRUE(sched_->Route({.blocks = blocks_,
                                   .prompt_tokens = uint32_t(prompt.size()),
                                   .dry_run = true})
                        .ok());
      }
      Decision d = Route(prompt);
      if (!holder) {
        holder = d.worker;
      } else if (d.worker != *holder) {
        copied_at = i;
        EXPECT_EQ(d.uncached_tokens, prompt.size());  // the copy recomputes the whole prompt
        ASSERT_TRUE(d.explanation.has_value());
        for (const ExplainedCandidate& c : d.explanation->candidates) {
          EXPECT_EQ(c.candidate.terms[7], c.worker == *holder ? 0 : 80) << "copy_blocks";
        }
      }
      d.ticket.FirstToken(50 * kNsPerMs);  // answering: the holder stays busy
      running.push_back(std::move(d));
    }
    if (replicate > 0) {
      // The i-th request sees i − 1 earlier ones with the prefix, over 32 bookings: > 0.7 from
      // the 24th on (less a little decay).
      EXPECT_GE(copied_at, 23);
      EXPECT_LE(copied_at, 25);
    } else {
      EXPECT_EQ(copied_at, -1);
    }
  }
}

// An agent session grows step by step: each step's deepest fleet-held prefix is the previous
// step's whole prompt, which no other request shares. Its steps still count as demand for the
// shared context they descend from, so a new session's first step finds that context hot and
// copies it to the idle worker; with copies off it stays with the context's holder.
TEST_F(SchedulerTest, ASessionsStepsCountForTheSharedContextItDescendsFrom) {
  for (double replicate : {1.4, 0.0}) {
    Make("kvrouter", 2, {.replicate_share = replicate});
    const std::vector<TokenId> context = Prompt(80 * kBs);
    auto extend = [](std::vector<TokenId> p, TokenId base) {
      for (TokenId t = 0; t < 20 * kBs; ++t) p.push_back(base + t);
      return p;
    };
    std::vector<Decision> running;
    // A first session computes the context; the second one runs 24 steps on the same worker.
    running.push_back(Route(extend(context, 100000)));
    const WorkerId holder = running.back().worker;
    std::vector<TokenId> step = extend(context, 200000);
    for (int i = 0; i < 24; ++i) {
      Decision d = Route(step);
      EXPECT_EQ(d.worker, holder) << "step " << i;
      EXPECT_EQ(d.uncached_tokens, 20 * kBs) << "step " << i;  // only what is new
      d.ticket.FirstToken(50 * kNsPerMs);  // answering: the holder stays busy
      running.push_back(std::move(d));
      step = extend(step, 300000 + 1000 * i);
    }
    // A new session on the same context.
    Decision first = Route(extend(context, 900000));
    ASSERT_TRUE(first.explanation.has_value());
    if (replicate > 0) {
      EXPECT_NE(first.worker, holder);
      EXPECT_EQ(first.uncached_tokens, 100 * kBs);  // the copy recomputes the context
      for (const ExplainedCandidate& c : first.explanation->candidates) {
        EXPECT_EQ(c.candidate.terms[7], c.worker == holder ? 0 : 80) << "copy_blocks";
      }
    } else {
      EXPECT_EQ(first.worker, holder);
      EXPECT_EQ(first.uncached_tokens, 20 * kBs);
    }
  }
}

// Two in-flight prompts on one worker sharing a 6-block prefix: active blocks are distinct
// (10 + 4), M_w sees the shared prefix, and releasing in either order is exact.
TEST_F(SchedulerTest, InFlightBlocksAreDistinctAndReleasedExactly) {
  Make("dynamo", 1);
  std::vector<TokenId> a = Prompt(160);
  std::vector<TokenId> b(a.begin(), a.begin() + 96);
  for (TokenId t = 0; t < 64; ++t) b.push_back(50000 + t);
  Decision da = Route(a);
  EXPECT_EQ(sched_->Load(WorkerId(0))->active_blocks, 10u);
  blocks_ = SequenceHashes(b, kBs);
  auto db = sched_->Route({.blocks = blocks_, .prompt_tokens = uint32_t(b.size())});
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(db->explanation.has_value());
  EXPECT_EQ(db->explanation->candidates[0].active_overlap, 6u);
  EXPECT_EQ(sched_->Load(WorkerId(0))->active_blocks, 14u);
  da.ticket.Finish();
  EXPECT_EQ(sched_->Load(WorkerId(0))->active_blocks, 10u);  // b still holds all 10 of its own
  Decision dc = Route(a);  // a again: its first 6 blocks are in flight (b's), the rest not
  ASSERT_TRUE(dc.explanation.has_value());
  EXPECT_EQ(dc.explanation->candidates[0].active_overlap, 6u);
  EXPECT_EQ(sched_->Load(WorkerId(0))->active_blocks, 14u);
  db->ticket.Finish();
  dc.ticket.Finish();
  EXPECT_EQ(sched_->Load(WorkerId(0))->active_blocks, 0u);
}

// M_w is found by bisection (a chained block hash stands for its whole prefix): every length of
// shared prefix with an in-flight prompt, from none to all of it and past it, comes out exact.
TEST_F(SchedulerTest, InFlightRunIsExactForEverySharedPrefixLength) {
  Make("dynamo", 1);
  const std::vector<TokenId> a = Prompt(13 * kBs);
  Decision da = Route(a);
  for (size_t shared = 0; shared <= 13; ++shared) {
    for (size_t extra : {0, 1, 7}) {
      std::vector<TokenId> b(a.begin(), a.begin() + shared * kBs);
      for (TokenId t = 0; t < extra * kBs; ++t) b.push_back(90000 + t);
      if (b.empty()) continue;
      blocks_ = SequenceHashes(b, kBs);
      auto d = sched_->Route(
          {.blocks = blocks_, .prompt_tokens = uint32_t(b.size()), .dry_run = true});
      ASSERT_TRUE(d.ok());
      ASSERT_TRUE(d->explanation.has_value());
      EXPECT_EQ(d->explanation->candidates[0].active_overlap, shared)
          << shared << " shared blocks, " << extra << " more";
    }
  }
}

TEST_F(SchedulerTest, DestroyedTicketReleasesEverything) {
  Make("least_loaded");
  {
    Decision d = Route(Prompt(64));
    EXPECT_EQ(sched_->Load(d.worker)->booked_prefill_tokens, 64u);
  }
  for (WorkerId w : sched_->Workers()) {
    EXPECT_EQ(sched_->Load(w)->booked_prefill_tokens, 0u);
    EXPECT_EQ(sched_->Load(w)->running, 0u);
  }
}

TEST_F(SchedulerTest, PredictOnRouteSteersSiblingsBeforeEventsArrive) {
  Make("kvrouter");
  auto prompt = Prompt(320);
  Decision first = Route(prompt);
  first.ticket.FirstToken(10 * kNsPerMs);  // its prefill is done; no event has arrived
  Decision second = Route(prompt);
  EXPECT_EQ(second.worker, first.worker);
  EXPECT_EQ(second.overlap_blocks, 0u);
  EXPECT_EQ(second.predicted_blocks, 20u);
}

TEST_F(SchedulerTest, NoPredictionOnAWorkerTheCallerModels) {
  Make("round_robin", 2);
  auto prompt = Prompt(320);
  blocks_ = SequenceHashes(prompt, kBs);
  const WorkerId modelled[] = {WorkerId(0), WorkerId(1)};
  auto d = sched_->Route({.blocks = blocks_, .prompt_tokens = 320, .no_predict = modelled});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(index_->Stats(d->worker).predicted_blocks, 0u);
  Decision plain = Route(prompt);
  EXPECT_EQ(index_->Stats(plain.worker).predicted_blocks, 20u);
}

TEST_F(SchedulerTest, ExplanationHasEveryWorkerAndTerm) {
  Make("dynamo");
  Decision d = Route(Prompt(48));
  ASSERT_TRUE(d.explanation.has_value());
  EXPECT_EQ(d.explanation->policy, "dynamo");
  EXPECT_EQ(d.explanation->candidates.size(), 3u);
  EXPECT_EQ(d.explanation->term_names.size(), 3u);
  EXPECT_DOUBLE_EQ(d.explanation->candidates[0].candidate.terms[0], 3.0);  // 48 tokens / 16
}

TEST_F(SchedulerTest, TracksWhereNewContentWasBooked) {
  Make("kvrouter", 2, {.turnover_fill = 0});  // no cache is full in this test
  const uint32_t first = Route(Prompt(160)).worker.value();  // 160 new tokens, all on `first`
  Decision d = Route(Prompt(160, 1000));
  ASSERT_TRUE(d.explanation.has_value());
  ASSERT_EQ(d.explanation->term_names.size(), 12u);
  EXPECT_EQ(d.explanation->term_names[6], "turnover_s");
  EXPECT_EQ(d.explanation->term_names[8], "lifetime_s");
  // Turnover 2 and 0 of the mean; 2 · min(160, 160) / the prior rate.
  const double scale = 2.0 * 160 / WorkerSpec{}.prefill_rate_prior;
  for (const ExplainedCandidate& c : d.explanation->candidates) {
    EXPECT_NEAR(c.candidate.terms[6], c.worker.value() == first ? scale : -scale, 1e-12);
  }
  EXPECT_NE(d.worker.value(), first);
}

// A conversation asked for again 110 s after its first turn, on a fast worker whose 1,600-token
// cache fills in 57 s at its inflow: a third of the tokens used are asked for again after they
// are gone, and new content on that worker is charged for it.
TEST_F(SchedulerTest, ChargesWhatAFastTurningCacheWillHaveEvicted) {
  sched_.reset();
  index_ = std::make_unique<KvIndex>(IndexConfig{.block_size = kBs}, clock_);
  sched_ = *Scheduler::Create({.policy = "kvrouter", .explain = true}, *index_, clock_);
  for (uint32_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(sched_
                    ->AddWorker({.id = WorkerId(i),
                                 .block_size = kBs,
                                 .kv_capacity_blocks = 100,
                                 .prefill_rate_prior = i == 0 ? 20000.0 : 10000.0})
                    .ok());
  }
  auto book = [&](const std::vector<TokenId>& prompt) {
    blocks_ = SequenceHashes(prompt, kBs);
    auto d = sched_->Route(
        {.blocks = blocks_, .prompt_tokens = uint32_t(prompt.size()), .pinned = WorkerId(0)});
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->uncached_tokens, prompt.size());
  };
  book(Prompt(1024));  // t = 0
  clock_.Advance(10 * kNsPerSec);
  book(Prompt(1024, 5000));  // t = 10 s
  clock_.Advance(100 * kNsPerSec);
  book(Prompt(1024));  // t = 110 s: asked for again 110 s after its last use
  clock_.Advance(190 * kNsPerSec);  // t = 300 s: every cohort has seen 110 s go by
  // From here on dry runs of one new prompt: nothing booked, the cache lifetimes stay as they are.
  const std::vector<TokenId> probe = Prompt(1024, 9000);
  Decision d = Route(probe, /*dry_run=*/true);
  ASSERT_TRUE(d.explanation.has_value());
  const double late = 1.0 / 3;  // 1,024 reused of 3,072 used
  for (const ExplainedCandidate& c : d.explanation->candidates) {
    EXPECT_NEAR(c.candidate.terms[8], c.worker.value() == 0 ? 10 * 1024 * late / 15000 : 0.0, 1e-9)
        << c.worker.value();
  }
  EXPECT_EQ(d.worker, WorkerId(1));
  // Requests waiting at the router: engine time is what they wait for, and for a minute after
  // the last of them was released (lifetime_backlog_s) the charge is the recomputation at face
  // value, a tenth of it (backlog_lifetime_weight 1 for lifetime_weight 10).
  const auto charge = [&] {
    return Route(probe, /*dry_run=*/true).explanation->candidates[0].candidate.terms[8];
  };
  const double full = 10 * 1024 * late / 15000;
  Backlog(12000);
  EXPECT_NEAR(charge(), full / 10, 1e-12);
  clock_.Advance(59 * kNsPerSec);  // still within the window
  EXPECT_NEAR(charge(), full / 10, 1e-12);
  clock_.Advance(2 * kNsPerSec);  // past it
  EXPECT_NEAR(charge(), full, 1e-12);
}

// A document booked on worker 0 and asked for again a second later (within the prediction's
// TTL): worker 0's cache draws one hit a second, of 1,024 tokens, and a long fresh prompt placed
// there is charged the delay it would add to such hits, each capped at half of recomputing the
// document.
TEST_F(SchedulerTest, ChargesTheDelayALongPrefillAddsToTheHitsItsCacheDraws) {
  Make("kvrouter", 2);
  auto book = [&](const std::vector<TokenId>& prompt) {
    blocks_ = SequenceHashes(prompt, kBs);
    auto d = sched_->Route(
        {.blocks = blocks_, .prompt_tokens = uint32_t(prompt.size()), .pinned = WorkerId(0)});
    ASSERT_TRUE(d.ok()) << d.status();
    d->ticket.PrefillDone();  // nothing queued on either worker
  };
  std::vector<TokenId> document = Prompt(1024);
  book(document);  // t = 0: held nowhere before, no hit
  clock_.Advance(kNsPerSec);
  document.push_back(5000);
  book(document);  // t = 1 s: its 64 blocks held by worker 0 alone
  Decision d = Route(Prompt(8000, 10000));
  ASSERT_TRUE(d.explanation.has_value());
  ASSERT_EQ(d.explanation->term_names[11], "hit_delay_s");
  const double rate = WorkerSpec{}.prefill_rate_prior, c = 0.5 * 1024 / rate, tau = 8000 / rate;
  const double expected = 1.0 * (c * c / 2 + c * (tau - c));
  for (const ExplainedCandidate& x : d.explanation->candidates) {
    EXPECT_NEAR(x.candidate.terms[11], x.worker.value() == 0 ? expected : 0.0, 1e-12)
        << x.worker.value();
  }
  EXPECT_EQ(d.worker, WorkerId(1));
  // Requests waiting at the router: every engine has a queue the hits already wait behind, and
  // for a minute after the last of them was released the charge is off (lifetime_backlog_s).
  Backlog(30000);
  d = Route(Prompt(8000, 40000));
  for (const ExplainedCandidate& x : d.explanation->candidates) {
    EXPECT_EQ(x.candidate.terms[11], 0.0) << x.worker.value();
  }
  // Off by the option.
  Make("kvrouter", 2, {.hit_delay_weight = 0});
  book(Prompt(1024));
  clock_.Advance(kNsPerSec);
  book(Prompt(1040));
  d = Route(Prompt(8000, 10000));
  for (const ExplainedCandidate& x : d.explanation->candidates) {
    EXPECT_EQ(x.candidate.terms[11], 0.0) << x.worker.value();
  }
}

TEST(ReuseGaps, CountsEachGapAgainstTheCohortsOldEnoughToHaveSeenIt) {
  ReuseGaps gaps;
  const auto a = SequenceHashes(std::vector<TokenId>(512, 7), kBs);  // 32 blocks: 2 sampled
  std::vector<TokenId> other(512);
  std::iota(other.begin(), other.end(), 100);
  const auto b = SequenceHashes(other, kBs);
  gaps.Book(a, kBs, 0);
  gaps.Book(b, kBs, 10 * kNsPerSec);
  gaps.Book(a, kBs, 20 * kNsPerSec);  // a's 512 tokens asked for again after 20 s
  gaps.Refresh(15 * kNsPerSec);
  EXPECT_EQ(gaps.LaterThan(1), 0.0);  // no cohort has yet lived 20 s
  gaps.Refresh(100 * kNsPerSec);
  // 512 reused of 1,536 used by the cohorts at least 20 s old (t = 0, 10 and 20 s).
  EXPECT_NEAR(gaps.LaterThan(1), 1.0 / 3, 1e-12);
  EXPECT_NEAR(gaps.LaterThan(10), 1.0 / 3, 1e-12);
  EXPECT_EQ(gaps.LaterThan(40), 0.0);
  // Young cohorts have not had the time to see a 20 s gap: they do not dilute it.
  for (int i = 0; i < 10; ++i) {
    std::iota(other.begin(), other.end(), 10000 * (i + 1));
    gaps.Book(SequenceHashes(other, kBs), kBs, 95 * kNsPerSec);
  }
  gaps.Refresh(101 * kNsPerSec);
  EXPECT_NEAR(gaps.LaterThan(10), 1.0 / 3, 1e-12);
  // They count for the gaps they have lived through (none reused within 1 s): nothing changes.
  EXPECT_NEAR(gaps.LaterThan(0.01), 1.0 / 3, 1e-12);
}

// Dynamo's router queue: a request waits at the router while every worker's booked prefill
// exceeds router_queue_threshold batches; a first token frees a worker for the next.
TEST_F(SchedulerTest, DynamoHoldsRequestsWhileEveryWorkerIsPrefillBusy) {
  PolicyOptions o;
  o.dynamo_queue_threshold = 0.01;  // 81.92 tokens at the default 8,192-token batch
  Make("dynamo", 2, o);
  EXPECT_FALSE(sched_->AllPrefillBusy());
  Decision a = Route(Prompt(160));
  EXPECT_FALSE(sched_->AllPrefillBusy());  // the other worker has room
  Decision b = Route(Prompt(160, 1000));
  EXPECT_NE(a.worker, b.worker);
  EXPECT_TRUE(sched_->AllPrefillBusy());
  a.ticket.FirstToken(10 * kNsPerMs);
  EXPECT_FALSE(sched_->AllPrefillBusy());

  o.dynamo_queue_threshold = 0;  // off
  Make("dynamo", 1, o);
  Decision c = Route(Prompt(160));
  EXPECT_FALSE(sched_->AllPrefillBusy());
  Make("kvrouter", 1);  // its router queue starts at 4 batches
  Decision d = Route(Prompt(160));
  EXPECT_FALSE(sched_->AllPrefillBusy());
}

// The release order of a router queue: kvrouter's shortest first (the uncached tokens a dry-run
// decision books), each second waited worth queue_age tokens; Dynamo's oldest first.
TEST_F(SchedulerTest, RouterQueueReleaseOrder) {
  Make("kvrouter", 2);
  auto cached = Prompt(1600);
  index_->Apply(testing::StoredAll(1, cached, kBs));
  auto fresh = Prompt(1600, 50000);
  const std::vector<BlockHash> cached_blocks = SequenceHashes(cached, kBs);
  const std::vector<BlockHash> fresh_blocks = SequenceHashes(fresh, kBs);
  auto key = [&](const std::vector<BlockHash>& b, double waited_s) {
    auto k = sched_->ReleaseKey({.blocks = b, .prompt_tokens = 1600}, waited_s);
    EXPECT_TRUE(k.ok()) << k.status();
    return *k;
  };
  EXPECT_DOUBLE_EQ(key(cached_blocks, 0), 1.0);  // cached on worker 1: one token to compute
  EXPECT_DOUBLE_EQ(key(fresh_blocks, 0), 1600.0);
  EXPECT_LT(key(fresh_blocks, 1.0), key(cached_blocks, 0));         // 50,000 tokens a second waited
  EXPECT_EQ(sched_->Load(WorkerId(1))->booked_prefill_tokens, 0u);  // dry runs book nothing
  EXPECT_TRUE(sched_->router_queue().shortest_first);

  Make("dynamo", 2);
  EXPECT_FALSE(sched_->router_queue().shortest_first);
  EXPECT_DOUBLE_EQ(*sched_->ReleaseKey({.blocks = fresh_blocks, .prompt_tokens = 1600}, 2.0), -2.0);
}

// NextRelease stops computing keys once no younger request could have a lower one; it must
// still pick what a full scan of the window picks (the lowest key, the oldest on a tie).
TEST_F(SchedulerTest, NextReleaseIsTheLowestKeyOfTheWindow) {
  for (const std::string policy : {"kvrouter", "dynamo"}) {
    Make(policy, 2);
    for (TokenId doc = 0; doc < 4; ++doc) {
      index_->Apply(testing::StoredAll(1, Prompt(1600, 10000 * doc), kBs));
    }
    uint64_t lcg = 12345;
    auto next = [&](uint64_t n) {
      lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
      return (lcg >> 33) % n;
    };
    int later_picks = 0;
    for (int trial = 0; trial < 40; ++trial) {
      const size_t n = 1 + next(100);
      const double step_s = trial % 2 == 0 ? 0.004 : 0.05;  // arrivals close together, or not
      std::vector<std::vector<BlockHash>> blocks(n);
      std::vector<Scheduler::Waiting> waiting(n);
      double waited = 1.0;
      for (size_t i = 0; i < n; ++i) {
        std::vector<TokenId> prompt;
        if (next(2) == 0) {  // a question about a cached document
          prompt = Prompt(1600, TokenId(10000 * next(4)));
          for (TokenId t = 0; t < 32; ++t) prompt.push_back(TokenId(50000 + 100 * i + t));
        } else {  // a fresh prompt
          prompt = Prompt(160 + next(3000), TokenId(100000 + 5000 * (trial * 100 + i)));
        }
        blocks[i] = SequenceHashes(prompt, kBs);
        waiting[i] = {.request = {.blocks = blocks[i], .prompt_tokens = uint32_t(prompt.size())},
                      .waited_s = waited};
        waited = std::max(0.0, waited - step_s * double(next(1000)) / 1000);
      }
      size_t want = 0;
      double best = 0;
      for (size_t i = 0; i < std::min(n, kRouterQueueWindow); ++i) {
        auto key = sched_->ReleaseKey(waiting[i].request, waiting[i].waited_s);
        ASSERT_TRUE(key.ok()) << key.status();
        if (i == 0 || *key < best) {
          best = *key;
          want = i;
        }
      }
      auto got = sched_->NextRelease(waiting);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(*got, want) << policy << " trial " << trial;
      later_picks += want > 0;
    }
    // Shortest first passes older requests; first come, first served never does.
    if (policy == "kvrouter") {
      EXPECT_GT(later_picks, 5);
    } else {
      EXPECT_EQ(later_picks, 0);
    }
  }
}

// A worker's KV capacity can change after registration (the gateway learns it from the engine).
TEST_F(SchedulerTest, KvCapacityFollowsTheEngine) {
  Make("kvrouter", 2);
  EXPECT_EQ(sched_->Load(WorkerId(1))->kv_capacity_blocks, WorkerSpec{}.kv_capacity_blocks);
  ASSERT_TRUE(sched_->SetKvCapacity(WorkerId(1), 65536).ok());
  EXPECT_EQ(sched_->Load(WorkerId(1))->kv_capacity_blocks, 65536u);
  EXPECT_EQ(sched_->Load(WorkerId(0))->kv_capacity_blocks, WorkerSpec{}.kv_capacity_blocks);
  EXPECT_EQ(sched_->SetKvCapacity(WorkerId(1), 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sched_->SetKvCapacity(WorkerId(5), 100).code(), absl::StatusCode::kNotFound);
  Route(Prompt(160));  // decisions go on
}

// So can its step size (max batched tokens, which SGLang reports in /server_info): the router
// queue's threshold follows it.
TEST_F(SchedulerTest, MaxBatchedTokensFollowsTheEngine) {
  Make("kvrouter", 1);  // its router queue holds past 4 steps booked on every worker
  EXPECT_EQ(sched_->Load(WorkerId(0))->max_batched_tokens, WorkerSpec{}.max_batched_tokens);
  Decision d = Route(Prompt(160));
  EXPECT_FALSE(sched_->AllPrefillBusy());  // 160 tokens booked: far from 4 × 8,192
  ASSERT_TRUE(sched_->SetMaxBatchedTokens(WorkerId(0), 32).ok());
  EXPECT_EQ(sched_->Load(WorkerId(0))->max_batched_tokens, 32u);
  EXPECT_TRUE(sched_->AllPrefillBusy());  // 160 > 4 × 32
  EXPECT_EQ(sched_->SetMaxBatchedTokens(WorkerId(0), 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sched_->SetMaxBatchedTokens(WorkerId(5), 64).code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, PinnedAndErrors) {
  Make("round_robin");
  blocks_ = {};
  auto d = sched_->Route({.prompt_tokens = 10, .pinned = WorkerId(2)});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->worker, WorkerId(2));
  EXPECT_EQ(sched_->Route({.prompt_tokens = 10, .pinned = WorkerId(7)}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(sched_->AddWorker({.id = WorkerId(1), .block_size = kBs}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(sched_->AddWorker({.id = WorkerId(9), .block_size = 32}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sched_->AddWorker({.id = WorkerId(1000), .block_size = kBs}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      sched_->AddWorker({.id = WorkerId(9), .block_size = kBs, .kv_capacity_blocks = 0}).code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(SchedulerTest, RemovedWorkerKeepsTicketsSafe) {
  Make("least_loaded", 2);
  Decision d = Route(Prompt(64));
  const WorkerId gone = d.worker;
  ASSERT_TRUE(sched_->RemoveWorker(gone).ok());
  d.ticket.FirstToken(kNsPerMs);
  d.ticket.Finish();
  ASSERT_TRUE(sched_->AddWorker({.id = gone, .block_size = kBs}).ok());
  EXPECT_EQ(sched_->Load(gone)->running, 0u);
  EXPECT_EQ(sched_->Load(gone)->booked_prefill_tokens, 0u);
  EXPECT_EQ(sched_->Load(gone)->active_blocks, 0u);
  blocks_ = SequenceHashes(Prompt(64), kBs);
  auto again = sched_->Route({.blocks = blocks_, .prompt_tokens = 64, .pinned = gone});
  ASSERT_TRUE(again.ok());
  for (const auto& c : again->explanation->candidates) EXPECT_EQ(c.active_overlap, 0u);
  EXPECT_EQ(sched_->RemoveWorker(WorkerId(5)).code(), absl::StatusCode::kNotFound);
}

TEST(SchedulerCreate, UnknownPolicyIsAnError) {
  ManualClock clock;
  KvIndex index({.block_size = kBs}, clock);
  auto sched = Scheduler::Create({.policy = "no_such_policy"}, index, clock);
  EXPECT_EQ(sched.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(sched.status().message().find("no_such_policy"), std::string_view::npos);
  auto alias = Scheduler::Create({.policy = "llmd"}, index, clock);
  ASSERT_TRUE(alias.ok());
  EXPECT_EQ((*alias)->policy_name(), "llmd");
}

// A ticket may outlive its worker and its scheduler (and the index and clock): its release
// then changes nothing anyone reads. Under ASan this also checks that nothing dangles.
TEST(SchedulerLifetime, TicketsOutliveTheScheduler) {
  std::vector<Ticket> tickets;
  {
    ManualClock clock;
    KvIndex index({.block_size = kBs}, clock);
    auto sched = Scheduler::Create({.policy = "kvrouter"}, index, clock);
    ASSERT_TRUE(sched.ok());
    for (uint32_t w = 0; w < 2; ++w) {
      ASSERT_TRUE((*sched)->AddWorker({.id = WorkerId(w), .block_size = kBs}).ok());
    }
    std::vector<TokenId> prompt(64, TokenId(7));
    auto blocks = SequenceHashes(prompt, kBs);
    for (int i = 0; i < 4; ++i) {
      auto d = (*sched)->Route({.blocks = blocks, .prompt_tokens = 64, .pinned = WorkerId(i % 2)});
      ASSERT_TRUE(d.ok());
      tickets.push_back(std::move(d->ticket));
    }
    tickets[0].FirstToken(kNsPerMs);  // released while the scheduler lives, not yet collected
    ASSERT_TRUE((*sched)->RemoveWorker(WorkerId(1)).ok());
  }
  for (Ticket& t : tickets) {
    EXPECT_TRUE(t.active());
    t.FirstToken(kNsPerMs);
    t.Finish();
    EXPECT_FALSE(t.active());
  }
}

TEST(SchedulerLimits, WorkerIdsStopAtTheIndexLimit) {
  ManualClock clock;
  KvIndex index({.block_size = kBs, .max_workers = 5000}, clock);  // capped at 1024
  EXPECT_EQ(index.worker_limit(), WorkerSet::kMaxWorkers);
  auto sched = Scheduler::Create({}, index, clock);
  ASSERT_TRUE(sched.ok());
  EXPECT_TRUE((*sched)->AddWorker({.id = WorkerId(1023), .block_size = kBs}).ok());
  EXPECT_EQ((*sched)->AddWorker({.id = WorkerId(1500), .block_size = kBs}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*sched)->Route({.prompt_tokens = 10}).ok());
}

TEST_F(SchedulerTest, ExcludedWorkersAreNeverChosen) {
  Make("kvrouter");
  auto prompt = Prompt(160);
  index_->Apply(testing::StoredAll(2, prompt, kBs));
  blocks_ = SequenceHashes(prompt, kBs);
  const std::vector<WorkerId> excluded = {WorkerId(2), WorkerId(0)};
  auto d = sched_->Route({.blocks = blocks_, .prompt_tokens = 160, .excluded = excluded});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->worker, WorkerId(1));  // the cached worker is excluded
  const std::vector<WorkerId> all = {WorkerId(0), WorkerId(1), WorkerId(2)};
  auto none = sched_->Route({.blocks = blocks_, .prompt_tokens = 160, .excluded = all});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, DryRunExplainsWithoutBookingOrPredicting) {
  Make("kvrouter");
  auto prompt = Prompt(160);
  blocks_ = SequenceHashes(prompt, kBs);
  auto d = sched_->Route(
      {.blocks = blocks_, .prompt_tokens = 160, .dry_run = true, .explain = true});
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->ticket.active());
  ASSERT_TRUE(d->explanation.has_value());
  EXPECT_EQ(d->explanation->candidates.size(), 3u);
  EXPECT_EQ(sched_->Load(d->worker)->running, 0u);
  EXPECT_EQ(index_->Query(blocks_).predicted_or_zero(d->worker), 0u);
}

TEST_F(SchedulerTest, PrefillDoneReleasesWithoutCalibrating) {
  Make("kvrouter", 1);
  const double prior = sched_->Load(WorkerId(0))->prefill_rate;
  for (int i = 0; i < 20; ++i) {
    Decision d = Route(Prompt(64 * (i + 1), TokenId(1000 * i)));
    d.ticket.PrefillDone();
    EXPECT_EQ(sched_->Load(WorkerId(0))->booked_prefill_tokens, 0u);
  }
  EXPECT_EQ(sched_->Load(WorkerId(0))->prefill_rate, prior);
}

TEST_F(SchedulerTest, NoWorkersIsAnError) {
  Make("kvrouter", 0);
  EXPECT_EQ(sched_->Route({.prompt_tokens = 3}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, LearnsTheDecodeStepFromStreamedAnswers) {
  Make("kvrouter", 1);
  EXPECT_EQ(sched_->Load(WorkerId(0))->decode_step_s, 0);  // nothing observed yet
  Decision d = Route(Prompt(160));
  d.ticket.FirstToken(20 * kNsPerMs);
  d.ticket.Decoded(99 * 8 * kNsPerMs, 99);  // 100 tokens, 8 ms apart
  d.ticket.Finish();
  d.ticket.Decoded(kNsPerMs, 1);  // after Finish: ignored
  EXPECT_NEAR(sched_->Load(WorkerId(0))->decode_step_s, 0.008, 1e-9);
}

TEST_F(SchedulerTest, CalibratesRateFromObservedTtft) {
  Make("kvrouter", 1);
  for (int i = 0; i < 300; ++i) {
    Decision d = Route(Prompt(1000 + 16 * (i % 50), TokenId(100000 * (i + 1))));
    // The engine computes 50,000 tokens/s with 10 ms of overhead.
    d.ticket.FirstToken(TimeNs((0.01 + double(d.uncached_tokens) / 50000) * 1e9));
  }
  EXPECT_NEAR(sched_->Load(WorkerId(0))->prefill_rate, 50000, 2500);
}

}  // namespace
}  // namespace kvr
