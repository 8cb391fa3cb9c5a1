// Scheduler: picks a worker for each request and books its load until the request is done.
//
// Route() reads the index (thread-safe, outside the scheduler's lock), then under one admission
// lock builds every candidate's view, lets the policy choose, and books the request on the
// chosen worker — so each decision sees every earlier booking (no herding within one router).
// The returned Ticket releases the booking: FirstToken() ends the prefill part, Finish() (or
// the destructor, on any exit path) the rest.
//
// Thread-safety: safe for concurrent use. Tickets must not outlive their Scheduler.
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/random.h"
#include "index/kv_index.h"
#include "index/word_table.h"
#include "scheduler/policy.h"

namespace kvr {

struct SchedulerConfig {
  std::string policy = "kvrouter";
  PolicyOptions options;
  bool predict_on_route = true;  // record routed blocks as predicted entries in the index
  bool explain = false;          // fill Decision::explanation (per-worker terms)
  uint64_t seed = 1;
  // The router's own approximate tree, for policies that want one (sglang). As the SGLang
  // gateway's (CLI defaults): entries never expire by age; every `approx_eviction_interval` the
  // tree is trimmed, least recently inserted first, back to `approx_max_tokens` over all
  // workers. Its `--max-tree-size` is 2^26 characters; at ~4 characters per token that is 2^24
  // tokens. The per-worker cap only bounds memory between trims.
  uint64_t approx_max_tokens = uint64_t{1} << 24;
  TimeNs approx_eviction_interval = 120 * kNsPerSec;
  uint32_t approx_worker_capacity_blocks = 1 << 20;
};

struct RouteRequest {
  std::span<const BlockHash> blocks;  // chained hashes of the prompt's full blocks
  uint32_t prompt_tokens = 0;
  uint32_t expected_output_tokens = 0;
  std::optional<WorkerId> pinned;  // route here (still booked and explained)
  // Workers not to consider (unhealthy, or one that just failed this request).
  std::span<const WorkerId> excluded;
  // Decide and explain only: nothing is booked or predicted, and the ticket is inactive.
  bool dry_run = false;
  bool explain = false;  // fill Decision::explanation for this request (also SchedulerConfig)
};

class Scheduler;

class Ticket {
 public:
  Ticket() = default;
  Ticket(Ticket&& other) noexcept { *this = std::move(other); }
  Ticket& operator=(Ticket&& other) noexcept;
  ~Ticket() { Finish(); }

  // The first output token arrived `observed_ttft` after routing: releases the prefill booking
  // and calibrates the worker's prefill rate. Idempotent.
  void FirstToken(TimeNs observed_ttft);
  // Prefill is over but its duration is unknown (an unstreamed response: the time measured
  // includes decoding): releases the prefill booking without calibrating.
  void PrefillDone() { FirstToken(kUnknownTtft); }
  static constexpr TimeNs kUnknownTtft = -1;
  // The request ended (success, error, cancel): releases everything. Idempotent.
  void Finish();
  bool active() const { return scheduler_ != nullptr; }
  uint64_t id() const { return id_; }

 private:
  friend class Scheduler;
  Ticket(Scheduler* s, uint64_t id) : scheduler_(s), id_(id) {}
  Scheduler* scheduler_ = nullptr;
  uint64_t id_ = 0;
};

struct ExplainedCandidate {
  WorkerId worker;
  uint32_t device = 0, host = 0, storage = 0, predicted = 0, active_overlap = 0;
  uint64_t cached_blocks = 0;
  Candidate candidate;
};

struct Explanation {
  std::string policy;
  std::vector<std::string_view> term_names;
  std::vector<ExplainedCandidate> candidates;
};

struct Decision {
  WorkerId worker;
  Ticket ticket;
  uint32_t overlap_blocks = 0;    // confirmed device blocks on the chosen worker
  uint32_t predicted_blocks = 0;  // including predicted entries
  uint64_t uncached_tokens = 0;   // booked prefill work
  std::optional<Explanation> explanation;
};

// A worker's router-side load, for metrics and tests.
struct WorkerLoad {
  uint64_t booked_prefill_tokens = 0;
  uint32_t running = 0;
  uint64_t active_blocks = 0;
  double prefill_rate = 0;
  double overhead_s = 0;
};

class Scheduler {
 public:
  Scheduler(SchedulerConfig config, KvIndex& index, const Clock& clock);
  ~Scheduler();

  // Registers a worker; its id must be unique and below the index's worker_limit().
  absl::Status AddWorker(const WorkerSpec& spec);
  // Unregisters a worker and drops its index entries; its tickets stay valid (release is a no-op).
  absl::Status RemoveWorker(WorkerId worker);
  void ReportMetrics(WorkerId worker, const EngineMetrics& metrics);

  // FailedPrecondition when no worker is registered or every one is excluded; NotFound for an
  // unknown pinned worker.
  absl::StatusOr<Decision> Route(const RouteRequest& request);

  std::optional<WorkerLoad> Load(WorkerId worker) const;
  std::vector<WorkerId> Workers() const;
  const std::string& policy_name() const { return config_.policy; }

 private:
  friend class Ticket;
  struct Booking {
    uint32_t worker = 0;
    uint64_t uncached = 0;    // booked prefill tokens
    double queue_tokens = 0;  // work ahead of and including this request at routing time
    TimeNs routed_at = 0;
    bool prefill_done = false;
    uint64_t generation = 0;  // slot generation: a removed worker's bookings release nothing
    std::vector<BlockHash> blocks;
  };

  static constexpr uint32_t kInFlightLoadPct = 50;
  struct Slot {
    explicit Slot(const WorkerSpec& s, uint64_t gen)
        : spec(s), rate(s.prefill_rate_prior), generation(gen) {}
    WorkerSpec spec;
    PrefillRateModel rate;
    uint64_t generation;
    EngineMetrics metrics;
    uint64_t booked_prefill_tokens = 0;
    uint32_t running = 0;
    // In-flight block -> bookings on this worker that hold it. Small and churned by every
    // booking: kept at most half full (kInFlightLoadPct) so inserts shift little.
    WordTable active_counts{1, kInFlightLoadPct};
    std::deque<uint64_t> prefill_fifo;  // booking ids in routing order; done ones popped lazily
  };

  void ReleaseFirstToken(uint64_t id, TimeNs observed_ttft);
  void ReleaseAll(uint64_t id);
  void FillViews(const RouteRequest& req, const OverlapScores& overlap, const OverlapScores* approx,
                 std::vector<WorkerView>& views);
  uint64_t Book(Slot& slot, const RouteRequest& req, uint64_t uncached, double queue_tokens);
  void UnbookPrefill(Slot& slot, Booking& b);
  // The slot a booking still counts against: null once its worker was removed (or replaced).
  Slot* LiveSlot(const Booking& b) const;
  void AddActive(uint32_t w, std::span<const BlockHash> blocks);
  void RemoveActive(uint32_t w, std::span<const BlockHash> blocks);

  const SchedulerConfig config_;
  KvIndex& index_;
  const Clock& clock_;
  std::unique_ptr<KvIndex> approx_;  // only when the policy wants it

  mutable std::mutex mu_;
  std::unique_ptr<Policy> policy_;                   // guarded by mu_
  Rng rng_;                                          // guarded by mu_
  std::vector<std::unique_ptr<Slot>> slots_;         // guarded by mu_; by WorkerId value
  absl::flat_hash_map<uint64_t, Booking> bookings_;  // guarded by mu_
  Membership active_;         // guarded by mu_; workers with each block in flight (for M_w)
  uint64_t next_ticket_ = 1;  // guarded by mu_
};

}  // namespace kvr
