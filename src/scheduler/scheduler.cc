#include "scheduler/scheduler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "scheduler/load_state.h"

namespace kvr {

using scheduler_internal::kInFlightLoadPct;
using scheduler_internal::LoadState;
using scheduler_internal::Mail;

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(SchedulerConfig config, KvIndex& index,
                                                             const Clock& clock) {
  absl::StatusOr<std::unique_ptr<Policy>> policy = MakePolicy(config.policy, config.options);
  if (!policy.ok()) return policy.status();
  return std::unique_ptr<Scheduler>(
      new Scheduler(std::move(config), *std::move(policy), index, clock));
}

namespace {

// SGLang's approximate tree, if the policy keeps one: its own index, trimmed as SGLang's is.
std::unique_ptr<KvIndex> MakeApproxTree(const SchedulerConfig& config, const Policy& policy,
                                        const KvIndex& index, const Clock& clock) {
  if (!policy.wants_approx_tree()) return nullptr;
  IndexConfig ac = index.config();
  ac.predict = {.ttl = PredictConfig::kNoTtl,
                .capacity_blocks = config.approx_worker_capacity_blocks,
                .total_capacity_blocks = config.approx_max_tokens / ac.block_size,
                .trim_interval = config.approx_eviction_interval};
  return std::make_unique<KvIndex>(ac, clock);
}

}  // namespace

Scheduler::Scheduler(SchedulerConfig config, std::unique_ptr<Policy> policy, KvIndex& index,
                     const Clock& clock)
    : config_(std::move(config)),
      index_(index),
      clock_(clock),
      approx_(MakeApproxTree(config_, *policy, index, clock)),
      router_queue_(policy->router_queue()),
      policy_(std::move(policy)),
      rng_(config_.seed),
      demand_(std::make_unique<scheduler_internal::PrefixDemand>()),
      roots_(std::make_unique<scheduler_internal::PrefixRoots>()),
      reuse_(policy_->wants_reuse_gaps() ? std::make_unique<ReuseGaps>() : nullptr),
      mail_(std::make_unique<Mail>()) {}

Scheduler::~Scheduler() {
  MutexLock lock(mu_);
  for (const auto& slot : slots_) {
    if (slot) slot->load->Close();
  }
}

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
    MutexLock lock(mu_);
    if (w >= slots_.size()) slots_.resize(w + 1);
    if (slots_[w]) {
      return absl::AlreadyExistsError(absl::StrCat("worker ", w, " already registered"));
    }
    auto load = std::make_shared<LoadState>();
    slots_[w] = std::make_unique<Slot>(spec, load);
    MutexLock registry(registry_mu_);
    if (w >= loads_.size()) loads_.resize(w + 1);
    loads_[w] = std::move(load);
  }
  // The index sizes its tables for the worker's KV capacity now, not as its events arrive. That
  // can take milliseconds: outside mu_, so routing goes on meanwhile.
  index_.Reserve(spec.id, spec.kv_capacity_blocks);
  return absl::OkStatus();
}

absl::StatusOr<Scheduler::Slot*> Scheduler::Registered(WorkerId worker) {
  if (worker.value() >= slots_.size() || !slots_[worker.value()]) {
    return absl::NotFoundError(absl::StrCat("worker ", worker.value(), " not registered"));
  }
  return slots_[worker.value()].get();
}

absl::Status Scheduler::RemoveWorker(WorkerId worker) {
  const uint32_t w = worker.value();
  {
    MutexLock lock(mu_);
    KVR_RETURN_IF_ERROR(Registered(worker).status());
    // Its outstanding tickets release into the closed state; its in-flight blocks go with it.
    slots_[w]->load->Close();
    slots_[w].reset();
    MutexLock registry(registry_mu_);
    loads_[w].reset();
  }
  index_.RemoveWorker(worker);
  if (approx_) approx_->RemoveWorker(worker);
  return absl::OkStatus();
}

void Scheduler::ReportMetrics(WorkerId worker, const EngineMetrics& metrics) {
  MutexLock lock(registry_mu_);
  if (worker.value() < loads_.size() && loads_[worker.value()]) {
    loads_[worker.value()]->PostMetrics(metrics);
  }
}

std::vector<WorkerId> Scheduler::Workers() const {
  MutexLock lock(mu_);
  std::vector<WorkerId> out;
  for (uint32_t w = 0; w < slots_.size(); ++w) {
    if (slots_[w]) out.emplace_back(w);
  }
  return out;
}

std::optional<WorkerLoad> Scheduler::Load(WorkerId worker) {
  MutexLock lock(mu_);
  if (worker.value() >= slots_.size() || !slots_[worker.value()]) return std::nullopt;
  Slot& s = *slots_[worker.value()];
  Collect(s);
  return WorkerLoad{s.load->booked_prefill_tokens.load(std::memory_order_relaxed),
                    s.load->running.load(std::memory_order_relaxed),
                    s.active_counts.size(),
                    s.rate.rate(),
                    s.rate.overhead_s(),
                    s.decode.step_s(),
                    s.spec.kv_capacity_blocks,
                    s.spec.max_batched_tokens};
}

absl::Status Scheduler::SetMaxBatchedTokens(WorkerId worker, uint32_t tokens) {
  if (tokens == 0) return absl::InvalidArgumentError("max batched tokens must be > 0");
  MutexLock lock(mu_);
  KVR_ASSIGN_OR_RETURN(Slot * s, Registered(worker));
  s->spec.max_batched_tokens = tokens;
  return absl::OkStatus();
}

absl::Status Scheduler::SetKvCapacity(WorkerId worker, uint64_t blocks) {
  if (blocks == 0) return absl::InvalidArgumentError("KV capacity must be > 0 blocks");
  {
    MutexLock lock(mu_);
    KVR_ASSIGN_OR_RETURN(Slot * s, Registered(worker));
    s->spec.kv_capacity_blocks = blocks;
  }
  index_.Reserve(worker, blocks);  // outside mu_, as in AddWorker
  return absl::OkStatus();
}

bool Scheduler::AllPrefillBusy() const {
  const double threshold = router_queue_.threshold;
  if (threshold <= 0) return false;  // no router queue: no lock taken either
  MutexLock lock(mu_);
  bool any = false;
  for (const auto& s : slots_) {
    if (!s) continue;
    any = true;
    // Dynamo takes a worker that does not report its batch size as never busy.
    if (s->spec.max_batched_tokens == 0) return false;
    const double booked = double(s->load->booked_prefill_tokens.load(std::memory_order_relaxed));
    if (booked <= threshold * double(s->spec.max_batched_tokens)) return false;
  }
  return any;
}

absl::StatusOr<double> Scheduler::ReleaseKey(const RouteRequest& request, double waited_s) {
  if (!router_queue_.shortest_first) return -waited_s;
  RouteRequest dry = request;
  dry.dry_run = true;
  dry.explain = false;
  KVR_ASSIGN_OR_RETURN(Decision d, Route(dry));
  return double(d.uncached_tokens) - router_queue_.age_tokens_per_s * waited_s;
}

double Scheduler::LowestReleaseKey(double waited_s) const {
  // A decision books at least one uncached token (Decide).
  return router_queue_.shortest_first ? 1 - router_queue_.age_tokens_per_s * waited_s : -waited_s;
}

absl::StatusOr<size_t> Scheduler::NextRelease(std::span<const Waiting> waiting) {
  {
    MutexLock lock(mu_);
    last_backlog_at_ = clock_.Now();
  }
  size_t pick = 0;
  double best = 0;
  for (size_t i = 0; i < std::min(waiting.size(), kRouterQueueWindow); ++i) {
    // Oldest first, so the lowest key a later request could have only grows from here: once it
    // reaches the best key found, none of them can go first (exact; for a FIFO queue the oldest
    // is the only one looked at).
    if (i > 0 && LowestReleaseKey(waiting[i].waited_s) >= best) break;
    KVR_ASSIGN_OR_RETURN(const double key, ReleaseKey(waiting[i].request, waiting[i].waited_s));
    if (i == 0 || key < best) {
      best = key;
      pick = i;
    }
  }
  return pick;
}

// Releases are applied in the order each worker's tickets posted them; the rate model and the
// in-flight blocks are per worker, so the order across workers does not matter.
void Scheduler::Collect(Slot& s) {
  Mail& mail = *mail_;
  if (!s.load->TakeMail(&mail)) return;
  for (const auto& [tokens, ttft_s] : mail.ttft_samples) s.rate.Observe(tokens, ttft_s);
  for (const auto& [tokens, seconds] : mail.decode_samples) s.decode.Observe(tokens, seconds);
  for (const auto& blocks : mail.finished_blocks) RemoveActive(s, blocks);
  if (mail.metrics.has_value()) s.metrics = *mail.metrics;
  mail.Clear();
}

}  // namespace kvr
