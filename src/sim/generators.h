// Synthetic workloads that isolate one prefix-sharing pattern each. All are seeded and
// deterministic (kvr::Rng, no std distributions), with Poisson arrivals of requests (single-shot
// workloads) or of sessions (multi-request workloads, scaled so the request rate averages
// rate_per_s). Token ids are uniform in [0, kSyntheticVocab); shared text is shared
// token-for-token.
//
//   chat            multi-turn conversations. Each session picks one of 16 app system prompts
//                   (300-1500 tokens, uniform), then 2-8 turns; turn k's prompt is turn k-1's
//                   prompt + the previous answer (its output_tokens, synthesized) + a new user
//                   message (50-400 tokens). Think time between turns: exponential, mean 30 s
//                   (it also covers the answer's generation time, which the workload cannot know).
//   system_prompts  single-shot requests: one of 8 long system prompts (2000-6000 tokens) picked
//                   with Zipf(s = 1.1) popularity, then a unique user suffix (100-1000 tokens).
//   agentic         agent loops: each session shares one of 4 long contexts (tools + repository,
//                   4000-12000 tokens), adds a task (200-500), then runs 8-24 steps; each step's
//                   prompt appends the previous action (the previous output) and a short tool
//                   result (50-400 tokens). Steps are 0.5 s + exponential(mean 2 s) apart.
//   rag             questions about long documents (retrieval-augmented generation): one shared
//                   300-token system prompt, then one of kRagDocuments documents (7,500-31,500
//                   tokens, uniform; synthesized on first use) picked with Zipf(kRagZipf)
//                   popularity, then a unique question (20-200 tokens); answers 50-250 tokens.
//                   Each session asks 1-4 questions about its document (independently: no
//                   history), 1 s + exponential(mean 10 s) apart. Prompts 7.8k-31.8k tokens (mean
//                   19.5k); one-cache oracle reuse 67% at 4,000 requests (seed 1), mostly within
//                   sessions, the rest from documents asked about again in later sessions.
// SimRequest::session numbers sessions from 1 in start order (system_prompts: one per request).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sim/workload.h"

namespace kvr::sim {

inline constexpr size_t kRagDocuments = 4000;
inline constexpr double kRagZipf = 0.3;

struct GeneratorOptions {
  uint64_t seed = 1;
  size_t requests = 2000;   // exactly this many (the first N by arrival)
  double rate_per_s = 4.0;  // mean request arrival rate, > 0
};

// InvalidArgument for an unknown name or a non-positive rate.
absl::StatusOr<Workload> GenerateWorkload(std::string_view name, const GeneratorOptions& options);

// The names GenerateWorkload accepts, in a stable order.
std::vector<std::string> WorkloadNames();

// Zipf(s) over ranks 0..n-1 (P(k) ∝ 1/(k+1)^s), sampled by inverse CDF. n >= 1.
class ZipfSampler {
 public:
  ZipfSampler(size_t n, double s);
  template <typename R>
  size_t Sample(R& rng) const {
    return Pick(rng.UniformDouble());
  }
  size_t Pick(double u) const;  // u in [0, 1)

 private:
  std::vector<double> cdf_;
};

}  // namespace kvr::sim
