// kvrouter simulate: every policy side by side over one workload, in virtual time.
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/data_files.h"
#include "engine/engine.h"
#include "sim/generators.h"
#include "sim/report.h"
#include "sim/simulator.h"
#include "sim/sweep.h"
#include "sim/trace.h"
#include "sim/workload.h"

namespace kvr::cli {
namespace {

constexpr double kDefaultMetricsIntervalMs = double(sim::kDefaultMetricsInterval) / kNsPerMs;

struct SimulateFlags {
  std::string trace, workload, policies, engine_preset = "default", speeds, json, html, sweep,
                                         burst, requests_out;
  uint32_t workers = 8;
  double rate_scale = 1.0, event_delay_ms = 5, predict_ttl_s = 2,
         metrics_interval_ms = kDefaultMetricsIntervalMs, gen_rate = 4.0, time_scale = 1.0;
  uint32_t block_size = 0;  // 0: the preset's
  uint64_t seed = 1;
  size_t requests = 0;
  bool quiet = false;
  bool explain = false;           // --explain: each request's line carries its routing decision
  bool rate_scale_given = false;  // --rate-scale on the command line
};

absl::StatusOr<sim::Workload> LoadWorkload(const SimulateFlags& f) {
  KVR_ASSIGN_OR_RETURN(sim::Workload w, cli::LoadWorkload({.trace = f.trace,
                                                           .generator = f.workload,
                                                           .requests = f.requests,
                                                           .rate_scale = f.rate_scale,
                                                           .gen_rate = f.gen_rate,
                                                           .seed = f.seed}));
  if (f.time_scale != 1) sim::CompressTime(w, f.time_scale);
  if (!f.burst.empty()) {
    std::vector<std::string> parts = absl::StrSplit(f.burst, ',');
    double period = 0, duty = 0;
    if (parts.size() != 2 || !absl::SimpleAtod(parts[0], &period) ||
        !absl::SimpleAtod(parts[1], &duty)) {
      return absl::InvalidArgumentError("--burst: want PERIOD_S,DUTY (e.g. 10,0.2)");
    }
    absl::Status s = sim::CompressIntoBursts(w, period, duty);
    if (!s.ok()) return absl::InvalidArgumentError("--burst: " + std::string(s.message()));
  }
  return w;
}

absl::StatusOr<sim::SimConfig> MakeConfig(const SimulateFlags& f) {
  sim::SimConfig c;
  c.workers = f.workers;
  KVR_ASSIGN_OR_RETURN(c.engine, engine::EnginePreset(f.engine_preset));
  if (f.block_size > 0) engine::SetBlockSize(c.engine, f.block_size);
  KVR_ASSIGN_OR_RETURN(c.speeds, ParseSpeeds(f.speeds));
  c.event_delay = TimeNs(f.event_delay_ms * double(kNsPerMs));
  c.metrics_interval = TimeNs(f.metrics_interval_ms * double(kNsPerMs));
  c.seed = f.seed;
  c.record_requests = !f.requests_out.empty();
  c.explain_requests = f.explain;
  c.predict_ttl =
      f.predict_ttl_s > 0 ? TimeNs(f.predict_ttl_s * double(kNsPerSec)) : PredictConfig::kNoTtl;
  return c;
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) return absl::UnavailableError("cannot write " + path);
  return absl::OkStatus();
}

// Splits "a,b[x=1,y=2],c" on the commas outside brackets.
std::vector<std::string> SplitPolicies(const std::string& list) {
  std::vector<std::string> out(1);
  int depth = 0;
  for (char ch : list) {
    depth += ch == '[' ? 1 : ch == ']' ? -1 : 0;
    if (ch == ',' && depth == 0) {
      out.emplace_back();
    } else {
      out.back() += ch;
    }
  }
  std::erase_if(out, [](const std::string& s) { return s.empty(); });
  return out;
}

absl::StatusOr<std::vector<std::string>> PolicyLabels(const SimulateFlags& f) {
  std::vector<std::string> policies =
      f.policies.empty() ? PolicyNames() : SplitPolicies(f.policies);
  for (auto& p : policies) {
    KVR_ASSIGN_OR_RETURN(PolicySpec spec, ParsePolicySpec(p));
    p = spec.label;  // aliases reported under their canonical name
  }
  return policies;
}

void AddSettings(const SimulateFlags& f, sim::Report* report) {
  report->settings.emplace_back("workers", std::to_string(f.workers));
  report->settings.emplace_back("rate_scale", std::to_string(f.rate_scale));
  report->settings.emplace_back("engine_preset", f.engine_preset);
  report->settings.emplace_back("speeds", f.speeds.empty() ? "1" : f.speeds);
  report->settings.emplace_back("event_delay_ms", std::to_string(f.event_delay_ms));
  report->settings.emplace_back("metrics_interval_ms", std::to_string(f.metrics_interval_ms));
  report->settings.emplace_back("seed", std::to_string(f.seed));
  if (!f.burst.empty()) report->settings.emplace_back("burst", f.burst);
  if (f.time_scale != 1) report->settings.emplace_back("time_scale", std::to_string(f.time_scale));
  if (f.block_size > 0) report->settings.emplace_back("block_size", std::to_string(f.block_size));
  if (f.predict_ttl_s != 2)
    report->settings.emplace_back("predict_ttl_s", std::to_string(f.predict_ttl_s));
}

// Loads the workload at f.rate_scale and runs every policy over it; each policy's requests go
// to `requests_out` (if not null) as its run ends.
absl::StatusOr<sim::Report> RunPolicies(const SimulateFlags& f,
                                        const std::vector<std::string>& policies,
                                        const sim::SimConfig& config, std::ostream* requests_out) {
  if (!f.quiet) std::cerr << "simulate: loading workload...\n";
  KVR_ASSIGN_OR_RETURN(sim::Workload w, LoadWorkload(f));
  sim::Report report;
  sim::DescribeWorkload(w, config.engine.block_size, &report);
  AddSettings(f, &report);
  auto hashes = sim::HashWorkload(w, config.engine.block_size);
  const bool tty = isatty(STDERR_FILENO);
  sim::ProgressFn progress = [&](const std::string& p, uint64_t done, uint64_t total, TimeNs t) {
    std::cerr << (tty ? "\r" : "") << "simulate: " << p << " " << done << "/" << total
              << " requests, t=" << t / kNsPerSec << "s" << (tty ? "   " : "\n") << std::flush;
  };
  for (const auto& p : policies) {
    KVR_ASSIGN_OR_RETURN(sim::PolicyResult r,
                         sim::RunPolicy(w, config, p, &hashes, f.quiet ? nullptr : progress));
    if (!f.quiet && tty) std::cerr << "\n";
    if (requests_out != nullptr) {
      *requests_out << sim::RequestRecordsJsonl(r, f.rate_scale, config.speeds);
      if (!*requests_out) return absl::UnavailableError("cannot write " + f.requests_out);
      r.records = {};
    }
    report.policies.push_back(std::move(r));
  }
  return report;
}

// One run per swept rate, one after another: each value is the run's --rate-scale (generators:
// a multiplier of --rate). Prints each run's table as it ends, then the compact table.
absl::Status Sweep(const SimulateFlags& f, const std::vector<std::string>& policies,
                   const sim::SimConfig& config, std::ostream* requests_out) {
  if (f.rate_scale_given) {
    return absl::InvalidArgumentError(
        "--sweep rate=... and --rate-scale conflict: each swept value is the rate scale");
  }
  KVR_ASSIGN_OR_RETURN(sim::SweepSpec spec, sim::ParseSweep(f.sweep));
  sim::SweepReport sweep{.spec = spec};
  for (size_t i = 0; i < spec.values.size(); ++i) {
    SimulateFlags run = f;
    run.rate_scale = spec.values[i];
    if (!f.quiet) {
      std::cerr << "simulate: sweep run " << i + 1 << "/" << spec.values.size() << ", "
                << spec.parameter << "=" << spec.values[i] << "\n";
    }
    KVR_ASSIGN_OR_RETURN(sim::Report report, RunPolicies(run, policies, config, requests_out));
    std::cout << "== " << spec.parameter << "=" << spec.values[i] << " ==\n"
              << sim::ReportTable(report) << "\n"
              << std::flush;
    sweep.runs.push_back(std::move(report));
  }
  std::cout << sim::SweepTable(sweep);
  if (!f.json.empty()) KVR_RETURN_IF_ERROR(WriteFile(f.json, sim::SweepJson(sweep)));
  if (!f.html.empty()) KVR_RETURN_IF_ERROR(WriteFile(f.html, sim::SweepHtml(sweep)));
  return absl::OkStatus();
}

absl::Status Simulate(const SimulateFlags& f) {
  KVR_ASSIGN_OR_RETURN(std::vector<std::string> policies, PolicyLabels(f));
  KVR_ASSIGN_OR_RETURN(sim::SimConfig config, MakeConfig(f));
  // Opened first: a path that cannot be written fails before the runs, not after.
  std::ofstream requests_file;
  std::ostream* requests_out = nullptr;
  if (!f.requests_out.empty()) {
    requests_file.open(f.requests_out);
    if (!requests_file) return absl::UnavailableError("cannot write " + f.requests_out);
    requests_out = &requests_file;
  }
  if (!f.sweep.empty()) return Sweep(f, policies, config, requests_out);
  KVR_ASSIGN_OR_RETURN(sim::Report report, RunPolicies(f, policies, config, requests_out));
  std::cout << sim::ReportTable(report);
  if (!f.json.empty()) KVR_RETURN_IF_ERROR(WriteFile(f.json, sim::ReportJson(report)));
  if (!f.html.empty()) KVR_RETURN_IF_ERROR(WriteFile(f.html, sim::ReportHtml(report)));
  return absl::OkStatus();
}

}  // namespace

void RegisterSimulate(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<SimulateFlags>();
  auto* cmd = app.add_subcommand("simulate", "Offline fleet simulation, every policy side by side");
  auto* trace = cmd->add_option(
      "--trace", f->trace,
      std::string("Mooncake JSONL trace (default: the bundled ") + kBundledTrace +
          "; also bundled: " + kSyntheticTrace +
          ", high prefix reuse; a relative path is looked up in the working directory, beside "
          "this binary, then in the source tree)");
  cmd->add_option("--workload", f->workload,
                  "Generated workload: chat, system_prompts, agentic, rag")
      ->excludes(trace);
  cmd->add_option("--workers", f->workers, "Engines in the fleet")->check(CLI::Range(1u, 1024u));
  cmd->add_option("--policies", f->policies, "Comma-separated policies (default: all)");
  auto* rate_scale = cmd->add_option("--rate-scale", f->rate_scale, "Arrival-rate multiplier")
                         ->check(CLI::PositiveNumber);
  cmd->add_option("--requests", f->requests, "Use the first N requests (generators: N)");
  cmd->add_option("--rate", f->gen_rate, "Generators: mean arrivals per second")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--burst", f->burst,
                  "PERIOD_S,DUTY: squeeze each period's arrivals into its first DUTY fraction "
                  "(same mean rate, 1/DUTY peak; any trace or workload)");
  cmd->add_option("--time-scale", f->time_scale,
                  "Divide every arrival time by this factor after loading: a generator's session "
                  "starts and think times alike, as `demo --rate-scale` does")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--engine-preset", f->engine_preset, "default, fast, slow, small-memory, test");
  cmd->add_option("--block-size", f->block_size,
                  "KV block size in tokens, the preset's capacity in tokens kept (engine-sim's "
                  "default: 16)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--speeds", f->speeds, "Per-engine speed factors, cycled (e.g. 1,0.5)");
  cmd->add_option("--event-delay-ms", f->event_delay_ms, "KV event delay to the router")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--metrics-interval-ms", f->metrics_interval_ms,
                  "Engines report /metrics this often (0: never; default: llm-d's 50 ms scrape)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--predict-ttl-s", f->predict_ttl_s,
                  "TTL of the router's predict-on-route index entries (0: none)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", f->seed, "Seed (token synthesis, generators, random policies)");
  cmd->add_option("--json", f->json, "Write the JSON report here");
  cmd->add_option("--html", f->html, "Write the HTML report here");
  cmd->add_option("--sweep", f->sweep,
                  "Load sweep, one run per value, e.g. rate=0.5,1,2,4 (each value is the run's "
                  "--rate-scale; generators: a multiplier of --rate); the JSON and HTML reports "
                  "then hold every run, and the HTML plots TTFT against load");
  auto* requests_out =
      cmd->add_option("--requests-out", f->requests_out,
                      "Write every request of every run here, a JSON line each: policy, engine, "
                      "TTFT, cached tokens, and the prefix it found cached nowhere or elsewhere "
                      "(docs/CLI.md)");
  cmd->add_flag("--explain", f->explain,
                "With --requests-out: each request's line also holds its routing decision, every "
                "candidate engine with the policy's cost and terms (docs/CLI.md)")
      ->needs(requests_out);
  cmd->add_flag("--quiet", f->quiet, "No progress on stderr");
  cmd->callback([f, exit_code, rate_scale] {
    f->rate_scale_given = rate_scale->count() > 0;
    absl::Status s = Simulate(*f);
    if (!s.ok()) {
      std::cerr << "simulate: " << s.message() << "\n";
      *exit_code = 2;
    }
  });
}

}  // namespace kvr::cli
