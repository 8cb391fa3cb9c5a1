// The peers' policies, as reference/policies.md specifies them (sources in docs/POLICIES.md).
#include <algorithm>
#include <limits>

#include "scheduler/policies_internal.h"

namespace kvr {
namespace {

// Kubernetes-Service baseline.
class RoundRobin final : public Policy {
 public:
  std::string_view name() const override { return "round_robin"; }
  std::vector<std::string_view> TermNames() const override { return {}; }
  size_t Choose(const RequestInfo&, std::span<const WorkerView> w, std::span<Candidate>,
                Rng&) override {
    return next_++ % w.size();
  }

 private:
  uint64_t next_ = 0;
};

class Random final : public Policy {
 public:
  std::string_view name() const override { return "random"; }
  std::vector<std::string_view> TermNames() const override { return {}; }
  size_t Choose(const RequestInfo&, std::span<const WorkerView> w, std::span<Candidate>,
                Rng& rng) override {
    return rng.Uniform(w.size());
  }
};

// Fewest uncached in-flight prefill tokens; ties: fewest running requests, then random.
class LeastLoaded final : public Policy {
 public:
  std::string_view name() const override { return "least_loaded"; }
  std::vector<std::string_view> TermNames() const override {
    return {"inflight_prefill_tokens", "running"};
  }
  size_t Choose(const RequestInfo&, std::span<const WorkerView> w, std::span<Candidate> c,
                Rng& rng) override {
    std::vector<double> tb(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      c[i].terms = {double(w[i].booked_prefill_tokens), double(w[i].running)};
      c[i].cost = double(w[i].booked_prefill_tokens);
      tb[i] = w[i].running;
    }
    return ArgMin(c, tb, rng);
  }
};

// Power of two choices on running requests.
class PowerOfTwo final : public Policy {
 public:
  std::string_view name() const override { return "p2c"; }
  std::vector<std::string_view> TermNames() const override { return {"running"}; }
  size_t Choose(const RequestInfo&, std::span<const WorkerView> w, std::span<Candidate> c,
                Rng& rng) override {
    for (size_t i = 0; i < w.size(); ++i) {
      c[i].terms[0] = c[i].cost = w[i].running;
      c[i].eligible = false;
    }
    const size_t a = rng.Uniform(w.size());
    size_t b = w.size() > 1 ? rng.Uniform(w.size() - 1) : a;
    if (w.size() > 1 && b >= a) ++b;
    c[a].eligible = c[b].eligible = true;
    return ArgMin(c, {}, rng);
  }
};

// NVIDIA Dynamo KV router, default flags:
//   logit = overlap_weight · (A_w + ISL − O_w·B)/B + active_blocks_w + (N − M_w)
// argmin, ties → smallest cached tree, then random; softmax when temperature > 0.
class Dynamo final : public Policy {
 public:
  explicit Dynamo(const PolicyOptions& o) : o_(o) {}
  std::string_view name() const override { return "dynamo"; }
  std::vector<std::string_view> TermNames() const override {
    return {"prefill_blocks", "decode_blocks", "overlap_blocks"};
  }
  size_t Choose(const RequestInfo& req, std::span<const WorkerView> w, std::span<Candidate> c,
                Rng& rng) override {
    const double bs = req.block_size;
    const double n = double(req.blocks.size());
    std::vector<double> tb(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      const double uncached = std::max(0.0, double(req.prompt_tokens) - w[i].device * bs);
      const double prefill_blocks = (double(w[i].booked_prefill_tokens) + uncached) / bs;
      const double decode_blocks = double(w[i].active_blocks) + (n - w[i].active_overlap);
      c[i].terms = {prefill_blocks, decode_blocks, double(w[i].device)};
      c[i].cost = o_.overlap_weight * prefill_blocks + decode_blocks;
      tb[i] = double(w[i].cached_blocks);
    }
    if (o_.temperature > 0) return SoftmaxSample(c, o_.temperature, rng);
    return ArgMin(c, tb, rng);
  }
  // Dynamo's router queue: first come, first served (its default queue policy, fcfs).
  RouterQueue router_queue() const override { return {.threshold = o_.dynamo_queue_threshold}; }

 private:
  PolicyOptions o_;
};

// SGLang model gateway cache_aware: the pool is imbalanced, and routes to the least loaded
// worker, when its in-flight request counts differ by more than balance_abs and the largest is
// more than balance_rel times the smallest.
bool SglangImbalanced(std::span<const WorkerView> w, const PolicyOptions& o) {
  uint32_t lo = std::numeric_limits<uint32_t>::max(), hi = 0;
  for (const WorkerView& v : w) {
    lo = std::min(lo, v.running);
    hi = std::max(hi, v.running);
  }
  return hi - lo > o.sglang_balance_abs && hi > o.sglang_balance_rel * lo;
}

// SGLang / Shepherd model gateway cache_aware (CLI defaults), over the router's approximate
// tree (every routed prompt inserted for its worker; no TTL, trimmed to a size cap every
// eviction interval: SchedulerConfig), matched on blocks of tokens.
class Sglang final : public Policy {
 public:
  explicit Sglang(const PolicyOptions& o) : o_(o) {}
  std::string_view name() const override { return "sglang"; }
  std::vector<std::string_view> TermNames() const override { return {"load", "match_rate"}; }
  bool wants_approx_tree() const override { return true; }
  size_t Choose(const RequestInfo& req, std::span<const WorkerView> w, std::span<Candidate> c,
                Rng& rng) override {
    for (size_t i = 0; i < w.size(); ++i) {
      const double rate =
          req.prompt_tokens ? double(w[i].approx) * req.block_size / req.prompt_tokens : 0;
      c[i].terms = {double(w[i].running), std::min(1.0, rate)};
    }
    size_t best = 0;
    for (size_t i = 1; i < w.size(); ++i) {
      if (c[i].terms[1] > c[best].terms[1]) best = i;
    }
    if (!SglangImbalanced(w, o_) && c[best].terms[1] > o_.sglang_cache_threshold) {
      // The best-matching worker; equal matches go to the lower load.
      for (size_t i = 0; i < w.size(); ++i) {
        c[i].eligible = c[i].terms[1] == c[best].terms[1];
        c[i].cost = w[i].running;
      }
      return ArgMin(c, {}, rng);
    }
    for (size_t i = 0; i < w.size(); ++i) c[i].cost = w[i].running;
    return ArgMin(c, {}, rng);
  }

 private:
  PolicyOptions o_;
};

// The same gateway's event-driven mode (gRPC workers whose engines stream KV events): when the
// pool is balanced, the worker holding the most leading blocks of the prompt by the engines'
// own events (no match-rate threshold; ties: lower load, then the smaller cache); with none
// held anywhere, or when imbalanced, the least loaded.
class SglangEvents final : public Policy {
 public:
  explicit SglangEvents(const PolicyOptions& o) : o_(o) {}
  std::string_view name() const override { return "sglang_events"; }
  std::vector<std::string_view> TermNames() const override {
    return {"load", "overlap_blocks", "cached_blocks"};
  }
  size_t Choose(const RequestInfo&, std::span<const WorkerView> w, std::span<Candidate> c,
                Rng& rng) override {
    uint32_t best = 0;
    std::vector<double> tb(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      best = std::max(best, w[i].device);
      c[i].terms = {double(w[i].running), double(w[i].device), double(w[i].cached_blocks)};
      c[i].cost = w[i].running;
      tb[i] = double(w[i].cached_blocks);
    }
    if (best > 0 && !SglangImbalanced(w, o_)) {
      for (size_t i = 0; i < w.size(); ++i) c[i].eligible = w[i].device == best;
      return ArgMin(c, tb, rng);
    }
    return ArgMin(c, {}, rng);
  }

 private:
  PolicyOptions o_;
};

// The leading prompt blocks llm-d's prefix producer credits a worker with. Its default (the
// approximate producer) learns from its own routing: every routed prompt counts for its pod at
// once, until the pod's LRU of block hashes, sized to its KV capacity, drops it. Modelled as the
// engine's confirmed blocks or the blocks of prompts routed there (in flight, or routed within
// the prediction TTL), whichever is deeper: the exact cache in place of an LRU that guesses it.
// Without llmd_routing_history, the confirmed blocks only (the precise producer, speculative
// indexing off).
uint32_t LlmdOverlap(const PolicyOptions& o, const WorkerView& w) {
  return o.llmd_routing_history ? std::max({w.device, w.predicted, w.active_overlap}) : w.device;
}

// llm-d's prefix hit ratio of a worker: matched prompt tokens over the prompt.
double LlmdHitRatio(const PolicyOptions& o, const RequestInfo& req, const WorkerView& w) {
  const double matched = double(LlmdOverlap(o, w)) * req.block_size;
  return req.prompt_tokens ? std::min(1.0, matched / req.prompt_tokens) : 0;
}

// llm-d's prefix-cache-affinity-filter: the workers whose hit ratio reaches the threshold stay
// eligible (all, if none does), unless the best of them has an estimated TTFT more than `gate_s`
// worse than the best of the others; then all do. `c[i].eligible` holds the affinity test on
// entry.
void LlmdAffinityFilter(std::span<Candidate> c, std::span<const double> est_ttft_s, double gate_s) {
  double best_sticky = std::numeric_limits<double>::infinity();
  double best_other = best_sticky;
  bool any_sticky = false;
  for (size_t i = 0; i < c.size(); ++i) {
    if (c[i].eligible) {
      any_sticky = true;
      best_sticky = std::min(best_sticky, est_ttft_s[i]);
    } else {
      best_other = std::min(best_other, est_ttft_s[i]);
    }
  }
  if (!any_sticky || best_sticky - best_other > gate_s) {
    for (Candidate& x : c) x.eligible = true;
  }
}

// llm-d "optimized baseline" (the well-lit path's default profile): the prefix-cache affinity
// filter, then the token-load scorer alone (max-score picker, ties random). The scorer counts
// the worker's committed uncached work (InFlightLoad) plus this request's own uncached tokens
// there (UncachedRequestTokens); the filter's TTFT gate reads InFlightLoad only.
class LlmdOptimized final : public Policy {
 public:
  explicit LlmdOptimized(const PolicyOptions& o) : o_(o) {}
  std::string_view name() const override { return "llmd_optimized"; }
  std::vector<std::string_view> TermNames() const override {
    return {"hit_ratio", "est_ttft_s", "load_tokens", "load_score"};
  }
  size_t Choose(const RequestInfo& req, std::span<const WorkerView> w, std::span<Candidate> c,
                Rng& rng) override {
    std::vector<double> est(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      const double ratio = LlmdHitRatio(o_, req, w[i]);
      const double inflight = double(w[i].booked_prefill_tokens);
      const double uncached =
          std::max(0.0, double(req.prompt_tokens) - double(LlmdOverlap(o_, w[i])) * req.block_size);
      const double load = inflight + uncached;
      const double score = 1 - std::min(1.0, load / o_.llmd_max_tokens);
      est[i] = inflight / o_.llmd_rate_tok_s;
      c[i].terms = {ratio, est[i], load, score};
      c[i].cost = -score;
      c[i].eligible = ratio >= o_.llmd_affinity_threshold;
    }
    LlmdAffinityFilter(c, est, o_.llmd_gate_s);
    return ArgMin(c, {}, rng);
  }

 private:
  PolicyOptions o_;
};

// llm-d's chart-default weighted profile: queue-scorer 2, kv-cache-utilization-scorer 2,
// prefix-cache-scorer 3, summed unnormalised, max-score picker (ties random). Queue and KV
// usage come from the engines' scraped /metrics; with none reported, queue and KV scores are
// equal everywhere (llm-d leaves such endpoints unscored) and the prefix scorer decides.
class LlmdWeighted final : public Policy {
 public:
  explicit LlmdWeighted(const PolicyOptions& o) : o_(o) {}
  std::string_view name() const override { return "llmd_weighted"; }
  std::vector<std::string_view> TermNames() const override {
    return {"queue_score", "kv_score", "prefix_score", "waiting", "kv_usage"};
  }
  size_t Choose(const RequestInfo& req, std::span<const WorkerView> w, std::span<Candidate> c,
                Rng& rng) override {
    double min_q = std::numeric_limits<double>::infinity(), max_q = 0;
    for (const WorkerView& v : w) {
      const double q = v.metrics.valid ? v.metrics.waiting : 0;
      min_q = std::min(min_q, q);
      max_q = std::max(max_q, q);
    }
    for (size_t i = 0; i < w.size(); ++i) {
      const double q = w[i].metrics.valid ? w[i].metrics.waiting : 0;
      const double kv = w[i].metrics.valid ? w[i].metrics.kv_usage : 0;
      const double queue_score = max_q > min_q ? (max_q - q) / (max_q - min_q) : 1.0;
      const double kv_score = std::clamp(1 - kv, 0.0, 1.0);
      const double prefix_score = std::clamp(LlmdHitRatio(o_, req, w[i]), 0.0, 1.0);
      c[i].terms = {queue_score, kv_score, prefix_score, q, kv};
      c[i].cost = -(o_.llmd_queue_weight * queue_score + o_.llmd_kv_weight * kv_score +
                    o_.llmd_prefix_weight * prefix_score);
    }
    return ArgMin(c, {}, rng);
  }

 private:
  PolicyOptions o_;
};

}  // namespace

std::unique_ptr<Policy> MakeRoundRobin() { return std::make_unique<RoundRobin>(); }
std::unique_ptr<Policy> MakeRandom() { return std::make_unique<Random>(); }
std::unique_ptr<Policy> MakeLeastLoaded() { return std::make_unique<LeastLoaded>(); }
std::unique_ptr<Policy> MakePowerOfTwo() { return std::make_unique<PowerOfTwo>(); }
std::unique_ptr<Policy> MakeDynamo(const PolicyOptions& o) { return std::make_unique<Dynamo>(o); }
std::unique_ptr<Policy> MakeSglang(const PolicyOptions& o) { return std::make_unique<Sglang>(o); }
std::unique_ptr<Policy> MakeSglangEvents(const PolicyOptions& o) {
  return std::make_unique<SglangEvents>(o);
}
std::unique_ptr<Policy> MakeLlmdOptimized(const PolicyOptions& o) {
  return std::make_unique<LlmdOptimized>(o);
}
std::unique_ptr<Policy> MakeLlmdWeighted(const PolicyOptions& o) {
  return std::make_unique<LlmdWeighted>(o);
}

}  // namespace kvr
