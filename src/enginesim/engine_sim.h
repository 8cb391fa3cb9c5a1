// `kvrouter engine-sim`: one simulated vLLM engine, live. The pure engine model (src/engine) runs
// in real time (LiveEngine) behind vLLM's OpenAI-compatible HTTP API (src/http), and its KV events
// go out over ZeroMQ exactly as vLLM publishes them (src/events), with a replay socket. Fault
// flags make it misbehave on purpose, for the gateway's tests and users' chaos drills.
//
// Threading: one io_context thread runs everything; Start, ReadyLine and Shutdown are called
// on it (or before it runs).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "enginesim/live_engine.h"
#include "api/text_model.h"
#include "events/codec.h"

namespace kvr::enginesim {

struct FaultOptions {
  double drop_event_batches = 0;  // share of KV event batches not sent live (seq still advances)
  double fail_requests = 0;       // share of completion requests answered 500 before any byte
  int64_t stall_ms = 0;           // every response's first byte waits this long after arrival
  uint64_t exit_after = 0;        // the process dies abruptly during its Nth completion request
};

struct EngineSimOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::optional<uint16_t> kv_events_port;  // absent: no KV events
  std::optional<uint16_t> replay_port;     // absent: no replay socket
  std::string topic;
  size_t replay_buffer_steps = 10000;
  events::EncodeOptions wire;
  std::string model = "kvrouter-sim";
  engine::EngineConfig engine;
  double speedup = 1;
  int64_t dp_rank = 0;
  uint32_t max_model_len = 131072;
  size_t max_body_bytes = size_t{32} << 20;
  FaultOptions faults;
  uint64_t seed = 1;
  // Answer GET /server_info and /get_server_info as SGLang does (its server arguments at the top
  // level, this engine's step size as chunked_prefill_size); vLLM answers 404.
  bool sglang_server_info = false;
};

class EngineSim {
 public:
  static absl::StatusOr<std::unique_ptr<EngineSim>> Start(asio::io_context& io,
                                                          EngineSimOptions options,
                                                          std::unique_ptr<api::TextModel> text);
  ~EngineSim();

  // {"http":"127.0.0.1:P","kv_events":"tcp://...","replay":"tcp://...","speed":S} (null when
  // closed; S: the engine's speed factor).
  std::string ReadyLine() const;
  // Stops accepting; requests in flight run to their end, or are aborted (finish_reason "abort")
  // once `grace_ms` has passed; then `done` runs.
  void Shutdown(int64_t grace_ms, std::function<void()> done);

  class Impl;

 private:
  explicit EngineSim(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvr::enginesim
