// kvrouter bench index: apply throughput, query latency, memory per entry, naive baseline, and
// query latency while a writer applies events.
#include <atomic>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/bench_workload.h"
#include "cli/commands.h"
#include "index/block_hash.h"
#include "index/kv_index.h"
#include "index/naive_index.h"

namespace kvr::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct IndexBenchFlags {
  uint32_t workers = 64;
  uint64_t entries = 1'000'000;
  uint32_t block_size = 16;
  uint32_t query_blocks = 512;
  uint32_t queries = 20000;
  uint32_t readers = 0;
  int64_t capacity_blocks = -1;  // per-worker KV capacity declared to the index; -1: E / W
  double writer_rate = 0;        // blocks/s for the --readers writer; 0: as fast as it can
  bool naive = true;
  uint64_t seed = 42;
  bool json = true;
};

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// One steady-state write: the event's blocks are removed and stored again (the index keeps its
// size, as in a fleet whose caches are full). Returns the blocks applied.
uint64_t Rewrite(KvIndex& index, const KvStored& e) {
  index.Apply(KvRemoved{.worker = e.worker, .block_hashes = e.block_hashes});
  index.Apply(e);
  return 2 * e.block_hashes.size();
}

struct ApplyTiming {
  double seconds = 0;
  // The longest single event. Queries get in between its commit chunks, except during a
  // membership rehash, which holds them off throughout.
  double max_event_us = 0;
};

ApplyTiming ApplyAll(KvIndex& index, const std::vector<KvEvent>& events) {
  ApplyTiming t;
  auto start = Clock::now(), t0 = start;
  for (const auto& e : events) {
    index.Apply(e);
    const auto t1 = Clock::now();
    t.max_event_us = std::max(t.max_event_us, Us(t1 - t0));
    t0 = t1;
  }
  t.seconds = std::chrono::duration<double>(t0 - start).count();
  return t;
}

// Query latency samples (µs) over precomputed prompts.
std::vector<double> TimeQueries(const KvIndex& index, const std::vector<std::vector<BlockHash>>& q,
                                size_t n, size_t offset = 0) {
  std::vector<double> us;
  us.reserve(n);
  OverlapScores out;
  for (size_t i = 0; i < n; ++i) {
    const auto& blocks = q[(i + offset) % q.size()];
    auto t0 = Clock::now();
    index.Query(blocks, &out);
    us.push_back(Us(Clock::now() - t0));
  }
  return us;
}

// R reader threads' query latency and throughput, without a writer and then while one writer
// re-applies a stream of remove + store events (the index size stays constant), as fast as it
// can or, with --writer-rate, paced to that many blocks per second (a fleet's real event rate).
struct ReadersRun {
  Percentiles latency;
  double queries_per_s = 0;
};

ReadersRun RunReaders(const KvIndex& index, const IndexBenchFlags& f,
                      const std::vector<std::vector<BlockHash>>& q) {
  std::vector<std::vector<double>> samples(f.readers);
  std::vector<std::thread> readers;
  const auto t0 = Clock::now();
  for (uint32_t r = 0; r < f.readers; ++r) {
    readers.emplace_back([&, r] { samples[r] = TimeQueries(index, q, f.queries, r * 97); });
  }
  for (auto& t : readers) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> all;
  for (auto& s : samples) all.insert(all.end(), s.begin(), s.end());
  return {ComputePercentiles(&all), double(all.size()) / secs};
}

nlohmann::json ReadersDuringWrites(KvIndex& index, const IndexBenchFlags& f,
                                   const SyntheticWorkload& w,
                                   const std::vector<std::vector<BlockHash>>& q) {
  const ReadersRun alone = RunReaders(index, f, q);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> applied{0};
  std::thread writer([&] {
    size_t i = 0;
    const auto start = Clock::now();
    while (!stop.load(std::memory_order_relaxed)) {
      if (f.writer_rate > 0) {  // pace: sleep until the blocks so far are due
        const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(applied / f.writer_rate));
        if (due > Clock::now()) {
          std::this_thread::sleep_until(std::min(due, Clock::now() + std::chrono::milliseconds(5)));
          continue;
        }
      }
      const auto& e = std::get<KvStored>(w.events[i++ % w.events.size()]);
      applied.fetch_add(Rewrite(index, e), std::memory_order_relaxed);
    }
  });
  auto t0 = Clock::now();
  const ReadersRun during = RunReaders(index, f, q);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  writer.join();
  const Percentiles& p = during.latency;
  return {{"readers", f.readers},
          {"writer_rate_target", f.writer_rate},
          {"no_writer_query_p50_us", alone.latency.p50},
          {"no_writer_query_p99_us", alone.latency.p99},
          {"no_writer_queries_per_s", alone.queries_per_s},
          {"query_p50_us", p.p50},
          {"query_p99_us", p.p99},
          {"queries_per_s", during.queries_per_s},
          {"p99_ratio", alone.latency.p99 > 0 ? p.p99 / alone.latency.p99 : 0},
          {"writer_blocks_per_s", double(applied.load()) / secs}};
}

// The index's write side: the workload's events into an index that grows from nothing, then
// into `index` with every worker's capacity reserved first (as deployed: a worker declares its
// KV capacity when it registers), then every stored event rewritten once (steady state: no
// table grows).
struct WritePhases {
  ApplyTiming grown, reserved;
  double reserve_s = 0;
  uint64_t churn_blocks = 0;
  double churn_s = 0;
};

WritePhases MeasureWrites(KvIndex& index, const SyntheticWorkload& w, uint32_t workers,
                          uint64_t capacity, ManualClock& clock) {
  WritePhases out;
  std::cerr << "bench index: applying " << w.events.size() << " events, growing...\n";
  {
    KvIndex grown(index.config(), clock);
    out.grown = ApplyAll(grown, w.events);
  }
  const auto t_reserve = Clock::now();
  if (capacity > 0) {
    for (uint32_t k = 0; k < workers; ++k) index.Reserve(WorkerId(k), capacity);
  }
  out.reserve_s = std::chrono::duration<double>(Clock::now() - t_reserve).count();
  std::cerr << "bench index: applying " << w.events.size() << " events, reserved...\n";
  out.reserved = ApplyAll(index, w.events);
  const auto t_churn = Clock::now();
  for (const auto& ev : w.events) out.churn_blocks += Rewrite(index, std::get<KvStored>(ev));
  out.churn_s = std::chrono::duration<double>(Clock::now() - t_churn).count();
  return out;
}

// The same queries against the brute-force oracle, for scale.
double NaiveQueryP50Us(const IndexConfig& config, const std::vector<KvEvent>& events,
                       const std::vector<std::vector<BlockHash>>& queries) {
  std::cerr << "bench index: building the naive oracle...\n";
  NaiveIndex naive(config);
  for (const auto& e : events) naive.Apply(e);
  std::vector<double> latencies;
  for (size_t i = 0; i < 200; ++i) {
    const auto t = Clock::now();
    (void)naive.Query(queries[i % queries.size()], 0);
    latencies.push_back(Us(Clock::now() - t));
  }
  return ComputePercentiles(&latencies).p50;
}

int RunIndexBench(const IndexBenchFlags& f) {
  std::cerr << "bench index: generating workload...\n";
  const SyntheticWorkload w = MakeSyntheticWorkload({.workers = f.workers,
                                                     .block_size = f.block_size,
                                                     .target_entries = f.entries,
                                                     .max_blocks = f.query_blocks,
                                                     .seed = f.seed});
  ManualClock clock;
  KvIndex index({.block_size = f.block_size, .max_workers = std::max(f.workers, 64u)}, clock);
  const uint64_t capacity = f.capacity_blocks >= 0 ? uint64_t(f.capacity_blocks)
                                                   : (f.entries + f.workers - 1) / f.workers;
  const WritePhases writes = MeasureWrites(index, w, f.workers, capacity, clock);

  Rng rng(f.seed + 1);
  std::vector<std::vector<BlockHash>> queries;
  for (int i = 0; i < 1000; ++i) {
    queries.push_back(
        SequenceHashes(QueryPrompt(w, f.block_size, f.query_blocks, rng), f.block_size));
  }
  std::vector<double> latencies = TimeQueries(index, queries, f.queries);
  const Percentiles p = ComputePercentiles(&latencies);

  const double blocks = double(w.blocks);
  nlohmann::json out = {
      {"workers", f.workers},
      {"entries", index.Entries()},
      {"events", w.events.size()},
      {"block_size", f.block_size},
      {"query_blocks", f.query_blocks},
      {"capacity_blocks", capacity},
      {"reserve_ms", writes.reserve_s * 1e3},
      {"apply_blocks_per_s", blocks / writes.reserved.seconds},
      {"apply_max_event_us", writes.reserved.max_event_us},
      {"apply_unreserved_blocks_per_s", blocks / writes.grown.seconds},
      {"apply_unreserved_max_event_us", writes.grown.max_event_us},
      {"steady_apply_blocks_per_s", double(writes.churn_blocks) / writes.churn_s},
      {"query_p50_us", p.p50},
      {"query_p99_us", p.p99},
      {"query_mean_us", p.mean},
      {"bytes_per_entry", double(index.MemoryBytes()) / double(index.Entries())}};
  if (f.naive) out["naive_query_p50_us"] = NaiveQueryP50Us(index.config(), w.events, queries);
  if (f.readers > 0) out["during_writes"] = ReadersDuringWrites(index, f, w, queries);
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

void RegisterBenchIndex(CLI::App& bench, int* exit_code) {
  auto flags = std::make_shared<IndexBenchFlags>();
  auto* cmd = bench.add_subcommand("index", "KV index: apply rate, query latency, memory");
  cmd->add_option("--workers", flags->workers, "Workers (W)")->check(CLI::Range(1u, 1024u));
  cmd->add_option("--entries", flags->entries, "(block, worker) entries to build (E)");
  cmd->add_option("--block-size", flags->block_size, "Tokens per block")
      ->check(CLI::Range(1u, 4096u));
  cmd->add_option("--query-blocks", flags->query_blocks, "Blocks per query prompt");
  cmd->add_option("--queries", flags->queries, "Timed queries");
  cmd->add_option("--capacity-blocks", flags->capacity_blocks,
                  "KV capacity (blocks) each worker declares, reserved before its events; "
                  "default E / W, 0: none (the tables grow)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--readers", flags->readers, "Reader threads querying during writes");
  cmd->add_option("--writer-rate", flags->writer_rate,
                  "With --readers: the writer's blocks/s (0: as fast as it can)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", flags->seed, "Workload seed");
  cmd->add_flag("!--no-naive", flags->naive, "Skip the naive-oracle baseline");
  cmd->add_flag("--json", flags->json, "Print JSON (the only output format)");
  cmd->callback([flags, exit_code] { *exit_code = RunIndexBench(*flags); });
}

}  // namespace kvr::cli
