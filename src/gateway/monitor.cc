// Health checks (GET /health), engines' load (GET /metrics) and event staleness, each worker
// polled concurrently so one slow engine delays nobody else's checks.
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "gateway/gateway_impl.h"

namespace kvr::gateway {

void Gateway::Impl::StartMonitor() {
  asio::co_spawn(io_, HealthLoop(), asio::detached);
  if (config_.engine_metrics_interval_ms > 0) {
    asio::co_spawn(io_, EngineMetricsLoop(), asio::detached);
  }
}

Task Gateway::Impl::HealthLoop() {
  while (!stopping_) {
    for (const auto& pool : pools_) {
      for (const auto& w : *pool->workers()) asio::co_spawn(io_, CheckHealth(w), asio::detached);
    }
    UpdateStaleness();
    // Routing sweeps expired predictions as it predicts; an idle pool's are swept here.
    for (const auto& pool : pools_) pool->index().SweepExpired();
    health_timer_.expires_after(std::chrono::milliseconds(config_.health_interval_ms));
    boost::system::error_code ec;
    co_await health_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

Task Gateway::Impl::CheckHealth(std::shared_ptr<Worker> worker) {
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
    if (!worker->healthy.exchange(true)) {
      KVR_LOG("gateway", info, "worker {} is healthy again", worker->config.name);
    }
    co_return;
  }
  if (++worker->failed_checks >= config_.health_failures && worker->healthy.exchange(false)) {
    KVR_LOG("gateway", warn, "worker {} leaves the candidate set: {}", worker->config.name,
            failure);
  }
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
  http::ClientRequest request;
  request.method = "GET";
  request.target = "/metrics";
  auto response = co_await worker->probe->Send(std::move(request));
  std::optional<EngineMetrics> metrics;
  if (response.ok() && (*response)->status() == 200) {
    auto body = co_await (*response)->ReadAll();
    if (body.ok()) metrics = ParseEngineMetrics(*body, worker->config.dp_rank);
  }
  if (worker->removed || stopping_) co_return;
  EngineMetrics m = metrics.value_or(EngineMetrics{});
  m.at = clock_.Now();
  worker->metrics_ok = metrics.has_value();
  pool->scheduler().ReportMetrics(worker->id, m);
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
