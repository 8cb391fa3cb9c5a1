// Gateway::Impl, shared by the gateway's translation units: gateway.cc (start, dispatch, small
// endpoints, shutdown), proxy.cc (the generation path: admission, routing, forwarding, relay),
// admin.cc (/admin and /debug) and monitor.cc (health checks, engines' /metrics, staleness).
// Everything here runs on the I/O thread unless a comment says otherwise.
#pragma once

#include <utility>  // before Asio

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "api/openai.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/pool.h"
#include "gateway/prepare.h"
#include "http/client.h"
#include "http/server.h"

namespace kvr::gateway {

namespace asio = boost::asio;
using http::Exchange;
using http::Task;

// A JSON response (or an OpenAI-style error) for the simple endpoints.
http::Response JsonResponse(int status, std::string body);
http::Response ErrorResponse(const api::ApiError& error);
api::ApiError Error(int status, std::string type, std::string message);

class Gateway::Impl {
 public:
  Impl(asio::io_context& io, GatewayConfig config, const Clock& clock);
  ~Impl();

  absl::Status Start();
  std::string ReadyLine() const;
  void Shutdown(std::function<void()> done);

 private:
  // gateway.cc
  Task Handle(Exchange& ex);
  http::Response Models() const;
  http::Response Ready() const;
  http::Response Metrics() const;
  // Runs `f` on the CPU pool and resumes on the I/O thread with its result; with
  // cpu_threads 0, runs it here.
  template <class F>
  asio::awaitable<std::invoke_result_t<F>> OnCpu(F f) {
    using R = std::invoke_result_t<F>;
    if (cpu_threads_ == 0) co_return f();
    co_return co_await asio::co_spawn(
        *cpu_, [f = std::move(f)]() -> asio::awaitable<R> { co_return f(); }, asio::use_awaitable);
  }
  Pool* FindPool(std::string_view model) const;
  ModelLookup Lookup() const;

  // proxy.cc
  Task Generate(Exchange& ex, api::Endpoint endpoint);
  struct Timing {
    TimeNs arrived_at;  // the request reached the router
    TimeNs routed_at;   // its worker was chosen (and booked)
  };
  Task Forward(Exchange& ex, Pool& pool, const PreparedPrompt& prompt, TimeNs arrived_at,
               RequestRecord& record);
  // One routing decision among the pool's available workers less those already `tried`; the
  // chosen worker is booked. nullopt: none eligible, or the chosen one was removed between the
  // snapshot and the decision (its booking then ends with the decision).
  struct Routed {
    Decision decision;
    std::shared_ptr<Worker> worker;
    Timing timing;
  };
  std::optional<Routed> RouteOnce(Pool& pool, const PreparedPrompt& prompt,
                                  const std::vector<WorkerId>& tried, TimeNs arrived_at);
  // Relays the worker's answer to the client. When the answer breaks before any of it reached
  // the client (the engine died while the request waited or prefilled), returns why: the request
  // may still go elsewhere. std::nullopt: answered (or the client left).
  asio::awaitable<std::optional<std::string>> Relay(Exchange& ex, Pool& pool, Worker& worker,
                                                    http::ClientResponse& response, Ticket& ticket,
                                                    bool stream, Timing timing,
                                                    RequestRecord& record);
  // Relay's two forms: the answer in one piece (not streamed, or an engine's error status), and
  // streamed piece by piece. Each returns as Relay does; Relay then ends the booking.
  struct RelayState {
    std::vector<http::Header> headers;  // for the client: x-kvrouter-worker
    std::string content_type;
    const bool* client_gone;  // turns true whenever the client leaves
  };
  asio::awaitable<std::optional<std::string>> RelayWhole(Exchange& ex,
                                                         http::ClientResponse& response,
                                                         Ticket& ticket, RelayState& state,
                                                         RequestRecord& record);
  asio::awaitable<std::optional<std::string>> RelayStream(Exchange& ex, Pool& pool, Worker& worker,
                                                          http::ClientResponse& response,
                                                          Ticket& ticket, Timing timing,
                                                          RelayState& state,
                                                          RequestRecord& record);
  // Waits while every healthy worker of `pool` is saturated, or while other requests wait (none
  // passes them); false: give up (429), or the client left.
  asio::awaitable<bool> Admit(Exchange& ex, Pool& pool, const PreparedPrompt& prompt);
  bool Saturated(const Pool& pool) const;
  // Capacity may have freed: wakes those waiting whose client left and, unless the pool is still
  // saturated, the waiting request its policy releases first (Scheduler::NextRelease).
  void Released(Pool& pool);
  // Released, once the running coroutine has suspended (so that it may wake that one).
  void PostRelease(Pool& pool);
  void MarkFailed(Worker& worker, std::string_view why);
  // A worker's KV capacity as its engine reports it (in tokens), unless configured.
  void LearnKvCapacity(Pool& pool, Worker& worker, uint64_t tokens);
  // A worker's step size as its engine reports it (SGLang's /server_info), unless configured.
  void LearnMaxBatchedTokens(Pool& pool, Worker& worker, uint32_t tokens);

  // admin.cc
  bool Authorized(Exchange& ex, http::Response* denied) const;
  Task DebugRoute(Exchange& ex);
  http::Response Explain(const PreparedPrompt& prompt) const;
  http::Response ListWorkers() const;
  http::Response AddWorker(const http::Request& request);
  http::Response RemoveWorker(std::string_view name);

  // monitor.cc
  void StartMonitor();
  Task HealthLoop();
  Task CheckHealth(Pool* pool, std::shared_ptr<Worker> worker);
  // Compares the worker's token ids on the fixed probes with the router's (tokenizer_check.h).
  Task CheckTokenizer(Pool* pool, std::shared_ptr<Worker> worker);
  // Asks a llama.cpp worker's /props for its slot count and starts its slot model.
  Task LearnSlots(Pool* pool, std::shared_ptr<Worker> worker);
  // Asks the worker's /server_info (SGLang) for its step size.
  Task LearnServerInfo(Pool* pool, std::shared_ptr<Worker> worker);
  Task EngineMetricsLoop();
  Task PollEngineMetrics(Pool* pool, std::shared_ptr<Worker> worker);
  void UpdateStaleness();

  asio::io_context& io_;
  GatewayConfig config_;
  const Clock& clock_;
  const int64_t started_at_;  // unix seconds, for /v1/models
  const uint32_t cpu_threads_;  // CpuThreads(config_)
  std::optional<asio::thread_pool> cpu_;  // none when cpu_threads_ is 0
  std::vector<std::unique_ptr<Pool>> pools_;
  std::unique_ptr<http::Server> server_;
  GatewayMetrics metrics_;

  // Admission: per pool, the requests waiting for capacity, in arrival order.
  struct Waiter {
    asio::steady_timer* timer;
    const PreparedPrompt* prompt;
    TimeNs since;  // when it began to wait
    Exchange* ex;
  };
  struct Queue {
    std::deque<Waiter> waiting;
  };
  absl::flat_hash_map<const Pool*, Queue> queues_;  // every pool has one (made at start)

  std::set<http::ClientResponse*> upstream_;  // responses being relayed (cut at shutdown)
  uint32_t generating_ = 0;  // completion and chat requests in Generate (I/O thread only)
  bool stopping_ = false;
  asio::steady_timer health_timer_;
  asio::steady_timer metrics_timer_;
  asio::steady_timer grace_timer_;
};

}  // namespace kvr::gateway
