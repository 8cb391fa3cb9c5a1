// Scheduler::Route and the booking lifecycle.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "scheduler/load_state.h"
#include "scheduler/reuse_gaps.h"
#include "scheduler/scheduler.h"

namespace kvr {

using scheduler_internal::Booking;

// A worker's in-flight blocks, each with the number of its bookings that hold it.
void Scheduler::AddActive(Slot& s, std::span<const BlockHash> blocks) {
  for (BlockHash b : blocks) ++*s.active_counts.FindOrInsert(b.value()).first;
}

// Every block of a finished booking was added by its Book and is released once, so the count
// is there and positive.
void Scheduler::RemoveActive(Slot& s, std::span<const BlockHash> blocks) {
  for (BlockHash b : blocks) {
    uint64_t* count = s.active_counts.Find(b.value());
    if (--*count == 0) s.active_counts.EraseAt(count);
  }
}

namespace {

// The leading blocks of `blocks` among a worker's in-flight ones, by bisection. A worker's
// in-flight blocks are whole prompts' block lists, and a block hash is chained (it stands for
// its whole prefix), so when blocks[i] is in flight every block before it is too: membership
// along `blocks` is true up to the answer and false after it. O(log n) lookups instead of one
// per leading block, and no table shared by the workers to keep in step with the counts.
uint32_t InFlightRun(const WordTable& in_flight, std::span<const BlockHash> blocks) {
  if (in_flight.empty() || blocks.empty() || in_flight.Find(blocks[0].value()) == nullptr) {
    return 0;
  }
  size_t lo = 1, hi = blocks.size();  // blocks[0, lo) are in flight; the answer is <= hi
  while (lo < hi) {
    const size_t mid = lo + (hi - lo + 1) / 2;
    if (in_flight.Find(blocks[mid - 1].value()) != nullptr) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return static_cast<uint32_t>(lo);
}

// The leading blocks of the prompt a worker holds or will: cached, predicted or in flight.
uint32_t HeldBlocks(const WorkerView& v) {
  return std::max({v.device, v.predicted, v.active_overlap});
}

}  // namespace

void Scheduler::FillViews(const RouteRequest& req, const OverlapScores& overlap,
                          const OverlapScores* approx, std::vector<WorkerView>* views) {
  for (const auto& slot : slots_) {
    if (slot) Collect(*slot);
  }
  const TimeNs now = clock_.Now();
  if (reuse_) reuse_->Refresh(now);
  double inflow_total = 0;
  for (const auto& slot : slots_) {
    if (slot) inflow_total += slot->inflow;
  }
  for (uint32_t w = 0; w < slots_.size(); ++w) {
    if (!slots_[w]) continue;
    if (std::find(req.excluded.begin(), req.excluded.end(), WorkerId(w)) != req.excluded.end()) {
      continue;
    }
    Slot& s = *slots_[w];
    auto& fifo = s.prefill_fifo;
    while (!fifo.empty() && fifo.front()->prefill_done.load(std::memory_order_relaxed)) {
      fifo.pop_front();
    }
    WorkerView v;
    v.spec = &s.spec;
    v.booked_prefill_tokens = s.load->booked_prefill_tokens.load(std::memory_order_relaxed);
    if (!fifo.empty()) {
      v.oldest_prefill_age_ns = uint64_t(std::max<TimeNs>(0, now - fifo.front()->routed_at));
      v.oldest_prefill_tokens = fifo.front()->uncached;
    }
    v.running = s.load->running.load(std::memory_order_relaxed);
    v.prefilling = s.load->prefilling.load(std::memory_order_relaxed);
    v.active_blocks = s.active_counts.size();
    v.active_overlap = InFlightRun(s.active_counts, req.blocks);  // Dynamo's M_w
    v.rate = &s.rate;
    v.decode_step_s = s.decode.step_s();
    v.metrics = s.metrics;
    v.inflow_share = inflow_total > 0 ? s.inflow / inflow_total : 0.0;
    v.inflow_mean_tokens = inflow_requests_ > 0 ? inflow_total / inflow_requests_ : 0.0;
    if (s.inflow > 0 && inflow_seconds_ > 0) {
      // The time this cache takes to fill with new tokens at its recent inflow: a block not used
      // again is evicted about that long after its last use.
      v.cache_life_s = double(s.spec.kv_capacity_blocks) * index_.config().block_size *
                       inflow_seconds_ / s.inflow;
    }
    if (s.hits > 0 && inflow_seconds_ > 0) {
      v.hit_rate = s.hits / inflow_seconds_;
      v.hit_tokens = s.hit_tokens / s.hits;
    }
    if (w < overlap.num_workers()) {
      v.device = overlap.device[w];
      v.host = overlap.host[w];
      v.storage = overlap.storage[w];
      v.predicted = overlap.predicted[w];
      v.cached_blocks = overlap.cached_blocks[w];
    }
    if (approx != nullptr) v.approx = approx->predicted_or_zero(WorkerId(w));
    views->push_back(v);
  }
}

Ticket Scheduler::Book(Slot& s, const RouteRequest& req, uint64_t uncached, double queue_tokens) {
  const TimeNs now = clock_.Now();
  auto b = std::make_shared<Booking>(s.load, next_ticket_++, uncached, queue_tokens, now,
                                     std::vector<BlockHash>(req.blocks.begin(), req.blocks.end()));
  s.load->booked_prefill_tokens.fetch_add(uncached, std::memory_order_relaxed);
  s.load->running.fetch_add(1, std::memory_order_relaxed);
  s.load->prefilling.fetch_add(1, std::memory_order_relaxed);
  s.prefill_fifo.push_back(b);
  AddActive(s, req.blocks);
  // Where new content enters the caches, and the demand for them: every worker's inflow and
  // hits decay by one booking.
  for (const auto& slot : slots_) {
    if (!slot) continue;
    slot->inflow *= scheduler_internal::kInflowDecay;
    slot->hits *= scheduler_internal::kInflowDecay;
    slot->hit_tokens *= scheduler_internal::kInflowDecay;
  }
  s.inflow += double(uncached);
  inflow_requests_ = inflow_requests_ * scheduler_internal::kInflowDecay + 1;
  if (bookings_ > 0) {
    inflow_seconds_ = inflow_seconds_ * scheduler_internal::kInflowDecay +
                      double(std::max<TimeNs>(0, now - last_booked_at_)) * 1e-9;
  }
  last_booked_at_ = now;
  if (reuse_) reuse_->Book(req.blocks, index_.config().block_size, now);
  ++bookings_;
  return Ticket(std::move(b));
}

void Scheduler::CountHits(std::span<const WorkerView> views, uint32_t deepest) {
  if (deepest == 0) return;
  double holders = 0;
  for (const WorkerView& v : views) holders += HeldBlocks(v) == deepest ? 1 : 0;
  const double tokens = double(deepest) * index_.config().block_size;
  for (const WorkerView& v : views) {
    if (HeldBlocks(v) != deepest) continue;
    Slot& s = *slots_[v.spec->id.value()];
    s.hits += 1 / holders;
    s.hit_tokens += tokens / holders;
  }
}

uint64_t Scheduler::FleetPrefix(const RouteRequest& req, std::span<const WorkerView> views,
                                uint32_t deepest, RequestInfo* info) {
  info->fleet_prefix_blocks = deepest;
  uint64_t prefix_key =
      info->fleet_prefix_blocks > 0 ? req.blocks[info->fleet_prefix_blocks - 1].value() : 0;
  if (prefix_key != 0) {
    // A history that grows request by request counts for the shared prefix it descends from
    // (PrefixRoots). Block hashes chain, so the root is this prompt's prefix iff its last
    // block's hash is in place.
    const scheduler_internal::PrefixRoots::Root root = roots_->Find(prefix_key);
    if (root.key != 0 && root.depth >= 1 && root.depth <= info->fleet_prefix_blocks &&
        req.blocks[root.depth - 1].value() == root.key) {
      prefix_key = root.key;
      info->fleet_prefix_blocks = root.depth;
    }
    // Shares of a handful of bookings are noise: counted over at least 16 per worker.
    const double seen = std::max(inflow_requests_, 16.0 * double(views.size()));
    info->fleet_prefix_share = demand_->Count(prefix_key, bookings_) / seen;
  }
  return prefix_key;
}

absl::StatusOr<Decision> Scheduler::Decide(const RouteRequest& req, const OverlapScores& overlap,
                                           const OverlapScores* approx) {
  const uint32_t bs = index_.config().block_size;
  RequestInfo info{req.blocks, req.prompt_tokens, bs, req.expected_output_tokens};
  info.dry_run = req.dry_run;
  MutexLock lock(mu_);
  std::vector<WorkerView> views;
  views.reserve(slots_.size());
  FillViews(req, overlap, approx, &views);
  if (views.empty()) {
    const bool any = std::any_of(slots_.begin(), slots_.end(),
                                 [](const std::unique_ptr<Slot>& x) { return x != nullptr; });
    return absl::FailedPreconditionError(any ? "every worker is excluded"
                                             : "no workers registered");
  }
  uint32_t deepest = 0;  // the fleet's deepest held prefix of the prompt, in blocks
  for (const WorkerView& x : views) deepest = std::max(deepest, HeldBlocks(x));
  const uint64_t prefix_key = FleetPrefix(req, views, deepest, &info);
  info.reuse_gaps = reuse_.get();
  if (last_backlog_at_ >= 0) info.backlog_age_s = double(clock_.Now() - last_backlog_at_) * 1e-9;
  std::vector<Candidate> cands(views.size());
  for (size_t i = 0; i < views.size(); ++i) cands[i].worker = views[i].spec->id;
  size_t chosen = policy_->Choose(info, views, cands, rng_);
  if (req.pinned) {
    auto it = std::find_if(views.begin(), views.end(),
                           [&](const WorkerView& v) { return v.spec->id == *req.pinned; });
    if (it == views.end()) {
      return absl::NotFoundError(
          absl::StrCat("pinned worker ", req.pinned->value(), " not registered"));
    }
    chosen = size_t(it - views.begin());
  }
  const WorkerView& v = views[chosen];
  const uint32_t cached_blocks = std::max(v.device, v.predicted);
  const uint64_t cached = std::min<uint64_t>(uint64_t{cached_blocks} * bs, req.prompt_tokens);
  const uint64_t uncached = cands[chosen].booked_uncached >= 0
                                ? std::max<uint64_t>(1, uint64_t(cands[chosen].booked_uncached))
                                : std::max<uint64_t>(1, req.prompt_tokens - cached);
  const double queue = double(v.booked_prefill_tokens) + double(uncached);
  Decision d{.worker = v.spec->id,
             .ticket = req.dry_run ? Ticket() : Book(*slots_[v.spec->id.value()], req, uncached, queue),
             .overlap_blocks = v.device,
             .predicted_blocks = cached_blocks,
             .uncached_tokens = uncached};
  if (!req.dry_run) {
    CountHits(views, deepest);
    if (prefix_key != 0) {
      demand_->Add(prefix_key, bookings_);
      roots_->Set(req.blocks.back().value(), {prefix_key, info.fleet_prefix_blocks});
    }
  }
  if (config_.explain || req.explain) {
    Explanation e{std::string(policy_->name()), policy_->TermNames(), {}};
    for (size_t i = 0; i < views.size(); ++i) {
      const WorkerView& x = views[i];
      e.candidates.push_back({x.spec->id, x.device, x.host, x.storage, x.predicted,
                              x.active_overlap, x.cached_blocks, cands[i]});
    }
    d.explanation = std::move(e);
  }
  return d;
}

absl::StatusOr<Decision> Scheduler::Route(const RouteRequest& req) {
  OverlapScores overlap = index_.Query(req.blocks);
  std::optional<OverlapScores> approx;
  if (approx_) {
    // SGLang trims its tree (when the eviction interval has passed) before matching a request.
    approx_->SweepExpired();
    approx = approx_->Query(req.blocks);
  }
  absl::StatusOr<Decision> d = Decide(req, overlap, approx ? &*approx : nullptr);
  if (!d.ok() || req.dry_run) return d;
  // Only the blocks the engine does not hold yet need a prediction: the confirmed prefix is
  // already in the index (and stays there until an eviction event says otherwise).
  const bool modelled = std::find(req.no_predict.begin(), req.no_predict.end(), d->worker) !=
                        req.no_predict.end();
  if (config_.predict_on_route && !modelled && d->overlap_blocks < req.blocks.size()) {
    index_.Predict(d->worker, req.blocks.subspan(d->overlap_blocks));
  }
  if (approx_) approx_->Predict(d->worker, req.blocks);
  return d;
}

}  // namespace kvr
