// kvrouter bench route: the whole routing decision for one prompt — hash its tokens, query the
// index, evaluate every worker, select, book — against an index populated by the synthetic
// prefix-sharing workload, with a rolling window of requests in flight.
#include <chrono>
#include <deque>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/bench_clock.h"
#include "cli/bench_workload.h"
#include "cli/commands.h"
#include "index/block_hash.h"
#include "scheduler/scheduler.h"

namespace kvr::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct RouteBenchFlags {
  uint32_t workers = 64;
  uint32_t prompt_tokens = 8192;
  uint32_t block_size = 64;  // the engine presets' (and Dynamo's mocker's); vLLM defaults to 16
  uint64_t entries = 1'000'000;
  uint32_t decisions = 20000;
  uint32_t warmup = 5000;  // untimed decisions first: tables reach their steady size
  uint32_t in_flight = 256;
  // Requests per second of (simulated) time: sets how many predicted entries are live
  // (predict-on-route keeps each for its TTL) and how old the oldest booking is.
  double rate = 1000;
  std::string policy = "kvrouter";
  uint64_t seed = 42;
  bool json = true;
};

int RunRouteBench(const RouteBenchFlags& f) {
  const uint32_t blocks = f.prompt_tokens / f.block_size;
  SyntheticOptions so{.workers = f.workers,
                      .block_size = f.block_size,
                      .target_entries = f.entries,
                      .max_blocks = blocks,
                      .seed = f.seed};
  std::cerr << "bench route: building an index of " << f.entries << " entries...\n";
  SyntheticWorkload w = MakeSyntheticWorkload(so);
  // A manual clock advanced 1/rate per decision: the router's time-dependent state (predicted
  // entries expiring after their TTL, booking ages) reaches the steady state of a router serving
  // `rate` requests/s, whatever this machine's speed. Latency is measured on the real clock.
  ManualClock clock;
  const auto step = TimeNs(1e9 / f.rate);
  KvIndex index({.block_size = f.block_size, .max_workers = std::max(f.workers, 64u)}, clock);
  auto created = Scheduler::Create({.policy = f.policy, .seed = f.seed}, index, clock);
  if (!created.ok()) {
    std::cerr << "bench route: " << created.status().message() << "\n";
    return 2;
  }
  Scheduler& sched = **created;
  // Workers register first, as in a deployment, each declaring the KV capacity of a fleet whose
  // caches are full at E entries; then their events arrive.
  const uint64_t capacity = (f.entries + f.workers - 1) / f.workers;
  for (uint32_t i = 0; i < f.workers; ++i) {
    (void)sched.AddWorker(
        {.id = WorkerId(i), .block_size = f.block_size, .kv_capacity_blocks = capacity});
  }
  for (const auto& e : w.events) index.Apply(e);
  Rng rng(f.seed + 7);
  std::vector<std::vector<TokenId>> prompts;
  for (int i = 0; i < 500; ++i) prompts.push_back(QueryPrompt(w, f.block_size, blocks, rng));
  std::deque<Ticket> window;
  std::vector<double> us, cpu_us;
  us.reserve(f.decisions);
  cpu_us.reserve(f.decisions);
  for (uint32_t i = 0; i < f.warmup + f.decisions; ++i) {
    const auto& p = prompts[i % prompts.size()];
    clock.Advance(step);
    const double c0 = ThreadCpuUs();
    auto t0 = Clock::now();
    auto hashes = SequenceHashes(p, f.block_size);
    auto d = sched.Route({.blocks = hashes, .prompt_tokens = uint32_t(p.size())});
    if (i >= f.warmup) {
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      cpu_us.push_back(ThreadCpuUs() - c0);
    }
    if (!d.ok()) {
      std::cerr << "bench route: " << d.status().message() << "\n";
      return 1;
    }
    // Untimed: the oldest request sees its first token and finishes.
    window.push_back(std::move(d->ticket));
    if (window.size() > f.in_flight) {
      window.front().FirstToken(50 * kNsPerMs);
      window.pop_front();
    }
  }
  uint64_t predicted = 0;
  for (uint32_t i = 0; i < f.workers; ++i) predicted += index.Stats(WorkerId(i)).predicted_blocks;
  Percentiles p = ComputePercentiles(us);
  Percentiles cpu = ComputePercentiles(cpu_us);
  nlohmann::json out = {{"workers", f.workers},
                        {"policy", f.policy},
                        {"prompt_tokens", f.prompt_tokens},
                        {"block_size", f.block_size},
                        {"index_entries", index.Entries()},
                        {"warmup", f.warmup},
                        {"decision_cpu_p50_us", cpu.p50},
                        {"decision_cpu_p99_us", cpu.p99},
                        {"in_flight", f.in_flight},
                        {"rate", f.rate},
                        {"predicted_blocks_live", predicted},
                        {"decisions", f.decisions},
                        {"decision_p50_us", p.p50},
                        {"decision_p99_us", p.p99},
                        {"decision_mean_us", p.mean}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

void RegisterBenchRoute(CLI::App& bench, int* exit_code) {
  auto flags = std::make_shared<RouteBenchFlags>();
  auto* cmd = bench.add_subcommand("route", "The whole routing decision for one prompt");
  cmd->add_option("--workers", flags->workers, "Workers (W)")->check(CLI::Range(1u, 1024u));
  cmd->add_option("--prompt-tokens", flags->prompt_tokens, "Prompt length in tokens");
  cmd->add_option("--block-size", flags->block_size, "Tokens per block")
      ->check(CLI::Range(1u, 4096u));
  cmd->add_option("--entries", flags->entries, "Index entries before timing");
  cmd->add_option("--decisions", flags->decisions, "Timed decisions");
  cmd->add_option("--in-flight", flags->in_flight, "Requests kept booked");
  cmd->add_option("--warmup", flags->warmup, "Untimed decisions before timing");
  cmd->add_option("--rate", flags->rate, "Requests per second of simulated time")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--policy", flags->policy, "Routing policy");
  cmd->add_option("--seed", flags->seed, "Workload seed");
  cmd->add_flag("--json", flags->json, "Print JSON (the only output format)");
  cmd->callback([flags, exit_code] { *exit_code = RunRouteBench(*flags); });
}

}  // namespace kvr::cli
