#include "replay/replayer.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "absl/strings/str_cat.h"
#include "replay/request.h"
#include "replay/stream.h"

namespace kvr::replay {
namespace {

using Duration = std::chrono::steady_clock::duration;

Duration Seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

// Waits on `timer` until its expiry or a cancel; either way returns normally.
asio::awaitable<void> Wait(asio::steady_timer& timer) {
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

// A request between its send and its record; Stop() cancels its response.
struct Replayer::InFlight {
  http::ClientResponse* response = nullptr;  // set while the body is being read
  bool cancelled = false;
};

absl::StatusOr<std::shared_ptr<Replayer>> Replayer::Create(asio::io_context& io,
                                                           ReplayOptions options,
                                                           sim::Workload workload) {
  KVR_ASSIGN_OR_RETURN(auto host_port, http::ParseHttpUrl(options.target));
  if (options.concurrency_limit == 0) {
    return absl::InvalidArgumentError("the concurrency limit must be at least 1");
  }
  http::ClientOptions client;
  client.host = host_port.first;
  client.port = host_port.second;
  client.max_idle_connections = options.concurrency_limit;
  client.read_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
      Seconds(std::max(options.request_timeout_s, 0.001)));
  auto pool = http::ClientPool::Create(io, std::move(client));
  return std::make_shared<Replayer>(io, std::move(options), std::move(workload), std::move(pool));
}

Replayer::Replayer(asio::io_context& io, ReplayOptions options, sim::Workload workload,
                   std::shared_ptr<http::ClientPool> pool)
    : io_(io),
      options_(std::move(options)),
      workload_(std::move(workload)),
      pool_(std::move(pool)),
      wake_(io),
      tick_(io) {}

void Replayer::Start(std::function<void(ReplayResult)> done) {
  done_ = std::move(done);
  start_ = Clock::now();
  asio::co_spawn(io_, Run(), asio::detached);
  if (options_.progress && options_.progress_interval_s > 0) {
    asio::co_spawn(io_, Ticker(), asio::detached);
  }
}

void Replayer::Stop() {
  if (stopping_ || finished_) return;
  stopping_ = true;
  drain_deadline_ = std::min(drain_deadline_, Clock::now() + Seconds(options_.stop_grace_s));
  CancelInFlight();
  wake_.cancel();
}

ReplayProgress Replayer::progress() const {
  return {.total = workload_.requests.size(),
          .sent = sent_,
          .done = done_count_,
          .errors = errors_,
          .in_flight = in_flight_.size(),
          .elapsed_s = static_cast<double>(Since(start_)) / kNsPerSec};
}

TimeNs Replayer::Since(Clock::time_point t) const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

asio::awaitable<void> Replayer::Run() {
  auto self = shared_from_this();
  const Clock::time_point deadline =
      options_.duration_s > 0 ? start_ + Seconds(options_.duration_s) : Clock::time_point::max();
  for (size_t i = 0; i < workload_.requests.size(); ++i) {
    const Clock::time_point due = start_ + std::chrono::nanoseconds(workload_.requests[i].arrival);
    bool held = false;
    if (!co_await WaitToSend(due, deadline, &held)) break;
    ++sent_;
    // Counted in flight now, not when the coroutine first runs (it is posted), so Drain never
    // finds the set empty while a request is still to start.
    in_flight_.push_back(std::make_shared<InFlight>());
    asio::co_spawn(io_, Send(i, due, held, in_flight_.back()), asio::detached);
  }
  co_await Drain();
  Finish();
}

// Waits until `due` and a free slot; false when sending is over (stopped, or past `deadline`).
// *held: the limit made it late, either because every slot was taken when it fell due, or
// because it fell due while the sender was still waiting for a slot for an earlier request.
asio::awaitable<bool> Replayer::WaitToSend(Clock::time_point due, Clock::time_point deadline,
                                           bool* held) {
  bool waited_for_slot = false;
  while (!stopping_) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline || due >= deadline) co_return false;
    if (in_flight_.size() >= options_.concurrency_limit) {
      waited_for_slot = true;
      wake_.expires_at(deadline);  // a request that ends wakes us
    } else if (now < due) {
      waited_for_slot = false;  // a slot freed before it was due
      wake_.expires_at(due);
    } else {
      if (waited_for_slot) slot_wait_end_ = now;
      *held = waited_for_slot || due < slot_wait_end_;
      co_return true;
    }
    co_await Wait(wake_);
  }
  co_return false;
}

// Lets in-flight requests end: drain_timeout_s (stop_grace_s after a Stop), then cancels them
// and waits stop_grace_s more. A request still waiting for its response head then is left
// behind, counted as cancelled (its connection closes when the io_context goes).
asio::awaitable<void> Replayer::Drain() {
  const Duration first = Seconds(stopping_ ? options_.stop_grace_s : options_.drain_timeout_s);
  drain_deadline_ = std::min(drain_deadline_, Clock::now() + first);
  bool cut = false;
  while (!in_flight_.empty()) {
    if (Clock::now() >= drain_deadline_) {
      if (cut) break;
      cut = true;
      CancelInFlight();
      drain_deadline_ = Clock::now() + Seconds(options_.stop_grace_s);
    }
    wake_.expires_at(drain_deadline_);
    co_await Wait(wake_);
  }
}

void Replayer::CancelInFlight() {
  for (const auto& flight : in_flight_) {
    flight->cancelled = true;
    if (flight->response) flight->response->Cancel();
  }
}

asio::awaitable<void> Replayer::Send(size_t index, Clock::time_point due, bool held,
                                     std::shared_ptr<InFlight> flight) {
  auto self = shared_from_this();
  const sim::SimRequest& request = workload_.requests[index];
  RequestRecord record;
  record.id = request.id;
  record.sent = Since(start_);
  record.send_lag = std::max<TimeNs>(0, Since(due));
  record.held_back = held;
  co_await Exchange(request, *flight, record);
  record.finish = Since(start_);
  std::erase(in_flight_, flight);
  Record(std::move(record));
  wake_.cancel();
}

asio::awaitable<void> Replayer::Exchange(const sim::SimRequest& request, InFlight& flight,
                                         RequestRecord& record) {
  if (flight.cancelled) {  // stopped before this request's turn came
    record.error = "cancelled before it was sent";
    record.outcome = Outcome::kCancelled;
    co_return;
  }
  http::ClientRequest message;
  message.target = "/v1/completions";
  message.body = CompletionBody(options_.model, request);
  absl::StatusOr<std::unique_ptr<http::ClientResponse>> sent =
      co_await pool_->Send(std::move(message));
  CompletionStream stream;
  if (!sent.ok()) {
    stream.Fail(std::string(sent.status().message()));
  } else if (http::ClientResponse& response = **sent; response.status() != 200) {
    absl::StatusOr<std::string> body = co_await response.ReadAll();
    stream.Fail(absl::StrCat("HTTP ", response.status(), ": ",
                             body.ok() ? ErrorMessage(*body) : std::string()));
  } else {
    record.worker = std::string(response.Find("x-kvrouter-worker"));
    flight.response = &response;
    if (flight.cancelled) response.Cancel();
    while (!response.done() && !stream.failed()) {
      absl::StatusOr<std::string> piece = co_await response.Read();
      if (!piece.ok()) {
        stream.Fail(std::string(piece.status().message()));
      } else {
        stream.Feed(*piece, Since(start_));
      }
    }
    flight.response = nullptr;
    if (!stream.failed()) stream.End();
  }
  record.first_token = stream.first_token();
  record.usage_reported = stream.usage().reported;
  record.prompt_tokens =
      record.usage_reported ? stream.usage().prompt_tokens : request.prompt.size();
  record.cached_tokens = stream.usage().cached_tokens;
  record.output_tokens =
      record.usage_reported ? stream.usage().completion_tokens : stream.token_chunks();
  record.error = stream.error();
  record.outcome = !stream.failed()        ? Outcome::kCompleted
                   : flight.cancelled      ? Outcome::kCancelled
                   : stream.token_chunks() ? Outcome::kFailedMidStream
                                           : Outcome::kFailed;
}

void Replayer::Record(RequestRecord record) {
  if (finished_) return;  // left behind by the drain bound
  ++done_count_;
  if (record.outcome == Outcome::kFailed || record.outcome == Outcome::kFailedMidStream) {
    ++errors_;
  }
  collector_.Add(record);
}

void Replayer::Finish() {
  for (size_t i = 0; i < in_flight_.size(); ++i) {
    RequestRecord left;
    left.outcome = Outcome::kCancelled;
    left.error = "left in flight at the drain bound";
    collector_.Add(left);
  }
  finished_ = true;
  wake_.cancel();
  tick_.cancel();
  const double elapsed = static_cast<double>(Since(start_)) / kNsPerSec;
  ReplayResult result =
      std::move(collector_).Finish(options_.label, workload_.requests.size(), elapsed, stopping_);
  pool_->CloseIdle();
  if (done_) std::exchange(done_, nullptr)(std::move(result));
}

asio::awaitable<void> Replayer::Ticker() {
  auto self = shared_from_this();
  while (!finished_) {
    tick_.expires_after(Seconds(options_.progress_interval_s));
    co_await Wait(tick_);
    if (!finished_) options_.progress(progress());
  }
}

}  // namespace kvr::replay
