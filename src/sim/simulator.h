// The fleet simulator: a discrete-event loop in virtual time that drives N engine models
// (engine/) behind the production scheduler and index (scheduler/, index/).
//
// What the router sees is what a live router would see: it routes each request at its arrival
// with the production Scheduler (booking, predict-on-route); first tokens and completions
// reach its tickets at their simulated times; the engines' KV events reach its KvIndex
// `event_delay` after the step that emitted them, through the same KvIndex::Apply path the live
// event subscriber uses. The simulator is single-threaded and deterministic for a given seed.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "scheduler/scheduler.h"
#include "sim/stats.h"
#include "sim/workload.h"

namespace kvr::sim {

inline constexpr TimeNs kDefaultMetricsInterval = 50 * kNsPerMs;

struct SimConfig {
  uint32_t workers = 8;
  engine::EngineConfig engine;        // per-engine config (worker id and speed set per engine)
  std::vector<double> speeds;         // per-engine speed factors, cycled; empty: engine.speed
  TimeNs event_delay = 5 * kNsPerMs;  // engine step end → router index
  // > 0: engines report their /metrics (waiting requests and tokens, KV usage) to the scheduler
  // this often. Default: llm-d's data layer tick (`--refresh-metrics-interval`, 50 ms), so the
  // policies that read engine metrics (llmd_weighted's queue and KV scorers, kvrouter's
  // engine-reported queue) get them as fresh as that peer would.
  TimeNs metrics_interval = kDefaultMetricsInterval;
  uint64_t seed = 1;
  TimeNs predict_ttl = PredictConfig{}.ttl;  // predict-on-route entries' TTL in the index
  SchedulerConfig scheduler;                 // `policy` is set per run
  bool record_requests = false;              // fill PolicyResult::records
  bool explain_requests = false;  // ... each with its decision (RequestRecord::candidates)
};

// Progress callback: (policy, completed requests, total requests, virtual time).
using ProgressFn = std::function<void(const std::string&, uint64_t, uint64_t, TimeNs)>;

// Runs the whole workload through one policy, given as a spec (`kvrouter`,
// `kvrouter[decay_oldest=0]`; see ParsePolicySpec) whose label names the result. `block_hashes`
// (optional, one per request): SequenceHashes(prompt, engine.block_size), precomputed once and
// shared across policies.
absl::StatusOr<PolicyResult> RunPolicy(const Workload& workload, const SimConfig& config,
                                       const std::string& policy,
                                       const std::vector<std::vector<BlockHash>>* block_hashes,
                                       const ProgressFn& progress = nullptr);

// The per-request block hashes RunPolicy wants, computed once.
std::vector<std::vector<BlockHash>> HashWorkload(const Workload& workload, uint32_t block_size);

}  // namespace kvr::sim
