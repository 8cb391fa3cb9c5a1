// The engine model run in real time: a step of modelled duration d occupies d / speedup of wall
// time, and its outputs (admissions with their cache hits, tokens, completions, KV events) take
// effect when it ends, as the fleet simulator applies them in virtual time. Requests are
// followed by LiveRequest records that handlers wait on.
//
// Threading: everything runs on one io_context thread (the engine model is not thread-safe);
// handlers, the step timer and observers all run there.
#pragma once

#include <utility>  // before Asio (g++ 12 coroutines)

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "engine/engine.h"

namespace kvr::enginesim {

namespace asio = boost::asio;
using SteadyTime = std::chrono::steady_clock::time_point;

struct LiveRequest {
  explicit LiveRequest(asio::io_context& io) : wake(io) {}
  uint64_t id = 0;
  uint32_t prompt_tokens = 0, max_tokens = 0;
  uint32_t produced = 0;  // output tokens the engine has produced so far
  uint32_t cached_tokens = 0;
  bool admitted = false, finished = false, rejected = false, aborted = false;
  SteadyTime arrival, first_token_at, last_token_at;
  asio::steady_timer wake;  // cancelled whenever the fields above change
};

// Told about every step's effects, on the engine's thread, when the step ends.
class StepObserver {
 public:
  virtual ~StepObserver() = default;
  virtual void OnAdmitted(const LiveRequest& r) = 0;
  virtual void OnToken(const LiveRequest& r, SteadyTime now) = 0;
  virtual void OnStepEnd(const engine::StepOutput& out, SteadyTime now) = 0;  // KV events, stats
};

class LiveEngine {
 public:
  LiveEngine(asio::io_context& io, engine::EngineConfig config, double speedup,
             StepObserver* observer);

  // Queues a request; its record lives until Release.
  std::shared_ptr<LiveRequest> Submit(engine::EngineRequest request);
  // Cancels it inside the engine (blocks freed as vLLM frees them) and wakes its waiter.
  void Abort(LiveRequest& r);
  // Forgets a request that has ended (finished, rejected or aborted).
  void Release(const LiveRequest& r);
  // Returns when `r` has changed since the caller last looked (or at once if it has ended).
  asio::awaitable<void> WaitForChange(LiveRequest& r);

  engine::EngineStats Stats() const { return engine_.Stats(); }

 private:
  void MaybeStartStep(SteadyTime start);
  void EndStep(engine::StepOutput out, SteadyTime end);
  static void Wake(LiveRequest& r) { r.wake.cancel(); }
  LiveRequest* Find(uint64_t id);

  asio::io_context& io_;
  engine::Engine engine_;
  double speedup_;
  StepObserver* observer_;
  asio::steady_timer step_timer_;
  // Held by the handlers of steps that end at once (posted, not timed): they do nothing once the
  // engine is gone.
  std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);
  bool stepping_ = false;
  absl::flat_hash_map<uint64_t, std::shared_ptr<LiveRequest>> requests_;
};

}  // namespace kvr::enginesim
