// Routing policies: each turns the per-worker view of one request into a choice, and fills in
// the cost terms that explain it. Baselines reproduce the peers' published rules
// (docs/POLICIES.md); `kvrouter` is ours.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "index/kv_index.h"
#include "scheduler/reuse_gaps.h"
#include "scheduler/worker.h"

namespace kvr {

// The request as the scheduler sees it.
struct RequestInfo {
  std::span<const BlockHash> blocks;  // chained hashes of the prompt's full blocks
  uint32_t prompt_tokens = 0;         // ISL
  uint32_t block_size = 64;
  uint32_t expected_output_tokens = 0;  // 0: unknown
  // The deepest prefix of this prompt held anywhere in the fleet (cached, predicted or in
  // flight on some worker), in blocks, or the shared prefix that one's history descends from
  // (an agent session's context: scheduler_internal::PrefixRoots); and the share of the
  // recently routed requests (decayed per booking, ~1,000 bookings) counted for that prefix.
  uint32_t fleet_prefix_blocks = 0;
  double fleet_prefix_share = 0;
  // How long after their last use the fleet's prompt tokens are asked for again (null unless
  // the policy wants_reuse_gaps); read against WorkerView::cache_life_s.
  const ReuseGaps* reuse_gaps = nullptr;
  // Seconds since requests last waited at the router (its queue was not empty); infinite if
  // they never have.
  double backlog_age_s = std::numeric_limits<double>::infinity();
  // A decision that routes nothing (a router-queue release key, /debug/route): the policy
  // must not learn from it.
  bool dry_run = false;
};

// Everything a policy may read about one candidate worker at decision time.
struct WorkerView {
  const WorkerSpec* spec = nullptr;
  // Router-side load (bookings).
  uint64_t booked_prefill_tokens = 0;  // uncached tokens routed here, not yet past first token
  uint64_t oldest_prefill_age_ns = 0;  // age of the oldest booking not yet past first token
  uint64_t oldest_prefill_tokens = 0;  // its booked uncached tokens
  uint32_t running = 0;                // routed here and not finished
  uint32_t prefilling = 0;             // routed here, not yet past first token
  uint64_t active_blocks = 0;          // distinct prompt blocks of running requests
  uint32_t active_overlap = 0;         // leading blocks of this prompt among them (M_w)
  const PrefillRateModel* rate = nullptr;
  double decode_step_s = 0;  // observed inter-token latency (DecodeStepModel; 0: none yet)
  EngineMetrics metrics;
  // Where new blocks have been entering the fleet's caches (the router's own bookings, decayed
  // per booking): this worker's share of the uncached prompt tokens booked recently (0 before
  // any booking), and the fleet's recent mean booked uncached tokens per request.
  double inflow_share = 0;
  double inflow_mean_tokens = 0;
  // How long this cache keeps a block not used again: its capacity over its recent inflow of
  // booked uncached tokens per second (0: no inflow yet; it keeps what it has).
  double cache_life_s = 0;
  // The demand for this cache: requests per second whose prompt's deepest prefix held in the
  // fleet was held here (each counted as 1/holders; the router's own bookings, decayed as the
  // inflow), and the mean tokens of that prefix (0: none yet).
  double hit_rate = 0, hit_tokens = 0;
  // Index (leading blocks of this prompt).
  uint32_t device = 0, host = 0, storage = 0, predicted = 0;
  uint64_t cached_blocks = 0;
  uint32_t approx = 0;  // the router's own approximate tree (policies that keep one)
};

inline constexpr size_t kMaxTerms = 12;

// One candidate's evaluation; `terms` are named by Policy::TermNames().
struct Candidate {
  WorkerId worker;
  double cost = 0;  // lower is better (policies that maximise a score store its negation)
  std::array<double, kMaxTerms> terms{};
  bool eligible = true;  // false: filtered out by the policy (llm-d affinity, ...)
  // >= 0: the prefill tokens to book if chosen (the policy's own estimate of what the engine
  // will compute); < 0: the scheduler's (prompt minus the device-or-predicted prefix).
  double booked_uncached = -1;
};

struct PolicyOptions {
  double temperature = 0;       // > 0: softmax sampling over range-normalised costs
  double overlap_weight = 1.0;  // dynamo: overlap_score_weight
  // dynamo: router_queue_threshold. While every worker's booked prefill tokens exceed this
  // many times its max_num_batched_tokens, requests wait at the router in arrival order, and
  // one is routed each time a worker drops below (current upstream default 16; 0: off).
  double dynamo_queue_threshold = 16.0;
  // sglang cache_aware (CLI defaults)
  double sglang_cache_threshold = 0.3;
  uint32_t sglang_balance_abs = 64;
  double sglang_balance_rel = 1.5;
  // llm-d optimized baseline: affinity filter (threshold, TTFT gate) + token-load scorer
  double llmd_affinity_threshold = 0.80;
  double llmd_rate_tok_s = 15928;    // peakPrefillThroughput
  double llmd_gate_s = 18;           // maxTTFTPenaltyMs
  double llmd_max_tokens = 4194304;  // queueThresholdTokens
  // Both llm-d profiles: the prefix producer counts the blocks of prompts it routed to a pod as
  // held there (the approximate producer, the default); 0: the engines' confirmed blocks only.
  bool llmd_routing_history = true;
  // llm-d weighted profile (router chart default)
  double llmd_queue_weight = 2;
  double llmd_kv_weight = 2;
  double llmd_prefix_weight = 3;
  // kvrouter
  double host_hit_cost = 0.25;    // a host-tier block costs this fraction of recomputing it
  bool predicted_overlap = true;  // count predict-on-route blocks as cached
  // Count the leading blocks of this prompt among the worker's in-flight prompts (M_w, from the
  // router's own bookings) as cached: the engine will hold them once those prefills are done.
  bool inflight_overlap = true;
  bool decay_oldest = false;  // credit the oldest booking with age·rate done (hurt: see docs)
  // Use the engine-reported waiting tokens when larger than the router's own bookings. Off: an
  // engine counts a waiting request's whole prompt, cached prefix included, and its report is
  // up to a scrape interval old; under bursts that steered requests away from their cached
  // prefixes (docs/BENCHMARKS.md).
  bool engine_queue = false;
  bool calibrate_rate = true;  // false: each worker's configured prior rate, no overhead
  double kv_pressure_weight = 1.0;
  // Weight of the engine time this request's own prefill consumes (the delay it imposes on
  // later requests), on top of its TTFT: steers toward cached prefixes when TTFTs are close.
  double work_weight = 1.0;
  // Past saturation each second of prefill delays every request that queues behind it: the
  // weight above grows by this much per request waiting for its first token, averaged over
  // the fleet (the router's own bookings). 4 (was 2): docs/BENCHMARKS.md.
  double load_work_weight = 4.0;
  // ... and by this much instead while requests wait at the router and for lifetime_backlog_s
  // after the last of them was released. The router queue caps the prefill booked on every
  // worker, so the count above stops following the load just when every token of prefill is
  // capacity that the held requests wait for; and in that window the lifetime charge, which
  // also steers toward cached prefixes, is a tenth of its weight. 16 (measured with that charge
  // off there): on the half-speed synthetic fleet at ×6, −28 ms of mean and −1.75 points of
  // prefill; the equal one at ×10 −243 ms (docs/BENCHMARKS.md, "The work weight past
  // saturation").
  double backlog_work_weight = 16.0;
  // ... and, outside that window, by this much instead while the calibration finds more than one
  // speed class (calibrate_classes). The time to first token prices a prompt's uncached tokens
  // at each engine's own rate, so a half-speed engine holding a prompt's prefix is charged twice
  // the time for each token it still computes, against a fast engine that recomputes them all;
  // the work charge, at the fleet's mean rate, is what keeps the prefix's requests on it. 16: on
  // the half-speed synthetic fleet −0.5 to −1.5 points of prefill for +3 to +5 ms of mean at ×2–×4,
  // the half-speed Mooncake fleet +6 ms (docs/BENCHMARKS.md, "The work weight on a fleet of several
  // speeds").
  double classes_work_weight = 16.0;
  // The time this request's prefill takes from the decodes already running on a worker: each of
  // them waits through the prefill chunks its steps share, so the cost adds decode_weight ·
  // decoding_w · uncached_w / rate_w — except within lifetime_backlog_s of a router backlog (this
  // and classes_decode_weight 0: off). Without it the time to first token starts each prefill
  // wherever it starts soonest, beside running decodes or not: each output token waited through 37%
  // more prefill than under SGLang on the equal synthetic fleet at ×4, and the end-to-end latency
  // was 6–11% above the best peer's on equal fleets at ×2–×7, 10–30% on the half-speed ones. 0.03:
  // those equal-fleet gaps within 1% up to ×4.5 (the synthetic trace at ×4 +11% → +0.3%), the
  // half-speed ones halved; first-token rows 253 of 350 on seeds 1–10 (268 with the charge on
  // half-speed fleets only: the seeds that default was tuned on), 260 on seeds 11–20 (256)
  // (docs/BENCHMARKS.md, "Decodes that wait through prefill").
  double decode_weight = 0.03;
  // On a fleet the calibration splits into several speed classes the weight is heavier while the
  // load allows: decode_weight + (classes_decode_weight − decode_weight) / (1 + requests waiting
  // for a first token per worker). A slow engine's decodes already take twice as long per token,
  // and the time to first token still sends it many new mid-length prompts. 0.1 brings the
  // half-speed synthetic and `rag` fleets' end-to-end mean within 2% of the best peer's below
  // saturation (from up to 8%), the half-speed Mooncake fleet's to 4–5% (from 5–13%), for 35–60
  // ms more p99 TTFT where the lead is 300–900 ms: the same rows on seeds 1–10, 6 fewer on seeds
  // 11–20 (prefill 0.2–0.3 points higher). Not scaled by the load, 0.1 costs past saturation
  // (the half-speed synthetic fleet at ×6 +56 ms of mean) (docs/BENCHMARKS.md, "Decodes that
  // wait through prefill"). Since the wider turnover cap sends long new prompts to the slow
  // engines under load, whose decodes then share their prefill, 0.2: the half-speed Mooncake
  // fleet's end-to-end p99 at ×3 +13.9 / +14.3% → +3.6 / +1.9% of the best peer's (seeds 1–10 /
  // 11–20), the half-speed `rag` at 10 +7.9 / +8.7% → +0.3 / +0.7%, for 27–47 ms more p99 TTFT
  // where the lead is still 180–440 ms; rows won 280 → 283 / 286 → 283 of 350
  // (docs/BENCHMARKS.md, "The decode charge after the turnover cap").
  double classes_decode_weight = 0.2;
  // Online rate calibration, made robust on homogeneous fleets: a worker whose fitted rate is
  // within this fraction of its speed class's median is given the median rate and overhead (fit
  // noise is not a difference between engines); 0: every worker its own fit.
  double calibrate_tolerance = 0.25;
  // Speed classes: once every fit has settled, the fits are split at their widest gap (two or
  // more workers a side) where the two sides' medians differ by more than this factor, and each
  // side again. Without classes the median of a fleet of fast and half-speed engines falls
  // between the two, and a fit within the tolerance of it on either side was given it: a slow
  // engine rated as mid-speed (docs/BENCHMARKS.md, "Speed classes"). 0: one class, the fleet.
  double calibrate_classes = 1.5;
  // ... and the rules for several classes (classes_work_weight, classes_decode_weight,
  // classes_turnover_cap, classes_backlog_turnover_weight, the tail charge off) act only once the
  // same split has held while the fleet observed this many first tokens per worker, counted from
  // the first fits, before they settle (a split of configured rates, before any first token, at
  // once). A fleet of several speeds splits the same way from its first fits on (the half-speed
  // synthetic fleet after 10–20 per worker); far past saturation equal engines' fits split for a
  // while, each time differently (the equal synthetic fleet at ×10: 24 times, 15 different ways,
  // all but the last two for fewer than 50 first tokens of the fleet's), and the wider turnover cap
  // had cost 538 ms of mean there. 16: that row back; of the grid's 680 other runs on 20 seeds 27
  // changed, within noise (docs/BENCHMARKS.md, "A split into speed classes that holds").
  double classes_persist = 16.0;
  // A worker running no request prefills without decode steps in its batches: its predicted
  // TTFT is lower by this times (its prefill steps · the fleet's median observed inter-token
  // latency). Only the idle are credited: the fitted rates already include the decode steps
  // of a worker that has some.
  double idle_decode_weight = 1.0;
  // ... and with this many steps more (0: none): a request sent to an engine that is decoding
  // waits for the step in flight before its prefill starts (engines admit work at step
  // boundaries), half a step on average; an idle engine starts at once. Only for a prompt whose
  // fleet prefix is not hot (asked for by at most one worker's fair share of the recent
  // requests): where a hot prefix's requests go is the copy rule's (replicate_share), and the
  // half step moved them to engines holding a few blocks less of it, for prefill and nothing in
  // latency (docs/BENCHMARKS.md).
  double step_in_flight = 0.5;
  // Where a prompt's new content should enter the fleet's caches: a worker whose cache turns over
  // faster than the fleet's (a larger share of the recently booked uncached tokens per KV block)
  // evicts younger blocks, which are likelier to be asked for again. Charged (credited below the
  // mean) weight · min(new, mean booked uncached) / mean rate · (turnover_w / mean turnover − 1),
  // `new` the prompt's tokens cached nowhere in the fleet: it places fresh content, and barely
  // moves a request whose prompt is cached somewhere (the same `new` for every worker).
  double turnover_weight = 2.0;
  // ... for every prompt once the fleet's caches turn over: some worker's index holds at least
  // this fraction of its KV capacity. Before that no engine evicts, and on a small fleet starting
  // cold (shares all or nothing) the term moved a conversation's second turn off the llama.cpp
  // server holding its first (docs/BENCHMARKS.md); 0: from the first booking.
  double turnover_fill = 0.9;
  // ... and, before that, only for a fresh prompt: less than this fraction of it cached anywhere
  // in the fleet (a new conversation, a new document); 0: none.
  double turnover_cached = 0.25;
  // ... and on a fleet of more than one speed class (calibrate_classes) while requests wait for
  // their first token (classes_turnover_waiting per worker, on average), the charge counts up to
  // this many times the mean new tokens per request instead of once: the fast engines otherwise
  // take most long new prompts and their caches turn over faster than the content comes back,
  // and under load each recomputation is queue time for every request behind it. 4 at 0.5: on
  // the half-speed fleets 60 → 75 rows of 90 on seeds 1–10 and 55 → 75 on seeds 11–20; caps 3
  // and 6 won 140 and 138 of the 180, 100 (no cap) 89; from 0.25 waiting 144, cap 3 from 1 130
  // (docs/BENCHMARKS.md, "Long new prompts on a loaded fleet of several speeds"); cap 1: off.
  double classes_turnover_cap = 4.0;
  double classes_turnover_waiting = 0.5;
  // ... and there, within lifetime_backlog_s of a router backlog, the charge's weight is this
  // instead of turnover_weight (turnover_weight 0 still turns the term off). Past saturation a
  // new prompt a slow engine takes costs it twice the engine time a fast one spends, capacity
  // the held requests wait for, and the decodes beside it wait through its chunks: at full
  // weight and the wider cap the slowest requests end to end were long-output ones on the slow
  // engines, at 219 ms per output token (seed 1; llm-d's weighted profile 155). 1.25: on the
  // half-speed synthetic fleet at ×6 (seeds 1–10 / 11–20 / 21–30) mean −14 / −27 / −37 ms, p99
  // −240 / −306 / −492 ms, end-to-end p99 +17 / +20 / +22% → +5 / +3 / +10% of the best peer's,
  // rows won 7 → 8, 7 → 9, 2 → 4 (21 of the 30, from 16; 1.1 won 10, 1.4 16; 1 and 0.5 4 and
  // 1 of seeds 11–20's 10); outside several classes (every fleet in a backlog) the equal
  // synthetic fleet at ×10 +196 ms (docs/BENCHMARKS.md, "The turnover charge past saturation on
  // a fleet of several speeds").
  double classes_backlog_turnover_weight = 1.25;
  // What a cache will have evicted before it is asked for again: a worker is charged
  // weight · uncached_w · late_w / mean rate, late_w the share of recently used
  // prompt tokens asked for again more than its cache's lifetime after their last use. Only
  // while the workers' calibrated rates differ by more than calibrate_tolerance: the time to
  // first token then sends new content to the fast engines, whose caches turn over faster; on
  // an equal fleet the turnover term keeps the lifetimes level, and the measured differences
  // are noise (docs/BENCHMARKS.md, "Cache lifetimes"); 0: never.
  double lifetime_weight = 10.0;
  // ... except while requests wait at the router and for this many seconds after the last of
  // them was released, where the weight is backlog_lifetime_weight: past saturation engine time
  // is what every request waits for, and at full weight the charge held requests for the slow
  // engines' long-lived caches while a fast one was free (the half-speed synthetic fleet at ×6,
  // seed 1: p99 4.5 s with it, 2.9 s without; docs/BENCHMARKS.md); 0: never a window. The same
  // window sets backlog_work_weight in place of load_work_weight.
  double lifetime_backlog_s = 60;
  // ... there the recomputation to come is charged at face value, the time its tokens take at
  // the fleet's mean rate: near ties then go to the engine whose cache keeps them, and a free
  // fast engine still takes what a slow one would make wait. 1: on the half-speed synthetic
  // fleet at ×6 −1.1 points of prefill, mean −14 ms (seeds 1–20; docs/BENCHMARKS.md, "The
  // lifetime charge past saturation, at face value"); 0: off there.
  double backlog_lifetime_weight = 1.0;
  // The tail: a worker whose predicted time to first token exceeds this quantile of the
  // soonest predicted TTFTs of the last 1,000 decisions is charged tail_weight times the
  // excess, on top of it. The cost is otherwise linear in time, so a request with most of its
  // prompt cached would wait behind a long prefill on its holder (one of the slowest 1%) to
  // spare the fleet a recomputation that a free engine would finish sooner. Only
  // once every worker's rate fit is settled, on one speed class, and not within
  // lifetime_backlog_s of a router backlog: on several classes it traded 1.4–2.5 points of
  // prefill for the p99 there, and past saturation every wait is long. 1 and 0.97: the
  // Mooncake trace's p99 3–34 ms lower, 255 / 258 rows of 350 on seeds 1–10 / 11–20 (from 253
  // / 254) (docs/BENCHMARKS.md, "The tail"); 0: off.
  double tail_weight = 1.0;
  double tail_quantile = 0.97;
  // The hits a prefill delays: a worker whose cache draws hit_rate_w requests per second for
  // the prefixes it holds is charged, for a prefill of tau_w seconds behind a queue of q_w, the
  // delay that prefill adds to them while it runs, each hit's delay capped at c_w, what moving
  // to recompute its prefix elsewhere would cost it:
  // hit_delay_weight · hit_rate_w · (F(q_w + tau_w) − F(q_w)), F(x) = ∫₀ˣ min(u, c_w) du,
  // c_w = hit_delay_cap · hit_tokens_w / mean rate. Not within lifetime_backlog_s of a router
  // backlog. The time to first token alone put a 127k-token fresh prompt on an idle engine
  // holding a 38k-token document asked for a second earlier (its cost 1.5 ms from another idle
  // engine's), and the document's next request, 2 s later, recomputed it elsewhere. 1 and 0.5:
  // 263 / 266 rows of 350 on seeds 1–10 / 11–20 (from 255 / 258); the equal synthetic fleet's
  // prefill −1.1 and −1.9 points at ×1.2 and ×7, Mooncake's −0.2 at ×1.5 and ×4.5
  // (docs/BENCHMARKS.md, "The hits a prefill delays"); 0: off.
  double hit_delay_weight = 1.0;
  double hit_delay_cap = 0.5;
  // Copies of a hot prefix: when the share of the recent requests whose deepest fleet-held
  // prefix is this one exceeds this times its holders' share of the workers, its
  // holders cannot serve its demand at their fair share of the load, and a worker without it
  // is costed as if it held it: the copy is an investment that the prefix's later requests
  // repay by finding an idle engine that holds it; 0: never. 1.4 rather than 1.2: the share is
  // an estimate, and a session's steps (an agent loop on a shared context) arrive together, so
  // at 1.2 a swing made copies the demand did not need (agentic_8k at rate 4: prefill −0.7
  // points, 13 → 20 seeds of 20 won; docs/BENCHMARKS.md, "The copy factor, 1.2 → 1.4").
  double replicate_share = 1.4;
  // kvrouter's router queue (RouterQueue): past this many batches of booked prefill on every
  // worker, requests wait at the router and are released shortest first, so that a question
  // about a cached document is not served after every document queued before it; each second
  // waited counts as queue_age fewer tokens, so that long prompts are not starved. 4 and
  // 50,000 tokens/s: docs/BENCHMARKS.md; queue_threshold 0: no queue.
  double queue_threshold = 4;
  double queue_age = 50000;
};

// A router-side queue: while every worker's booked prefill tokens exceed `threshold` times its
// max batched tokens (Scheduler::AllPrefillBusy), and while requests are already waiting,
// arrivals wait at the router. As workers drain they are routed oldest first, or, with
// `shortest_first`, by their estimated uncached tokens minus `age_tokens_per_s` per second
// waited, among the kRouterQueueWindow oldest (Scheduler::ReleaseKey).
struct RouterQueue {
  double threshold = 0;  // in batches; 0: no queue
  bool shortest_first = false;
  double age_tokens_per_s = 0;
};
// How many of the oldest waiting requests a release considers (bounds its work).
inline constexpr size_t kRouterQueueWindow = 64;

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;
  virtual std::vector<std::string_view> TermNames() const = 0;
  // Evaluates every candidate (same order as `workers`) and returns the chosen index.
  // REQUIRES: !workers.empty(); candidates.size() == workers.size().
  virtual size_t Choose(const RequestInfo& req, std::span<const WorkerView> workers,
                        std::span<Candidate> candidates, Rng& rng) = 0;
  // Whether the scheduler must keep an approximate (router-inserted) tree for WorkerView::approx.
  virtual bool wants_approx_tree() const { return false; }
  // Whether the scheduler must keep the reuse-gap life table (RequestInfo::reuse_gaps).
  virtual bool wants_reuse_gaps() const { return false; }
  // How the policy queues requests at the router (RouterQueue below); by default it does not.
  virtual RouterQueue router_queue() const { return {}; }
};

// The policy names, in the order reports list them.
std::vector<std::string> PolicyNames();
// The name an alias stands for (`llmd` → `llmd_optimized`); other names unchanged.
std::string_view CanonicalPolicyName(std::string_view name);

// A policy with option overrides, written `name` or `name[key=value,...]` (for ablations:
// `kvrouter[decay_oldest=0]`). Keys are PolicyOptions field names; booleans are 0/1.
struct PolicySpec {
  std::string label;  // the spec as written, with an aliased name made canonical
  std::string name;
  PolicyOptions options;
};
absl::StatusOr<PolicySpec> ParsePolicySpec(std::string_view spec, const PolicyOptions& base = {});
absl::StatusOr<std::unique_ptr<Policy>> MakePolicy(std::string_view name,
                                                   const PolicyOptions& options = {});

// Selection helpers shared by the policies.
// argmin of cost over eligible candidates; ties by `tiebreak` (lower first), then uniformly.
size_t ArgMin(std::span<const Candidate> c, std::span<const double> tiebreak, Rng& rng);
// Dynamo's softmax: p_i ∝ exp(-(c_i / (max - min)) / T) over eligible candidates.
size_t SoftmaxSample(std::span<const Candidate> c, double temperature, Rng& rng);

}  // namespace kvr
