#include "sim/generators.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/random.h"
#include "sim/trace.h"

namespace kvr::sim {
namespace {

using Tokens = std::vector<TokenId>;
// Appends one session's requests (arrival set, id/session filled in later or by the callee).
using SessionFn =
    std::function<void(uint64_t session, TimeNs start, Rng& rng, std::vector<SimRequest>* out)>;

// Distinct streams for the shared pools, the arrival process and each session.
constexpr uint64_t kPoolStream = 0x706f6f6c;
constexpr uint64_t kArrivalStream = 0x61727276;
constexpr uint64_t kSessionStream = 0x73657373;
constexpr uint64_t kDocStream = 0x646f6373;

uint64_t StreamSeed(uint64_t seed, uint64_t stream, uint64_t index = 0) {
  return (seed * 0x9e3779b97f4a7c15ULL) ^ (stream << 32) ^ (index * 0xbf58476d1ce4e5b9ULL);
}

uint32_t UniformIn(Rng& rng, uint32_t lo, uint32_t hi) {
  return lo + static_cast<uint32_t>(rng.Uniform(uint64_t{hi} - lo + 1));
}

void AppendRandom(Rng& rng, size_t n, Tokens* out) {
  for (size_t i = 0; i < n; ++i) out->push_back(static_cast<TokenId>(rng.Uniform(kSyntheticVocab)));
}

std::vector<Tokens> MakePool(uint64_t seed, size_t count, uint32_t lo, uint32_t hi) {
  Rng rng(StreamSeed(seed, kPoolStream));
  std::vector<Tokens> pool(count);
  for (Tokens& p : pool) AppendRandom(rng, UniformIn(rng, lo, hi), &p);
  return pool;
}

TimeNs SecondsToNs(double s) { return static_cast<TimeNs>(std::llround(s * kNsPerSec)); }

// Sessions start as a Poisson process with rate rate_per_s / requests_per_session. Generation
// continues until N requests exist AND the next session would start after the N-th earliest
// arrival, so the first N requests by arrival are exactly those of the infinite process (no
// thinning near the end of the window).
Workload GenerateSessions(std::string name, const GeneratorOptions& options,
                          double requests_per_session, const SessionFn& session_fn) {
  Workload workload;
  workload.name = std::move(name);
  const size_t n = options.requests;
  Rng arrivals(StreamSeed(options.seed, kArrivalStream));
  const double mean_gap_s = requests_per_session / options.rate_per_s;
  std::vector<SimRequest>& all = workload.requests;
  std::vector<TimeNs> times;
  TimeNs horizon = INT64_MAX;
  double t = 0;
  for (uint64_t session = 1; n > 0; ++session) {
    t += arrivals.Exponential(mean_gap_s);
    const TimeNs start = SecondsToNs(t);
    if (all.size() >= n && start > horizon) break;
    Rng rng(StreamSeed(options.seed, kSessionStream, session));
    session_fn(session, start, rng, &all);
    if (all.size() >= n) {
      times.clear();
      for (const SimRequest& r : all) times.push_back(r.arrival);
      std::nth_element(times.begin(), times.begin() + (n - 1), times.end());
      horizon = times[n - 1];
    }
  }
  SortAndNumber(workload);
  all.resize(std::min(all.size(), n));
  return workload;
}

SimRequest MakeRequest(uint64_t session, TimeNs arrival, const Tokens& prompt, uint32_t out) {
  SimRequest r;
  r.arrival = arrival;
  r.prompt = prompt;
  r.output_tokens = out;
  r.session = session;
  return r;
}

Workload Chat(const GeneratorOptions& options) {
  const std::vector<Tokens> systems = MakePool(options.seed, 16, 300, 1500);
  auto session_fn = [&](uint64_t session, TimeNs start, Rng& rng, std::vector<SimRequest>* out) {
    Tokens context = systems[rng.Uniform(systems.size())];
    const uint32_t turns = UniformIn(rng, 2, 8);
    TimeNs at = start;
    for (uint32_t turn = 0; turn < turns; ++turn) {
      AppendRandom(rng, UniformIn(rng, 50, 400), &context);  // the user message
      const uint32_t answer = UniformIn(rng, 50, 600);
      out->push_back(MakeRequest(session, at, context, answer));
      AppendRandom(rng, answer, &context);  // the answer becomes history for the next turn
      at += SecondsToNs(rng.Exponential(30.0));
    }
  };
  return GenerateSessions("chat", options, 5.0, session_fn);
}

Workload SystemPrompts(const GeneratorOptions& options) {
  const std::vector<Tokens> systems = MakePool(options.seed, 8, 2000, 6000);
  const ZipfSampler zipf(systems.size(), 1.1);
  auto session_fn = [&](uint64_t session, TimeNs start, Rng& rng, std::vector<SimRequest>* out) {
    Tokens prompt = systems[zipf.Sample(rng)];
    AppendRandom(rng, UniformIn(rng, 100, 1000), &prompt);
    out->push_back(MakeRequest(session, start, prompt, UniformIn(rng, 50, 400)));
  };
  return GenerateSessions("system_prompts", options, 1.0, session_fn);
}

Workload Agentic(const GeneratorOptions& options) {
  const std::vector<Tokens> contexts = MakePool(options.seed, 4, 4000, 12000);
  auto session_fn = [&](uint64_t session, TimeNs start, Rng& rng, std::vector<SimRequest>* out) {
    Tokens context = contexts[rng.Uniform(contexts.size())];
    AppendRandom(rng, UniformIn(rng, 200, 500), &context);  // the task
    const uint32_t steps = UniformIn(rng, 8, 24);
    TimeNs at = start;
    for (uint32_t step = 0; step < steps; ++step) {
      const uint32_t action = UniformIn(rng, 30, 200);
      out->push_back(MakeRequest(session, at, context, action));
      AppendRandom(rng, action, &context);                   // the model's tool call
      AppendRandom(rng, UniformIn(rng, 50, 400), &context);  // the tool's result
      at += SecondsToNs(0.5 + rng.Exponential(2.0));
    }
  };
  return GenerateSessions("agentic", options, 16.0, session_fn);
}

Workload Rag(const GeneratorOptions& options) {
  const std::vector<Tokens> system = MakePool(options.seed, 1, 300, 300);
  // Documents are synthesized when first asked about (each from its own stream), so a short
  // run does not pay for the whole corpus.
  absl::flat_hash_map<size_t, Tokens> docs;
  auto doc_of = [&](size_t i) -> const Tokens& {
    auto [it, inserted] = docs.try_emplace(i);
    if (inserted) {
      Rng rng(StreamSeed(options.seed, kDocStream, i));
      AppendRandom(rng, UniformIn(rng, 7500, 31500), &it->second);
    }
    return it->second;
  };
  const ZipfSampler zipf(kRagDocuments, kRagZipf);
  auto session_fn = [&](uint64_t session, TimeNs start, Rng& rng, std::vector<SimRequest>* out) {
    Tokens context = system.front();
    const Tokens& doc = doc_of(zipf.Sample(rng));
    context.insert(context.end(), doc.begin(), doc.end());
    const uint32_t questions = UniformIn(rng, 1, 4);
    TimeNs at = start;
    for (uint32_t q = 0; q < questions; ++q) {
      Tokens prompt = context;
      AppendRandom(rng, UniformIn(rng, 20, 200), &prompt);  // the question
      out->push_back(MakeRequest(session, at, prompt, UniformIn(rng, 50, 250)));
      at += SecondsToNs(1.0 + rng.Exponential(10.0));
    }
  };
  return GenerateSessions("rag", options, 2.5, session_fn);
}

}  // namespace

ZipfSampler::ZipfSampler(size_t n, double s) : cdf_(std::max<size_t>(n, 1)) {
  double total = 0;
  for (size_t k = 0; k < cdf_.size(); ++k) {
    total += 1.0 / std::pow(static_cast<double>(k + 1), s);
    cdf_[k] = total;
  }
  for (double& c : cdf_) c /= total;
}

size_t ZipfSampler::Pick(double u) const {
  const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
  return std::min<size_t>(it - cdf_.begin(), cdf_.size() - 1);
}

std::vector<std::string> WorkloadNames() { return {"chat", "system_prompts", "agentic", "rag"}; }

absl::StatusOr<Workload> GenerateWorkload(std::string_view name, const GeneratorOptions& options) {
  if (!(options.rate_per_s > 0) || !std::isfinite(options.rate_per_s)) {
    return absl::InvalidArgumentError("rate_per_s must be a positive number");
  }
  if (name == "chat") return Chat(options);
  if (name == "system_prompts") return SystemPrompts(options);
  if (name == "agentic") return Agentic(options);
  if (name == "rag") return Rag(options);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown workload \"", std::string(name),
                   "\"; known: ", absl::StrJoin(WorkloadNames(), ", ")));
}

}  // namespace kvr::sim
