#include "scheduler/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace kvr {

Ticket& Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    Finish();
    scheduler_ = std::exchange(other.scheduler_, nullptr);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void Ticket::FirstToken(TimeNs observed_ttft) {
  if (scheduler_ != nullptr) scheduler_->ReleaseFirstToken(id_, observed_ttft);
}

void Ticket::Finish() {
  if (scheduler_ != nullptr) std::exchange(scheduler_, nullptr)->ReleaseAll(id_);
}

Scheduler::Scheduler(SchedulerConfig config, KvIndex& index, const Clock& clock)
    : config_(std::move(config)),
      index_(index),
      clock_(clock),
      rng_(config_.seed),
      active_(WordsForWorkers(index.worker_limit()) - 1, kInFlightLoadPct) {
  auto policy = MakePolicy(config_.policy, config_.options);
  // An unknown name is a configuration error the caller validates with MakePolicy first; fall
  // back loudly rather than route with nothing.
  if (!policy.ok()) {
    KVR_LOG("scheduler", error, "{}; routing with round_robin instead",
            std::string(policy.status().message()));
  }
  policy_ = policy.ok() ? std::move(*policy) : *MakePolicy("round_robin");
  if (policy_->wants_approx_tree()) {
    IndexConfig ac = index.config();
    ac.predict = {.ttl = PredictConfig::kNoTtl,
                  .capacity_blocks = config_.approx_worker_capacity_blocks,
                  .total_capacity_blocks = config_.approx_max_tokens / ac.block_size,
                  .trim_interval = config_.approx_eviction_interval};
    approx_ = std::make_unique<KvIndex>(ac, clock_);
  }
}

Scheduler::~Scheduler() = default;

absl::Status Scheduler::AddWorker(const WorkerSpec& spec) {
  const uint32_t w = spec.id.value();
  if (w >= index_.worker_limit()) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker id ", w, " >= the index's worker limit ", index_.worker_limit()));
  }
  if (spec.block_size != index_.config().block_size) {
    return absl::InvalidArgumentError(absl::StrCat("worker ", w, " block size ", spec.block_size,
                                                   " != pool block size ",
                                                   index_.config().block_size));
  }
  if (spec.prefill_rate_prior <= 0) return absl::InvalidArgumentError("prefill rate must be > 0");
  if (spec.kv_capacity_blocks == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker ", w, " KV capacity must be > 0 blocks"));
  }
  {
    std::lock_guard lock(mu_);
    if (w >= slots_.size()) slots_.resize(w + 1);
    if (slots_[w]) {
      return absl::AlreadyExistsError(absl::StrCat("worker ", w, " already registered"));
    }
    slots_[w] = std::make_unique<Slot>(spec, next_ticket_);
  }
  // The index sizes its tables for the worker's KV capacity now, not as its events arrive. That
  // can take milliseconds: outside mu_, so routing goes on meanwhile.
  index_.Reserve(spec.id, spec.kv_capacity_blocks);
  return absl::OkStatus();
}

absl::Status Scheduler::RemoveWorker(WorkerId worker) {
  const uint32_t w = worker.value();
  {
    std::lock_guard lock(mu_);
    if (w >= slots_.size() || !slots_[w]) {
      return absl::NotFoundError(absl::StrCat("worker ", w, " not registered"));
    }
    // Drop its active blocks now; its outstanding bookings see a generation mismatch later.
    for (auto& [id, b] : bookings_) {
      if (b.worker == w && LiveSlot(b) != nullptr) {
        RemoveActive(w, b.blocks);
        b.generation = ~uint64_t{0};
      }
    }
    slots_[w].reset();
  }
  index_.RemoveWorker(worker);
  if (approx_) approx_->RemoveWorker(worker);
  return absl::OkStatus();
}

void Scheduler::ReportMetrics(WorkerId worker, const EngineMetrics& metrics) {
  std::lock_guard lock(mu_);
  if (worker.value() < slots_.size() && slots_[worker.value()]) {
    slots_[worker.value()]->metrics = metrics;
  }
}

std::vector<WorkerId> Scheduler::Workers() const {
  std::lock_guard lock(mu_);
  std::vector<WorkerId> out;
  for (uint32_t w = 0; w < slots_.size(); ++w) {
    if (slots_[w]) out.emplace_back(w);
  }
  return out;
}

std::optional<WorkerLoad> Scheduler::Load(WorkerId worker) const {
  std::lock_guard lock(mu_);
  if (worker.value() >= slots_.size() || !slots_[worker.value()]) return std::nullopt;
  const Slot& s = *slots_[worker.value()];
  return WorkerLoad{s.booked_prefill_tokens, s.running, s.active_counts.size(), s.rate.rate(),
                    s.rate.overhead_s()};
}

}  // namespace kvr
