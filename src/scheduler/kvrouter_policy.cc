// kvrouter: minimise the predicted time to first token.
//
//   cached_w   = B·d_w + B·(h_w − d_w)⁺·(1 − host_hit_cost)      d_w: device, predicted or
//                                                                in-flight (M_w) run
//   uncached_w = max(1, ISL − cached_w)                           at least one token is computed
//   queue_w    = booked uncached tokens not yet past first token (optionally minus what the
//                oldest of them has had time to compute, or what the engine reports waiting,
//                whichever is larger: decay_oldest, engine_queue; both off)
//   ttft_w     = overhead_w + (queue_w + uncached_w) / rate_w + kv_w − idle_w
//   kv_w       = kv_pressure_weight · B·(active_w + N − M_w − capacity_w)⁺ / rate_w
//   idle_w     = (idle_decode_weight · ⌈(queue_w + uncached_w) / batch_w⌉ + s) · itl
//                if w runs nothing (itl: the fleet median of the workers' observed inter-token
//                latencies; s: step_in_flight, 0 for a prompt whose fleet prefix is hot, asked
//                for by more than 1/N of the recent requests)
//   turnover_w = t · min(new, k·ū) / rate · (f_w / mean f − 1)
//                (new: the prompt's tokens cached nowhere in the fleet, counting predicted and
//                in-flight blocks; ū: the fleet's recent mean booked uncached tokens per request;
//                k: 1, or classes_turnover_cap on several speed classes (below) while
//                classes_turnover_waiting requests per worker wait for a first token;
//                t: turnover_weight, or classes_backlog_turnover_weight on several speed
//                classes within lifetime_backlog_s of requests waiting at the router;
//                f_w: w's share of the recently booked uncached tokens per KV block; 0 until
//                some worker's cache is turnover_fill full, unless the prompt is fresh: less
//                than turnover_cached of it cached anywhere)
//   lifetime_w = lifetime_weight · uncached_w · late_w / rate
//                (late_w: the share of recently used prompt tokens asked for again more than
//                w's cache lifetime after their last use, its capacity over its recent inflow;
//                only while the workers' calibrated rates differ by more than calibrate_tolerance;
//                backlog_lifetime_weight instead within lifetime_backlog_s of requests waiting at
//                the router)
//   decode_w   = d · decoding_w · uncached_w / rate_w
//                (decoding_w: requests running on w past their first token; d = decode_weight,
//                or on several speed classes decode_weight + (classes_decode_weight −
//                decode_weight) / (1 + waiting/worker); not within
//                lifetime_backlog_s of requests waiting at the router)
//   tail_w     = tail_weight · (ttft_w − T)⁺
//                (T: the tail_quantile of the soonest predicted TTFT of each of the last 1,000
//                decisions; only once every worker's rate fit has settled, not on several
//                speed classes, and not within lifetime_backlog_s of requests waiting at the
//                router)
//   hit_delay_w = hit_delay_weight · hit_rate_w · (F(q_w + tau_w) − F(q_w))
//                (hit_rate_w: requests per second whose deepest prefix held in the fleet was held
//                by w, shared among its holders; q_w = queue_w / rate_w, tau_w = uncached_w /
//                rate_w; F(x) = ∫₀ˣ min(u, c_w) du, c_w = hit_delay_cap · their mean held tokens /
//                rate; not within lifetime_backlog_s of requests waiting at the router)
//   cost_w     = ttft_w + (work_weight + load_work_weight · waiting/worker) · uncached_w / rate
//                + turnover_w + lifetime_w + decode_w + tail_w + hit_delay_w
//                (backlog_work_weight for load_work_weight while requests wait at the router
//                and for lifetime_backlog_s after; otherwise classes_work_weight on several
//                speed classes)
//   copies     a worker without the fleet's deepest held prefix of this prompt (or the shared
//              prefix its history descends from: RequestInfo::fleet_prefix_blocks) is costed as
//              if it held it (cached_w from that prefix; it books what it will really compute)
//              when the prefix's share of recent requests exceeds replicate_share × its
//              holders' share of the workers
// rate_w and overhead_w are fitted online per worker from observed (tokens, TTFT) pairs
// (PrefillRateModel), so heterogeneous engines are compared in seconds, not block counts; the
// settled fits are split into speed classes where their medians differ by calibrate_classes,
// and fits within calibrate_tolerance of their class's median are snapped to it (noise, not
// speed); the rules for "several speed classes" act once the same split has held for
// classes_persist first tokens per worker (far past saturation equal engines' fits split for
// a while, each time differently; SpeedClasses, speed_classes.h). Those rates include the decode
// steps a busy worker interleaves with prefill; an idle worker runs none, so it is credited with
// them (idle_w): without it, a few cached blocks of a shared system prompt outweigh an idle engine,
// and load piles onto the engines that hold them. A request sent to a busy engine also waits for
// its step in flight (half a step on average), which an idle one does not; that credit is left out
// for a hot prefix, whose placement is the copy rule's below: there it only moved requests to
// engines holding a few blocks less of it. An engine that takes more than its share of the fleet's
// new content turns its cache over faster and evicts younger blocks, likelier to be asked for
// again; turnover_w steers fresh content toward the caches that turn over slowest (on a
// heterogeneous fleet, the slow engines, which the TTFT alone would leave idle with their caches
// unused). It charges at most the fleet's mean new tokens per request, so a long fresh prompt still
// goes where it is computed soonest (the tail), and it prices only content new to the fleet (the
// same for every worker), so a request whose prompt is cached somewhere is barely moved by it.
// Until some cache is (nearly) full nothing is evicted and nothing turns over, so until then the
// term only places fresh prompts (spreading new conversations and documents): on a small fleet
// starting cold the shares are all or nothing, and it would move a conversation's next turn off its
// cached history. On a heterogeneous fleet that steering is not enough: the time to first token
// sends long new prompts to the fast engines, whose caches then turn over in a fraction of the slow
// ones' time, and a conversation that comes back minutes later finds its history gone there. The
// router learns from its own bookings how long after their last use prompt tokens are asked for
// again (ReuseGaps, a life table) and how long each cache keeps a block (capacity over inflow),
// and lifetime_w charges the tokens a worker would compute by the share that its cache will have
// evicted by then: a recomputation to come. Where content comes back within seconds (documents
// and their questions) the share is near zero everywhere and nothing changes. Past saturation,
// while requests wait at the router, the charge is the recomputation's own time, not a multiple
// of it: each released request should take the engine that has just freed up, not wait for a
// slow one's longer-lived cache, but between engines free about as soon it keeps the content
// where it lives longest. And once requests queue for their first token (half a request per
// worker, on average), a long new prompt on a fast engine evicts what the next requests would have
// found, and each recomputation is queue time for all: the turnover charge then counts up to
// classes_turnover_cap times the mean new tokens of a prompt, not once, so long new prompts go
// to the slow engines' slower-turning caches unless a fast engine is clearly sooner. Past
// saturation that steering is lighter: each token a slow engine prefills there takes twice the
// engine time, which the held requests wait for, and the decodes running beside it wait through
// its chunks.
// A prefix asked for by more requests than its holders can take at a fair share of the load (a
// hot system prompt) is worth copying: every request that cost alone sends to its busy holders
// pays the decode steps it shares there, while a copy costs one recomputation, which the
// prefix's later requests repay by finding an idle engine that holds it. No single request's
// cost sees that, so past that demand the copy is priced as free.
// A prefill also slows the decodes running where it lands: their steps share its chunks.
// decode_w charges a request for the time its prefill takes from each decode running there. The
// time to first token alone starts every prefill at once on whichever engine is free soonest,
// busy decoding or not (on a fleet of several speeds, many new prompts on the slow engines, whose
// decodes then crawl); a small charge moves near ties to the engines with fewer decodes, which
// keeps the end-to-end latency, not only the first token's, near the best peer's. Where a slow
// engine's decodes already take twice as long per token the charge is heavier, while the load
// allows.
// The cost is linear in time, which suits the mean; the p99 is made of the slowest requests,
// and a request with most of its prompt cached would join them by waiting behind a long
// prefill on its holder, to spare the fleet a recomputation that a free engine would finish
// sooner. tail_w charges a worker's predicted TTFT again for what exceeds the
// recent tail of the soonest TTFTs the router could offer, so such a request moves; a long
// fresh prompt, past the tail everywhere, goes where it is computed soonest, as before.
// A prefill also delays the hits its engine's cache draws while it runs: a long fresh prompt
// sent to an idle engine that holds a document asked for moments ago makes the document's next
// request wait or recompute it elsewhere, where an idle engine holding nothing asked for would
// have cost the same. hit_delay_w charges that delay, each hit's at most what moving would cost
// it, at the rate the engine's cache has drawn hits recently.
// Past saturation the order requests reach the engines matters as much as where they go: each
// engine serves first come, first served, so a question about a cached document waits behind
// every long document queued before it. While every worker has queue_threshold batches booked,
// requests wait at the router and are released shortest first (RouterQueue; the key ages, so
// long prompts are not starved).
// Ties: fewer running requests, then random. Each term's measured effect: docs/BENCHMARKS.md.
#include <algorithm>
#include <cmath>
#include <optional>
#include <span>
#include <vector>

#include "scheduler/policies_internal.h"
#include "scheduler/speed_classes.h"

namespace kvr {
namespace {

// A quantile of the last kWindow values added, recomputed every kEvery values (a selection
// over the window: most decisions only store their value); none until kMin values.
class RecentQuantile {
 public:
  explicit RecentQuantile(double q) : q_(std::clamp(q, 0.0, 1.0)) {}
  std::optional<double> value() const { return value_; }
  void Add(double x) {
    if (window_.size() < kWindow) {
      window_.push_back(x);
    } else {
      window_[next_] = x;
    }
    next_ = (next_ + 1) % kWindow;
    if (++added_ % kEvery != 0 || window_.size() < kMin) return;
    scratch_.assign(window_.begin(), window_.end());
    const auto k = std::ptrdiff_t(q_ * double(scratch_.size() - 1));
    std::nth_element(scratch_.begin(), scratch_.begin() + k, scratch_.end());
    value_ = scratch_[size_t(k)];
  }

 private:
  static constexpr size_t kWindow = 1000, kEvery = 50, kMin = 100;
  double q_;
  std::optional<double> value_;
  size_t next_ = 0;
  uint64_t added_ = 0;
  std::vector<double> window_, scratch_;
};

class Kvrouter final : public Policy {
 public:
  explicit Kvrouter(const PolicyOptions& o) : o_(o), speeds_(o), tail_(o.tail_quantile) {}
  std::string_view name() const override { return "kvrouter"; }
  RouterQueue router_queue() const override {
    return {
        .threshold = o_.queue_threshold, .shortest_first = true, .age_tokens_per_s = o_.queue_age};
  }
  bool wants_reuse_gaps() const override { return o_.lifetime_weight > 0; }
  std::vector<std::string_view> TermNames() const override {
    // ttft_s includes −idle_w; copy_blocks: the hot prefix this worker is costed as holding
    // (0: none), in which case uncached_tokens is what remains after it.
    return {"cached_tokens", "uncached_tokens", "queue_tokens", "rate_tok_s",
            "kv_pressure_s", "ttft_s",          "turnover_s",   "copy_blocks",
            "lifetime_s",    "decode_s",        "tail_s",       "hit_delay_s"};
  }

  size_t Choose(const RequestInfo& req, std::span<const WorkerView> w, std::span<Candidate> c,
                Rng& rng) override {
    Calibrate(w);
    std::vector<double> tb(w.size());
    double rate_sum = 0, prefilling = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      rate_sum += speeds_.rate(i);
      prefilling += w[i].prefilling;
    }
    const double fleet_rate = rate_sum / double(w.size());
    const double per_worker = prefilling / double(w.size());  // requests waiting for a first token
    // Past saturation: requests wait at the router, or did within lifetime_backlog_s. The work
    // weight, the lifetime charge and the decode charge all change there.
    const bool backlog = req.backlog_age_s < o_.lifetime_backlog_s;
    // There each token of prefill is capacity: the load-following weight is backlog_work_weight
    // instead; on a fleet of several speed classes, classes_work_weight.
    const double load_weight = backlog             ? o_.backlog_work_weight
                               : speeds_.several() ? o_.classes_work_weight
                                                   : o_.load_work_weight;
    const double work_weight = o_.work_weight + load_weight * per_worker;
    // A hot prefix's requests are placed by the copy rule, not by the step in flight.
    step_in_flight_ =
        req.fleet_prefix_share * double(w.size()) <= 1 ? o_.step_in_flight : 0.0;
    Turnover(req, w, fleet_rate, per_worker, backlog);
    // Past saturation the recomputation to come is charged at face value.
    lifetime_scale_ = o_.lifetime_weight > 0 && speeds_.RatesDiffer()
                          ? (backlog ? o_.backlog_lifetime_weight : o_.lifetime_weight) / fleet_rate
                          : 0;
    // On several speed classes the decode charge is heavier while the load allows.
    decode_scale_ =
        backlog ? 0
        : speeds_.several()
            ? o_.decode_weight + (o_.classes_decode_weight - o_.decode_weight) / (1 + per_worker)
            : o_.decode_weight;
    // Past saturation every engine has a queue the hits already wait behind.
    hit_delay_weight_ = backlog ? 0 : o_.hit_delay_weight;
    const uint32_t copy = Replicate(req, w);
    for (size_t i = 0; i < w.size(); ++i) {
      Evaluate(req, w[i], speeds_.rate(i), speeds_.overhead(i), fleet_rate, work_weight, copy,
               &c[i]);
      // On a tie a holder goes first: a copy is made only where it is strictly better.
      tb[i] = w[i].running + (c[i].terms[7] > 0 ? 0.5 : 0.0);
    }
    if (o_.tail_weight > 0) Tail(req, w, c, speeds_.several() || backlog);
    if (o_.temperature > 0) return SoftmaxSample(c, o_.temperature, rng);
    return ArgMin(c, tb, rng);
  }

 private:
  // The tail charge (tail_w), and this decision's soonest predicted TTFT into the window it is
  // measured against (a dry run's is not). `off`: not charged for this decision (several
  // classes, backlog).
  void Tail(const RequestInfo& req, std::span<const WorkerView> w, std::span<Candidate> c,
            bool off) {
    double soonest = c[0].terms[5];
    bool fitted = true;
    for (size_t i = 0; i < w.size(); ++i) {
      soonest = std::min(soonest, c[i].terms[5]);
      fitted = fitted && (!o_.calibrate_rate || w[i].rate->fit_settled());
    }
    const std::optional<double> tail = tail_.value();
    if (!off && fitted && tail.has_value()) {
      for (Candidate& x : c) {
        x.terms[10] = o_.tail_weight * std::max(0.0, x.terms[5] - *tail);
        x.cost += x.terms[10];
      }
    }
    if (!req.dry_run) tail_.Add(soonest);
  }

  // This decision's rates (speeds_) and the fleet median of the observed inter-token latencies.
  void Calibrate(std::span<const WorkerView> w) {
    speeds_.Fit(w);
    decode_step_s_ = 0;
    if (o_.idle_decode_weight > 0) {
      scratch_.clear();
      for (const WorkerView& v : w) {
        if (v.decode_step_s > 0) scratch_.push_back(v.decode_step_s);
      }
      if (!scratch_.empty()) decode_step_s_ = MedianInPlace(scratch_);
    }
  }

  // This decision's turnover terms: the fleet's mean inflow per KV block (mean_turnover_, 0: no
  // term) and weight · min(new, cap · ū) / mean rate (turnover_scale_s_); cap is 1, or
  // classes_turnover_cap on several speed classes while `per_worker` (requests waiting for a
  // first token per worker) is at least classes_turnover_waiting; weight is turnover_weight, or
  // classes_backlog_turnover_weight on several speed classes within `backlog`'s window. `fill`:
  // the fullest cache's share of its capacity, as the engines' own events report it.
  void Turnover(const RequestInfo& req, std::span<const WorkerView> w, double fleet_rate,
                double per_worker, bool backlog) {
    mean_turnover_ = 0;
    if (o_.turnover_weight == 0) return;
    const double weight =
        speeds_.several() && backlog ? o_.classes_backlog_turnover_weight : o_.turnover_weight;
    uint32_t cached_anywhere = 0;
    double inflow = 0, fill = 0;
    for (const WorkerView& v : w) {
      fill = std::max(fill, double(v.cached_blocks) / double(v.spec->kv_capacity_blocks));
      cached_anywhere = std::max(cached_anywhere, Held(v));
      inflow += v.inflow_share / double(v.spec->kv_capacity_blocks);
    }
    const double mean_new = w.front().inflow_mean_tokens;
    if (mean_new <= 0) return;
    const double fresh =
        std::max(1.0, double(req.prompt_tokens) - double(req.block_size) * cached_anywhere);
    const bool mostly_fresh =
        1 - fresh / double(std::max(1u, req.prompt_tokens)) < o_.turnover_cached;
    if (fill < o_.turnover_fill && !mostly_fresh) return;
    mean_turnover_ = inflow / double(w.size());
    const double cap = speeds_.several() && per_worker >= o_.classes_turnover_waiting
                           ? o_.classes_turnover_cap
                           : 1.0;
    turnover_scale_s_ = weight * std::min(fresh, cap * mean_new) / fleet_rate;
  }

  // The leading blocks a worker is taken to hold for this prompt (device, predicted, in flight).
  uint32_t Held(const WorkerView& v) const {
    uint32_t d = o_.predicted_overlap ? std::max(v.device, v.predicted) : v.device;
    return o_.inflight_overlap ? std::max(d, v.active_overlap) : d;
  }

  // The prefix to cost every worker as holding (0: none): the fleet's deepest held prefix of
  // this prompt, when its recent demand exceeds replicate_share times its holders' share of the
  // fleet. Holders are counted, not weighed by their fitted rates: a fit that is off (a worker
  // with few samples) would make a prefix look hot and copy it for nothing.
  uint32_t Replicate(const RequestInfo& req, std::span<const WorkerView> w) const {
    if (o_.replicate_share <= 0 || req.fleet_prefix_blocks == 0 || req.fleet_prefix_share <= 0) {
      return 0;
    }
    size_t holders = 0;
    for (const WorkerView& v : w) holders += Held(v) >= req.fleet_prefix_blocks ? 1 : 0;
    if (holders == 0) return 0;
    return req.fleet_prefix_share > o_.replicate_share * double(holders) / double(w.size())
               ? req.fleet_prefix_blocks
               : 0;
  }

  // The delay a prefill of `tau` seconds, starting after `queue` seconds, adds to the hits that
  // the worker's cache draws while it runs (hit_delay_w): a hit arriving t seconds from now
  // would have waited (queue − t)⁺ and now waits (queue + tau − t)⁺, each capped at c, what
  // recomputing its prefix elsewhere would cost it instead; over arrivals at hit_rate per
  // second that is hit_rate · (F(queue + tau) − F(queue)), F(x) = ∫₀ˣ min(u, c) du.
  double HitDelay(const WorkerView& v, double queue, double tau, double fleet_rate) const {
    if (hit_delay_weight_ <= 0 || v.hit_rate <= 0) return 0;
    const double c = o_.hit_delay_cap * v.hit_tokens / fleet_rate;
    const auto F = [c](double x) { return x <= c ? x * x / 2 : c * c / 2 + c * (x - c); };
    return hit_delay_weight_ * v.hit_rate * (F(queue + tau) - F(queue));
  }

  void Evaluate(const RequestInfo& req, const WorkerView& v, double rate, double overhead,
                double fleet_rate, double work_weight, uint32_t copy, Candidate* c) const {
    const double bs = req.block_size;
    const uint32_t d = Held(v);
    const double host_extra = v.host > d ? double(v.host - d) : 0.0;
    const double cached = bs * d + bs * host_extra * (1 - o_.host_hit_cost);
    const double real_uncached = std::max(1.0, double(req.prompt_tokens) - cached);
    // A worker without a hot prefix is costed as if it held it; it books what it will compute.
    const double uncached =
        copy > d ? std::max(1.0, double(req.prompt_tokens) - bs * copy) : real_uncached;
    double queue = double(v.booked_prefill_tokens);
    if (o_.decay_oldest) {
      const double done = double(v.oldest_prefill_age_ns) * 1e-9 * rate;
      queue -= std::min(done, double(v.oldest_prefill_tokens));
    }
    if (o_.engine_queue && v.metrics.valid)
      queue = std::max(queue, double(v.metrics.waiting_prefill_tokens));
    const double new_blocks = double(req.blocks.size()) - v.active_overlap;
    const double overflow =
        double(v.active_blocks) + new_blocks - double(v.spec->kv_capacity_blocks);
    const double kv_s = o_.kv_pressure_weight * std::max(0.0, overflow) * bs / rate;
    double idle_s = 0;
    if (v.running == 0 && decode_step_s_ > 0) {
      const double batch = std::max(1.0, double(v.spec->max_batched_tokens));
      const double steps = std::ceil((queue + uncached) / batch);
      idle_s = (o_.idle_decode_weight * steps + step_in_flight_) * decode_step_s_;
    }
    const double ttft = overhead + (queue + uncached) / rate + kv_s - idle_s;
    double turnover_s = 0;
    if (mean_turnover_ > 0) {
      const double f = v.inflow_share / double(v.spec->kv_capacity_blocks);
      turnover_s = turnover_scale_s_ * (f / mean_turnover_ - 1);
    }
    // What this worker's cache will have evicted before it is asked for again.
    // (A cache with no inflow yet evicts nothing: cache_life_s 0.)
    const double late = lifetime_scale_ > 0 && req.reuse_gaps != nullptr && v.cache_life_s > 0
                            ? req.reuse_gaps->LaterThan(v.cache_life_s)
                            : 0.0;
    const double lifetime_s = lifetime_scale_ * real_uncached * late;
    const double decoding = v.running > v.prefilling ? double(v.running - v.prefilling) : 0.0;
    const double decode_s = decode_scale_ * decoding * real_uncached / rate;
    const double copied = copy > d ? double(copy) : 0.0;
    const double hit_delay_s = HitDelay(v, queue / rate, uncached / rate, fleet_rate);
    c->terms = {cached,     uncached, queue,      rate,     kv_s, ttft,
                turnover_s, copied,   lifetime_s, decode_s, 0.0,  hit_delay_s};
    c->cost = ttft + work_weight * uncached / fleet_rate + turnover_s + lifetime_s + decode_s +
              hit_delay_s;
    c->booked_uncached = real_uncached;
  }

  PolicyOptions o_;
  double decode_step_s_ = 0;   // this decision's fleet median inter-token latency
  double step_in_flight_ = 0;  // this decision's steps credited for the step in flight
  double mean_turnover_ = 0, turnover_scale_s_ = 0;
  double decode_scale_ = 0;    // this decision's decode weight (0: no term)
  double lifetime_scale_ = 0;  // this decision's lifetime_weight / mean rate (0: no term)
  double hit_delay_weight_ = 0;  // this decision's hit_delay_weight (0: no term)
  SpeedClasses speeds_;          // this decision's rates, overheads and speed classes
  RecentQuantile tail_;        // the tail of the soonest predicted TTFTs (Tail)
  std::vector<double> scratch_;  // kept across decisions: no allocation on the routing path
};

}  // namespace

std::unique_ptr<Policy> MakeKvrouter(const PolicyOptions& o) {
  return std::make_unique<Kvrouter>(o);
}

}  // namespace kvr
