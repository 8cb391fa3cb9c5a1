#include "gateway/config.h"

#include <yaml-cpp/yaml.h>

#include <sched.h>

#include <charconv>
#include <cstdlib>
#include <functional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file.h"
#include "common/status.h"
#include "http/client.h"
#include "scheduler/policy.h"

namespace kvr::gateway {
namespace {

absl::Status FieldError(const std::string& path, const YAML::Node& node, const std::string& why) {
  const YAML::Mark mark = node.Mark();
  const std::string line = mark.line >= 0 ? absl::StrCat(" (line ", mark.line + 1, ")") : "";
  return absl::InvalidArgumentError(absl::StrCat(path, line, ": ", why));
}

// One YAML mapping being read: every key must be known, each value of the right type.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string path) : node_(node), path_(std::move(path)) {}

  absl::Status Check(std::initializer_list<const char*> known) const {
    if (!node_.IsMap()) return FieldError(path_, node_, "must be a mapping");
    std::set<std::string> allowed(known.begin(), known.end());
    for (const auto& kv : node_) {
      const std::string key = kv.first.as<std::string>();
      if (!allowed.contains(key)) {
        return FieldError(Path(key), kv.first,
                          absl::StrCat("unknown field (known: ", absl::StrJoin(known, ", "), ")"));
      }
    }
    return absl::OkStatus();
  }

  // Each Get leaves *out as it is when the key is absent or null.
  template <class T>
  absl::Status Get(const char* key, T* out, const char* type_name) const {
    const YAML::Node v = node_[key];
    if (!v || v.IsNull()) return absl::OkStatus();
    if (!v.IsScalar()) return FieldError(Path(key), v, absl::StrCat("must be ", type_name));
    try {
      *out = v.as<T>();
    } catch (const YAML::Exception&) {
      return FieldError(Path(key), v, absl::StrCat("must be ", type_name, ", not '",
                                                   v.Scalar(), "'"));
    }
    return absl::OkStatus();
  }
  absl::Status String(const char* key, std::string* out) const {
    return Get(key, out, "a string");
  }
  absl::Status Bool(const char* key, bool* out) const { return Get(key, out, "true or false"); }
  // An integer in [lo, hi].
  template <class T>
  absl::Status Int(const char* key, T* out, int64_t lo, int64_t hi) const {
    int64_t v = static_cast<int64_t>(*out);
    KVR_RETURN_IF_ERROR(Get(key, &v, "an integer"));
    if (v < lo || v > hi) {
      return FieldError(Path(key), node_[key], absl::StrCat("must be in [", lo, ", ", hi, "]"));
    }
    *out = static_cast<T>(v);
    return absl::OkStatus();
  }
  absl::Status Positive(const char* key, double* out) const {
    KVR_RETURN_IF_ERROR(Get(key, out, "a number"));
    if (!(*out > 0)) return FieldError(Path(key), node_[key], "must be > 0");
    return absl::OkStatus();
  }

  YAML::Node operator[](const char* key) const { return node_[key]; }
  std::string Path(const std::string& key) const {
    return path_.empty() ? key : absl::StrCat(path_, ".", key);
  }
  const YAML::Node& node() const { return node_; }

 private:
  const YAML::Node& node_;
  std::string path_;
};

constexpr int64_t kMaxMs = int64_t{24} * 3600 * 1000;

absl::Status ReadWorker(const YAML::Node& node, const std::string& path, WorkerConfig* w) {
  MapReader r(node, path);
  KVR_RETURN_IF_ERROR(
      r.Check({"name", "url", "engine", "kv_events", "replay", "topic", "dp_rank", "speed",
               "kv_capacity_blocks", "max_batched_tokens", "prompt_cache_tokens", "slots"}));
  std::string engine;
  KVR_RETURN_IF_ERROR(r.String("engine", &engine));
  if (!engine.empty()) {
    absl::StatusOr<EngineApi> api = ParseEngineApi(engine);
    if (!api.ok()) return FieldError(r.Path("engine"), r["engine"], std::string(api.status().message()));
    w->engine = *api;
  }
  KVR_RETURN_IF_ERROR(r.String("name", &w->name));
  KVR_RETURN_IF_ERROR(r.String("url", &w->url));
  KVR_RETURN_IF_ERROR(r.String("kv_events", &w->kv_events));
  KVR_RETURN_IF_ERROR(r.String("replay", &w->replay));
  KVR_RETURN_IF_ERROR(r.String("topic", &w->topic));
  KVR_RETURN_IF_ERROR(r.Int("dp_rank", &w->dp_rank, 0, 1 << 20));
  KVR_RETURN_IF_ERROR(r.Positive("speed", &w->speed));
  if (r["kv_capacity_blocks"]) {
    uint64_t blocks = 0;
    KVR_RETURN_IF_ERROR(r.Int("kv_capacity_blocks", &blocks, 1, int64_t{1} << 40));
    w->kv_capacity_blocks = blocks;
  }
  if (r["max_batched_tokens"]) {
    uint32_t tokens = 0;
    KVR_RETURN_IF_ERROR(r.Int("max_batched_tokens", &tokens, 1, kMaxBatchedTokens));
    w->max_batched_tokens = tokens;
  }
  if (r["prompt_cache_tokens"]) {
    uint64_t tokens = 0;
    KVR_RETURN_IF_ERROR(r.Int("prompt_cache_tokens", &tokens, 0, int64_t{1} << 40));
    w->prompt_cache_tokens = tokens;
  }
  KVR_RETURN_IF_ERROR(r.Int("slots", &w->slots, 0, 4096));
  if (!r["url"]) return FieldError(path, node, "a worker needs a url");
  if (absl::Status s = NormalizeWorker(*w, path); !s.ok()) {
    return FieldError(path, node, std::string(s.message()));
  }
  return absl::OkStatus();
}

absl::Status ReadPool(const YAML::Node& node, const std::string& path, PoolConfig* p) {
  MapReader r(node, path);
  KVR_RETURN_IF_ERROR(r.Check({"name", "tokenizer", "chat_template", "block_size", "policy",
                               "prefill_tokens_per_s", "kv_capacity_blocks", "max_batched_tokens",
                               "tokenizer_check", "forward_tokens", "workers"}));
  std::string check;
  KVR_RETURN_IF_ERROR(r.String("tokenizer_check", &check));
  if (check == "refuse") {
    p->tokenizer_check = TokenizerCheck::kRefuse;
  } else if (check == "off") {
    p->tokenizer_check = TokenizerCheck::kOff;
  } else if (!check.empty() && check != "warn") {
    return FieldError(r.Path("tokenizer_check"), r["tokenizer_check"],
                      "must be warn, refuse or off");
  }
  KVR_RETURN_IF_ERROR(r.String("name", &p->name));
  KVR_RETURN_IF_ERROR(r.String("tokenizer", &p->tokenizer));
  KVR_RETURN_IF_ERROR(r.String("chat_template", &p->chat_template));
  KVR_RETURN_IF_ERROR(r.Int("block_size", &p->block_size, 1, 4096));
  KVR_RETURN_IF_ERROR(r.String("policy", &p->policy));
  KVR_RETURN_IF_ERROR(r.Positive("prefill_tokens_per_s", &p->prefill_tokens_per_s));
  KVR_RETURN_IF_ERROR(r.Int("kv_capacity_blocks", &p->kv_capacity_blocks, 1, int64_t{1} << 40));
  KVR_RETURN_IF_ERROR(r.Int("max_batched_tokens", &p->max_batched_tokens, 1, kMaxBatchedTokens));
  KVR_RETURN_IF_ERROR(r.Bool("forward_tokens", &p->forward_tokens));
  if (p->forward_tokens && p->tokenizer_check == TokenizerCheck::kOff) {
    return FieldError(r.Path("forward_tokens"), r["forward_tokens"],
                      "needs the tokenizer check (tokenizer_check: warn or refuse): token ids go "
                      "only to workers whose check agrees");
  }
  if (p->name.empty()) return FieldError(r.Path("name"), node, "a pool needs a name");
  if (p->tokenizer.empty()) {
    return FieldError(r.Path("tokenizer"), node,
                      "a pool needs a tokenizer (tokenizer.json, a model folder, or bytes)");
  }
  if (absl::StatusOr<PolicySpec> spec = ParsePolicySpec(p->policy); !spec.ok()) {
    return FieldError(r.Path("policy"), r["policy"], std::string(spec.status().message()));
  }
  const YAML::Node workers = r["workers"];
  if (workers && !workers.IsNull()) {
    if (!workers.IsSequence()) return FieldError(r.Path("workers"), workers, "must be a list");
    for (size_t i = 0; i < workers.size(); ++i) {
      WorkerConfig w;
      KVR_RETURN_IF_ERROR(ReadWorker(workers[i], absl::StrCat(r.Path("workers"), "[", i, "]"), &w));
      p->workers.push_back(std::move(w));
    }
  }
  return absl::OkStatus();
}

// The optional sections of the top level: limits, health, events, upstream.
absl::Status ReadSections(const MapReader& r, GatewayConfig* c) {
  if (const YAML::Node n = r["limits"]) {
    MapReader l(n, "limits");
    LimitsConfig& x = c->limits;
    KVR_RETURN_IF_ERROR(
        l.Check({"max_body_bytes", "max_running_per_worker", "max_booked_prefill_tokens_per_worker",
                 "queue_size", "queue_timeout_ms"}));
    KVR_RETURN_IF_ERROR(l.Int("max_body_bytes", &x.max_body_bytes, 1, int64_t{1} << 34));
    KVR_RETURN_IF_ERROR(l.Int("max_running_per_worker", &x.max_running_per_worker, 0, 1 << 24));
    KVR_RETURN_IF_ERROR(l.Int("max_booked_prefill_tokens_per_worker",
                              &x.max_booked_prefill_tokens_per_worker, 0, int64_t{1} << 40));
    KVR_RETURN_IF_ERROR(l.Int("queue_size", &x.queue_size, 0, 1 << 24));
    KVR_RETURN_IF_ERROR(l.Int("queue_timeout_ms", &x.queue_timeout_ms, 0, kMaxMs));
  }
  if (const YAML::Node n = r["health"]) {
    MapReader h(n, "health");
    KVR_RETURN_IF_ERROR(h.Check({"interval_ms", "timeout_ms", "failures"}));
    KVR_RETURN_IF_ERROR(h.Int("interval_ms", &c->health_interval_ms, 1, kMaxMs));
    KVR_RETURN_IF_ERROR(h.Int("timeout_ms", &c->health_timeout_ms, 1, kMaxMs));
    KVR_RETURN_IF_ERROR(h.Int("failures", &c->health_failures, 1, 1000));
  }
  if (const YAML::Node n = r["events"]) {
    MapReader e(n, "events");
    KVR_RETURN_IF_ERROR(e.Check({"stale_after_ms", "replay_timeout_ms"}));
    KVR_RETURN_IF_ERROR(e.Int("stale_after_ms", &c->events_stale_after_ms, 1, kMaxMs));
    KVR_RETURN_IF_ERROR(e.Int("replay_timeout_ms", &c->replay_timeout_ms, 1, kMaxMs));
  }
  if (const YAML::Node n = r["upstream"]) {
    MapReader u(n, "upstream");
    KVR_RETURN_IF_ERROR(u.Check({"connect_timeout_ms", "read_timeout_ms", "max_idle_connections"}));
    KVR_RETURN_IF_ERROR(u.Int("connect_timeout_ms", &c->connect_timeout_ms, 1, kMaxMs));
    KVR_RETURN_IF_ERROR(u.Int("read_timeout_ms", &c->read_timeout_ms, 1, kMaxMs));
    KVR_RETURN_IF_ERROR(u.Int("max_idle_connections", &c->max_idle_connections, 0, 1 << 16));
  }
  return absl::OkStatus();
}

absl::Status ReadTop(const YAML::Node& root, GatewayConfig* c,
                     const std::function<std::optional<std::string>(const std::string&)>& env) {
  MapReader r(root, "");
  KVR_RETURN_IF_ERROR(r.Check({"listen", "admin_token", "admin_token_env", "limits", "health",
                               "engine_metrics_interval_ms", "events", "upstream", "cpu_threads",
                               "inline_prepare_bytes", "shutdown_grace_ms", "pools"}));
  std::string listen;
  KVR_RETURN_IF_ERROR(r.String("listen", &listen));
  if (!listen.empty()) {
    absl::StatusOr<std::pair<std::string, uint16_t>> hp = ParseListen(listen);
    if (!hp.ok()) return FieldError("listen", r["listen"], std::string(hp.status().message()));
    std::tie(c->host, c->port) = *hp;
  }
  KVR_RETURN_IF_ERROR(r.String("admin_token", &c->admin_token));
  std::string token_env;
  KVR_RETURN_IF_ERROR(r.String("admin_token_env", &token_env));
  if (!token_env.empty()) {
    std::optional<std::string> token = env(token_env);
    if (!token || token->empty()) {
      return FieldError("admin_token_env", r["admin_token_env"],
                        absl::StrCat("environment variable ", token_env, " is not set"));
    }
    c->admin_token = *token;
  }
  KVR_RETURN_IF_ERROR(
      r.Int("engine_metrics_interval_ms", &c->engine_metrics_interval_ms, 0, kMaxMs));
  if (r["cpu_threads"]) {
    uint32_t threads = 0;
    KVR_RETURN_IF_ERROR(r.Int("cpu_threads", &threads, 0, 256));
    c->cpu_threads = threads;
  }
  KVR_RETURN_IF_ERROR(r.Int("inline_prepare_bytes", &c->inline_prepare_bytes, 0, 1 << 20));
  KVR_RETURN_IF_ERROR(r.Int("shutdown_grace_ms", &c->shutdown_grace_ms, 0, kMaxMs));
  KVR_RETURN_IF_ERROR(ReadSections(r, c));
  const YAML::Node pools = r["pools"];
  if (!pools || !pools.IsSequence() || pools.size() == 0) {
    return FieldError("pools", pools ? pools : root, "must be a non-empty list of model pools");
  }
  for (size_t i = 0; i < pools.size(); ++i) {
    PoolConfig p;
    KVR_RETURN_IF_ERROR(ReadPool(pools[i], absl::StrCat("pools[", i, "]"), &p));
    c->pools.push_back(std::move(p));
  }
  // llm-d's weighted profile scores queues and KV usage as fresh as its 50 ms refresh: polled
  // once a second, its scorers would read a stale fleet and the comparison would be unfair.
  if (!r["engine_metrics_interval_ms"]) {
    for (const PoolConfig& p : c->pools) {
      absl::StatusOr<PolicySpec> spec = ParsePolicySpec(p.policy);
      if (spec.ok() && spec->name == "llmd_weighted") {
        c->engine_metrics_interval_ms = kLlmdMetricsIntervalMs;
        break;
      }
    }
  }
  return absl::OkStatus();
}

// Names are how clients pick a pool and how the admin API picks a worker: both unique.
absl::Status CheckUnique(const GatewayConfig& c) {
  std::set<std::string> pools, workers;
  for (size_t i = 0; i < c.pools.size(); ++i) {
    if (!pools.insert(c.pools[i].name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("pools[", i, "].name: '", c.pools[i].name, "' is used twice"));
    }
    for (size_t j = 0; j < c.pools[i].workers.size(); ++j) {
      if (!workers.insert(c.pools[i].workers[j].name).second) {
        return absl::InvalidArgumentError(absl::StrCat("pools[", i, "].workers[", j, "].name: '",
                                                       c.pools[i].workers[j].name,
                                                       "' is used twice"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EngineApi> ParseEngineApi(std::string_view name) {
  if (name == "vllm") return EngineApi::kVllm;
  if (name == "llama.cpp") return EngineApi::kLlamaCpp;
  if (name == "none") return EngineApi::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat("'", std::string(name), "': must be vllm, llama.cpp or none"));
}

std::string_view EngineApiName(EngineApi api) {
  switch (api) {
    case EngineApi::kVllm: return "vllm";
    case EngineApi::kLlamaCpp: return "llama.cpp";
    case EngineApi::kNone: return "none";
  }
  return "none";
}

absl::Status NormalizeWorker(WorkerConfig& w, const std::string& where) {
  if (w.kv_events == "none") w.kv_events.clear();
  if (w.replay == "none") w.replay.clear();
  if (w.name.empty()) w.name = w.url;
  if (absl::StatusOr<std::pair<std::string, uint16_t>> url = http::ParseHttpUrl(w.url); !url.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".url: ", url.status().message()));
  }
  for (const auto& [field, value] : {std::pair{"kv_events", &w.kv_events},
                                     std::pair{"replay", &w.replay}}) {
    if (!value->empty() && !value->starts_with("tcp://") && !value->starts_with("ipc://")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".", field, ": '", *value, "' is not tcp://HOST:PORT or none"));
    }
  }
  if (!w.replay.empty() && w.kv_events.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".replay: set without kv_events"));
  }
  if ((w.prompt_cache_tokens || w.slots > 0) &&
      (w.engine != EngineApi::kLlamaCpp || !w.kv_events.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ".", w.slots > 0 ? "slots" : "prompt_cache_tokens",
        ": only for a worker with engine: llama.cpp and no kv_events"));
  }
  if (w.name.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ".name: empty"));
  if (!(w.speed > 0)) return absl::InvalidArgumentError(absl::StrCat(where, ".speed: must be > 0"));
  return absl::OkStatus();
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseListen(std::string_view listen) {
  return http::ParseHostPort(listen);
}

absl::StatusOr<GatewayConfig> ParseConfig(
    std::string_view yaml,
    const std::function<std::optional<std::string>(const std::string&)>& env) {
  GatewayConfig config;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    KVR_RETURN_IF_ERROR(ReadTop(root, &config, env));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  KVR_RETURN_IF_ERROR(CheckUnique(config));
  return config;
}

absl::StatusOr<GatewayConfig> LoadConfig(const std::string& path) {
  KVR_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto env = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  absl::StatusOr<GatewayConfig> config = ParseConfig(text, env);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

uint32_t DefaultCpuThreads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  return cpus >= 4 ? 2 : 0;
}

uint32_t CpuThreads(const GatewayConfig& config) {
  return config.cpu_threads.value_or(DefaultCpuThreads());
}

}  // namespace kvr::gateway
