// kvrouter replay: drives a live router (or one engine) with a trace's requests at their arrival
// times and reports what the streams showed (src/replay). Exit status: 0 when every request sent
// completed; 1 when one failed or was cancelled at the drain bound; 2 on bad flags or an
// unreadable workload; 130 after Ctrl-C (what was measured is still printed and written).
#include <unistd.h>

#include <utility>  // before Asio

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "cli/data_files.h"
#include "cli/replay_output.h"
#include "replay/replayer.h"

namespace kvr::cli {
namespace {

struct ReplayFlags {
  WorkloadSource source;
  replay::ReplayOptions options;
  std::string json;
  bool quiet = false;
};

void PrintProgress(const replay::ReplayProgress& p) { PrintReplayProgress("replay:", p); }

int ExitCode(const replay::ReplayResult& r) {
  if (r.interrupted) return 130;
  return r.failed > 0 || r.cancelled > 0 ? 1 : 0;
}

int RunReplay(ReplayFlags& f) {
  absl::StatusOr<sim::Workload> workload = LoadWorkload(f.source);
  if (!workload.ok()) {
    std::cerr << "replay: " << workload.status().message() << "\n";
    return 2;
  }
  if (!f.quiet) f.options.progress = PrintProgress;
  boost::asio::io_context io(1);
  auto replayer = replay::Replayer::Create(io, f.options, *std::move(workload));
  if (!replayer.ok()) {
    std::cerr << "replay: " << replayer.status().message() << "\n";
    return 2;
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) (*replayer)->Stop();
  });
  std::optional<replay::ReplayResult> result;
  (*replayer)->Start([&](replay::ReplayResult r) {
    result = std::move(r);
    io.stop();  // a request left behind by the drain bound must not hold us
  });
  io.run();
  if (!f.quiet && isatty(STDERR_FILENO)) std::cerr << "\n";
  std::cout << replay::ReplaySummary(*result) << std::flush;
  if (!f.json.empty()) {
    if (absl::Status s = WriteText(f.json, replay::ReplayJson(*result)); !s.ok()) {
      std::cerr << "replay: " << s.message() << "\n";
      return 2;
    }
  }
  return ExitCode(*result);
}

}  // namespace

void RegisterReplay(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<ReplayFlags>();
  replay::ReplayOptions& o = f->options;
  WorkloadSource& s = f->source;
  auto* cmd = app.add_subcommand("replay", "Drive a live router with a trace, measure the streams");
  cmd->add_option("--target", o.target, "The router's (or an engine's) URL, http://HOST:PORT")
      ->required();
  cmd->add_option("--model", o.model, "Model name sent in each request")->required();
  auto* trace = cmd->add_option(
      "--trace", s.trace,
      std::string("Mooncake JSONL trace (default: the bundled ") + kBundledTrace + ")");
  cmd->add_option("--workload", s.generator, "Generated workload: chat, system_prompts, agentic")
      ->excludes(trace);
  cmd->add_option("--rate-scale", s.rate_scale, "Arrival-rate multiplier (divides the gaps)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--requests", s.requests,
                  "Send the first N requests (default: all; "
                  "generators: 2000)");
  cmd->add_option("--rate", s.gen_rate, "Generators: mean arrivals per second")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--seed", s.seed, "Seed of token synthesis and generators")
      ->capture_default_str();
  cmd->add_option("--duration", o.duration_s, "Send for at most this many seconds (0: no bound)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--drain-timeout", o.drain_timeout_s,
                  "Then let requests in flight finish for this long before cancelling them")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--concurrency-limit", o.concurrency_limit,
                  "Most requests in flight; more wait (the lag is reported)")
      ->check(CLI::Range(size_t{1}, size_t{100000}))
      ->capture_default_str();
  cmd->add_option("--timeout", o.request_timeout_s, "Longest silence inside one response, seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--json", f->json, "Write the JSON result here");
  cmd->add_flag("--quiet", f->quiet, "No progress line on stderr");
  cmd->callback([f, exit_code] { *exit_code = RunReplay(*f); });
}

}  // namespace kvr::cli
