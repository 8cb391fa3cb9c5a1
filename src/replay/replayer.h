// The load generator: sends a workload's requests to an OpenAI-compatible server (the gateway or
// one engine) at their arrival times, many streams in flight, and measures each stream
// (result.h). A library so that `kvrouter replay` and `kvrouter demo` share it.
//
//   asio::io_context io;
//   auto replayer = Replayer::Create(io, options, std::move(workload));
//   (*replayer)->Start([&](ReplayResult r) { result = std::move(r); });
//   io.run();  // the caller stops it in `done` (see Drain: a request may be left behind)
//
// Open loop: a request is sent at its arrival time whatever happened to the earlier ones, unless
// `concurrency_limit` requests are in flight (it then waits for one to end, and so do the requests
// after it: the load is closed-loop from there; the result counts those requests, held_back, and
// the delay, max_send_lag_ms, which TTFT and E2E do not include). Bounds: nothing is sent after
// `duration_s`; in-flight requests then get `drain_timeout_s` to end before they are cancelled.
// Stop() ends it early: nothing more is sent, streams in flight are cancelled at once (their
// connections closed, which the server sees as the client leaving), and the result (interrupted) is
// delivered within `stop_grace_s`.
//
// Threading: everything runs on the io_context's one thread; Start and Stop are called there
// (post from elsewhere).
#pragma once

#include <utility>  // before Asio: g++ 12 needs it for Asio's coroutine support

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "http/client.h"
#include "replay/result.h"
#include "sim/workload.h"

namespace kvr::replay {

namespace asio = boost::asio;

struct ReplayProgress {
  uint64_t total = 0, sent = 0, done = 0, errors = 0, in_flight = 0;
  double elapsed_s = 0;
};

struct ReplayOptions {
  std::string target;            // http://HOST:PORT of the server
  std::string model;             // sent as "model"
  std::string label = "replay";  // the result's name (demo: the policy)
  size_t concurrency_limit = 256;
  double duration_s = 600;  // sending window from the start; 0: none
  double drain_timeout_s = 60;
  double request_timeout_s = 120;  // longest silence inside one response
  double stop_grace_s = 1;
  double progress_interval_s = 1;
  std::function<void(const ReplayProgress&)> progress;  // null: none
};

class Replayer : public std::enable_shared_from_this<Replayer> {
 public:
  // InvalidArgument for a bad target URL or a zero concurrency limit.
  static absl::StatusOr<std::shared_ptr<Replayer>> Create(asio::io_context& io,
                                                          ReplayOptions options,
                                                          sim::Workload workload);

  // Starts sending; `done` runs once, on the io thread, with what was measured.
  void Start(std::function<void(ReplayResult)> done);
  // Stops early (idempotent). The result follows within stop_grace_s.
  void Stop();
  ReplayProgress progress() const;

  Replayer(asio::io_context& io, ReplayOptions options, sim::Workload workload,
           std::shared_ptr<http::ClientPool> pool);

 private:
  using Clock = std::chrono::steady_clock;
  struct InFlight;

  asio::awaitable<void> Run();
  asio::awaitable<bool> WaitToSend(Clock::time_point due, Clock::time_point deadline, bool* held);
  asio::awaitable<void> Drain();
  asio::awaitable<void> Send(size_t index, Clock::time_point due, bool held,
                             std::shared_ptr<InFlight> flight);
  asio::awaitable<void> Exchange(const sim::SimRequest& request, InFlight& flight,
                                 RequestRecord& record);
  asio::awaitable<void> Ticker();
  void Record(RequestRecord record);
  void CancelInFlight();
  void Finish();
  TimeNs Since(Clock::time_point t) const;

  asio::io_context& io_;
  const ReplayOptions options_;
  const sim::Workload workload_;
  std::shared_ptr<http::ClientPool> pool_;
  asio::steady_timer wake_;  // the sender's and drainer's wait; cancelled to wake them
  asio::steady_timer tick_;  // the progress ticker's
  std::function<void(ReplayResult)> done_;
  Clock::time_point start_;
  Clock::time_point drain_deadline_ = Clock::time_point::max();
  Clock::time_point slot_wait_end_{};  // when the sender last got a slot it had waited for
  std::vector<std::shared_ptr<InFlight>> in_flight_;
  ReplayCollector collector_;
  uint64_t sent_ = 0, done_count_ = 0, errors_ = 0;
  bool stopping_ = false, finished_ = false;
};

}  // namespace kvr::replay
