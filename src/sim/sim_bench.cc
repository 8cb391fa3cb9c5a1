// Trace loading and oracle hit rate over the bundled Mooncake trace (~145M tokens materialized).
// Run from the repository root.
#include <benchmark/benchmark.h>

#include "sim/generators.h"
#include "sim/trace.h"
#include "sim/workload.h"

namespace kvr::sim {
namespace {

constexpr char kTrace[] = "data/traces/mooncake_conversation_trace.jsonl";

void BM_LoadMooncakeTrace(benchmark::State& state) {
  for (auto _ : state) {
    auto w = LoadMooncakeTrace(kTrace, {});
    if (!w.ok()) state.SkipWithError("cannot load the bundled trace");
    benchmark::DoNotOptimize(w);
  }
}
BENCHMARK(BM_LoadMooncakeTrace)->Unit(benchmark::kMillisecond);

void BM_OracleHitRate(benchmark::State& state) {
  auto w = LoadMooncakeTrace(kTrace, {});
  if (!w.ok()) state.SkipWithError("cannot load the bundled trace");
  for (auto _ : state) {
    state.counters["hit_rate"] = OracleHitRate(*w, static_cast<uint32_t>(state.range(0)));
  }
}
BENCHMARK(BM_OracleHitRate)->Arg(16)->Arg(512)->Unit(benchmark::kMillisecond);

void BM_Generate(benchmark::State& state) {
  const std::string name = WorkloadNames()[state.range(0)];
  state.SetLabel(name);
  for (auto _ : state) {
    auto w = GenerateWorkload(name, GeneratorOptions{});
    benchmark::DoNotOptimize(w);
    state.counters["oracle_16"] = OracleHitRate(*w, 16);
    state.counters["tokens"] = static_cast<double>(TotalPromptTokens(*w));
  }
}
BENCHMARK(BM_Generate)->DenseRange(0, 2)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kvr::sim
