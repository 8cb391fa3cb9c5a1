// Cost of the engine model on a Mooncake-sized workload: one engine's share of a 12k-request
// trace (1,500 requests, prompts ~12k tokens with shared prefixes, ~300 output tokens), default
// preset, Poisson arrivals in virtual time. Reports wall time per step.
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/random.h"
#include "engine/engine.h"
#include "index/block_hash.h"

namespace kvr::engine {
namespace {

struct Arrival {
  TimeNs at;
  EngineRequest request;
};

std::vector<Arrival> MakeWorkload(int n, bool with_hashes, double mean_gap_s) {
  Rng rng(1);
  std::vector<std::vector<TokenId>> prefixes(40);
  for (auto& p : prefixes) {
    p.resize(8192);
    for (auto& t : p) t = static_cast<TokenId>(rng.Uniform(150000));
  }
  std::vector<Arrival> out;
  TimeNs t = 0;
  for (int i = 0; i < n; ++i) {
    t += static_cast<TimeNs>(rng.Exponential(mean_gap_s) * kNsPerSec);
    EngineRequest r;
    r.id = static_cast<uint64_t>(i);
    const auto& prefix = prefixes[rng.Uniform(prefixes.size())];
    r.prompt.assign(prefix.begin(), prefix.begin() + rng.Uniform(prefix.size()));
    const uint64_t suffix = 2000 + rng.Uniform(8000);
    for (uint64_t k = 0; k < suffix; ++k) r.prompt.push_back(static_cast<TokenId>(rng.Next()));
    r.max_output_tokens = 1 + static_cast<uint32_t>(rng.Uniform(600));
    if (with_hashes) r.prompt_hashes = SequenceHashes(r.prompt, 64);
    out.push_back({t, std::move(r)});
  }
  return out;
}

void BM_EngineMooncakeShare(benchmark::State& state) {
  const std::vector<Arrival> workload =
      MakeWorkload(1500, state.range(0) != 0, state.range(1) / 1000.0);
  uint64_t steps = 0, preemptions = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<Arrival> arrivals = workload;
    Engine e(*EnginePreset("default"));
    state.ResumeTiming();
    TimeNs now = 0;
    size_t next = 0;
    while (next < arrivals.size() || e.HasWork()) {
      if (!e.HasWork()) now = std::max(now, arrivals[next].at);
      while (next < arrivals.size() && arrivals[next].at <= now) {
        e.Add(std::move(arrivals[next++].request));
      }
      StepOutput out = e.Step();
      benchmark::DoNotOptimize(out);
      now += out.duration;
      ++steps;
    }
    preemptions += e.Stats().preemptions;
  }
  state.counters["steps"] =
      benchmark::Counter(static_cast<double>(steps), benchmark::Counter::kAvgIterations);
  state.counters["time_per_step"] = benchmark::Counter(
      static_cast<double>(steps), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["preemptions"] =
      benchmark::Counter(static_cast<double>(preemptions), benchmark::Counter::kAvgIterations);
}
// Args: whether the caller supplies prompt hashes (as the simulator can, having hashed them for
// the router), and the mean gap between arrivals in ms (200: saturated, 2000: light load).
BENCHMARK(BM_EngineMooncakeShare)
    ->Args({0, 200})
    ->Args({1, 200})
    ->Args({1, 2000})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

}  // namespace
}  // namespace kvr::engine
