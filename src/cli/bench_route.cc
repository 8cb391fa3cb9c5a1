// kvrouter bench route: the whole routing decision for one prompt — hash its tokens, query the
// index, evaluate every worker, select, book — against an index populated by the synthetic
// prefix-sharing workload, with a rolling window of requests in flight. With --threads N,...
// the same decisions run on N threads at once, each with its share of the window, and the run
// reports decisions per second for each N (what the admission lock lets through).
#include <barrier>
#include <chrono>
#include <deque>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/bench_clock.h"
#include "cli/bench_workload.h"
#include "cli/commands.h"
#include "common/status.h"
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
  std::vector<uint32_t> threads = {1};
  bool json = true;
};

// The router under test: an index populated by the synthetic workload, the scheduler, and the
// prompts the decisions route.
struct Router {
  // A manual clock advanced 1/rate per decision: the router's time-dependent state (predicted
  // entries expiring after their TTL, booking ages) reaches the steady state of a router
  // serving `rate` requests/s, whatever this machine's speed. Latency is measured on the real
  // clock.
  ManualClock clock;
  std::unique_ptr<KvIndex> index;
  std::unique_ptr<Scheduler> sched;
  std::vector<std::vector<TokenId>> prompts;
};

absl::Status BuildRouter(const RouteBenchFlags& f, Router& r) {
  const uint32_t blocks = f.prompt_tokens / f.block_size;
  SyntheticOptions so{.workers = f.workers,
                      .block_size = f.block_size,
                      .target_entries = f.entries,
                      .max_blocks = blocks,
                      .seed = f.seed};
  std::cerr << "bench route: building an index of " << f.entries << " entries...\n";
  SyntheticWorkload w = MakeSyntheticWorkload(so);
  r.index = std::make_unique<KvIndex>(
      IndexConfig{.block_size = f.block_size, .max_workers = std::max(f.workers, 64u)}, r.clock);
  KVR_ASSIGN_OR_RETURN(PolicySpec spec, ParsePolicySpec(f.policy));
  KVR_ASSIGN_OR_RETURN(
      r.sched, Scheduler::Create({.policy = spec.name, .options = spec.options, .seed = f.seed},
                                 *r.index, r.clock));
  // Workers register first, as in a deployment, each declaring the KV capacity of a fleet whose
  // caches are full at E entries; then their events arrive.
  const uint64_t capacity = (f.entries + f.workers - 1) / f.workers;
  for (uint32_t i = 0; i < f.workers; ++i) {
    KVR_RETURN_IF_ERROR(r.sched->AddWorker(
        {.id = WorkerId(i), .block_size = f.block_size, .kv_capacity_blocks = capacity}));
  }
  for (const auto& e : w.events) r.index->Apply(e);
  Rng rng(f.seed + 7);
  for (int i = 0; i < 500; ++i) r.prompts.push_back(QueryPrompt(w, f.block_size, blocks, rng));
  return absl::OkStatus();
}

// Where the timed part of a run starts: when every thread has done its warm-up.
struct StartClock {
  Clock::time_point* t0;
  void operator()() noexcept { *t0 = Clock::now(); }
};
using StartBarrier = std::barrier<StartClock>;

// One thread's decisions: `warmup` untimed, the barrier, then `timed` ones, keeping `window`
// requests booked (untimed: the oldest sees its first token and finishes).
struct Share {
  uint32_t first = 0, warmup = 0, timed = 0, window = 1;
};
struct Samples {
  std::vector<double> us, cpu_us;
  absl::Status status;
};

Samples RunShare(const RouteBenchFlags& f, Router& r, const Share& s, StartBarrier& start) {
  const auto step = TimeNs(1e9 / f.rate);
  Samples out;
  out.us.reserve(s.timed);
  out.cpu_us.reserve(s.timed);
  std::deque<Ticket> window;
  for (uint32_t i = 0; i < s.warmup + s.timed; ++i) {
    if (i == s.warmup) start.arrive_and_wait();
    const auto& p = r.prompts[(s.first + i) % r.prompts.size()];
    r.clock.Advance(step);
    const double c0 = ThreadCpuUs();
    auto t0 = Clock::now();
    auto hashes = SequenceHashes(p, f.block_size);
    auto d = r.sched->Route({.blocks = hashes, .prompt_tokens = uint32_t(p.size())});
    if (i >= s.warmup) {
      out.us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      out.cpu_us.push_back(ThreadCpuUs() - c0);
    }
    if (!d.ok()) {  // reported after the run: the barrier waits for every thread
      out.status = d.status();
      continue;
    }
    window.push_back(std::move(d->ticket));
    if (window.size() > s.window) {
      window.front().FirstToken(50 * kNsPerMs);
      window.pop_front();
    }
  }
  if (s.timed == 0) start.arrive_and_wait();
  return out;
}

// `n` threads share the warm-up, the timed decisions and the window.
absl::StatusOr<nlohmann::json> RunThreads(const RouteBenchFlags& f, Router& r, uint32_t n) {
  std::vector<Samples> samples(n);
  Clock::time_point t0;
  StartBarrier start(n, StartClock{&t0});
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < n; ++t) {
    const Share s{.first = t * 97,
                  .warmup = (f.warmup + n - 1) / n,
                  .timed = (f.decisions + n - 1) / n,
                  .window = std::max(1u, f.in_flight / n)};
    threads.emplace_back([&, s, t] { samples[t] = RunShare(f, r, s, start); });
  }
  for (auto& t : threads) t.join();
  const double wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> us, cpu_us;
  for (Samples& s : samples) {
    KVR_RETURN_IF_ERROR(s.status);
    us.insert(us.end(), s.us.begin(), s.us.end());
    cpu_us.insert(cpu_us.end(), s.cpu_us.begin(), s.cpu_us.end());
  }
  const Percentiles p = ComputePercentiles(&us), cpu = ComputePercentiles(&cpu_us);
  return nlohmann::json{{"threads", n},
                        {"decisions", us.size()},
                        {"wall_s", wall_s},
                        {"decisions_per_s", double(us.size()) / wall_s},
                        {"decision_p50_us", p.p50},
                        {"decision_p99_us", p.p99},
                        {"decision_mean_us", p.mean},
                        {"decision_cpu_p50_us", cpu.p50},
                        {"decision_cpu_p99_us", cpu.p99}};
}

int RunRouteBench(const RouteBenchFlags& f) {
  Router r;
  if (absl::Status s = BuildRouter(f, r); !s.ok()) {
    std::cerr << "bench route: " << s.message() << "\n";
    return 2;
  }
  nlohmann::json runs = nlohmann::json::array();
  for (uint32_t n : f.threads) {
    std::cerr << "bench route: " << n << " thread(s)...\n";
    absl::StatusOr<nlohmann::json> run = RunThreads(f, r, n);
    if (!run.ok()) {
      std::cerr << "bench route: " << run.status().message() << "\n";
      return 1;
    }
    runs.push_back(*std::move(run));
  }
  uint64_t predicted = 0;
  for (uint32_t i = 0; i < f.workers; ++i) {
    predicted += r.index->Stats(WorkerId(i)).predicted_blocks;
  }
  // The top-level latency fields are the first thread count's (1 by default: one router thread).
  const nlohmann::json& first = runs.front();
  nlohmann::json out = {{"workers", f.workers},
                        {"policy", f.policy},
                        {"prompt_tokens", f.prompt_tokens},
                        {"block_size", f.block_size},
                        {"index_entries", r.index->Entries()},
                        {"warmup", f.warmup},
                        {"in_flight", f.in_flight},
                        {"rate", f.rate},
                        {"predicted_blocks_live", predicted},
                        {"decisions", f.decisions},
                        {"threads", first["threads"]},
                        {"decisions_per_s", first["decisions_per_s"]},
                        {"by_threads", runs}};
  for (const char* k : {"decision_cpu_p50_us", "decision_cpu_p99_us", "decision_p50_us",
                        "decision_p99_us", "decision_mean_us"}) {
    out[k] = first[k];
  }
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
  cmd->add_option("--decisions", flags->decisions, "Timed decisions (per thread count, shared)");
  cmd->add_option("--in-flight", flags->in_flight, "Requests kept booked (shared by the threads)");
  cmd->add_option("--warmup", flags->warmup, "Untimed decisions before timing");
  cmd->add_option("--rate", flags->rate, "Requests per second of simulated time")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--policy", flags->policy,
                  "Routing policy, with overrides: kvrouter[replicate_share=0]");
  cmd->add_option("--seed", flags->seed, "Workload seed");
  cmd->add_option("--threads", flags->threads,
                  "Routing threads, one run per value (e.g. 1,2): decisions/s for each")
      ->delimiter(',')
      ->check(CLI::Range(1u, 256u));
  cmd->add_flag("--json", flags->json, "Print JSON (the only output format)");
  cmd->callback([flags, exit_code] { *exit_code = RunRouteBench(*flags); });
}

}  // namespace kvr::cli
