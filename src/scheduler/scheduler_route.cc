// Scheduler::Route and the booking lifecycle.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"

namespace kvr {

// A worker's in-flight blocks are counted in its own table; the shared active_ bits change only
// when a block's count leaves or returns to zero.
void Scheduler::AddActive(uint32_t w, std::span<const BlockHash> blocks) {
  Slot& s = *slots_[w];
  for (BlockHash b : blocks) {
    uint64_t& count = *s.active_counts.FindOrInsert(b.value()).first;
    if (count++ == 0) active_.Set(b, w);
  }
}

void Scheduler::RemoveActive(uint32_t w, std::span<const BlockHash> blocks) {
  Slot& s = *slots_[w];
  for (BlockHash b : blocks) {
    uint64_t* count = s.active_counts.Find(b.value());
    if (count == nullptr) continue;  // unreachable: every booked block was added
    if (--*count == 0) {
      s.active_counts.EraseAt(count);
      active_.Clear(b, w);
    }
  }
}

void Scheduler::FillViews(const RouteRequest& req, const OverlapScores& overlap,
                          const OverlapScores* approx, std::vector<WorkerView>& views) {
  // Leading blocks of this prompt among each worker's in-flight prompts (Dynamo's M_w).
  std::vector<uint32_t> active_run(slots_.size(), 0);
  LeadingRuns(req.blocks, active_, nullptr, WordsForWorkers(uint32_t(slots_.size())),
              active_run.data());
  const TimeNs now = clock_.Now();
  for (uint32_t w = 0; w < slots_.size(); ++w) {
    if (!slots_[w]) continue;
    Slot& s = *slots_[w];
    while (!s.prefill_fifo.empty()) {
      auto it = bookings_.find(s.prefill_fifo.front());
      if (it != bookings_.end() && !it->second.prefill_done) break;
      s.prefill_fifo.pop_front();
    }
    WorkerView v;
    v.spec = &s.spec;
    v.booked_prefill_tokens = s.booked_prefill_tokens;
    if (!s.prefill_fifo.empty()) {
      const Booking& oldest = bookings_.at(s.prefill_fifo.front());
      v.oldest_prefill_age_ns = uint64_t(std::max<TimeNs>(0, now - oldest.routed_at));
      v.oldest_prefill_tokens = oldest.uncached;
    }
    v.running = s.running;
    v.active_blocks = s.active_counts.size();
    v.active_overlap = active_run[w];
    v.rate = &s.rate;
    v.metrics = s.metrics;
    const WorkerId id(w);
    if (w < overlap.num_workers()) {
      v.device = overlap.device[w];
      v.host = overlap.host[w];
      v.storage = overlap.storage[w];
      v.predicted = overlap.predicted[w];
      v.cached_blocks = overlap.cached_blocks[w];
    }
    if (approx != nullptr) v.approx = approx->predicted_or_zero(id);
    views.push_back(v);
  }
}

uint64_t Scheduler::Book(Slot& s, const RouteRequest& req, uint64_t uncached, double queue_tokens) {
  const uint64_t id = next_ticket_++;
  const uint32_t w = s.spec.id.value();
  Booking b{.worker = w,
            .uncached = uncached,
            .queue_tokens = queue_tokens,
            .routed_at = clock_.Now(),
            .generation = s.generation,
            .blocks = {req.blocks.begin(), req.blocks.end()}};
  s.booked_prefill_tokens += uncached;
  ++s.running;
  s.prefill_fifo.push_back(id);
  AddActive(w, b.blocks);
  bookings_.emplace(id, std::move(b));
  return id;
}

absl::StatusOr<Decision> Scheduler::Route(const RouteRequest& req) {
  OverlapScores overlap = index_.Query(req.blocks);
  std::optional<OverlapScores> approx;
  if (approx_) {
    // SGLang trims its tree (when the eviction interval has passed) before matching a request.
    approx_->SweepExpired();
    approx = approx_->Query(req.blocks);
  }
  const uint32_t bs = index_.config().block_size;
  RequestInfo info{req.blocks, req.prompt_tokens, bs, req.expected_output_tokens};
  Decision d;
  {
    std::lock_guard lock(mu_);
    std::vector<WorkerView> views;
    views.reserve(slots_.size());
    FillViews(req, overlap, approx ? &*approx : nullptr, views);
    if (views.empty()) return absl::FailedPreconditionError("no workers registered");
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
    const uint64_t uncached = std::max<uint64_t>(1, req.prompt_tokens - cached);
    Slot& slot = *slots_[v.spec->id.value()];
    const double queue = double(slot.booked_prefill_tokens) + double(uncached);
    d.worker = v.spec->id;
    d.overlap_blocks = v.device;
    d.predicted_blocks = cached_blocks;
    d.uncached_tokens = uncached;
    d.ticket = Ticket(this, Book(slot, req, uncached, queue));
    if (config_.explain) {
      Explanation e{std::string(policy_->name()), policy_->TermNames(), {}};
      for (size_t i = 0; i < views.size(); ++i) {
        const WorkerView& x = views[i];
        e.candidates.push_back({x.spec->id, x.device, x.host, x.storage, x.predicted,
                                x.active_overlap, x.cached_blocks, cands[i]});
      }
      d.explanation = std::move(e);
    }
  }
  // Only the blocks the engine does not hold yet need a prediction: the confirmed prefix is
  // already in the index (and stays there until an eviction event says otherwise).
  if (config_.predict_on_route && d.overlap_blocks < req.blocks.size()) {
    index_.Predict(d.worker, req.blocks.subspan(d.overlap_blocks));
  }
  if (approx_) approx_->Predict(d.worker, req.blocks);
  return d;
}

Scheduler::Slot* Scheduler::LiveSlot(const Booking& b) const {
  if (b.worker >= slots_.size() || !slots_[b.worker]) return nullptr;
  Slot* s = slots_[b.worker].get();
  return b.generation == s->generation ? s : nullptr;
}

void Scheduler::UnbookPrefill(Slot& s, Booking& b) {
  if (b.prefill_done) return;
  b.prefill_done = true;
  s.booked_prefill_tokens -= b.uncached;
}

void Scheduler::ReleaseFirstToken(uint64_t id, TimeNs observed_ttft) {
  std::lock_guard lock(mu_);
  auto it = bookings_.find(id);
  if (it == bookings_.end() || it->second.prefill_done) return;
  Booking& b = it->second;
  if (Slot* s = LiveSlot(b)) {
    UnbookPrefill(*s, b);
    s->rate.Observe(b.queue_tokens, double(observed_ttft) * 1e-9);
  } else {
    b.prefill_done = true;
  }
}

void Scheduler::ReleaseAll(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = bookings_.find(id);
  if (it == bookings_.end()) return;
  Booking& b = it->second;
  if (Slot* s = LiveSlot(b)) {
    UnbookPrefill(*s, b);
    --s->running;
    RemoveActive(b.worker, b.blocks);
  }
  bookings_.erase(it);
}

}  // namespace kvr
