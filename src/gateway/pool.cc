#include "gateway/pool.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"

namespace kvr::gateway {
namespace {

// Dynamo's approximate mode keeps routed blocks for 120 s: with no events to confirm or evict
// them, a prediction is all the router knows of a worker's cache.
constexpr TimeNs kApproximateTtl = 120 * kNsPerSec;

}  // namespace

Pool::Pool(PoolConfig config, const GatewayConfig& gateway, asio::io_context& io,
           const Clock& clock)
    : config_(std::move(config)), gateway_(gateway), io_(io), clock_(clock) {}

Pool::~Pool() {
  // Subscriber threads call into the index: stop them before it goes.
  std::shared_ptr<const WorkerList> list = workers();
  for (const auto& w : *list) {
    w->removed = true;
    w->subscriber.reset();
    w->slots.Stop();  // requests still out may finish after the index is gone
  }
}

absl::StatusOr<std::unique_ptr<Pool>> Pool::Create(const PoolConfig& config,
                                                   const GatewayConfig& gateway,
                                                   asio::io_context& io, const Clock& clock) {
  auto pool = std::unique_ptr<Pool>(new Pool(config, gateway, io, clock));
  const std::string where = absl::StrCat("pool ", config.name);
  api::TextModelOptions text{.tokenizer_path = config.tokenizer == "bytes" ? "" : config.tokenizer,
                             .chat_template_file = config.chat_template};
  absl::StatusOr<std::unique_ptr<api::TextModel>> model = api::TextModel::Load(text);
  if (!model.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", model.status().message()));
  }
  pool->text_ = *std::move(model);
  KVR_ASSIGN_OR_RETURN(PolicySpec spec, ParsePolicySpec(config.policy));
  pool->policy_ = spec.label;
  const bool all_events = std::all_of(config.workers.begin(), config.workers.end(),
                                      [](const WorkerConfig& w) { return !w.kv_events.empty(); });
  IndexConfig index{.block_size = config.block_size};
  if (!all_events) index.predict.ttl = kApproximateTtl;
  pool->index_ = std::make_unique<KvIndex>(index, clock);
  SchedulerConfig sc{.policy = spec.name, .options = spec.options};
  KVR_ASSIGN_OR_RETURN(pool->scheduler_, Scheduler::Create(sc, *pool->index_, clock));
  {
    absl::MutexLock lock(&pool->mu_);
    pool->workers_ = std::make_shared<const WorkerList>();
  }
  for (const WorkerConfig& w : config.workers) {
    if (absl::Status s = pool->AddWorker(w); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(where, ": ", s.message()));
    }
  }
  return pool;
}

std::shared_ptr<const WorkerList> Pool::workers() const {
  absl::MutexLock lock(&mu_);
  return workers_;
}

std::shared_ptr<Worker> Pool::Find(WorkerId id) const {
  std::shared_ptr<const WorkerList> list = workers();
  for (const auto& w : *list) {
    if (w->id == id) return w;
  }
  return nullptr;
}

absl::Status Pool::AddWorker(WorkerConfig config) {
  KVR_RETURN_IF_ERROR(NormalizeWorker(config, absl::StrCat("worker ", config.url)));
  KVR_ASSIGN_OR_RETURN(auto host_port, http::ParseHttpUrl(config.url));
  std::shared_ptr<const WorkerList> list = workers();
  // The lowest free id: ids index dense per-worker tables.
  std::vector<bool> taken(index_->worker_limit(), false);
  for (const auto& w : *list) {
    if (w->config.name == config.name) {
      return absl::AlreadyExistsError(absl::StrCat("worker '", config.name, "' exists"));
    }
    taken[w->id.value()] = true;
  }
  const auto free = std::find(taken.begin(), taken.end(), false);
  if (free == taken.end()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("pool ", config_.name, " has ", taken.size(), " workers, the most it takes"));
  }
  auto worker = std::make_shared<Worker>();
  worker->id = WorkerId(static_cast<uint32_t>(free - taken.begin()));
  worker->config = std::move(config);
  worker->client = http::ClientPool::Create(
      io_, {.host = host_port.first,
            .port = host_port.second,
            .max_idle_connections = gateway_.max_idle_connections,
            .connect_timeout = std::chrono::milliseconds(gateway_.connect_timeout_ms),
            .read_timeout = std::chrono::milliseconds(gateway_.read_timeout_ms)});
  const auto health_timeout = std::chrono::milliseconds(gateway_.health_timeout_ms);
  worker->probe = http::ClientPool::Create(io_, {.host = host_port.first,
                                                 .port = host_port.second,
                                                 .max_idle_connections = 1,
                                                 .connect_timeout = health_timeout,
                                                 .read_timeout = health_timeout});
  worker->last_idle_at = clock_.Now();
  const WorkerConfig& c = worker->config;
  KVR_RETURN_IF_ERROR(scheduler_->AddWorker(
      {.id = worker->id,
       .block_size = config_.block_size,
       .kv_capacity_blocks = c.kv_capacity_blocks.value_or(config_.kv_capacity_blocks),
       .prefill_rate_prior = config_.prefill_tokens_per_s * c.speed,
       .max_batched_tokens = c.max_batched_tokens.value_or(config_.max_batched_tokens)}));
  if (worker->has_events()) {
    if (absl::Status s = StartEvents(*worker); !s.ok()) {
      (void)scheduler_->RemoveWorker(worker->id);
      return s;
    }
  }
  StartSlotModel(*worker, worker->config.slots);
  auto next = std::make_shared<WorkerList>(*list);
  next->push_back(std::move(worker));
  absl::MutexLock lock(&mu_);
  workers_ = std::move(next);
  return absl::OkStatus();
}

absl::Status Pool::RemoveWorker(const std::string& name) {
  std::shared_ptr<const WorkerList> list = workers();
  auto it = std::find_if(list->begin(), list->end(),
                         [&](const std::shared_ptr<Worker>& w) { return w->config.name == name; });
  if (it == list->end()) return absl::NotFoundError(absl::StrCat("no worker '", name, "'"));
  std::shared_ptr<Worker> worker = *it;
  auto next = std::make_shared<WorkerList>(*list);
  next->erase(next->begin() + (it - list->begin()));
  {
    absl::MutexLock lock(&mu_);
    workers_ = std::move(next);
  }
  // Its late events must not reach the index (nor a successor given the same id): flag it, then
  // join the subscriber thread, then drop its entries.
  worker->removed = true;
  worker->subscriber.reset();
  worker->slots.Stop();
  return scheduler_->RemoveWorker(worker->id);
}

absl::Status Pool::StartEvents(Worker& worker) {
  const WorkerConfig& c = worker.config;
  events::SubscriberOptions options{
      .endpoint = c.kv_events,
      .replay_endpoint = c.replay,
      .topic = c.topic,
      .worker = worker.id,
      .replay_timeout = std::chrono::milliseconds(gateway_.replay_timeout_ms)};
  Worker* w = &worker;  // the subscriber is owned by the worker: it never outlives it
  auto sub = events::Subscriber::Start(
      options, [this, w](uint64_t /*seq*/, events::DecodedBatch batch) { OnBatch(*w, std::move(batch)); });
  if (!sub.ok()) {
    return absl::Status(sub.status().code(), absl::StrCat("worker ", c.name, " kv_events ",
                                                          c.kv_events, ": ",
                                                          sub.status().message()));
  }
  worker.subscriber = *std::move(sub);
  return absl::OkStatus();
}

void Pool::OnBatch(Worker& worker, events::DecodedBatch batch) {
  if (worker.removed) {
    worker.events_dropped_removed += batch.events.size();
    return;
  }
  // One publisher per DP rank (vLLM binds port + rank); a batch tagged with another rank is
  // not this worker's.
  if (batch.dp_rank && *batch.dp_rank != worker.config.dp_rank) return;
  index_->Apply(batch.events);
  worker.events_applied += batch.events.size();
  worker.last_event_at = clock_.Now();
}

void Pool::StartSlotModel(Worker& worker, uint32_t slots) {
  if (!worker.wants_slot_model() || slots == 0) return;
  worker.slots.Start({.worker = worker.id,
                      .slots = slots,
                      .block_size = config_.block_size,
                      .prompt_cache_tokens = *worker.config.prompt_cache_tokens},
                     index_.get());
}

void WorkerSlots::Start(const SlotModelConfig& config, KvIndex* index) {
  MutexLock lock(mu_);
  if (model_ || stopped_) return;
  model_ = std::make_unique<SlotModel>(config);
  index_ = index;
  active_.store(true, std::memory_order_release);
}

void WorkerSlots::Stop() {
  MutexLock lock(mu_);
  stopped_ = true;
  model_.reset();
  active_.store(false, std::memory_order_release);
}

void WorkerSlots::Apply() {
  if (!events_.empty()) index_->Apply(events_);
  events_.clear();
}

uint64_t WorkerSlots::Arrive(std::span<const BlockHash> blocks, uint32_t prompt_tokens) {
  MutexLock lock(mu_);
  if (!model_) return 0;
  const uint64_t id = model_->Arrive(blocks, prompt_tokens, &events_);
  Apply();
  return id;
}

std::optional<SlotPlacement> WorkerSlots::Placement(uint64_t request) const {
  MutexLock lock(mu_);
  if (!model_) return std::nullopt;
  return model_->Placement(request);
}

void WorkerSlots::Observe(uint64_t request, int64_t cached_tokens) {
  MutexLock lock(mu_);
  if (!model_) return;
  if (model_->Observe(request, cached_tokens, &events_)) {
    corrections_.fetch_add(1, std::memory_order_relaxed);
  }
  Apply();
}

void WorkerSlots::Finish(uint64_t request) {
  MutexLock lock(mu_);
  if (!model_) return;
  model_->Finish(request, &events_);
  Apply();
}

void WorkerSlots::Clear() {
  MutexLock lock(mu_);
  if (!model_) return;
  model_->Clear(&events_);
  Apply();
}

std::optional<WorkerSlots::Snapshot> WorkerSlots::Snap() const {
  MutexLock lock(mu_);
  if (!model_) return std::nullopt;
  return Snapshot{.slots = model_->config().slots,
                  .state = model_->Slots(),
                  .saved_prompts = model_->saved_prompts(),
                  .saved_tokens = model_->saved_tokens(),
                  .prompt_cache_tokens = model_->config().prompt_cache_tokens};
}

std::vector<WorkerId> Unavailable(const WorkerList& workers, bool refuse_mismatch) {
  std::vector<WorkerId> out;
  for (const auto& w : workers) {
    const bool mismatch = refuse_mismatch && w->tokenizer == Worker::Tokenizer::kMismatch;
    if (!w->healthy || w->removed || mismatch) out.push_back(w->id);
  }
  return out;
}

std::string_view TokenizerStateName(Worker::Tokenizer state) {
  switch (state) {
    case Worker::Tokenizer::kUnchecked: return "unchecked";
    case Worker::Tokenizer::kChecking: return "checking";
    case Worker::Tokenizer::kAgrees: return "agrees";
    case Worker::Tokenizer::kMismatch: return "mismatch";
    case Worker::Tokenizer::kNotCheckable: return "not_checkable";
    case Worker::Tokenizer::kFailed: return "check_failed";
  }
  return "unchecked";
}

}  // namespace kvr::gateway
