// One model pool: the engines that serve one model name, with what the router needs to place a
// request among them — the text model (tokenizer + chat template), the KV index fed by every
// engine's events, and the scheduler that books load.
//
// Threading: Route and the read accessors are safe from any thread (the CPU pool calls them).
// AddWorker and RemoveWorker run on the gateway's control thread (the I/O loop); readers see
// the worker list as an immutable snapshot, swapped whole. Event sinks run on each worker's
// subscriber thread and touch only the index and the worker's own atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "api/text_model.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "events/subscriber.h"
#include "gateway/config.h"
#include "gateway/slot_model.h"
#include "http/client.h"
#include "index/kv_index.h"
#include "scheduler/scheduler.h"

namespace kvr::gateway {

namespace asio = boost::asio;

// The slot model of a llama.cpp worker (slot_model.h) and the index it feeds. Off until Start;
// Stop ends it for good (the worker left: its id may go to a successor). Thread-safe: each call
// applies the model's events to the index under the model's lock, so the index sees them in the
// order the model made them.
class WorkerSlots {
 public:
  void Start(const SlotModelConfig& config, KvIndex* index) ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  bool active() const { return active_.load(std::memory_order_acquire); }

  // A request routed to the worker: its handle, 0 when the model is off.
  uint64_t Arrive(std::span<const BlockHash> blocks, uint32_t prompt_tokens)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<SlotPlacement> Placement(uint64_t request) const ABSL_LOCKS_EXCLUDED(mu_);
  // The engine's cached_tokens for the request; counts a correction.
  void Observe(uint64_t request, int64_t cached_tokens) ABSL_LOCKS_EXCLUDED(mu_);
  void Finish(uint64_t request) ABSL_LOCKS_EXCLUDED(mu_);
  // The server may have restarted: forget what its slots held.
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

  struct Snapshot {
    uint32_t slots = 0;
    std::vector<SlotState> state;
    uint64_t saved_prompts = 0, saved_tokens = 0, prompt_cache_tokens = 0;
  };
  std::optional<Snapshot> Snap() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t corrections() const { return corrections_.load(std::memory_order_relaxed); }

 private:
  void Apply() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  mutable Mutex mu_;
  std::unique_ptr<SlotModel> model_ ABSL_GUARDED_BY(mu_);
  KvIndex* index_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<KvEvent> events_ ABSL_GUARDED_BY(mu_);  // scratch
  std::atomic<bool> active_{false};
  std::atomic<uint64_t> corrections_{0};
};

// A worker as the gateway sees it. Held by shared_ptr: the pool's snapshot, every request routed
// to it and the health loop each keep it alive, so a removed worker's requests finish normally.
struct Worker {
  WorkerConfig config;
  WorkerId id;
  std::shared_ptr<http::ClientPool> client;        // requests; used on the I/O thread only
  std::shared_ptr<http::ClientPool> probe;         // health and /metrics polls (short timeouts)
  std::unique_ptr<events::Subscriber> subscriber;  // null: approximate mode

  std::atomic<bool> healthy{true};
  std::atomic<bool> removed{false};  // events that arrive after removal are dropped
  std::atomic<uint32_t> failed_checks{0};
  std::atomic<uint64_t> events_applied{0};
  std::atomic<uint64_t> events_dropped_removed{0};
  std::atomic<TimeNs> last_event_at{0};   // clock time of the last batch applied
  std::atomic<TimeNs> last_idle_at{0};    // when the monitor last saw it with nothing running
  std::atomic<bool> stale{false};
  std::atomic<bool> metrics_ok{false};    // the last /metrics poll succeeded
  // The KV capacity its engine last reported in /metrics, in the pool's blocks (0: none yet).
  std::atomic<uint64_t> engine_kv_blocks{0};
  // The step size its engine last reported in /server_info (SGLang), in tokens (0: none yet),
  // and whether that was asked since the worker last became healthy (it may have restarted with
  // other arguments).
  std::atomic<uint32_t> engine_max_batched_tokens{0};
  std::atomic<bool> server_info_asked{false};

  // The tokenizer check (tokenizer_check.h): run when the worker is (again) healthy. The I/O
  // thread writes the state and the detail; the state may be read anywhere.
  enum class Tokenizer : uint8_t { kUnchecked, kChecking, kAgrees, kMismatch, kNotCheckable, kFailed };
  std::atomic<Tokenizer> tokenizer{Tokenizer::kUnchecked};
  std::string tokenizer_detail;  // I/O thread only: the mismatch or why it could not be checked

  // llama.cpp with a known prompt cache size: the slot model (started once the slot count is
  // known, from the config or the server's /props).
  WorkerSlots slots;
  std::atomic<bool> props_pending{false};  // a /props request is out
  bool wants_slot_model() const { return config.prompt_cache_tokens.has_value(); }

  bool has_events() const { return !config.kv_events.empty(); }
  // forward_tokens: the worker is sent the router's token ids (the vLLM API, and its tokenizer
  // proven to compute the router's ids). Any thread.
  bool takes_token_ids() const {
    return config.engine == EngineApi::kVllm && tokenizer.load() == Tokenizer::kAgrees;
  }
};

using WorkerList = std::vector<std::shared_ptr<Worker>>;

class Pool {
 public:
  // Loads the text model and starts every worker's event subscriber. `io` runs the upstream
  // clients.
  static absl::StatusOr<std::unique_ptr<Pool>> Create(const PoolConfig& config,
                                                      const GatewayConfig& gateway,
                                                      asio::io_context& io, const Clock& clock);
  ~Pool();

  const std::string& name() const { return config_.name; }
  const PoolConfig& config() const { return config_; }
  bool refuses_mismatch() const { return config_.tokenizer_check == TokenizerCheck::kRefuse; }
  const api::TextModel& text() const { return *text_; }
  uint32_t block_size() const { return config_.block_size; }
  const std::string& policy() const { return policy_; }
  KvIndex& index() { return *index_; }
  const KvIndex& index() const { return *index_; }
  // Thread-safe; reading a worker's load collects its released bookings, hence not const.
  Scheduler& scheduler() const { return *scheduler_; }

  // The current workers (a snapshot: stays valid and unchanged while held).
  std::shared_ptr<const WorkerList> workers() const;
  std::shared_ptr<Worker> Find(WorkerId id) const;

  // Control thread only. Add: InvalidArgument for a bad spec, AlreadyExists for a taken name,
  // ResourceExhausted when the index has no id left. Remove: NotFound.
  absl::Status AddWorker(WorkerConfig config);
  absl::Status RemoveWorker(const std::string& name);
  // Starts `worker`'s slot model with `slots` slots (its /props total_slots).
  void StartSlotModel(Worker& worker, uint32_t slots);

 private:
  Pool(PoolConfig config, const GatewayConfig& gateway, asio::io_context& io,
       const Clock& clock);
  absl::Status StartEvents(Worker& worker);
  void OnBatch(Worker& worker, events::DecodedBatch batch);

  const PoolConfig config_;
  const GatewayConfig& gateway_;
  asio::io_context& io_;
  const Clock& clock_;
  std::string policy_;
  std::unique_ptr<api::TextModel> text_;
  std::unique_ptr<KvIndex> index_;
  std::unique_ptr<Scheduler> scheduler_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const WorkerList> workers_ ABSL_GUARDED_BY(mu_);
};

// Names the worker ids of `workers` that may not take a request now: unhealthy, removed, or
// (`refuse_mismatch`) with a tokenizer that disagrees with the router's.
std::vector<WorkerId> Unavailable(const WorkerList& workers, bool refuse_mismatch);

// "unchecked", "checking", "agrees", "mismatch", "not_checkable" or "check_failed".
std::string_view TokenizerStateName(Worker::Tokenizer state);

}  // namespace kvr::gateway
