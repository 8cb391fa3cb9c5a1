// kvrouter bench jitter: the machine's own latency noise floor. Times a fixed, cache-resident
// compute loop of about --work-us microseconds many times; on an idle dedicated core every
// sample costs the same, so whatever the tail adds (timer interrupts, hypervisor exits, a busy
// sibling thread) is what any operation of that length pays at its p99 on this machine. Run it
// next to `bench index` / `bench route` to tell the code's tail from the machine's.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/bench_clock.h"
#include "cli/bench_workload.h"
#include "cli/commands.h"

namespace kvr::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct JitterFlags {
  double work_us = 15;
  uint32_t samples = 20000;
};

// A dependent chain of multiply-xorshift steps: no memory traffic, no branches to mispredict.
uint64_t Spin(uint64_t x, uint64_t steps) {
  for (uint64_t i = 0; i < steps; ++i) {
    x = (x ^ (x >> 29)) * 0xBF58476D1CE4E5B9ULL + i;
  }
  return x;
}

int RunJitter(const JitterFlags& f) {
  // Calibrate: steps per microsecond, from the fastest of a few long runs.
  uint64_t sink = 1;
  double best_ns_per_step = 1e9;
  for (int r = 0; r < 20; ++r) {
    const uint64_t steps = 1 << 20;
    auto t0 = Clock::now();
    sink = Spin(sink, steps);
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    best_ns_per_step = std::min(best_ns_per_step, ns / double(steps));
  }
  const auto steps = uint64_t(f.work_us * 1e3 / best_ns_per_step);
  std::vector<double> wall, cpu;
  wall.reserve(f.samples);
  cpu.reserve(f.samples);
  for (uint32_t i = 0; i < f.samples; ++i) {
    const double c0 = ThreadCpuUs();
    auto t0 = Clock::now();
    sink = Spin(sink, steps);
    wall.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    cpu.push_back(ThreadCpuUs() - c0);
  }
  std::vector<double> sorted = wall;
  std::sort(sorted.begin(), sorted.end());
  auto q = [&](double p) { return sorted[std::min(sorted.size() - 1, size_t(p * sorted.size()))]; };
  const double p50 = q(0.5);
  // A sample "hit" by an interruption: more than 1.5x the median.
  size_t hits = 0;
  double extra = 0;
  for (double w : wall) {
    if (w > 1.5 * p50) {
      ++hits;
      extra += w - p50;
    }
  }
  const Percentiles c = ComputePercentiles(&cpu);
  nlohmann::json out = {{"work_us", f.work_us},
                        {"samples", f.samples},
                        {"p50_us", p50},
                        {"p90_us", q(0.9)},
                        {"p99_us", q(0.99)},
                        {"p999_us", q(0.999)},
                        {"cpu_p50_us", c.p50},
                        {"cpu_p99_us", c.p99},
                        {"hit_fraction", double(hits) / double(wall.size())},
                        {"hit_mean_extra_us", hits > 0 ? extra / double(hits) : 0.0},
                        {"checksum", sink & 0xFF}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

void RegisterBenchJitter(CLI::App& bench, int* exit_code) {
  auto flags = std::make_shared<JitterFlags>();
  auto* cmd = bench.add_subcommand("jitter", "This machine's latency noise floor (fixed work)");
  cmd->add_option("--work-us", flags->work_us, "Length of the fixed work, in microseconds")
      ->check(CLI::Range(0.1, 10000.0));
  cmd->add_option("--samples", flags->samples, "Timed samples")->check(CLI::Range(100u, 10000000u));
  cmd->callback([flags, exit_code] { *exit_code = RunJitter(*flags); });
}

}  // namespace kvr::cli
