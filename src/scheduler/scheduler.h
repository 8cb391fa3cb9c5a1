// Scheduler: picks a worker for each request and books its load until the request is done.
//
// Route() reads the index (thread-safe, outside the scheduler's lock), then under one admission
// lock builds every candidate's view, lets the policy choose, and books the request on the
// chosen worker — so each decision sees every earlier booking (no herding within one router).
// The returned Ticket releases the booking: FirstToken() ends the prefill part, Finish() (or
// the destructor, on any exit path) the rest.
//
// Thread-safety: safe for concurrent use; the locks are annotated for clang's -Wthread-safety.
// Only Route() (and AddWorker/RemoveWorker/Load/Workers) take the admission lock. Releases
// (Ticket::FirstToken, Ticket::Finish) change the worker's atomic counters and post the rest to
// the worker under a short per-worker lock; ReportMetrics posts there too. The admission side
// applies what was posted at its next decision, before it builds the views, so a decision made
// after a release returned sees it (load_state.h).
//
// Lifetimes: a Ticket may outlive its Scheduler, its KvIndex and its Clock. It shares ownership
// of its worker's load state (not of the scheduler); once the worker is removed or the
// Scheduler destroyed, that state is closed and the ticket's release changes nothing anyone
// reads. A server may therefore destroy the Scheduler while requests are still streaming.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "common/random.h"
#include "index/kv_index.h"
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
  // Workers whose cache the caller models itself (it feeds the index their blocks as events):
  // a request routed to one of them records no predicted entries.
  std::span<const WorkerId> no_predict;
  // Decide and explain only: nothing is booked or predicted, and the ticket is inactive.
  bool dry_run = false;
  bool explain = false;  // fill Decision::explanation for this request (also SchedulerConfig)
};

namespace scheduler_internal {
struct Booking;
class LoadState;
struct Slot;
struct Mail;
class PrefixDemand;
class PrefixRoots;
}  // namespace scheduler_internal

// A request's booking on the worker it was routed to. Movable, not copyable; one thread uses a
// ticket at a time (different threads may use it in turn). See the lifetimes above.
class Ticket {
 public:
  Ticket() = default;
  Ticket(Ticket&& other) noexcept = default;
  Ticket& operator=(Ticket&& other) noexcept;  // finishes the booking it held
  ~Ticket();

  // The first output token arrived `observed_ttft` after routing: releases the prefill booking
  // and calibrates the worker's prefill rate. Idempotent; a no-op after Finish().
  void FirstToken(TimeNs observed_ttft);
  // Prefill is over but its duration is unknown (an unstreamed response: the time measured
  // includes decoding): releases the prefill booking without calibrating.
  void PrefillDone() { FirstToken(kUnknownTtft); }
  static constexpr TimeNs kUnknownTtft = -1;
  // The answer's `tokens` tokens after the first took `elapsed` to stream: calibrates the
  // worker's decode step time (its inter-token latency). Call before Finish(); a no-op after it
  // or when tokens == 0.
  void Decoded(TimeNs elapsed, uint64_t tokens);
  // The request ended (success, error, cancel): releases everything. Idempotent.
  void Finish();
  bool active() const { return booking_ != nullptr; }
  uint64_t id() const;  // the booking's number (0 once finished)

 private:
  friend class Scheduler;
  explicit Ticket(std::shared_ptr<scheduler_internal::Booking> booking);
  std::shared_ptr<scheduler_internal::Booking> booking_;
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
  double decode_step_s = 0;  // observed inter-token latency (0: none yet)
  uint64_t kv_capacity_blocks = 0;  // WorkerSpec's, or as SetKvCapacity changed it
  uint32_t max_batched_tokens = 0;  // WorkerSpec's, or as SetMaxBatchedTokens changed it
};

class Scheduler {
 public:
  // Checks the configuration and builds a scheduler: InvalidArgument for an unknown policy (see
  // PolicyNames()). Routing through a policy the operator did not ask for is never a fallback.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(SchedulerConfig config, KvIndex& index,
                                                           const Clock& clock);
  // Closes every worker's load state: tickets still out release into nothing.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Registers a worker; its id must be unique and below the index's worker_limit().
  absl::Status AddWorker(const WorkerSpec& spec) ABSL_LOCKS_EXCLUDED(mu_, registry_mu_);
  // Unregisters a worker and drops its index entries; its tickets stay valid (release is a no-op).
  absl::Status RemoveWorker(WorkerId worker) ABSL_LOCKS_EXCLUDED(mu_, registry_mu_);
  // Changes a worker's KV capacity (WorkerSpec::kv_capacity_blocks), as its engine reports it:
  // later decisions use it. NotFound for an unknown worker; InvalidArgument for 0.
  absl::Status SetKvCapacity(WorkerId worker, uint64_t blocks) ABSL_LOCKS_EXCLUDED(mu_);
  // Changes a worker's step size (WorkerSpec::max_batched_tokens), as its engine reports it:
  // later decisions and AllPrefillBusy use it. NotFound for an unknown worker; InvalidArgument
  // for 0.
  absl::Status SetMaxBatchedTokens(WorkerId worker, uint32_t tokens) ABSL_LOCKS_EXCLUDED(mu_);
  // The engine's own load report; takes no admission lock (applied at the next decision).
  void ReportMetrics(WorkerId worker, const EngineMetrics& metrics)
      ABSL_LOCKS_EXCLUDED(registry_mu_);

  // FailedPrecondition when no worker is registered; NotFound for an unknown pinned worker.
  absl::StatusOr<Decision> Route(const RouteRequest& request) ABSL_LOCKS_EXCLUDED(mu_);

  // Applies what tickets posted for the worker (hence not const), then reports its load.
  std::optional<WorkerLoad> Load(WorkerId worker) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<WorkerId> Workers() const ABSL_LOCKS_EXCLUDED(mu_);
  // The policy's router queue (Policy::router_queue), fixed for its lifetime.
  const RouterQueue& router_queue() const { return router_queue_; }
  // Whether the policy holds requests at the router now: every worker's booked prefill tokens
  // exceed router_queue().threshold times its max batched tokens. False for a policy without a
  // router queue, and with no worker registered.
  bool AllPrefillBusy() const ABSL_LOCKS_EXCLUDED(mu_);
  // A waiting request's place in the release order (lower goes first): its uncached tokens on
  // the worker a dry-run decision picks now, minus age_tokens_per_s per second waited, for a
  // shortest-first queue; minus the seconds waited (oldest first) otherwise.
  absl::StatusOr<double> ReleaseKey(const RouteRequest& request, double waited_s)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A request waiting at the router, and how long it has waited.
  struct Waiting {
    RouteRequest request;
    double waited_s = 0;
  };
  // Which of `waiting` to release next: the lowest ReleaseKey among the kRouterQueueWindow
  // oldest (the first of them on a tie). Computes the keys oldest first and stops at the first
  // request whose key could not be lower than the best so far, whatever its prompt.
  // REQUIRES: !waiting.empty(), oldest first (waited_s does not increase).
  absl::StatusOr<size_t> NextRelease(std::span<const Waiting> waiting) ABSL_LOCKS_EXCLUDED(mu_);
  const std::string& policy_name() const { return config_.policy; }

 private:
  using Slot = scheduler_internal::Slot;
  Scheduler(SchedulerConfig config, std::unique_ptr<Policy> policy, KvIndex& index,
            const Clock& clock);

  // The lowest ReleaseKey a request that has waited `waited_s` can have, whatever its prompt.
  double LowestReleaseKey(double waited_s) const;
  // The admission part of Route: views, choice, booking.
  absl::StatusOr<Decision> Decide(const RouteRequest& req, const OverlapScores& overlap,
                                  const OverlapScores* approx) ABSL_LOCKS_EXCLUDED(mu_);
  void FillViews(const RouteRequest& req, const OverlapScores& overlap, const OverlapScores* approx,
                 std::vector<WorkerView>* views) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the fleet's deepest held prefix of the prompt, `deepest` blocks (or the shared one its
  // history descends from), and its share of recent bookings in `info`; returns the prefix's
  // key (0: none).
  uint64_t FleetPrefix(const RouteRequest& req, std::span<const WorkerView> views, uint32_t deepest,
                       RequestInfo* info) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Ticket Book(Slot& slot, const RouteRequest& req, uint64_t uncached, double queue_tokens)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts a booked request for the workers holding its prompt's deepest prefix in the fleet,
  // `deepest` blocks (Slot::hits), wherever it was routed: the demand for their caches.
  void CountHits(std::span<const WorkerView> views, uint32_t deepest)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies what w's tickets and engine posted since the last call.
  void Collect(Slot& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The worker's slot; NotFound when it is not registered.
  absl::StatusOr<Slot*> Registered(WorkerId worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddActive(Slot& slot, std::span<const BlockHash> blocks) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveActive(Slot& slot, std::span<const BlockHash> blocks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SchedulerConfig config_;
  KvIndex& index_;
  const Clock& clock_;
  const std::unique_ptr<KvIndex> approx_;  // only when the policy wants it; thread-safe
  const RouterQueue router_queue_;         // the policy's, fixed for its lifetime

  // The admission lock: one decision at a time sees and books the load.
  mutable Mutex mu_;
  const std::unique_ptr<Policy> policy_ ABSL_PT_GUARDED_BY(mu_);
  Rng rng_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);  // by WorkerId value
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  double inflow_requests_ ABSL_GUARDED_BY(mu_) = 0;  // bookings, decayed as Slot::inflow
  // Seconds between bookings, decayed as Slot::inflow: Slot::inflow over it is a token rate.
  double inflow_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  TimeNs last_booked_at_ ABSL_GUARDED_BY(mu_) = 0;
  TimeNs last_backlog_at_ ABSL_GUARDED_BY(mu_) = -1;  // NextRelease's last call (-1: never)
  uint64_t bookings_ ABSL_GUARDED_BY(mu_) = 0;       // bookings ever made
  std::unique_ptr<scheduler_internal::PrefixDemand> demand_ ABSL_PT_GUARDED_BY(mu_);
  std::unique_ptr<scheduler_internal::PrefixRoots> roots_ ABSL_PT_GUARDED_BY(mu_);
  // Only for a policy that wants_reuse_gaps (null otherwise): RequestInfo::reuse_gaps.
  std::unique_ptr<ReuseGaps> reuse_ ABSL_PT_GUARDED_BY(mu_);
  std::unique_ptr<scheduler_internal::Mail> mail_ ABSL_GUARDED_BY(mu_);  // Collect's scratch

  // Each worker's load state by WorkerId value, for ReportMetrics without the admission lock.
  // Changed only by AddWorker/RemoveWorker, which hold mu_ first.
  mutable Mutex registry_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::vector<std::shared_ptr<scheduler_internal::LoadState>> loads_ ABSL_GUARDED_BY(registry_mu_);
};

}  // namespace kvr
