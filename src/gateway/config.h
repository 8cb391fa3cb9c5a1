// The gateway's configuration: a YAML file (docs/CONFIG.md documents every field; an example
// is configs/router.example.yaml), validated as a whole before anything starts. Errors name the
// field by its path (`pools[0].workers[1].url`) and line, and say why.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kvr::gateway {

// How the router can ask an engine for its token ids (the tokenizer check, tokenizer_check.h).
enum class EngineApi {
  kVllm,      // vLLM's /tokenize (engine-sim speaks it too)
  kLlamaCpp,  // llama.cpp's /tokenize and /apply-template
  kNone,      // no tokenize endpoint (SGLang, other OpenAI servers): not checked
};
absl::StatusOr<EngineApi> ParseEngineApi(std::string_view name);  // "vllm", "llama.cpp", "none"
std::string_view EngineApiName(EngineApi api);

// What a worker whose tokenizer disagrees with the router's gets.
enum class TokenizerCheck {
  kWarn,    // flagged (admin, /ready, metrics, log), still routed
  kRefuse,  // flagged and left out of routing until it agrees
  kOff,     // not checked
};

// The largest max_batched_tokens a pool or worker takes.
inline constexpr uint32_t kMaxBatchedTokens = uint32_t{1} << 24;

struct WorkerConfig {
  std::string name;       // default: the URL
  std::string url;        // http://host:port of an OpenAI-compatible server
  std::string kv_events;  // tcp://host:port of its ZMQ publisher; "" = none (approximate mode)
  std::string replay;     // tcp://host:port of its replay socket; "" = none
  std::string topic;      // ZMQ topic prefix (vLLM's default is empty)
  int64_t dp_rank = 0;
  EngineApi engine = EngineApi::kVllm;  // how to ask it for token ids
  double speed = 1;                       // prior: prefill throughput relative to the pool's
  std::optional<uint64_t> kv_capacity_blocks;  // default: the pool's
  std::optional<uint32_t> max_batched_tokens;  // default: the pool's
  // llama.cpp workers without kv_events: the router's model of the server's slots
  // (slot_model.h) runs when the server's host prompt cache size is known. nullopt: unknown
  // (llama-server's default --cache-ram 8192 MiB): routed prompts are predicted entries for a
  // TTL, as for any worker without events; 0: --cache-ram 0, slots only.
  std::optional<uint64_t> prompt_cache_tokens;
  uint32_t slots = 0;  // llama-server's -np; 0: learned from its /props (total_slots)
};

struct PoolConfig {
  std::string name;           // the model name clients send
  std::string tokenizer;      // tokenizer.json, a model folder, or "bytes" (one token per byte)
  std::string chat_template;  // a Jinja file; "": the tokenizer folder's tokenizer_config.json
  uint32_t block_size = 16;   // the engines' KV block size (vLLM's default)
  std::string policy = "kvrouter";  // a policy spec, as `simulate --policies` takes
  double prefill_tokens_per_s = 20000;  // prior prefill rate of a speed-1 worker
  uint64_t kv_capacity_blocks = 16384;
  // Most tokens an engine computes in one step (vLLM's --max-num-batched-tokens, SGLang's
  // --chunked-prefill-size): the unit of the router queue's threshold and of the idle-decode
  // credit. Neither engine publishes it in /metrics.
  uint32_t max_batched_tokens = 8192;  // at most kMaxBatchedTokens
  TokenizerCheck tokenizer_check = TokenizerCheck::kWarn;
  // Completions with a text prompt reach the workers that speak vLLM's API and whose tokenizer
  // check agrees as the router's token ids (`"prompt": [ids]`): the engine does not tokenize
  // the prompt a second time.
  bool forward_tokens = false;
  std::vector<WorkerConfig> workers;
};

struct LimitsConfig {
  uint64_t max_body_bytes = uint64_t{32} << 20;
  // A worker is saturated at either limit (0: no limit); when every healthy worker of a pool is,
  // requests wait in a queue of `queue_size` for up to `queue_timeout_ms`, then get 429.
  uint32_t max_running_per_worker = 0;
  uint64_t max_booked_prefill_tokens_per_worker = 0;
  uint32_t queue_size = 256;
  int64_t queue_timeout_ms = 10000;
};

inline constexpr int64_t kEngineMetricsIntervalMs = 1000;
inline constexpr int64_t kLlmdMetricsIntervalMs = 50;  // llm-d's --refresh-metrics-interval

struct GatewayConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string admin_token;  // "": admin and debug endpoints are off
  LimitsConfig limits;
  int64_t health_interval_ms = 2000;
  int64_t health_timeout_ms = 1000;
  uint32_t health_failures = 2;  // consecutive failed checks before a worker leaves
  // 0: engines' /metrics are not polled. Left out: kEngineMetricsIntervalMs, or llm-d's 50 ms
  // refresh where a pool's policy scores the engines' metrics (llmd_weighted).
  int64_t engine_metrics_interval_ms = kEngineMetricsIntervalMs;
  int64_t events_stale_after_ms = 30000;
  int64_t replay_timeout_ms = 5000;
  int64_t connect_timeout_ms = 3000;
  int64_t read_timeout_ms = 600000;
  uint32_t max_idle_connections = 64;  // per worker
  // Threads that render, tokenize and hash prompts; 0: none, the I/O thread does it all.
  // Unset: DefaultCpuThreads().
  std::optional<uint32_t> cpu_threads;
  // A body up to this size is prepared on the I/O thread when no other completion or chat
  // request is in flight, saving the two thread hops to the CPU pool and back; 0: never.
  uint32_t inline_prepare_bytes = 16384;
  int64_t shutdown_grace_ms = 30000;
  std::vector<PoolConfig> pools;
};

// Parses and validates a configuration. `env` looks up environment variables (admin_token_env).
// The CPU pool's size when the config leaves it out: 2 threads where the process may run on 4
// CPUs or more, none on fewer. On a machine of one or two cores shared with other busy processes
// (engines, a load generator) each hop to the pool and back wakes a thread that then waits for
// a core, and the pool cost more than it gave (docs/BENCHMARKS.md, runs P and Q, U and V).
uint32_t DefaultCpuThreads();
uint32_t CpuThreads(const GatewayConfig& config);

absl::StatusOr<GatewayConfig> ParseConfig(
    std::string_view yaml, const std::function<std::optional<std::string>(const std::string&)>& env);
absl::StatusOr<GatewayConfig> LoadConfig(const std::string& path);

// Fills a worker's defaults (name: its URL; "none" events or replay: none) and checks it: the one
// rule for workers from the file, the admin endpoint and Pool::AddWorker alike. Idempotent.
absl::Status NormalizeWorker(WorkerConfig& worker, const std::string& where);

// "host:port" -> parts.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseListen(std::string_view listen);

}  // namespace kvr::gateway
