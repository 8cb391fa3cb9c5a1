#include "enginesim/live_engine.h"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace kvr::enginesim {
namespace {

// A step that ends this far behind the wall clock (the process was busy) starts the next one
// from now rather than trying to catch up with a burst of zero-length steps.
constexpr auto kMaxLag = std::chrono::milliseconds(50);

}  // namespace

LiveEngine::LiveEngine(asio::io_context& io, engine::EngineConfig config, double speedup,
                       StepObserver* observer)
    : io_(io), engine_(config), speedup_(speedup), observer_(observer), step_timer_(io) {}

std::shared_ptr<LiveRequest> LiveEngine::Submit(engine::EngineRequest request) {
  auto r = std::make_shared<LiveRequest>(io_);
  r->id = request.id;
  r->prompt_tokens = static_cast<uint32_t>(request.prompt.size());
  r->max_tokens = request.max_output_tokens;
  r->arrival = std::chrono::steady_clock::now();
  requests_[r->id] = r;
  engine_.Add(std::move(request));
  MaybeStartStep(r->arrival);
  return r;
}

void LiveEngine::Abort(LiveRequest& r) {
  if (r.finished || r.rejected || r.aborted) return;
  engine_.Abort(r.id);
  r.aborted = true;
  Wake(r);
}

void LiveEngine::Release(const LiveRequest& r) {
  engine_.Forget(r.id);
  requests_.erase(r.id);
}

asio::awaitable<void> LiveEngine::WaitForChange(LiveRequest& r) {
  if (r.finished || r.rejected || r.aborted) co_return;
  r.wake.expires_at(SteadyTime::max());
  boost::system::error_code ec;  // cancellation is the wake-up
  co_await r.wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

LiveRequest* LiveEngine::Find(uint64_t id) {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : it->second.get();
}

void LiveEngine::MaybeStartStep(SteadyTime start) {
  if (stepping_ || !engine_.HasWork()) return;
  stepping_ = true;
  engine::StepOutput out = engine_.Step();
  const auto wall = std::chrono::nanoseconds(
      static_cast<int64_t>(static_cast<double>(out.duration) / speedup_));
  const SteadyTime end = start + wall;
  // A step that is already over (a large speedup makes most of them last nanoseconds) ends as
  // soon as the handlers queued before it have run: a timer due at once would cost two
  // timerfd_settime calls, which on a VM were the engine-sim's largest cost per request.
  if (end <= std::chrono::steady_clock::now()) {
    asio::post(io_, [this, alive = std::weak_ptr<const bool>(alive_), out = std::move(out),
                     end]() mutable {
      if (!alive.expired()) EndStep(std::move(out), end);
    });
    return;
  }
  step_timer_.expires_at(end);
  step_timer_.async_wait(
      [this, out = std::move(out), end](const boost::system::error_code& ec) mutable {
        if (!ec) EndStep(std::move(out), end);
      });
}

void LiveEngine::EndStep(engine::StepOutput out, SteadyTime end) {
  const SteadyTime now = std::chrono::steady_clock::now();
  for (const engine::Admission& a : out.admitted) {
    if (LiveRequest* r = Find(a.id)) {
      r->admitted = true;
      r->cached_tokens = a.cached_tokens;
      observer_->OnAdmitted(*r);
    }
  }
  for (uint64_t id : out.tokens) {
    LiveRequest* r = Find(id);
    if (r == nullptr || r->aborted) continue;
    if (++r->produced == 1) r->first_token_at = now;
    r->last_token_at = now;
    observer_->OnToken(*r, now);
    Wake(*r);
  }
  for (uint64_t id : out.finished) {
    if (LiveRequest* r = Find(id)) r->finished = true;
  }
  for (uint64_t id : out.rejected) {
    if (LiveRequest* r = Find(id)) {
      r->rejected = true;
      Wake(*r);
    }
  }
  observer_->OnStepEnd(out, now);
  stepping_ = false;
  MaybeStartStep(now - end > kMaxLag ? now : end);
}

}  // namespace kvr::enginesim
