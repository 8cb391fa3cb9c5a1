// The generation path: prepare on the CPU pool, admit, route, forward the original body, relay
// the answer as it arrives, and release the booking on every exit.
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <chrono>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "gateway/gateway_impl.h"

namespace kvr::gateway {
namespace {

// Request headers passed on to the engine (the router itself uses none of them).
constexpr std::string_view kForwarded[] = {"authorization", "x-request-id", "traceparent",
                                           "tracestate"};

double Seconds(TimeNs ns) { return static_cast<double>(ns) * 1e-9; }

std::string UpstreamError(const Worker& w, std::string_view what) {
  return absl::StrCat("worker ", w.config.name, ": ", std::string(what));
}

// The request as the worker gets it: the client's target and body (or the router's token ids),
// its content type as sent (an engine that refuses one, vLLM with 415, says so itself), and the
// forwarded headers.
http::ClientRequest UpstreamRequest(const http::Request& in, const PreparedPrompt& prompt,
                                    bool as_ids) {
  http::ClientRequest out;
  out.target = in.target;
  out.body = as_ids ? prompt.token_body : in.body;
  if (std::string_view type = in.Find("content-type"); !type.empty()) {
    out.content_type = std::string(type);
  }
  for (std::string_view name : kForwarded) {
    if (std::string_view v = in.Find(name); !v.empty()) {
      out.headers.push_back({std::string(name), std::string(v)});
    }
  }
  return out;
}

// A request's place in its worker's slot model (llama.cpp), ended on every exit.
class SlotLease {
 public:
  SlotLease(Worker& worker, const PreparedPrompt& prompt)
      : worker_(worker),
        id_(worker.slots.active() ? worker.slots.Arrive(prompt.blocks, prompt.prompt_tokens) : 0) {}
  ~SlotLease() {
    if (id_ != 0) worker_.slots.Finish(id_);
  }
  SlotLease(const SlotLease&) = delete;
  SlotLease& operator=(const SlotLease&) = delete;

  // What the model predicted the server reused for this request (nullopt: no model, or the
  // request never got a slot); then the server's report, which may correct the model.
  std::optional<uint64_t> PredictedTokens(uint32_t block_size, uint32_t prompt_tokens) const {
    if (id_ == 0) return std::nullopt;
    const std::optional<SlotPlacement> p = worker_.slots.Placement(id_);
    if (!p) return std::nullopt;
    // llama.cpp computes at least the last prompt token again.
    return std::min<uint64_t>(uint64_t{p->cached_blocks} * block_size,
                              prompt_tokens > 0 ? prompt_tokens - 1 : 0);
  }
  void Observe(int64_t cached_tokens) {
    if (id_ != 0 && cached_tokens >= 0) worker_.slots.Observe(id_, cached_tokens);
  }

 private:
  Worker& worker_;
  const uint64_t id_;
};

// Workers whose cache the slot model feeds to the index: no predicted entries for them.
std::vector<WorkerId> SlotModelled(const WorkerList& workers) {
  std::vector<WorkerId> out;
  for (const auto& w : workers) {
    if (w->slots.active()) out.push_back(w->id);
  }
  return out;
}

}  // namespace

Task Gateway::Impl::Generate(Exchange& ex, api::Endpoint endpoint) {
  const TimeNs t0 = clock_.Now();
  RequestRecord record;
  const std::string* body = &ex.request().body;
  ModelLookup lookup = Lookup();
  auto work = [endpoint, body, lookup, this] {
    const TimeNs start = clock_.Now();
    auto result = PreparePrompt(endpoint, *body, lookup);
    return std::make_pair(std::move(result), clock_.Now() - start);
  };
  // A lone request is prepared where it arrived: nothing else waits on the I/O thread, and the
  // hops to the CPU pool and back (waking both) cost more than a small body's work.
  ++generating_;
  absl::Cleanup done = [this] { --generating_; };
  decltype(work()) prepared;
  if (generating_ == 1 && body->size() <= config_.inline_prepare_bytes) {
    prepared = work();
  } else {
    prepared = co_await OnCpu(std::move(work));
  }
  if (const auto* error = std::get_if<api::ApiError>(&prepared.first)) {
    record.status = error->status;
    record.e2e_s = Seconds(clock_.Now() - t0);
    metrics_.Request(record);
    http::Response response = ErrorResponse(*error);
    co_await ex.Respond(std::move(response));
    co_return;
  }
  const PreparedPrompt& prompt = std::get<PreparedPrompt>(prepared.first);
  Pool& pool = *FindPool(prompt.model);
  record.model = pool.name();
  record.router_prompt_tokens = prompt.prompt_tokens;
  metrics_.Prepare(pool.name(), Seconds(prepared.second));
  const bool admitted = !ex.client_gone() && co_await Admit(ex, pool, prompt);
  if (ex.client_gone()) {
    record.status = 499;
  } else if (!admitted) {
    api::ApiError e = stopping_ ? Error(503, "ServiceUnavailableError", "the router is stopping")
                                : Error(429, "RateLimitError",
                                        absl::StrCat("every worker of ", pool.name(),
                                                     " is saturated; try again later"));
    record.status = e.status;
    http::Response response = ErrorResponse(e);
    const int64_t retry_s = std::max<int64_t>(1, (config_.limits.queue_timeout_ms + 999) / 1000);
    if (e.status == 429) response.headers.push_back({"retry-after", std::to_string(retry_s)});
    co_await ex.Respond(std::move(response));
  } else {
    co_await Forward(ex, pool, prompt, t0, record);
  }
  record.e2e_s = Seconds(clock_.Now() - t0);
  metrics_.Request(record);
}

std::optional<Gateway::Impl::Routed> Gateway::Impl::RouteOnce(Pool& pool,
                                                              const PreparedPrompt& prompt,
                                                              const std::vector<WorkerId>& tried,
                                                              TimeNs arrived_at) {
  std::shared_ptr<const WorkerList> workers = pool.workers();
  std::vector<WorkerId> excluded = Unavailable(*workers, pool.refuses_mismatch());
  excluded.insert(excluded.end(), tried.begin(), tried.end());
  const TimeNs decide_start = clock_.Now();
  const std::vector<WorkerId> modelled = SlotModelled(*workers);
  RouteRequest route{.blocks = prompt.blocks,
                     .prompt_tokens = prompt.prompt_tokens,
                     .excluded = excluded,
                     .no_predict = modelled};
  absl::StatusOr<Decision> decision = pool.scheduler().Route(route);
  const Timing timing{.arrived_at = arrived_at, .routed_at = clock_.Now()};
  metrics_.Decision(pool.name(), Seconds(timing.routed_at - decide_start));
  if (!decision.ok()) return std::nullopt;
  std::shared_ptr<Worker> worker = pool.Find(decision->worker);
  if (!worker) return std::nullopt;
  // Released wakes one waiting request at a time: while capacity remains, the next may go.
  if (!queues_.at(&pool).waiting.empty()) Released(pool);
  return Routed{*std::move(decision), std::move(worker), timing};
}

// Routes, sends, and on a connect error or a 5xx before any byte of the answer, tries once more
// on the next-best healthy worker.
Task Gateway::Impl::Forward(Exchange& ex, Pool& pool, const PreparedPrompt& prompt,
                            TimeNs arrived_at, RequestRecord& record) {
  std::vector<WorkerId> tried;
  std::string last_failure;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::optional<Routed> routed = RouteOnce(pool, prompt, tried, arrived_at);
    if (!routed) break;
    Decision& decision = routed->decision;
    const std::shared_ptr<Worker>& worker = routed->worker;
    const Timing timing = routed->timing;
    record.worker = worker->config.name;
    record.router_cached_tokens = static_cast<uint32_t>(std::min<uint64_t>(
        uint64_t{decision.predicted_blocks} * pool.block_size(), prompt.prompt_tokens));
    SlotLease slot(*worker, prompt);
    // forward_tokens: the router's ids, to a worker proven to compute the same ones.
    const bool as_ids = !prompt.token_body.empty() && worker->takes_token_ids();
    if (as_ids) metrics_.TokenPrompt(pool.name());
    http::ClientRequest request = UpstreamRequest(ex.request(), prompt, as_ids);
    auto response = co_await worker->client->Send(std::move(request));
    if (response.ok() && (*response)->status() < 500) {
      std::optional<std::string> broken = co_await Relay(
          ex, pool, *worker, **response, decision.ticket, prompt.stream, timing, record);
      if (!broken) {
        const std::optional<uint64_t> predicted =
            slot.PredictedTokens(pool.block_size(), prompt.prompt_tokens);
        if (predicted) record.router_cached_tokens = static_cast<uint32_t>(*predicted);
        if (record.status == 200) slot.Observe(record.engine_cached_tokens);
        co_return;
      }
      last_failure = UpstreamError(*worker, *broken);
      MarkFailed(*worker, *broken);
    } else if (response.ok()) {
      // Nothing of the answer reached the client: the request may go elsewhere.
      auto body = co_await (*response)->ReadAll();
      last_failure = UpstreamError(*worker, absl::StrCat("answered ", (*response)->status(), " ",
                                                         body.ok() ? *body : ""));
    } else {
      last_failure = UpstreamError(*worker, std::string(response.status().message()));
      MarkFailed(*worker, std::string(response.status().message()));
    }
    KVR_LOG("gateway", warn, "{} (attempt {})", last_failure, attempt + 1);
    decision.ticket.Finish();
    Released(pool);
    tried.push_back(worker->id);
    if (attempt == 0) metrics_.Retry(pool.name());
    if (ex.client_gone()) {
      record.status = 499;
      co_return;
    }
  }
  api::ApiError e =
      last_failure.empty()
          ? Error(503, "ServiceUnavailableError",
                  absl::StrCat("no healthy worker for model ", pool.name()))
          : Error(502, "BadGatewayError", absl::StrCat("upstream failed: ", last_failure));
  record.status = e.status;
  http::Response response = ErrorResponse(e);
  co_await ex.Respond(std::move(response));
}

asio::awaitable<std::optional<std::string>> Gateway::Impl::Relay(
    Exchange& ex, Pool& pool, Worker& worker, http::ClientResponse& response, Ticket& ticket,
    bool stream, Timing timing, RequestRecord& record) {
  RelayState state;
  state.headers.resize(1);
  state.headers[0].name = "x-kvrouter-worker";
  state.headers[0].value = worker.config.name;
  state.content_type = std::string(response.Find("content-type"));
  if (state.content_type.empty()) state.content_type = "application/json";
  upstream_.insert(&response);
  // Shared with the callback, which may run after this frame is gone.
  struct Watch {
    bool client_gone = false;
    http::ClientResponse* response;
  };
  auto watch = std::make_shared<Watch>();
  watch->response = &response;
  ex.OnClientGone([watch] {
    watch->client_gone = true;
    // The engine sees its client leave and aborts the request.
    if (watch->response != nullptr) watch->response->Cancel();
  });
  state.client_gone = &watch->client_gone;
  record.status = response.status();
  std::optional<std::string> broken;
  if (stream && response.status() == 200) {
    broken = co_await RelayStream(ex, pool, worker, response, ticket, timing, state, record);
  } else {
    broken = co_await RelayWhole(ex, response, ticket, state, record);
  }
  watch->response = nullptr;
  upstream_.erase(&response);
  ticket.Finish();
  Released(pool);
  co_return broken;
}

asio::awaitable<std::optional<std::string>> Gateway::Impl::RelayWhole(
    Exchange& ex, http::ClientResponse& response, Ticket& ticket, RelayState& state,
    RequestRecord& record) {
  auto body = co_await response.ReadAll();
  if (!body.ok()) {
    if (*state.client_gone) {
      record.status = 499;
      co_return std::nullopt;
    }
    co_return absl::StrCat("answer broke: ", body.status().message());
  }
  ticket.PrefillDone();
  record.ttft_s = -1;
  const EngineUsage usage = UsageFromBody(*body);
  record.engine_prompt_tokens = usage.prompt_tokens;
  record.engine_cached_tokens = usage.cached_tokens;
  http::Response out;
  out.status = response.status();
  out.content_type = std::move(state.content_type);
  out.body = std::move(*body);
  out.headers = std::move(state.headers);
  co_await ex.Respond(std::move(out));
  co_return std::nullopt;
}

asio::awaitable<std::optional<std::string>> Gateway::Impl::RelayStream(
    Exchange& ex, Pool& pool, Worker& worker, http::ClientResponse& response, Ticket& ticket,
    Timing timing, RelayState& state, RequestRecord& record) {
  const bool& client_gone = *state.client_gone;
  // The client's stream opens with the engine's first bytes (its first token), not its headers:
  // until then nothing has reached the client and a broken answer can still go elsewhere.
  absl::StatusOr<std::string> piece = std::string();
  while (piece.ok() && piece->empty() && !response.done() && !client_gone) {
    piece = co_await response.Read();
  }
  if (!piece.ok() && !client_gone) {
    co_return absl::StrCat("stream broke before its first byte: ", piece.status().message());
  }
  // Each piece goes out as it arrives; the head shares a write with the first piece and the
  // end of the body with the last one.
  UsageScanner usage;
  bool open = !client_gone;
  bool ended = false;
  TimeNs first_token_at = -1;
  if (open && !piece->empty()) {
    const TimeNs now = clock_.Now();
    first_token_at = now;
    ticket.FirstToken(now - timing.routed_at);
    Released(pool);
    record.ttft_s = Seconds(now - timing.arrived_at);
  }
  if (open) {
    usage.Feed(*piece);
    open = co_await ex.BeginStream(200, state.content_type, std::move(state.headers), *piece);
  }
  while (open && piece.ok() && !response.done()) {
    do {
      piece = co_await response.Read();
    } while (piece.ok() && piece->empty() && !response.done());
    if (!piece.ok()) break;
    usage.Feed(*piece);
    if (response.done()) {
      co_await ex.EndStream(*piece);
      ended = true;
    } else {
      open = co_await ex.Write(*piece);
    }
  }
  if (open && !piece.ok() && !client_gone) {
    // The client already has part of the answer: end it with an error event, never a silent
    // truncation.
    record.status = 502;
    const std::string event = api::StreamError(Error(
        502, "BadGatewayError",
        UpstreamError(worker, absl::StrCat("failed mid-stream: ", piece.status().message()))));
    co_await ex.EndStream(event);
  } else if (client_gone || !open) {
    record.status = 499;
    response.Cancel();
  } else if (!ended) {
    const std::string_view nothing;
    co_await ex.EndStream(nothing);
  }
  record.engine_prompt_tokens = usage.usage().prompt_tokens;
  record.engine_cached_tokens = usage.usage().cached_tokens;
  // A whole answer streamed: its tokens after the first calibrate the worker's decode step.
  if (record.status == 200 && first_token_at >= 0 && usage.OutputTokens() > 1) {
    ticket.Decoded(clock_.Now() - first_token_at, usage.OutputTokens() - 1);
  }
  co_return std::nullopt;
}

bool Gateway::Impl::Saturated(const Pool& pool) const {
  // The policy's own router queue (Dynamo's, kvrouter's): every worker prefill-busy.
  const bool policy_holds = pool.scheduler().AllPrefillBusy();
  const LimitsConfig& l = config_.limits;
  if (!policy_holds && l.max_running_per_worker == 0 &&
      l.max_booked_prefill_tokens_per_worker == 0) {
    return false;
  }
  bool any_healthy = false;
  for (const auto& w : *pool.workers()) {
    if (!w->healthy) continue;
    any_healthy = true;
    if (policy_holds) continue;
    const std::optional<WorkerLoad> load = pool.scheduler().Load(w->id);
    if (!load) continue;
    const bool full_running = l.max_running_per_worker > 0 &&
                              load->running >= l.max_running_per_worker;
    const bool full_prefill = l.max_booked_prefill_tokens_per_worker > 0 &&
                              load->booked_prefill_tokens >= l.max_booked_prefill_tokens_per_worker;
    if (!full_running && !full_prefill) return false;
  }
  return any_healthy;  // with none healthy, routing answers 503 instead
}

asio::awaitable<bool> Gateway::Impl::Admit(Exchange& ex, Pool& pool, const PreparedPrompt& prompt) {
  Queue& queue = queues_.at(&pool);
  // No request passes one already waiting: while some wait, an arrival joins them, and capacity
  // goes in the release order.
  if (queue.waiting.empty() && !Saturated(pool)) co_return !stopping_;
  // The operator's limits bound the queue and the wait. A pool saturated by its policy's own
  // router queue alone waits for capacity however long, as the engines' queues would have made
  // it wait; it looks every second whether its client is still there.
  const LimitsConfig& l = config_.limits;
  const bool limited = l.max_running_per_worker > 0 || l.max_booked_prefill_tokens_per_worker > 0;
  if (limited && queue.waiting.size() >= l.queue_size) co_return false;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = limited ? start + std::chrono::milliseconds(l.queue_timeout_ms)
                                : std::chrono::steady_clock::time_point::max();
  const TimeNs since = clock_.Now();
  asio::steady_timer timer(io_);
  bool admitted = false;
  metrics_.Queued(pool.name(), +1);
  while (!stopping_ && !ex.client_gone() && std::chrono::steady_clock::now() < deadline) {
    timer.expires_at(limited ? deadline
                             : std::chrono::steady_clock::now() + std::chrono::seconds(1));
    // In arrival order: one woken while the pool was still saturated keeps its place.
    auto at = std::find_if(queue.waiting.begin(), queue.waiting.end(),
                           [&](const Waiter& w) { return w.since > since; });
    queue.waiting.insert(at, Waiter{&timer, &prompt, since, &ex});
    // Capacity is free while requests wait (this one joined them, or its own check found it
    // free): the release order decides who takes it, this one included.
    if (!Saturated(pool)) PostRelease(pool);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    std::erase_if(queue.waiting, [&](const Waiter& w) { return w.timer == &timer; });
    // Capacity is taken when released to this request (the timer cancelled), or at the end of
    // its time; a check of its client, every second, takes none.
    const bool released = ec == asio::error::operation_aborted;
    const bool timed_out = std::chrono::steady_clock::now() >= deadline;
    if (!ex.client_gone() && (released || timed_out) && !Saturated(pool)) {
      admitted = !stopping_;
      break;
    }
  }
  // Woken for capacity it does not take (its client left, its time ran out, the router stops):
  // the next may take it.
  if (!admitted && !stopping_ && !queue.waiting.empty()) Released(pool);
  metrics_.Queued(pool.name(), -1);
  metrics_.QueueWait(pool.name(), std::chrono::duration<double>(
                                      std::chrono::steady_clock::now() - start).count());
  co_return admitted;
}

void Gateway::Impl::Released(Pool& pool) {
  Queue& queue = queues_.at(&pool);
  if (queue.waiting.empty()) return;
  const TimeNs now = clock_.Now();
  const bool saturated = Saturated(pool);
  std::vector<const Waiter*> live;
  std::vector<Scheduler::Waiting> waiting;
  for (const Waiter& w : queue.waiting) {
    if (w.ex->client_gone()) {
      w.timer->cancel();  // it stops waiting; it does not take the capacity
      continue;
    }
    if (saturated || live.size() == kRouterQueueWindow) continue;
    live.push_back(&w);
    waiting.push_back(
        {.request = {.blocks = w.prompt->blocks, .prompt_tokens = w.prompt->prompt_tokens},
         .waited_s = Seconds(now - w.since)});
  }
  if (live.empty()) return;
  // With no worker to route to, the oldest goes and finds out.
  const absl::StatusOr<size_t> pick = pool.scheduler().NextRelease(waiting);
  live[pick.ok() ? *pick : 0]->timer->cancel();
}

void Gateway::Impl::PostRelease(Pool& pool) {
  asio::post(io_, [this, p = &pool] { Released(*p); });
}

void Gateway::Impl::MarkFailed(Worker& worker, std::string_view why) {
  worker.failed_checks = config_.health_failures;
  if (worker.healthy.exchange(false)) {
    KVR_LOG("gateway", warn, "worker {} leaves the candidate set: {}", worker.config.name,
            std::string(why));
  }
}

}  // namespace kvr::gateway
