// Health checks (GET /health), engines' load (GET /metrics) and event staleness, each worker
// polled concurrently so one slow engine delays nobody else's checks.
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "gateway/gateway_impl.h"
#include "gateway/tokenizer_check.h"

namespace kvr::gateway {
namespace {

struct Answer {
  int status = 0;
  std::string body;
};

// The answer to GET `target` from the worker's probe pool; nullopt when there is none (no
// connection, or a body that broke off).
asio::awaitable<std::optional<Answer>> Get(http::ClientPool& probe, std::string target) {
  http::ClientRequest request;
  request.method = "GET";
  request.target = std::move(target);
  auto response = co_await probe.Send(std::move(request));
  if (!response.ok()) co_return std::nullopt;
  auto body = co_await (*response)->ReadAll();
  if (!body.ok()) co_return std::nullopt;
  co_return Answer{(*response)->status(), std::move(*body)};
}

// The body of a 200 answer to GET `target`; nullopt for anything else.
asio::awaitable<std::optional<std::string>> GetOk(http::ClientPool& probe, std::string target) {
  std::optional<Answer> answer = co_await Get(probe, std::move(target));
  if (!answer || answer->status != 200) co_return std::nullopt;
  co_return std::move(answer->body);
}

}  // namespace

void Gateway::Impl::StartMonitor() {
  asio::co_spawn(io_, HealthLoop(), asio::detached);
  if (config_.engine_metrics_interval_ms > 0) {
    asio::co_spawn(io_, EngineMetricsLoop(), asio::detached);
  }
}

Task Gateway::Impl::HealthLoop() {
  while (!stopping_) {
    for (const auto& pool : pools_) {
      for (const auto& w : *pool->workers()) {
        asio::co_spawn(io_, CheckHealth(pool.get(), w), asio::detached);
      }
    }
    UpdateStaleness();
    // Routing sweeps expired predictions as it predicts; an idle pool's are swept here.
    for (const auto& pool : pools_) pool->index().SweepExpired();
    health_timer_.expires_after(std::chrono::milliseconds(config_.health_interval_ms));
    boost::system::error_code ec;
    co_await health_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

Task Gateway::Impl::CheckHealth(Pool* pool, std::shared_ptr<Worker> worker) {
  http::ClientRequest request;
  request.method = "GET";
  request.target = "/health";
  auto response = co_await worker->probe->Send(std::move(request));
  std::string failure;
  if (!response.ok()) {
    failure = std::string(response.status().message());
  } else {
    auto body = co_await (*response)->ReadAll();
    if (!body.ok()) {
      failure = std::string(body.status().message());
    } else if ((*response)->status() != 200) {
      failure = absl::StrCat("/health answered ", (*response)->status());
    }
  }
  if (worker->removed || stopping_) co_return;
  if (failure.empty()) {
    worker->failed_checks = 0;
    using State = Worker::Tokenizer;
    if (!worker->healthy.exchange(true)) {
      KVR_LOG("gateway", info, "worker {} is healthy again", worker->config.name);
      // It may have come back as another engine: check its tokenizer again.
      if (worker->tokenizer != State::kChecking) worker->tokenizer = State::kUnchecked;
      // And it may have restarted: llama.cpp's slots start empty, an SGLang engine may have
      // another step size.
      worker->slots.Clear();
      worker->server_info_asked = false;
      Released(*pool);  // requests waiting for capacity may go to it
    }
    if (worker->wants_slot_model() && !worker->slots.active() &&
        !worker->props_pending.exchange(true)) {
      asio::co_spawn(io_, LearnSlots(pool, worker), asio::detached);
    }
    if (worker->config.engine != EngineApi::kLlamaCpp &&
        !worker->server_info_asked.exchange(true)) {
      asio::co_spawn(io_, LearnServerInfo(pool, worker), asio::detached);
    }
    if (worker->tokenizer == State::kUnchecked &&
        pool->config().tokenizer_check != TokenizerCheck::kOff) {
      worker->tokenizer = State::kChecking;
      asio::co_spawn(io_, CheckTokenizer(pool, worker), asio::detached);
    }
    co_return;
  }
  if (++worker->failed_checks >= config_.health_failures && worker->healthy.exchange(false)) {
    KVR_LOG("gateway", warn, "worker {} leaves the candidate set: {}", worker->config.name,
            failure);
  }
}

// llama.cpp's slot count, from /props, starts the worker's slot model (when the configuration
// did not give it).
Task Gateway::Impl::LearnSlots(Pool* pool, std::shared_ptr<Worker> worker) {
  std::string target = "/props";  // a named local: GCC 12 mishandles temporaries in co_await
  const std::optional<std::string> props = co_await GetOk(*worker->probe, std::move(target));
  std::optional<uint32_t> slots;
  if (props) slots = ParseTotalSlots(*props);
  if (slots && !worker->removed && !stopping_) {
    pool->StartSlotModel(*worker, *slots);
    KVR_LOG("gateway", info, "worker {}: slot model on, {} slots", worker->config.name, *slots);
  }
  worker->props_pending = false;  // none found: the next health check asks again
}

// The engine's step size, which no engine publishes in /metrics: SGLang gives its scheduler
// arguments in /server_info (older builds: /get_server_info); vLLM answers 404 (or, in its
// development mode, something without them), and nothing is learned.
Task Gateway::Impl::LearnServerInfo(Pool* pool, std::shared_ptr<Worker> worker) {
  std::optional<uint32_t> tokens;
  bool answered = false;
  for (const char* path : {"/server_info", "/get_server_info"}) {
    std::string target = path;  // a named local: GCC 12 mishandles temporaries in co_await
    const std::optional<Answer> answer = co_await Get(*worker->probe, std::move(target));
    if (!answer) continue;
    answered = true;
    if (answer->status != 200) continue;
    tokens = ParseMaxBatchedTokens(answer->body, kMaxBatchedTokens);
    break;
  }
  if (worker->removed || stopping_) co_return;
  if (!answered) {  // no answer at all: asked again at the next health check
    worker->server_info_asked = false;
    co_return;
  }
  if (tokens) LearnMaxBatchedTokens(*pool, *worker, *tokens);
}

namespace {

using TokenizerState = Worker::Tokenizer;

// What a tokenizer check concluded, and why.
struct ProbeOutcome {
  TokenizerState state;
  std::string detail;
};

// One probe's exchange with the engine: one call, or two (llama.cpp's chat probe: render, then
// tokenize the rendering). The engine's answer, or why there is none.
asio::awaitable<std::variant<EngineAnswer, ProbeOutcome>> AskEngine(http::ClientPool& probe_pool,
                                                                    EngineApi api,
                                                                    const TokenizerProbe& probe) {
  ProbeCall call = ProbeRequest(api, probe);
  std::optional<EngineAnswer> theirs;
  while (true) {
    http::ClientRequest request;
    request.target = call.target;
    request.body = std::move(call.body);
    request.content_type = "application/json";
    auto response = co_await probe_pool.Send(std::move(request));
    if (!response.ok()) {  // tried again at the next health check
      co_return ProbeOutcome{TokenizerState::kUnchecked, std::string(response.status().message())};
    }
    auto body = co_await (*response)->ReadAll();
    const int status = (*response)->status();
    if (status == 404 || status == 405) {
      co_return ProbeOutcome{TokenizerState::kNotCheckable,
                             absl::StrCat(call.target, " answered ", status)};
    }
    if (!body.ok() || status != 200) {
      co_return ProbeOutcome{TokenizerState::kFailed,
                             absl::StrCat(call.target, " answered ", status, " ",
                                          body.ok() ? body->substr(0, 200) : "")};
    }
    if (theirs) {  // the second call's answer: the rendering's tokens
      absl::StatusOr<std::vector<TokenId>> ids = ParseTokenizeAnswer(*body);
      if (!ids.ok()) {
        co_return ProbeOutcome{TokenizerState::kFailed,
                               absl::StrCat(call.target, ": ", ids.status().message())};
      }
      theirs->ids = *std::move(ids);
      co_return *std::move(theirs);
    }
    absl::StatusOr<EngineAnswer> answer = ParseProbeAnswer(api, probe, *body);
    if (!answer.ok()) {
      co_return ProbeOutcome{TokenizerState::kFailed,
                             absl::StrCat(call.target, ": ", answer.status().message())};
    }
    theirs = *std::move(answer);
    std::optional<ProbeCall> next = FollowUpRequest(api, probe, *theirs);
    if (!next) co_return *std::move(theirs);
    call = *std::move(next);
  }
}

void LogTokenizerCheck(const Pool& pool, const Worker& worker, const ProbeOutcome& outcome,
                       size_t compared) {
  const std::string& name = worker.config.name;
  switch (outcome.state) {
    case TokenizerState::kAgrees:
      KVR_LOG("gateway", info, "worker {}: tokenizer agrees with the router's on {} probes", name,
              compared);
      break;
    case TokenizerState::kMismatch:
      KVR_LOG(
          "gateway", warn, "worker {}: tokenizer_mismatch: {} ({})", name, outcome.detail,
          pool.refuses_mismatch() ? "left out of routing" : "still routed: expect few cache hits");
      break;
    case TokenizerState::kUnchecked:
      break;  // tried again at the next health check
    default:
      KVR_LOG("gateway", warn, "worker {}: tokenizer not checked: {}", name, outcome.detail);
  }
}

}  // namespace

Task Gateway::Impl::CheckTokenizer(Pool* pool, std::shared_ptr<Worker> worker) {
  const EngineApi api = worker->config.engine;
  std::optional<ProbeOutcome> outcome;
  std::vector<std::string> skipped;
  std::vector<std::string> mismatches;  // the first one's detail, then the others' names
  size_t compared = 0;
  if (api == EngineApi::kNone) {
    outcome = {TokenizerState::kNotCheckable, "engine: none (no tokenize endpoint)"};
  }
  for (const TokenizerProbe& probe : TokenizerProbes()) {
    if (outcome) break;
    absl::StatusOr<RouterIds> ours = RouterProbeIds(pool->text(), probe);
    if (!ours.ok()) {  // e.g. a template that refuses a system message: not the engine's fault
      skipped.push_back(probe.name);
      continue;
    }
    std::variant<EngineAnswer, ProbeOutcome> asked = co_await AskEngine(*worker->probe, api, probe);
    if (ProbeOutcome* failed = std::get_if<ProbeOutcome>(&asked)) {
      outcome = std::move(*failed);
      break;
    }
    if (std::optional<std::string> diff =
            CompareProbe(probe, *ours, std::get<EngineAnswer>(asked))) {
      // Every probe is tried: the first difference in full, the others by name.
      mismatches.push_back(mismatches.empty() ? *std::move(diff) : probe.name);
    } else {
      ++compared;
    }
  }
  if (!outcome && !mismatches.empty()) {
    outcome = {TokenizerState::kMismatch, mismatches.front()};
    if (mismatches.size() > 1) {
      absl::StrAppend(&outcome->detail, "; also differ: ",
                      absl::StrJoin(mismatches.begin() + 1, mismatches.end(), ", "));
    }
  }
  if (worker->removed || stopping_) co_return;
  if (!outcome) outcome = {TokenizerState::kAgrees, ""};
  if (!skipped.empty()) {
    absl::StrAppend(
        &outcome->detail, outcome->detail.empty() ? "" : "; ",
        "skipped (the router's own template refused them): ", absl::StrJoin(skipped, ", "));
  }
  worker->tokenizer_detail = outcome->detail;
  worker->tokenizer = outcome->state;
  LogTokenizerCheck(*pool, *worker, *outcome, compared);
}

Task Gateway::Impl::EngineMetricsLoop() {
  while (!stopping_) {
    for (const auto& pool : pools_) {
      for (const auto& w : *pool->workers()) {
        asio::co_spawn(io_, PollEngineMetrics(pool.get(), w), asio::detached);
      }
    }
    metrics_timer_.expires_after(std::chrono::milliseconds(config_.engine_metrics_interval_ms));
    boost::system::error_code ec;
    co_await metrics_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

// A failed poll withdraws the engine's numbers: stale load is worse than none.
Task Gateway::Impl::PollEngineMetrics(Pool* pool, std::shared_ptr<Worker> worker) {
  std::string target = "/metrics";  // a named local: GCC 12 mishandles temporaries in co_await
  const std::optional<std::string> text = co_await GetOk(*worker->probe, std::move(target));
  std::optional<EngineMetrics> metrics;
  if (text) metrics = ParseEngineMetrics(*text, worker->config.dp_rank);
  if (worker->removed || stopping_) co_return;
  EngineMetrics m = metrics.value_or(EngineMetrics{});
  m.at = clock_.Now();
  worker->metrics_ok = metrics.has_value();
  pool->scheduler().ReportMetrics(worker->id, m);
  if (m.kv_capacity_tokens > 0) LearnKvCapacity(*pool, *worker, m.kv_capacity_tokens);
}

// The router sizes its KV-pressure and turnover terms by each worker's capacity; the pool's
// default (16,384 blocks) is a guess, and a wrong one steers requests away from their cache.
// The engine's own figure replaces it, unless the operator configured the worker's.
void Gateway::Impl::LearnKvCapacity(Pool& pool, Worker& worker, uint64_t tokens) {
  const uint64_t blocks = tokens / pool.block_size();
  if (blocks == 0 || worker.engine_kv_blocks.exchange(blocks) == blocks) return;
  if (const std::optional<uint64_t> configured = worker.config.kv_capacity_blocks) {
    if (*configured != blocks) {
      KVR_LOG("gateway", warn,
              "worker {}: kv_capacity_blocks is configured as {} but its engine reports {} "
              "blocks of {} tokens; routing with the configured figure",
              worker.config.name, *configured, blocks, pool.block_size());
    }
    return;
  }
  if (absl::Status s = pool.scheduler().SetKvCapacity(worker.id, blocks); !s.ok()) return;
  KVR_LOG("gateway", info, "worker {}: KV capacity {} blocks of {} tokens, as its engine reports",
          worker.config.name, blocks, pool.block_size());
}

// The router queue's threshold and the idle-decode credit count the engine's steps; the pool's
// default (8,192 tokens) is vLLM's on large GPUs, and SGLang's chunk size depends on the GPU's
// memory (2,048 to 16,384). The engine's own figure replaces it, unless the operator configured
// the worker's.
void Gateway::Impl::LearnMaxBatchedTokens(Pool& pool, Worker& worker, uint32_t tokens) {
  if (worker.engine_max_batched_tokens.exchange(tokens) == tokens) return;
  if (const std::optional<uint32_t> configured = worker.config.max_batched_tokens) {
    if (*configured != tokens) {
      KVR_LOG("gateway", warn,
              "worker {}: max_batched_tokens is configured as {} but its engine reports {} "
              "(/server_info); routing with the configured figure",
              worker.config.name, *configured, tokens);
    }
    return;
  }
  if (absl::Status s = pool.scheduler().SetMaxBatchedTokens(worker.id, tokens); !s.ok()) return;
  KVR_LOG("gateway", info, "worker {}: max_batched_tokens {}, as its engine reports",
          worker.config.name, tokens);
}

// Stale: requests have been running on the worker for events.stale_after_ms and not one event
// came in that time. Its index may no longer match its cache.
void Gateway::Impl::UpdateStaleness() {
  const TimeNs now = clock_.Now();
  const TimeNs window = config_.events_stale_after_ms * kNsPerMs;
  for (const auto& pool : pools_) {
    for (const auto& w : *pool->workers()) {
      const std::optional<WorkerLoad> load = pool->scheduler().Load(w->id);
      if (!load || load->running == 0) w->last_idle_at = now;
      if (!w->has_events()) continue;
      const TimeNs quiet_since = std::max<TimeNs>(w->last_event_at, w->last_idle_at);
      const bool stale = now - quiet_since > window;
      if (w->stale.exchange(stale) == stale) continue;
      if (stale) {
        KVR_LOG("gateway", warn, "worker {} is stale: requests run but no KV events arrive",
                w->config.name);
      } else {
        KVR_LOG("gateway", info, "worker {} sends KV events again", w->config.name);
      }
    }
  }
}

}  // namespace kvr::gateway
