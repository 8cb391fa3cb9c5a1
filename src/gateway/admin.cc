// /admin/workers and /debug/route: both need `Authorization: Bearer <admin_token>`, and are off
// when no token is configured.
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "gateway/gateway_impl.h"
#include "nlohmann/json.hpp"

namespace kvr::gateway {
namespace {

using Json = nlohmann::json;

// Compares in time independent of where the strings differ.
bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

Json WorkerJson(const Pool& pool, const Worker& w) {
  Json j = {{"model", pool.name()},   {"name", w.config.name},
            {"url", w.config.url},    {"dp_rank", w.config.dp_rank},
            {"healthy", bool(w.healthy)}, {"stale", bool(w.stale)},
            {"kv_events", w.has_events() ? Json(w.config.kv_events) : Json(nullptr)},
            {"replay", w.config.replay.empty() ? Json(nullptr) : Json(w.config.replay)},
            {"mode", w.has_events() ? "events" : "approximate"},
            {"engine", EngineApiName(w.config.engine)},
            {"tokenizer", TokenizerStateName(w.tokenizer)},
            {"tokenizer_detail", w.tokenizer_detail}};
  if (w.subscriber) {
    const events::SubscriberStats s = w.subscriber->stats();
    const std::optional<uint64_t> last = w.subscriber->last_seq();
    j["events_connected"] = s.batches > 0;
    j["last_seq"] = last ? Json(*last) : Json(nullptr);
    j["event_batches"] = s.batches;
    j["gaps"] = s.gaps;
    j["replays"] = s.replays;
    j["replayed_batches"] = s.replayed_batches;
    j["lost_batches"] = s.lost_batches;
    j["restarts"] = s.restarts;
    j["reconnects"] = s.reconnects;
  } else {
    j["events_connected"] = false;
    j["last_seq"] = nullptr;
  }
  j["events_applied"] = uint64_t(w.events_applied);
  const std::optional<WorkerLoad> load = pool.scheduler().Load(w.id);
  j["booked_prefill_tokens"] = load ? load->booked_prefill_tokens : 0;
  j["running"] = load ? load->running : 0;
  j["prefill_rate_tok_s"] = load ? load->prefill_rate : 0;
  j["decode_step_s"] = load ? load->decode_step_s : 0;
  j["kv_capacity_blocks"] = load ? load->kv_capacity_blocks : 0;
  const uint64_t reported = w.engine_kv_blocks;
  j["engine_kv_capacity_blocks"] = reported > 0 ? Json(reported) : Json(nullptr);
  j["max_batched_tokens"] = load ? load->max_batched_tokens : 0;
  const uint32_t step = w.engine_max_batched_tokens;
  j["engine_max_batched_tokens"] = step > 0 ? Json(step) : Json(nullptr);
  const WorkerIndexStats stats = pool.index().Stats(w.id);
  j["cached_blocks"] = stats.blocks[0];
  // llama.cpp: what the router believes each slot holds (slot_model.h).
  if (std::optional<WorkerSlots::Snapshot> m = w.slots.Snap()) {
    Json slots = Json::array();
    for (const SlotState& s : m->state) {
      slots.push_back({{"blocks", s.blocks}, {"tokens", s.tokens}, {"busy", s.busy}});
    }
    j["mode"] = "slot_model";
    j["slot_model"] = {{"slots", m->slots},
                       {"slot", std::move(slots)},
                       {"prompt_cache_tokens", m->prompt_cache_tokens},
                       {"saved_prompts", m->saved_prompts},
                       {"saved_tokens", m->saved_tokens},
                       {"host_blocks", stats.blocks[1]},
                       {"corrections", w.slots.corrections()}};
  } else {
    j["slot_model"] = nullptr;
  }
  return j;
}

// The worker fields of a POST /admin/workers body, with the file's rules.
absl::StatusOr<WorkerConfig> WorkerFromJson(const Json& j) {
  WorkerConfig w;
  auto str = [&](const char* key, std::string* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_string()) return absl::InvalidArgumentError(absl::StrCat(key, ": must be a string"));
    *out = it->get<std::string>();
    return absl::OkStatus();
  };
  for (const auto& [key, out] : {std::pair{"name", &w.name}, std::pair{"url", &w.url},
                                 std::pair{"kv_events", &w.kv_events},
                                 std::pair{"replay", &w.replay}, std::pair{"topic", &w.topic}}) {
    if (absl::Status s = str(key, out); !s.ok()) return s;
  }
  if (auto it = j.find("engine"); it != j.end()) {
    if (!it->is_string()) return absl::InvalidArgumentError("engine: must be a string");
    absl::StatusOr<EngineApi> api = ParseEngineApi(it->get<std::string>());
    if (!api.ok()) return absl::InvalidArgumentError(absl::StrCat("engine: ", api.status().message()));
    w.engine = *api;
  }
  if (auto it = j.find("prompt_cache_tokens"); it != j.end() && !it->is_null()) {
    if (!it->is_number_unsigned()) {
      return absl::InvalidArgumentError("prompt_cache_tokens: must be an integer >= 0");
    }
    w.prompt_cache_tokens = it->get<uint64_t>();
  }
  if (auto it = j.find("slots"); it != j.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() > 4096) {
      return absl::InvalidArgumentError("slots: must be an integer in [0, 4096]");
    }
    w.slots = static_cast<uint32_t>(it->get<uint64_t>());
  }
  if (auto it = j.find("dp_rank"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      return absl::InvalidArgumentError("dp_rank: must be an integer >= 0");
    }
    w.dp_rank = it->get<int64_t>();
  }
  if (auto it = j.find("speed"); it != j.end()) {
    if (!it->is_number() || !(it->get<double>() > 0)) {
      return absl::InvalidArgumentError("speed: must be a number > 0");
    }
    w.speed = it->get<double>();
  }
  if (auto it = j.find("kv_capacity_blocks"); it != j.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() == 0) {
      return absl::InvalidArgumentError("kv_capacity_blocks: must be an integer > 0");
    }
    w.kv_capacity_blocks = it->get<uint64_t>();
  }
  if (auto it = j.find("max_batched_tokens"); it != j.end()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() == 0 ||
        it->get<uint64_t>() > kMaxBatchedTokens) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_batched_tokens: must be an integer in [1, ", kMaxBatchedTokens, "]"));
    }
    w.max_batched_tokens = it->get<uint32_t>();
  }
  if (w.kv_events == "none") w.kv_events.clear();
  if (w.replay == "none") w.replay.clear();
  if (w.url.empty()) return absl::InvalidArgumentError("url: required");
  return w;
}

int HttpStatus(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists: return 409;
    case absl::StatusCode::kResourceExhausted: return 507;
    case absl::StatusCode::kInvalidArgument: return 400;
    default: return 500;
  }
}

}  // namespace

bool Gateway::Impl::Authorized(Exchange& ex, http::Response* denied) const {
  if (config_.admin_token.empty()) {
    *denied = ErrorResponse(Error(403, "PermissionDeniedError",
                                  "admin and debug endpoints are off: no admin_token configured"));
    return false;
  }
  const std::string_view auth = ex.request().Find("authorization");
  const std::string_view scheme = "Bearer ";
  if (!auth.starts_with(scheme) || !SameSecret(auth.substr(scheme.size()), config_.admin_token)) {
    *denied = ErrorResponse(Error(401, "AuthenticationError", "a valid admin bearer token is required"));
    denied->headers.push_back({"www-authenticate", "Bearer"});
    return false;
  }
  return true;
}

http::Response Gateway::Impl::ListWorkers() const {
  Json list = Json::array();
  for (const auto& pool : pools_) {
    for (const auto& w : *pool->workers()) list.push_back(WorkerJson(*pool, *w));
  }
  return JsonResponse(200, Json{{"workers", std::move(list)}}.dump());
}

http::Response Gateway::Impl::AddWorker(const http::Request& request) {
  const Json j = Json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return ErrorResponse(Error(400, "BadRequestError", "body: a JSON object"));
  std::string model;
  if (auto it = j.find("model"); it != j.end() && it->is_string()) model = it->get<std::string>();
  Pool* pool = FindPool(model);
  if (pool == nullptr) {
    return ErrorResponse(Error(404, "NotFoundError", absl::StrCat("no pool '", model, "'")));
  }
  absl::StatusOr<WorkerConfig> worker = WorkerFromJson(j);
  if (worker.ok()) {
    if (absl::Status s = NormalizeWorker(*worker, "worker"); !s.ok()) worker = s;
  }
  if (!worker.ok()) {
    return ErrorResponse(Error(400, "BadRequestError", std::string(worker.status().message())));
  }
  for (const auto& p : pools_) {  // names are unique across pools
    for (const auto& w : *p->workers()) {
      if (w->config.name == worker->name) {
        return ErrorResponse(Error(409, "ConflictError",
                                   absl::StrCat("worker '", w->config.name, "' exists")));
      }
    }
  }
  const std::string name = worker->name;
  if (absl::Status s = pool->AddWorker(*std::move(worker)); !s.ok()) {
    return ErrorResponse(Error(HttpStatus(s), "BadRequestError", std::string(s.message())));
  }
  KVR_LOG("gateway", info, "worker {} added to pool {}", name, pool->name());
  Released(*pool);  // requests waiting for capacity may go to it
  return JsonResponse(201, WorkerJson(*pool, *pool->workers()->back()).dump());
}

http::Response Gateway::Impl::RemoveWorker(std::string_view name) {
  for (const auto& pool : pools_) {
    absl::Status s = pool->RemoveWorker(std::string(name));
    if (s.code() == absl::StatusCode::kNotFound) continue;
    if (!s.ok()) return ErrorResponse(Error(500, "InternalServerError", std::string(s.message())));
    KVR_LOG("gateway", info, "worker {} removed from pool {}", std::string(name), pool->name());
    return JsonResponse(200, Json{{"removed", name}, {"model", pool->name()}}.dump());
  }
  return ErrorResponse(Error(404, "NotFoundError", absl::StrCat("no worker '", std::string(name), "'")));
}

Task Gateway::Impl::DebugRoute(Exchange& ex) {
  http::Response denied;
  if (!Authorized(ex, &denied)) {
    co_await ex.Respond(std::move(denied));
    co_return;
  }
  // The body is a generation request; chat or completion is told by `messages`.
  const bool chat = ex.request().body.find("\"messages\"") != std::string::npos;
  const api::Endpoint endpoint = chat ? api::Endpoint::kChat : api::Endpoint::kCompletions;
  const std::string* body = &ex.request().body;
  ModelLookup lookup = Lookup();
  auto work = [endpoint, body, lookup] { return PreparePrompt(endpoint, *body, lookup); };
  auto prepared = co_await OnCpu(std::move(work));
  http::Response response;
  if (const auto* error = std::get_if<api::ApiError>(&prepared)) {
    response = ErrorResponse(*error);
  } else {
    response = Explain(std::get<PreparedPrompt>(prepared));
  }
  co_await ex.Respond(std::move(response));
}

http::Response Gateway::Impl::Explain(const PreparedPrompt& prompt) const {
  Pool& pool = *FindPool(prompt.model);
  std::shared_ptr<const WorkerList> workers = pool.workers();
  const std::vector<WorkerId> excluded = Unavailable(*workers, pool.refuses_mismatch());
  RouteRequest route{.blocks = prompt.blocks,
                     .prompt_tokens = prompt.prompt_tokens,
                     .excluded = excluded,
                     .dry_run = true,
                     .explain = true};
  absl::StatusOr<Decision> d = pool.scheduler().Route(route);
  Json candidates = Json::array();
  auto name_of = [&](WorkerId id) {
    for (const auto& w : *workers) {
      if (w->id == id) return w->config.name;
    }
    return std::string("?");
  };
  if (d.ok() && d->explanation) {
    for (const ExplainedCandidate& c : d->explanation->candidates) {
      Json terms = Json::object();
      for (size_t i = 0; i < d->explanation->term_names.size(); ++i) {
        terms[std::string(d->explanation->term_names[i])] = c.candidate.terms[i];
      }
      candidates.push_back({{"worker", name_of(c.worker)},
                            {"healthy", true},
                            {"device_blocks", c.device},
                            {"host_blocks", c.host},
                            {"storage_blocks", c.storage},
                            {"predicted_blocks", c.predicted},
                            {"in_flight_blocks", c.active_overlap},
                            {"terms", std::move(terms)},
                            {"cost", c.candidate.cost},
                            {"eligible", c.candidate.eligible}});
    }
  }
  for (WorkerId id : excluded) {
    candidates.push_back({{"worker", name_of(id)}, {"healthy", false}});
  }
  Json out = {{"model", pool.name()},
              {"prompt_tokens", prompt.prompt_tokens},
              {"blocks", prompt.blocks.size()},
              {"policy", pool.policy()},
              {"worker", d.ok() ? Json(name_of(d->worker)) : Json(nullptr)},
              {"candidates", std::move(candidates)}};
  if (!d.ok()) out["error"] = std::string(d.status().message());
  return JsonResponse(200, out.dump());
}

}  // namespace kvr::gateway
