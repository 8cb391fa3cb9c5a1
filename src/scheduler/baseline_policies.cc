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

 private:
  PolicyOptions o_;
};

// SGLang / Shepherd model gateway cache_aware (CLI defaults), over the router's approximate
// tree (every routed prompt inserted for its worker, 120 s TTL), matched on blocks of tokens.
class Sglang final : public Policy {
 public:
  explicit Sglang(const PolicyOptions& o) : o_(o) {}
  std::string_view name() const override { return "sglang"; }
  std::vector<std::string_view> TermNames() const override { return {"load", "match_rate"}; }
  bool wants_approx_tree() const override { return true; }
  size_t Choose(const RequestInfo& req, std::span<const WorkerView> w, std::span<Candidate> c,
                Rng& rng) override {
    uint32_t lo = std::numeric_limits<uint32_t>::max(), hi = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      lo = std::min(lo, w[i].running);
      hi = std::max(hi, w[i].running);
      const double rate =
          req.prompt_tokens ? double(w[i].approx) * req.block_size / req.prompt_tokens : 0;
      c[i].terms = {double(w[i].running), std::min(1.0, rate)};
    }
    const bool imbalanced = hi - lo > o_.sglang_balance_abs && hi > o_.sglang_balance_rel * lo;
    size_t best = 0;
    for (size_t i = 1; i < w.size(); ++i) {
      if (c[i].terms[1] > c[best].terms[1]) best = i;
    }
    if (!imbalanced && c[best].terms[1] > o_.sglang_cache_threshold) {
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

// llm-d "optimized baseline": prefix-cache affinity filter + token-load scorer.
class Llmd final : public Policy {
 public:
  explicit Llmd(const PolicyOptions& o) : o_(o) {}
  std::string_view name() const override { return "llmd"; }
  std::vector<std::string_view> TermNames() const override {
    return {"hit_ratio", "est_ttft_s", "load_score"};
  }
  size_t Choose(const RequestInfo& req, std::span<const WorkerView> w, std::span<Candidate> c,
                Rng& rng) override {
    double best_sticky = std::numeric_limits<double>::infinity(), best_other = best_sticky;
    bool any_sticky = false;
    for (size_t i = 0; i < w.size(); ++i) {
      const double ratio =
          req.prompt_tokens ? double(w[i].device) * req.block_size / req.prompt_tokens : 0;
      const double est = double(w[i].booked_prefill_tokens) / o_.llmd_rate_tok_s;
      const double score =
          1 - std::min(1.0, double(w[i].booked_prefill_tokens) / o_.llmd_max_tokens);
      c[i].terms = {ratio, est, score};
      c[i].cost = -score;
      c[i].eligible = ratio >= o_.llmd_affinity_threshold;
      any_sticky |= c[i].eligible;
      (c[i].eligible ? best_sticky : best_other) =
          std::min(c[i].eligible ? best_sticky : best_other, est);
    }
    if (!any_sticky || best_sticky - best_other > o_.llmd_gate_s) {
      for (auto& x : c) x.eligible = true;
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
std::unique_ptr<Policy> MakeLlmd(const PolicyOptions& o) { return std::make_unique<Llmd>(o); }

}  // namespace kvr
