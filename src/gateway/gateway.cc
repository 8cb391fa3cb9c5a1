#include "gateway/gateway.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "gateway/gateway_impl.h"
#include "nlohmann/json.hpp"

namespace kvr::gateway {

using Json = nlohmann::json;

http::Response JsonResponse(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

api::ApiError Error(int status, std::string type, std::string message) {
  api::ApiError e;
  e.status = status;
  e.type = std::move(type);
  e.message = std::move(message);
  return e;
}

http::Response ErrorResponse(const api::ApiError& error) {
  return JsonResponse(error.status, api::ErrorBody(error));
}

Gateway::Impl::Impl(asio::io_context& io, GatewayConfig config, const Clock& clock)
    : io_(io),
      config_(std::move(config)),
      clock_(clock),
      started_at_(std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count()),
      cpu_threads_(CpuThreads(config_)),
      health_timer_(io),
      metrics_timer_(io),
      grace_timer_(io) {
  if (cpu_threads_ > 0) cpu_.emplace(cpu_threads_);
}

Gateway::Impl::~Impl() {
  server_.reset();
  if (cpu_) cpu_->join();
}

absl::Status Gateway::Impl::Start() {
  for (const PoolConfig& p : config_.pools) {
    absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(p, config_, io_, clock_);
    if (!pool.ok()) return pool.status();
    KVR_LOG("gateway", info, "pool {}: {} workers, policy {}, block size {}", p.name,
            p.workers.size(), (*pool)->policy(), p.block_size);
    pools_.push_back(*std::move(pool));
  }
  KVR_LOG("gateway", info, "prompts prepared on {}", cpu_threads_ == 0
              ? std::string("the I/O thread")
              : absl::StrCat(cpu_threads_, " CPU threads"));
  for (const auto& pool : pools_) queues_[pool.get()];
  http::ServerOptions options{.host = config_.host,
                              .port = config_.port,
                              .max_body_bytes = config_.limits.max_body_bytes};
  options.error_response = [](int status, std::string_view message) {
    return ErrorResponse(Error(status, status == 413 ? "RequestEntityTooLarge" : "BadRequestError",
                               std::string(message)));
  };
  absl::StatusOr<std::unique_ptr<http::Server>> server =
      http::Server::Start(io_, std::move(options), [this](Exchange& ex) { return Handle(ex); });
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  StartMonitor();
  return absl::OkStatus();
}

std::string Gateway::Impl::ReadyLine() const {
  return Json{{"http", server_->address()}}.dump();
}

Pool* Gateway::Impl::FindPool(std::string_view model) const {
  if (model.empty()) return pools_.size() == 1 ? pools_[0].get() : nullptr;
  for (const auto& p : pools_) {
    if (p->name() == model) return p.get();
  }
  return nullptr;
}

// Called on the CPU pool: pools_ is fixed after Start and a Pool's text model is immutable.
// The token-id body is built only while some worker would be sent it.
ModelLookup Gateway::Impl::Lookup() const {
  return [this](std::string_view model) -> std::optional<ModelText> {
    const Pool* p = FindPool(model);
    if (p == nullptr) return std::nullopt;
    bool forward_tokens = false;
    if (p->config().forward_tokens) {
      const auto workers = p->workers();
      forward_tokens = std::any_of(workers->begin(), workers->end(),
                                   [](const auto& w) { return w->takes_token_ids(); });
    }
    return ModelText{.name = p->name(),
                     .text = &p->text(),
                     .block_size = p->block_size(),
                     .forward_tokens = forward_tokens};
  };
}

Task Gateway::Impl::Handle(Exchange& ex) {
  const http::Request& req = ex.request();
  const std::string_view path = req.path();
  const bool post = req.method == "POST", get = req.method == "GET";
  if (path == "/v1/completions" && post) co_return co_await Generate(ex, api::Endpoint::kCompletions);
  if (path == "/v1/chat/completions" && post) co_return co_await Generate(ex, api::Endpoint::kChat);
  if (path == "/debug/route" && post) co_return co_await DebugRoute(ex);
  http::Response response;
  if (path == "/v1/models" && get) {
    response = Models();
  } else if (path == "/health" && get) {
    response = JsonResponse(200, R"({"status":"ok"})");
  } else if (path == "/ready" && get) {
    response = Ready();
  } else if (path == "/metrics" && get) {
    response = Metrics();
  } else if (path == "/admin/workers" || path.starts_with("/admin/workers/")) {
    if (Authorized(ex, &response)) {
      if (path == "/admin/workers" && get) {
        response = ListWorkers();
      } else if (path == "/admin/workers" && post) {
        response = AddWorker(req);
      } else if (req.method == "DELETE" && path.size() > 15) {
        response = RemoveWorker(path.substr(15));
      } else {
        response = ErrorResponse(Error(405, "MethodNotAllowed", "method not allowed"));
      }
    }
  } else {
    const bool known = path == "/v1/completions" || path == "/v1/chat/completions" ||
                       path == "/v1/models" || path == "/health" || path == "/ready" ||
                       path == "/metrics" || path == "/debug/route";
    response = known ? ErrorResponse(Error(405, "MethodNotAllowed", "method not allowed"))
                     : ErrorResponse(Error(404, "NotFoundError",
                                           absl::StrCat("no route for ", std::string(path))));
  }
  co_await ex.Respond(std::move(response));
}

http::Response Gateway::Impl::Models() const {
  Json data = Json::array();
  for (const auto& p : pools_) {
    data.push_back({{"id", p->name()},
                    {"object", "model"},
                    {"created", started_at_},
                    {"owned_by", "kvrouter"},
                    {"root", p->name()}});
  }
  return JsonResponse(200, Json{{"object", "list"}, {"data", std::move(data)}}.dump());
}

http::Response Gateway::Impl::Ready() const {
  Json pools = Json::object();
  bool ready = !stopping_;
  for (const auto& p : pools_) {
    size_t healthy = 0;
    Json mismatch = Json::array();
    for (const auto& w : *p->workers()) {
      const bool disagrees = w->tokenizer == Worker::Tokenizer::kMismatch;
      if (disagrees) mismatch.push_back(w->config.name);
      healthy += w->healthy && !(disagrees && p->refuses_mismatch()) ? 1 : 0;
    }
    pools[p->name()] = {{"healthy_workers", healthy},
                        {"workers", p->workers()->size()},
                        {"tokenizer_mismatch", std::move(mismatch)}};
    ready = ready && healthy > 0;
  }
  return JsonResponse(ready ? 200 : 503,
                      Json{{"status", ready ? "ready" : "not ready"}, {"pools", pools}}.dump());
}

http::Response Gateway::Impl::Metrics() const {
  std::vector<const Pool*> pools;
  for (const auto& p : pools_) pools.push_back(p.get());
  http::Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = metrics_.Serialize(pools);
  return r;
}

void Gateway::Impl::Shutdown(std::function<void()> done) {
  stopping_ = true;
  health_timer_.cancel();
  metrics_timer_.cancel();
  for (auto& [pool, q] : queues_) {
    for (const Waiter& w : q.waiting) w.timer->cancel();
  }
  // Past the grace period, what is still relaying is cut: each relay then ends its response.
  grace_timer_.expires_after(std::chrono::milliseconds(config_.shutdown_grace_ms));
  grace_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    if (!upstream_.empty()) {
      KVR_LOG("gateway", warn, "shutdown: cutting {} responses still running", upstream_.size());
    }
    for (http::ClientResponse* r : std::set<http::ClientResponse*>(upstream_)) r->Cancel();
  });
  server_->Shutdown([this, done = std::move(done)] {
    grace_timer_.cancel();
    done();
  });
}

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gateway::~Gateway() = default;

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Start(asio::io_context& io, GatewayConfig config,
                                                        const Clock& clock) {
  auto impl = std::make_unique<Impl>(io, std::move(config), clock);
  if (absl::Status s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

std::string Gateway::ReadyLine() const { return impl_->ReadyLine(); }
void Gateway::Shutdown(std::function<void()> done) { impl_->Shutdown(std::move(done)); }

}  // namespace kvr::gateway
