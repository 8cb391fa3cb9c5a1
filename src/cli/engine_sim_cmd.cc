// kvrouter engine-sim: a simulated vLLM engine over real HTTP and ZeroMQ (see docs/CLI.md).
// Prints one JSON line on stdout when ready ({"http":..,"kv_events":..,"replay":..,"speed":..}),
// logs on stderr, and exits 0 after SIGTERM/SIGINT once requests in flight have finished (or been
// aborted after --shutdown-grace-ms).
#include <utility>  // before Asio (g++ 12 coroutines)

#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/run_server.h"
#include "common/log.h"
#include "enginesim/engine_sim.h"

namespace kvr::cli {
namespace {

struct EngineSimFlags {
  enginesim::EngineSimOptions options;
  int kv_events_port = -1, replay_port = -1;
  std::string tokenizer, chat_template, preset = "default", format = "map", hash_kind = "int";
  uint32_t block_size = 16;
  uint32_t max_num_batched_tokens = 0;  // 0: the preset's
  double speed = 1;
  int64_t shutdown_grace_ms = 10000;
  std::string log_level = "info";
};

absl::Status Configure(EngineSimFlags& f) {
  enginesim::EngineSimOptions& o = f.options;
  KVR_ASSIGN_OR_RETURN(o.engine, engine::EnginePreset(f.preset));
  if (f.block_size == 0) return absl::InvalidArgumentError("--block-size must be positive");
  engine::SetBlockSize(o.engine, f.block_size);  // the preset's KV capacity in tokens kept
  if (f.max_num_batched_tokens > 0) o.engine.max_num_batched_tokens = f.max_num_batched_tokens;
  o.engine.speed *= f.speed;
  o.engine.worker = WorkerId(static_cast<uint32_t>(o.dp_rank));
  if (f.kv_events_port >= 0) o.kv_events_port = static_cast<uint16_t>(f.kv_events_port);
  if (f.replay_port >= 0) o.replay_port = static_cast<uint16_t>(f.replay_port);
  if (o.replay_port && !o.kv_events_port) {
    return absl::InvalidArgumentError("--replay-port needs --kv-events-port");
  }
  if (f.format != "map" && f.format != "array") {
    return absl::InvalidArgumentError("--kv-events-format must be map or array");
  }
  o.wire.format = f.format == "map" ? events::WireFormat::kMap : events::WireFormat::kArray;
  if (f.hash_kind != "int" && f.hash_kind != "bytes") {
    return absl::InvalidArgumentError("--kv-hash-kind must be int or bytes");
  }
  o.wire.hash_kind = f.hash_kind == "int" ? events::HashKind::kInt : events::HashKind::kBytes;
  for (double p : {o.faults.drop_event_batches, o.faults.fail_requests}) {
    if (!(p >= 0 && p <= 1)) return absl::InvalidArgumentError("fault shares must be in [0, 1]");
  }
  return absl::OkStatus();
}

int RunEngineSim(EngineSimFlags& f) {
  SetLogLevel(f.log_level);
  if (absl::Status s = Configure(f); !s.ok()) {
    std::cerr << "engine-sim: " << s.message() << "\n";
    return 2;
  }
  auto text = api::TextModel::Load({.tokenizer_path = f.tokenizer,
                                          .chat_template_file = f.chat_template});
  if (!text.ok()) {
    std::cerr << "engine-sim: " << text.status().message() << "\n";
    return 2;
  }
  boost::asio::io_context io(1);
  auto sim = enginesim::EngineSim::Start(io, f.options, std::move(*text));
  if (!sim.ok()) {
    std::cerr << "engine-sim: " << sim.status().message() << "\n";
    return 1;
  }
  const int code = RunUntilDrained(io, (*sim)->ReadyLine(), [&](std::function<void()> done) {
    (*sim)->Shutdown(f.shutdown_grace_ms, done);
  });
  sim->reset();
  return code;
}

}  // namespace

void RegisterEngineSim(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<EngineSimFlags>();
  enginesim::EngineSimOptions& o = flags->options;
  CLI::App* cmd = app.add_subcommand("engine-sim", "a simulated vLLM engine: HTTP + ZMQ KV events");
  cmd->add_option("--host", o.host, "listen address")->capture_default_str();
  cmd->add_option("--port", o.port, "HTTP port (0: a free one)")->capture_default_str();
  cmd->add_option("--kv-events-port", flags->kv_events_port,
                  "ZMQ PUB port for KV events (0: a free one; absent: no events)");
  cmd->add_option("--replay-port", flags->replay_port,
                  "ZMQ ROUTER port answering replay requests (0: a free one; absent: none)");
  cmd->add_option("--replay-buffer-steps", o.replay_buffer_steps,
                  "event batches kept for replay")->capture_default_str();
  cmd->add_option("--topic", o.topic, "ZMQ topic of KV event messages")->capture_default_str();
  cmd->add_option("--kv-events-format", flags->format,
                  "map (vLLM >= 0.26 tagged maps) or array (older tagged arrays)")
      ->capture_default_str();
  cmd->add_option("--kv-hash-kind", flags->hash_kind, "block hashes as int (u64) or bytes")
      ->capture_default_str();
  cmd->add_option("--model", o.model, "served model name")->capture_default_str();
  cmd->add_option("--tokenizer", flags->tokenizer,
                  "tokenizer.json or a folder with it (default: one token per byte)");
  cmd->add_option("--chat-template", flags->chat_template,
                  "Jinja chat template file (default: the tokenizer folder's, else ChatML)");
  cmd->add_option("--block-size", flags->block_size, "KV block size in tokens")->capture_default_str();
  cmd->add_option("--preset", flags->preset, "engine preset: default, fast, slow, small-memory, test")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", flags->max_num_batched_tokens,
                  "most tokens computed in one step (default: the preset's, 8192 but for test)");
  cmd->add_flag("--sglang-server-info", o.sglang_server_info,
                "answer GET /server_info as SGLang does (its step size as chunked_prefill_size)");
  cmd->add_option("--speed", flags->speed, "engine speed factor (step times divided by it)")
      ->capture_default_str();
  cmd->add_option("--speedup", o.speedup, "wall time runs this many times faster than modelled time")
      ->capture_default_str();
  cmd->add_option("--dp-rank", o.dp_rank, "data-parallel rank (in event batches and metric labels)")
      ->capture_default_str();
  cmd->add_option("--max-model-len", o.max_model_len, "context length in tokens")->capture_default_str();
  cmd->add_option("--max-body-bytes", o.max_body_bytes, "largest request body")->capture_default_str();
  cmd->add_option("--seed", o.seed, "seed of the fault injection and response ids")->capture_default_str();
  cmd->add_option("--drop-event-batches", o.faults.drop_event_batches,
                  "fault: share of KV event batches not published (sequence numbers advance)");
  cmd->add_option("--fail-requests", o.faults.fail_requests,
                  "fault: share of completion requests answered HTTP 500 before any byte");
  cmd->add_option("--stall-ms", o.faults.stall_ms, "fault: hold every response's first byte");
  cmd->add_option("--exit-after", o.faults.exit_after,
                  "fault: exit abruptly during the Nth completion request (mid-stream if streaming)");
  cmd->add_option("--shutdown-grace-ms", flags->shutdown_grace_ms,
                  "on SIGTERM, abort requests still running after this long")->capture_default_str();
  cmd->add_option("--log-level", flags->log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str();
  cmd->callback([flags, exit_code] { *exit_code = RunEngineSim(*flags); });
}

}  // namespace kvr::cli
