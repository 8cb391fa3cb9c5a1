#include "enginesim/engine_sim.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdlib>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "api/openai.h"
#include "enginesim/vllm_metrics.h"
#include "events/publisher.h"
#include "http/server.h"
#include "nlohmann/json.hpp"

namespace kvr::enginesim {

// The OpenAI surface engine-sim shares with the gateway.
using api::ApiError;
using api::ApiRequest;
using api::CompletionBody;
using api::Endpoint;
using api::ErrorBody;
using api::kStreamDone;
using api::ParseApiRequest;
using api::ParseDetokenizeRequest;
using api::ParseTokenizeRequest;
using api::ResponseHead;
using api::StreamChunk;
using api::StreamError;
using api::TextModel;
using api::TokenizeRequest;
using api::Usage;
namespace {

using Json = nlohmann::ordered_json;
using http::Exchange;
using http::Task;

constexpr std::string_view kSse = "text/event-stream; charset=utf-8";

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

http::Response ApiResponse(const ApiError& e) {
  return {.status = e.status, .body = ErrorBody(e)};
}

http::Response JsonResponse(const Json& j) {
  return {.body = j.dump(-1, ' ', false, Json::error_handler_t::replace)};
}

// When EOS is not ignored, a request stops on its own after a length fixed by its prompt (16 to
// 256 tokens), so that clients which do not send ignore_eos still see bounded, reproducible
// answers. FNV-1a over the ids.
uint32_t NaturalLength(const std::vector<TokenId>& prompt) {
  uint64_t h = 1469598103934665603ULL;
  for (TokenId t : prompt) h = (h ^ t) * 1099511628211ULL;
  return 16 + static_cast<uint32_t>(h % 241);
}

ApiError Rejected() { return {.message = "The engine rejected the request."}; }

std::optional<ApiError> CheckContentType(const http::Request& req) {
  const std::string_view type = req.Find("content-type");
  if (type.empty() || type.starts_with("application/json")) return std::nullopt;
  return ApiError{.type = "Bad Request",
                  .message = "Unsupported Media Type: Only 'application/json' is allowed"};
}

}  // namespace

// Everything a completion handler needs once the request is accepted.
struct Accepted {
  ResponseHead head;
  bool stream = false, include_usage = false, continuous_usage = false;
  bool dies = false;  // --exit-after: the process exits during this request
  const char* finish_reason = "length";
};

class EngineSim::Impl final : public StepObserver {
 public:
  Impl(asio::io_context& io, EngineSimOptions options, std::unique_ptr<TextModel> text)
      : io_(io),
        options_(std::move(options)),
        text_(std::move(text)),
        live_(io, options_.engine, options_.speedup, this),
        metrics_(options_.model, options_.dp_rank, options_.engine),
        rng_(options_.seed),
        grace_timer_(io) {}

  absl::Status Init();
  std::string ReadyLine() const;
  void Shutdown(int64_t grace_ms, std::function<void()> done);

  // StepObserver
  void OnAdmitted(const LiveRequest& r) override {
    metrics_.Admitted(r.prompt_tokens, r.cached_tokens);
  }
  void OnToken(const LiveRequest& r, SteadyTime now) override {
    if (r.produced == 1) {
      metrics_.FirstToken(Seconds(now - r.arrival));
      metrics_.Token(-1);
    } else {
      metrics_.Token(Seconds(now - r.last_token_at));
    }
  }
  void OnStepEnd(const engine::StepOutput& out, SteadyTime now) override;

 private:
  http::Response Simple(const http::Request& req);  // every route but the POSTed APIs
  Json ServerInfo() const;                          // --sglang-server-info
  Task Handle(Exchange& ex);
  Task HandleCompletion(Exchange& ex, Endpoint endpoint);
  http::Response Tokenize(const http::Request& req) const;
  http::Response Detokenize(const http::Request& req) const;
  // Turns a parsed request into prompt ids and an engine request, or the error vLLM gives.
  std::optional<ApiError> Prepare(const ApiRequest& api, engine::EngineRequest* out,
                                  Accepted* accepted);
  Task StallFirstByte(const LiveRequest& r);
  Task StreamResponse(Exchange& ex, LiveRequest& r, const Accepted& a);
  Task WholeResponse(Exchange& ex, LiveRequest& r, const Accepted& a);
  const char* FinishReason(const LiveRequest& r, const Accepted& a) const {
    return r.aborted ? "abort" : a.finish_reason;
  }
  Usage UsageOf(const LiveRequest& r) const {
    return {.prompt_tokens = r.prompt_tokens, .completion_tokens = r.produced,
            .cached_tokens = r.cached_tokens};
  }
  http::Response Whole(const LiveRequest& r, const Accepted& a) const {
    return {.body = CompletionBody(a.head, TextOf(0, r.produced), FinishReason(r, a), UsageOf(r))};
  }
  std::string TextOf(uint32_t from, uint32_t to) const {
    std::string text;
    for (uint32_t k = from; k < to; ++k) text += text_->FillerText(k);
    return text;
  }
  bool Chance(double p) { return p > 0 && std::uniform_real_distribution<>(0, 1)(rng_) < p; }
  [[noreturn]] void Die() {
    KVR_LOG("enginesim", warn, "--exit-after {} reached: exiting abruptly", options_.faults.exit_after);
    std::_Exit(3);
  }

  asio::io_context& io_;
  EngineSimOptions options_;
  std::unique_ptr<TextModel> text_;
  LiveEngine live_;
  VllmMetrics metrics_;
  std::mt19937_64 rng_;
  std::unique_ptr<events::Publisher> publisher_;
  std::unique_ptr<http::Server> server_;
  std::set<LiveRequest*> active_;
  asio::steady_timer grace_timer_;
  uint64_t next_id_ = 1;
  uint64_t completions_ = 0;
  bool shutting_down_ = false;
};

absl::Status EngineSim::Impl::Init() {
  options_.wire.dp_rank = options_.dp_rank;  // every batch carries the rank, as vLLM's does
  if (options_.kv_events_port) {
    events::PublisherOptions p{.host = options_.host,
                               .port = *options_.kv_events_port,
                               .replay = options_.replay_port.has_value(),
                               .replay_port = options_.replay_port.value_or(0),
                               .buffer_steps = options_.replay_buffer_steps,
                               .topic = options_.topic};
    KVR_ASSIGN_OR_RETURN(publisher_, events::Publisher::Start(std::move(p)));
  }
  http::ServerOptions s{.host = options_.host,
                        .port = options_.port,
                        .max_body_bytes = options_.max_body_bytes,
                        .error_response = [](int status, std::string_view message) {
                          return ApiResponse({.status = status, .message = std::string(message)});
                        }};
  KVR_ASSIGN_OR_RETURN(
      server_, http::Server::Start(io_, std::move(s), [this](Exchange& ex) { return Handle(ex); }));
  return absl::OkStatus();
}

std::string EngineSim::Impl::ReadyLine() const {
  Json line = {{"http", server_->address()},
               {"kv_events", nullptr},
               {"replay", nullptr},
               {"speed", options_.engine.speed}};
  if (publisher_) {
    line["kv_events"] = publisher_->endpoint();
    if (!publisher_->replay_endpoint().empty()) line["replay"] = publisher_->replay_endpoint();
  }
  return line.dump();
}

void EngineSim::Impl::OnStepEnd(const engine::StepOutput& out, SteadyTime) {
  if (out.preempted > 0) metrics_.Preempted(out.preempted);
  if (!publisher_ || out.events.empty()) return;
  publisher_->Publish(events::EncodeBatch(UnixSeconds(), out.events, options_.wire),
                      /*drop=*/Chance(options_.faults.drop_event_batches));
}

// SGLang's /server_info: its ServerArgs and scheduler info merged at the top level, per-DP-rank
// internal states and the version (sglang/srt/entrypoints/http_server.py). Only the fields a
// router reads, with this engine's values: the step size is the chunk size, and SGLang's default
// prefill batch budget (16,384 tokens) does not bound it lower.
Json EngineSim::Impl::ServerInfo() const {
  const engine::EngineConfig& c = options_.engine;
  return {{"model_path", options_.model},
          {"served_model_name", options_.model},
          {"context_length", options_.max_model_len},
          {"page_size", c.block_size},
          {"chunked_prefill_size", c.max_num_batched_tokens},
          {"max_prefill_tokens", std::max<uint32_t>(16384, c.max_num_batched_tokens)},
          {"max_running_requests", c.max_num_seqs},
          {"max_total_num_tokens", uint64_t{c.num_blocks} * c.block_size},
          {"dp_size", 1},
          {"internal_states", Json::array({Json::object()})},
          {"version", "kvrouter-engine-sim"}};
}

http::Response EngineSim::Impl::Simple(const http::Request& req) {
  const std::string_view path = req.path();
  const bool get = req.method == "GET", post = req.method == "POST";
  if ((get || post) && (path == "/health" || path == "/ping")) {
    return {.content_type = "text/plain"};
  }
  if (get && path == "/metrics") {
    return {.content_type = "text/plain; version=0.0.4; charset=utf-8",
            .body = metrics_.Serialize(live_.Stats())};
  }
  if (get && path == "/v1/models") {
    Json card = {{"id", options_.model}, {"object", "model"},
                 {"created", static_cast<int64_t>(UnixSeconds())}, {"owned_by", "vllm"},
                 {"root", options_.model}, {"parent", nullptr},
                 {"max_model_len", options_.max_model_len}, {"permission", Json::array()}};
    return JsonResponse({{"object", "list"}, {"data", {card}}});
  }
  if (get && path == "/version") return JsonResponse({{"version", "kvrouter-engine-sim"}});
  if (get && options_.sglang_server_info &&
      (path == "/server_info" || path == "/get_server_info")) {
    return JsonResponse(ServerInfo());
  }
  static const std::set<std::string_view> kKnown = {
      "/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize", "/health",
      "/ping", "/metrics", "/v1/models", "/version"};
  if (kKnown.contains(path)) return {.status = 405, .body = R"({"detail":"Method Not Allowed"})"};
  return {.status = 404, .body = R"({"detail":"Not Found"})"};
}

// GCC 12 mishandles temporaries inside co_await expressions (string literals in aggregate
// temporaries fail to compile; other temporaries can be destroyed twice), so the coroutines
// below build their responses in plain functions and co_await only named values.
Task EngineSim::Impl::Handle(Exchange& ex) {
  const http::Request& req = ex.request();
  const std::string_view path = req.path();
  if (req.method == "POST") {
    if (path == "/v1/completions") co_return co_await HandleCompletion(ex, Endpoint::kCompletions);
    if (path == "/v1/chat/completions") co_return co_await HandleCompletion(ex, Endpoint::kChat);
  }
  http::Response response = req.method == "POST" && path == "/tokenize"     ? Tokenize(req)
                             : req.method == "POST" && path == "/detokenize" ? Detokenize(req)
                                                                             : Simple(req);
  co_await ex.Respond(std::move(response));
}

std::optional<ApiError> EngineSim::Impl::Prepare(const ApiRequest& api, engine::EngineRequest* out,
                                                 Accepted* a) {
  if (!api.model.empty() && api.model != options_.model) {
    return ApiError{.status = 404, .type = "NotFoundError",
                    .message = absl::StrCat("The model `", api.model, "` does not exist."),
                    .param = "model"};
  }
  if (Chance(options_.faults.fail_requests)) {
    return ApiError{.status = 500, .type = "InternalServerError",
                    .message = "Internal server error (injected by --fail-requests)"};
  }
  if (auto e = api::PromptTokens(*text_, api, &out->prompt)) return e;
  const uint64_t prompt_len = out->prompt.size();
  const uint64_t limit = options_.max_model_len;
  const uint64_t max_tokens = api.max_tokens.value_or(limit > prompt_len ? limit - prompt_len : 1);
  if (prompt_len + max_tokens > limit) {
    return ApiError{.message = absl::StrCat("You passed ", prompt_len, " input tokens and requested ",
                                            max_tokens, " output tokens. However, the model's "
                                            "context length is only ", limit, " tokens."),
                    .param = "input_tokens"};
  }
  const engine::EngineConfig& c = options_.engine;
  if ((prompt_len + max_tokens - 1 + c.block_size - 1) / c.block_size > c.num_blocks) {
    return ApiError{.message = absl::StrCat("The request needs ", prompt_len + max_tokens,
                                            " tokens of KV cache; the engine holds ",
                                            uint64_t{c.num_blocks} * c.block_size, ".")};
  }
  uint32_t length = static_cast<uint32_t>(max_tokens);
  if (!api.ignore_eos) {
    if (const uint32_t natural = NaturalLength(out->prompt); natural < length) {
      length = natural;
      a->finish_reason = "stop";
    }
  }
  out->id = next_id_++;
  out->max_output_tokens = length;
  out->output.reserve(length);
  for (uint32_t k = 0; k < length; ++k) out->output.push_back(text_->FillerToken(k));
  return std::nullopt;
}

Task EngineSim::Impl::HandleCompletion(Exchange& ex, Endpoint endpoint) {
  const http::Request& req = ex.request();
  ApiRequest api;
  Accepted a;
  engine::EngineRequest engine_request;
  std::optional<ApiError> error = CheckContentType(req);
  if (!error) error = ParseApiRequest(endpoint, req.body, &api);
  if (!error) error = Prepare(api, &engine_request, &a);
  if (error) {
    http::Response response = ApiResponse(*error);
    co_return co_await ex.Respond(std::move(response));
  }
  std::string id(req.Find("x-request-id"));
  if (id.empty()) id = api.request_id;
  if (id.empty()) id = absl::StrCat(absl::Hex(rng_(), absl::kZeroPad16), absl::Hex(engine_request.id));
  a.head = {.endpoint = endpoint,
            .id = absl::StrCat(endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-", id),
            .created = static_cast<int64_t>(UnixSeconds()),
            .model = options_.model};
  a.stream = api.stream;
  a.include_usage = api.include_usage;
  a.continuous_usage = api.continuous_usage;
  a.dies = options_.faults.exit_after > 0 && ++completions_ == options_.faults.exit_after;
  std::shared_ptr<LiveRequest> live = live_.Submit(std::move(engine_request));
  active_.insert(live.get());
  ex.OnClientGone([this, weak = std::weak_ptr<LiveRequest>(live)] {
    if (auto r = weak.lock()) live_.Abort(*r);
  });
  co_await StallFirstByte(*live);
  if (a.stream) {
    co_await StreamResponse(ex, *live, a);
  } else {
    co_await WholeResponse(ex, *live, a);
  }
  if (!live->rejected) {
    metrics_.Finished(FinishReason(*live, a), Seconds(std::chrono::steady_clock::now() - live->arrival));
  }
  active_.erase(live.get());
  live_.Release(*live);
}

Task EngineSim::Impl::StallFirstByte(const LiveRequest& r) {
  if (options_.faults.stall_ms <= 0) co_return;
  asio::steady_timer timer(io_, r.arrival + std::chrono::milliseconds(options_.faults.stall_ms));
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

Task EngineSim::Impl::WholeResponse(Exchange& ex, LiveRequest& r, const Accepted& a) {
  while (!(r.finished || r.rejected || r.aborted)) {
    if (a.dies && r.produced > 0) Die();
    co_await live_.WaitForChange(r);
  }
  if (ex.client_gone()) co_return;
  http::Response response = r.rejected ? ApiResponse(Rejected()) : Whole(r, a);
  co_await ex.Respond(std::move(response));
}

Task EngineSim::Impl::StreamResponse(Exchange& ex, LiveRequest& r, const Accepted& a) {
  std::string type(kSse);
  std::vector<http::Header> headers;
  // The head goes out at once, as vLLM's server sends it, before the first token exists.
  const std::string_view no_chunk;
  if (!co_await ex.BeginStream(200, std::move(type), std::move(headers), no_chunk)) co_return;
  uint32_t sent = 0;
  bool ok = true;
  while (ok) {
    while (ok && sent < r.produced) {
      const uint32_t k = sent++;
      const bool last = r.finished && sent == r.produced;
      const Usage usage = UsageOf(r);
      const Usage* running_usage = a.continuous_usage ? &usage : nullptr;
      if (k == 0 && a.head.endpoint == Endpoint::kChat) {
        const std::string role = StreamChunk(a.head, "", "", true, running_usage);
        ok = co_await ex.Write(role);
      }
      if (ok) {
        const std::string chunk = StreamChunk(a.head, text_->FillerText(k),
                                              last ? a.finish_reason : "", false, running_usage);
        ok = co_await ex.Write(chunk);
      }
      if (a.dies) Die();
    }
    if (!ok || r.finished || r.rejected || r.aborted) break;
    co_await live_.WaitForChange(r);
  }
  if (!ok || ex.client_gone()) co_return;
  std::string tail;  // one write: the end of a stream is small
  if (r.rejected) {
    tail = StreamError(Rejected());
  } else if (r.aborted) {
    tail = StreamChunk(a.head, "", "abort", false, nullptr);
  }
  if (a.include_usage && !r.rejected) tail += UsageChunk(a.head, UsageOf(r));
  tail += kStreamDone;
  co_await ex.EndStream(tail);
}

http::Response EngineSim::Impl::Tokenize(const http::Request& req) const {
  TokenizeRequest t;
  if (auto error = ParseTokenizeRequest(req.body, &t)) return ApiResponse(*error);
  absl::StatusOr<std::string> text = t.prompt;
  if (t.is_chat) text = text_->RenderChat(t.chat);
  if (!text.ok()) return ApiResponse({.message = std::string(text.status().message())});
  absl::StatusOr<std::vector<TokenId>> ids = text_->Encode(*text, t.add_special_tokens);
  if (!ids.ok()) return ApiResponse({.message = std::string(ids.status().message())});
  return JsonResponse({{"count", ids->size()},
                       {"max_model_len", options_.max_model_len},
                       {"tokens", *ids},
                       {"token_strs", nullptr}});
}

http::Response EngineSim::Impl::Detokenize(const http::Request& req) const {
  std::vector<TokenId> ids;
  if (auto error = ParseDetokenizeRequest(req.body, &ids)) return ApiResponse(*error);
  return JsonResponse({{"prompt", text_->Decode(ids)}});
}

void EngineSim::Impl::Shutdown(int64_t grace_ms, std::function<void()> done) {
  if (shutting_down_) return;
  shutting_down_ = true;
  server_->Shutdown([this, done = std::move(done)] {
    grace_timer_.cancel();
    done();
  });
  grace_timer_.expires_after(std::chrono::milliseconds(grace_ms));
  grace_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    KVR_LOG("enginesim", info, "shutdown: aborting {} requests still in flight", active_.size());
    for (LiveRequest* r : active_) live_.Abort(*r);
  });
}

EngineSim::EngineSim(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EngineSim::~EngineSim() = default;

absl::StatusOr<std::unique_ptr<EngineSim>> EngineSim::Start(asio::io_context& io,
                                                            EngineSimOptions options,
                                                            std::unique_ptr<TextModel> text) {
  KVR_RETURN_IF_ERROR(engine::ValidateEngineConfig(options.engine));
  if (!(options.speedup > 0)) return absl::InvalidArgumentError("--speedup must be positive");
  auto impl = std::make_unique<Impl>(io, std::move(options), std::move(text));
  KVR_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<EngineSim>(new EngineSim(std::move(impl)));
}

std::string EngineSim::ReadyLine() const { return impl_->ReadyLine(); }

void EngineSim::Shutdown(int64_t grace_ms, std::function<void()> done) {
  impl_->Shutdown(grace_ms, std::move(done));
}

}  // namespace kvr::enginesim
