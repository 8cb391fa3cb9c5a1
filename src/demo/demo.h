// `kvrouter demo`: the whole system on one machine, no GPU. For each policy in turn it starts a
// fresh fleet of engines — engine-sims, or real llama.cpp llama-servers — (so every policy starts
// with cold caches) and one gateway in front of them, all child processes of this binary (process.h), replays the same workload through the
// gateway in-process (src/replay), then stops them all. The runs make one sim::Report, so the
// table, JSON and HTML look like `kvrouter simulate`'s.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "replay/replayer.h"
#include "replay/result.h"
#include "sim/report.h"
#include "sim/workload.h"

namespace kvr::demo {

// The engines behind the gateway.
enum class DemoEngine {
  kEngineSim,  // kvrouter engine-sim with KV events and replay
  kLlamaCpp,   // llama.cpp llama-server: no KV events, so the gateway runs in approximate mode
};

// llama-server's settings when engine == kLlamaCpp.
struct LlamaOptions {
  std::string server;           // the llama-server binary
  std::string model;            // a GGUF whose vocabulary is the demo tokenizer's
  uint32_t slots = 2;           // -np
  uint32_t ctx_per_slot = 16384;  // -c is slots x this
  uint32_t threads = 1;         // ggml's threads spin: on a shared 2-core machine 1 is fastest
  // --cache-ram: MiB of host memory for prompts saved from slots (restored when a later prompt
  // shares their prefix); unset: llama.cpp's default (8192), 0: off (only the slots' KV).
  std::optional<int32_t> cache_ram_mib;
  // With --cache-ram 0 the gateway models each server's slots (prompt_cache_tokens: 0, slots);
  // false: it predicts routed prompts for a TTL, as for any worker without events.
  bool slot_model = true;
};

struct DemoOptions {
  std::string exe;        // the kvrouter binary whose subcommands are started
  std::string tokenizer;  // tokenizer folder for engines and gateway (ids < its vocabulary)
  std::string model = "llama3";
  DemoEngine engine = DemoEngine::kEngineSim;
  LlamaOptions llama;
  std::vector<std::string> policies = {"round_robin", "dynamo", "kvrouter"};
  uint32_t workers = 4;
  double speedup = 4;  // engine-sim --speedup: wall time runs this much faster than modelled
  uint32_t max_model_len = 131072;  // engine-sim --max-model-len: longer requests get HTTP 400
  std::vector<double> speeds;       // engine-sim --speed, cycled over the engines (empty: 1)
  std::chrono::milliseconds ready_timeout{30000};
  double drain_timeout_s = 60;
  size_t concurrency_limit = 1024;  // the replay client's most requests in flight
  // The gateway's /metrics poll (engine_metrics_interval_ms): llm-d's 50 ms refresh, as simulate's
  // --metrics-interval-ms, so the policies that read engine metrics see them as fresh as there.
  uint32_t metrics_interval_ms = 50;
  std::function<void(const std::string&)> log;                  // one line per step
  std::function<void(const replay::ReplayProgress&)> progress;  // during each replay
};

struct DemoResult {
  sim::Report report;                      // title "kvrouter demo"; a PolicyResult per run
  std::vector<replay::ReplayResult> runs;  // in policy order (fewer when interrupted)
  bool interrupted = false;
};

// Runs every policy over `workload` (already scaled to wall-clock arrivals). A child that cannot
// start or dies during a run fails the whole demo (Unavailable, naming it, with its stderr's
// tail); every child is killed and reaped on every path. SIGINT/SIGTERM (InstallStopHandler)
// end the demo early with what finished.
absl::StatusOr<DemoResult> RunDemo(const DemoOptions& options, const sim::Workload& workload);

// {"workload":{...},"policies":{"<policy>":{replay JSON}}}
std::string DemoJson(const DemoResult& result);

// Routes SIGINT and SIGTERM to a flag the demo polls (instead of killing the process).
void InstallStopHandler();
bool StopRequested();

}  // namespace kvr::demo
