#include "sim/simulator.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <queue>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "index/block_hash.h"
#include "index/kv_index.h"

namespace kvr::sim {
namespace {

enum class Kind : uint8_t { kStepEnd, kDeliver, kMetrics };

struct Event {
  TimeNs t;
  uint64_t seq;  // FIFO among equal times
  Kind kind;
  uint32_t worker;
  bool operator>(const Event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
};

struct InFlight {
  Ticket ticket;
  TimeNs first_token = -1;
  RequestRecord record;  // filled in as the request goes (when records are asked for)
};

struct EngineSlot {
  std::unique_ptr<engine::Engine> engine;
  bool stepping = false;
  engine::StepOutput pending;                                  // the step in flight
  std::deque<std::pair<TimeNs, std::vector<KvEvent>>> outbox;  // events on their way
  TimeNs busy = 0;
};

// One policy's run: owns the clock, index, scheduler and engines.
class Run {
 public:
  Run(const Workload& w, const SimConfig& c, const std::string& policy,
      const std::vector<std::vector<BlockHash>>& hashes, const ProgressFn& progress)
      : w_(w),
        c_(c),
        policy_(policy),
        hashes_(hashes),
        progress_(progress),
        index_(IndexConfig{.block_size = c.engine.block_size,
                           .max_workers = std::max(64u, c.workers),
                           .predict = PredictConfig{.ttl = c.predict_ttl}},
               clock_),
        stats_(policy) {}

  absl::StatusOr<PolicyResult> Go();

 private:
  absl::Status Setup();    // the scheduler and the engines, registered with it
  absl::Status Loop();     // arrivals and events in time order, until every request is done
  PolicyResult Summary();  // the collected statistics and the fleet's totals
  void Push(TimeNs t, Kind k, uint32_t w) { heap_.push({t, seq_++, k, w}); }
  absl::Status Arrive(const SimRequest& r);
  absl::Status Dispatch(const SimRequest& r);  // routes it and hands it to its engine
  // Adds what the engines hold of r's prompt, beyond the chosen one, to the report's counts
  // and to r's record.
  void CountSkippable(const SimRequest& r, uint32_t chosen_worker);
  // Ends request `id`'s record with its outcome and keeps it, when records are asked for.
  void Record(uint64_t id, const RequestOutcome& outcome);
  absl::Status DrainRouterQueue();             // routes the held requests the fleet can take
  void StartStep(uint32_t w);
  void EndStep(uint32_t w);
  void Deliver(uint32_t w);
  void ReportMetrics(uint32_t w);

  const Workload& w_;
  const SimConfig& c_;
  const std::string policy_;
  const std::vector<std::vector<BlockHash>>& hashes_;
  const ProgressFn& progress_;
  ManualClock clock_;
  KvIndex index_;
  std::unique_ptr<Scheduler> sched_;
  std::vector<EngineSlot> engines_;
  std::vector<InFlight> inflight_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> heap_;
  uint64_t seq_ = 0;
  PolicyStatsCollector stats_;
  uint64_t completed_ = 0, rejected_ = 0, prefill_tokens_ = 0, preemptions_ = 0;
  // Requests held at the router while every worker is prefill-busy (policies with a router
  // queue: Policy::router_queue), in arrival order.
  std::deque<uint64_t> held_;
  uint64_t ever_held_ = 0;
  // Where prefill beyond a prompt's new content comes from, measured at dispatch against what
  // the engines really hold: tokens of the prompt's prefix that an earlier request had but no
  // engine holds (evicted, or still being computed), and tokens another engine holds beyond
  // what the chosen one does. seen_prefix_: per request, its leading blocks an earlier one had.
  std::vector<uint32_t> seen_prefix_;
  uint64_t nowhere_tokens_ = 0, elsewhere_tokens_ = 0;
  // Over every output token a step produced for a decoding request: the step's duration, and the
  // part of it that was prefill chunks (in ms, summed per token).
  double decode_tokens_ = 0, decode_step_ms_ = 0, decode_prefill_ms_ = 0;
  std::vector<RequestRecord> records_;
  std::vector<std::string> term_names_;  // the policy's, from the first explained decision
};

absl::Status Run::Arrive(const SimRequest& r) {
  // Behind a backlog a request waits too: nothing bypasses a router queue.
  if (!held_.empty() || sched_->AllPrefillBusy()) {
    held_.push_back(r.id);
    ++ever_held_;
    return absl::OkStatus();
  }
  return Dispatch(r);
}

absl::Status Run::DrainRouterQueue() {
  std::vector<Scheduler::Waiting> waiting;
  while (!held_.empty() && !sched_->AllPrefillBusy()) {
    waiting.clear();  // held_ is in arrival order; a release looks at the oldest
    for (size_t i = 0; i < std::min(held_.size(), kRouterQueueWindow); ++i) {
      const SimRequest& q = w_.requests[held_[i]];
      waiting.push_back(
          {.request = {.blocks = hashes_[q.id], .prompt_tokens = uint32_t(q.prompt.size())},
           .waited_s = double(clock_.Now() - q.arrival) * 1e-9});
    }
    KVR_ASSIGN_OR_RETURN(const size_t pick, sched_->NextRelease(waiting));
    const uint64_t id = held_[pick];
    held_.erase(held_.begin() + std::ptrdiff_t(pick));
    KVR_RETURN_IF_ERROR(Dispatch(w_.requests[id]));
  }
  return absl::OkStatus();
}

absl::Status Run::Dispatch(const SimRequest& r) {
  const auto& blocks = hashes_[r.id];
  const bool explain = c_.record_requests && c_.explain_requests;
  auto d = sched_->Route({.blocks = blocks,
                          .prompt_tokens = uint32_t(r.prompt.size()),
                          .expected_output_tokens = r.output_tokens,
                          .explain = explain});
  if (!d.ok()) return d.status();
  const uint32_t w = d->worker.value();
  inflight_[r.id].record = {.id = r.id, .worker = w, .dispatched = clock_.Now()};
  if (explain && d->explanation) {
    if (term_names_.empty()) {
      term_names_.assign(d->explanation->term_names.begin(), d->explanation->term_names.end());
    }
    inflight_[r.id].record.candidates = std::move(d->explanation->candidates);
  }
  CountSkippable(r, w);
  inflight_[r.id].ticket = std::move(d->ticket);
  engines_[w].engine->Add({.id = r.id,
                           .prompt = r.prompt,
                           .max_output_tokens = r.output_tokens,
                           .prompt_hashes = blocks});
  if (!engines_[w].stepping) StartStep(w);
  return absl::OkStatus();
}

void Run::CountSkippable(const SimRequest& r, uint32_t chosen_worker) {
  const auto& blocks = hashes_[r.id];
  uint32_t deepest = 0, chosen = 0;  // leading blocks held: on any engine, on the chosen one
  for (uint32_t i = 0; i < engines_.size(); ++i) {
    const engine::Engine& e = *engines_[i].engine;
    uint32_t held = 0;
    while (held < blocks.size() && e.IsCached(e.ToEngineHash(blocks[held]))) ++held;
    deepest = std::max(deepest, held);
    if (i == chosen_worker) chosen = held;
  }
  const uint64_t bs = c_.engine.block_size;
  RequestRecord& rec = inflight_[r.id].record;
  rec.cached_nowhere_tokens = bs * (seen_prefix_[r.id] - std::min(seen_prefix_[r.id], deepest));
  rec.cached_elsewhere_tokens = bs * (deepest - chosen);
  nowhere_tokens_ += rec.cached_nowhere_tokens;
  elsewhere_tokens_ += rec.cached_elsewhere_tokens;
}

void Run::Record(uint64_t id, const RequestOutcome& outcome) {
  if (!c_.record_requests) return;
  RequestRecord& rec = inflight_[id].record;
  rec.outcome = outcome;
  records_.push_back(rec);
}

void Run::StartStep(uint32_t w) {
  EngineSlot& e = engines_[w];
  e.pending = e.engine->Step();
  e.stepping = true;
  e.busy += e.pending.duration;
  const double decoding = e.pending.decode_tokens;
  decode_tokens_ += decoding;
  decode_step_ms_ += decoding * double(e.pending.duration) / double(kNsPerMs);
  const engine::EngineConfig& ec = e.engine->config();
  decode_prefill_ms_ += decoding * ec.perf.PrefillMs(e.pending.prefill_tokens) / ec.speed;
  Push(clock_.Now() + e.pending.duration, Kind::kStepEnd, w);
}

void Run::EndStep(uint32_t w) {
  EngineSlot& e = engines_[w];
  engine::StepOutput out = std::move(e.pending);
  e.stepping = false;
  const TimeNs now = clock_.Now();
  prefill_tokens_ += out.prefill_tokens;
  preemptions_ += out.preempted;
  for (uint64_t id : out.first_token) {
    inflight_[id].first_token = now;
    inflight_[id].ticket.FirstToken(now - w_.requests[id].arrival);
  }
  for (uint64_t id : out.finished) {
    const SimRequest& r = w_.requests[id];
    InFlight& f = inflight_[id];
    // What a streaming gateway measures: the tokens after the first, and how long they took.
    if (f.first_token >= 0 && r.output_tokens > 1) {
      f.ticket.Decoded(now - f.first_token, r.output_tokens - 1);
    }
    f.ticket.Finish();
    const RequestOutcome outcome{.arrival = r.arrival,
                                 .first_token = f.first_token,
                                 .finish = now,
                                 .prompt_tokens = r.prompt.size(),
                                 .cached_tokens = e.engine->CachedTokens(id),
                                 .output_tokens = r.output_tokens};
    stats_.Add(outcome);
    Record(id, outcome);
    ++completed_;
  }
  for (uint64_t id : out.rejected) {
    inflight_[id].ticket.Finish();
    const SimRequest& r = w_.requests[id];
    Record(id, {.arrival = r.arrival,
                .first_token = -1,
                .finish = -1,
                .prompt_tokens = r.prompt.size(),
                .output_tokens = r.output_tokens});
    ++rejected_;
  }
  if (!out.events.empty()) {
    e.outbox.emplace_back(now + c_.event_delay, std::move(out.events));
    Push(now + c_.event_delay, Kind::kDeliver, w);
  }
  if (e.engine->HasWork()) StartStep(w);
}

void Run::Deliver(uint32_t w) {
  auto& box = engines_[w].outbox;
  index_.Apply(box.front().second);
  box.pop_front();
}

void Run::ReportMetrics(uint32_t w) {
  const engine::EngineStats s = engines_[w].engine->Stats();
  sched_->ReportMetrics(WorkerId(w), {.valid = true,
                                      .at = clock_.Now(),
                                      .running = s.running,
                                      .waiting = s.waiting,
                                      .waiting_prefill_tokens = s.waiting_prefill_tokens,
                                      .kv_usage = s.kv_usage});
  if (completed_ + rejected_ < w_.requests.size()) {
    Push(clock_.Now() + c_.metrics_interval, Kind::kMetrics, w);
  }
}

absl::StatusOr<PolicyResult> Run::Go() {
  KVR_RETURN_IF_ERROR(Setup());
  KVR_RETURN_IF_ERROR(Loop());
  return Summary();
}

absl::Status Run::Setup() {
  KVR_ASSIGN_OR_RETURN(PolicySpec spec, ParsePolicySpec(policy_, c_.scheduler.options));
  SchedulerConfig sc = c_.scheduler;
  sc.policy = spec.name;
  sc.options = spec.options;
  sc.seed = c_.seed;
  KVR_ASSIGN_OR_RETURN(sched_, Scheduler::Create(sc, index_, clock_));
  for (uint32_t w = 0; w < c_.workers; ++w) {
    engine::EngineConfig ec = c_.engine;
    ec.worker = WorkerId(w);
    if (!c_.speeds.empty()) ec.speed = c_.speeds[w % c_.speeds.size()];
    // The router's prior: a nominal engine's prefill throughput at a full token budget. It is
    // deliberately blind to the speed factor: heterogeneity must be learned online from TTFTs,
    // as a live router must when it is not told its engines' speeds.
    const double budget = ec.max_num_batched_tokens;
    const double prior = budget / (ec.perf.PrefillMs(uint32_t(budget)) / 1000.0);
    KVR_RETURN_IF_ERROR(sched_->AddWorker({.id = WorkerId(w),
                                           .block_size = ec.block_size,
                                           .kv_capacity_blocks = ec.num_blocks,
                                           .prefill_rate_prior = prior,
                                           .max_batched_tokens = ec.max_num_batched_tokens}));
    engines_.push_back({.engine = std::make_unique<engine::Engine>(ec)});
    if (c_.metrics_interval > 0) Push(0, Kind::kMetrics, w);
  }
  inflight_.resize(w_.requests.size());
  // In arrival order (the order a held request is dispatched in can differ: a request held at
  // the router counts what arrived before it).
  SeenPrefixes seen;
  seen_prefix_.assign(w_.requests.size(), 0);
  for (const SimRequest& r : w_.requests) seen_prefix_[r.id] = seen.Add(hashes_[r.id]);
  return absl::OkStatus();
}

absl::Status Run::Loop() {
  size_t next = 0;
  const uint64_t total = w_.requests.size();
  uint64_t reported = 0;
  while (next < total || !heap_.empty()) {
    if (next < total && (heap_.empty() || w_.requests[next].arrival < heap_.top().t)) {
      clock_.Set(std::max(clock_.Now(), w_.requests[next].arrival));
      KVR_RETURN_IF_ERROR(Arrive(w_.requests[next++]));
    } else {
      const Event ev = heap_.top();
      heap_.pop();
      clock_.Set(ev.t);
      switch (ev.kind) {
        case Kind::kStepEnd:
          EndStep(ev.worker);
          KVR_RETURN_IF_ERROR(DrainRouterQueue());
          break;
        case Kind::kDeliver:
          Deliver(ev.worker);
          break;
        case Kind::kMetrics:
          ReportMetrics(ev.worker);
          break;
      }
    }
    if (progress_ && completed_ >= reported + total / 20) {
      reported = completed_;
      progress_(policy_, completed_, total, clock_.Now());
    }
  }
  if (!held_.empty()) {
    return absl::InternalError(absl::StrCat(held_.size(), " requests still held at the router"));
  }
  return absl::OkStatus();
}

PolicyResult Run::Summary() {
  std::vector<TimeNs> busy;
  for (const auto& e : engines_) busy.push_back(e.busy);
  PolicyResult result = std::move(stats_).Finish(prefill_tokens_, busy);
  double busy_sum = 0;
  for (TimeNs b : busy) busy_sum += double(b);
  const double span = w_.requests.empty() ? 0 : double(clock_.Now() - w_.requests.front().arrival);
  result.extra.emplace_back("utilization", span > 0 ? busy_sum / c_.workers / span : 0);
  result.extra.emplace_back("preemptions", double(preemptions_));
  const double per_token = decode_tokens_ > 0 ? 1.0 / decode_tokens_ : 0.0;
  result.extra.emplace_back("decode step ms/token", decode_step_ms_ * per_token);
  result.extra.emplace_back("of it prefill ms/token", decode_prefill_ms_ * per_token);
  result.extra.emplace_back("rejected", double(rejected_));
  result.extra.emplace_back("held at the router", double(ever_held_));
  result.extra.emplace_back("prefix cached nowhere", double(nowhere_tokens_));
  result.extra.emplace_back("prefix cached elsewhere", double(elsewhere_tokens_));
  result.records = std::move(records_);
  result.term_names = std::move(term_names_);
  return result;
}

}  // namespace

std::vector<std::vector<BlockHash>> HashWorkload(const Workload& w, uint32_t block_size) {
  std::vector<std::vector<BlockHash>> out;
  out.reserve(w.requests.size());
  for (const auto& r : w.requests) out.push_back(SequenceHashes(r.prompt, block_size));
  return out;
}

absl::StatusOr<PolicyResult> RunPolicy(const Workload& workload, const SimConfig& config,
                                       const std::string& policy,
                                       const std::vector<std::vector<BlockHash>>* block_hashes,
                                       const ProgressFn& progress) {
  KVR_RETURN_IF_ERROR(ParsePolicySpec(policy).status());
  KVR_RETURN_IF_ERROR(engine::ValidateEngineConfig(config.engine));
  if (config.workers == 0) return absl::InvalidArgumentError("need at least one worker");
  for (double s : config.speeds) {
    if (!(s > 0)) return absl::InvalidArgumentError(absl::StrCat("bad speed factor ", s));
  }
  std::vector<std::vector<BlockHash>> local;
  if (block_hashes == nullptr) {
    local = HashWorkload(workload, config.engine.block_size);
    block_hashes = &local;
  }
  Run run(workload, config, policy, *block_hashes, progress);
  return run.Go();
}

}  // namespace kvr::sim
