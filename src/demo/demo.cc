#include "demo/demo.h"

#include <utility>  // before Asio

#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "demo/process.h"
#include "http/client.h"
#include "nlohmann/json.hpp"

namespace kvr::demo {
namespace {

volatile sig_atomic_t stop_requested = 0;

void OnStopSignal(int) { stop_requested = 1; }

using Children = std::vector<std::unique_ptr<Child>>;

// A temporary directory, removed with everything in it when this goes.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/kvrouter-demo-XXXXXX";
    if (mkdtemp(pattern)) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Starts every llama-server on 127.0.0.1 port 0, then waits for each one's "listening on" log
// line (written once its model is loaded; they load in parallel). Returns {"http":"HOST:PORT"}s.
absl::StatusOr<std::vector<nlohmann::json>> StartLlamaServers(const DemoOptions& o,
                                                              Children& children) {
  const LlamaOptions& l = o.llama;
  for (uint32_t i = 0; i < o.workers; ++i) {
    std::vector<std::string> argv = {l.server,
                                     "-m",
                                     l.model,
                                     "--host",
                                     "127.0.0.1",
                                     "--port",
                                     "0",
                                     "--threads",
                                     absl::StrCat(l.threads),
                                     "-np",
                                     absl::StrCat(l.slots),
                                     "-c",
                                     absl::StrCat(uint64_t{l.slots} * l.ctx_per_slot),
                                     "--metrics",
                                     // Random weights emit text that is not valid UTF-8, which
                                     // llama-server then refuses to send (500); printable ASCII
                                     // only (costs ~30 ms a token of grammar checks).
                                     "--grammar",
                                     "root ::= [ -~]*",
                                     "--no-webui",
                                     "--log-colors",
                                     "off"};
    if (l.cache_ram_mib) {
      argv.push_back("--cache-ram");
      argv.push_back(absl::StrCat(*l.cache_ram_mib));
    }
    KVR_ASSIGN_OR_RETURN(auto child,
                         Child::Spawn(absl::StrCat("llama-server w", i), std::move(argv)));
    children.push_back(std::move(child));
  }
  constexpr std::string_view kListening = "listening on http://";
  std::vector<nlohmann::json> ready;
  for (auto& child : children) {
    KVR_ASSIGN_OR_RETURN(std::string line,
                         child->WaitForStderrLine(kListening, o.ready_timeout, StopRequested));
    std::string address = line.substr(line.find(kListening) + kListening.size());
    while (!address.empty() && (address.back() == '\r' || address.back() == ' ')) address.pop_back();
    nlohmann::json j;
    j["http"] = address;
    ready.push_back(std::move(j));
  }
  return ready;
}

// Starts every engine-sim, then waits for each readiness line (they load in parallel).
absl::StatusOr<std::vector<nlohmann::json>> StartEngines(const DemoOptions& o, Children& children) {
  if (o.engine == DemoEngine::kLlamaCpp) return StartLlamaServers(o, children);
  for (uint32_t i = 0; i < o.workers; ++i) {
    std::vector<std::string> argv = {o.exe,
                                     "engine-sim",
                                     "--port",
                                     "0",
                                     "--kv-events-port",
                                     "0",
                                     "--replay-port",
                                     "0",
                                     "--tokenizer",
                                     o.tokenizer,
                                     "--model",
                                     o.model,
                                     "--speedup",
                                     absl::StrCat(o.speedup),
                                     "--max-model-len",
                                     absl::StrCat(o.max_model_len),
                                     "--shutdown-grace-ms",
                                     "2000",
                                     "--log-level",
                                     "warn"};
    if (!o.speeds.empty()) {
      argv.push_back("--speed");
      argv.push_back(absl::StrCat(o.speeds[i % o.speeds.size()]));
    }
    KVR_ASSIGN_OR_RETURN(auto child,
                         Child::Spawn(absl::StrCat("engine-sim w", i), std::move(argv)));
    children.push_back(std::move(child));
  }
  std::vector<nlohmann::json> ready;
  for (auto& child : children) {
    KVR_ASSIGN_OR_RETURN(std::string line, child->ReadLine(o.ready_timeout, StopRequested));
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j["http"].is_string() || !j["kv_events"].is_string()) {
      return absl::UnavailableError(
          absl::StrCat(child->name(), " printed '", line, "', not a readiness line"));
    }
    ready.push_back(std::move(j));
  }
  return ready;
}

std::string RouterYaml(const DemoOptions& o, const std::vector<nlohmann::json>& engines) {
  std::string out =
      absl::StrCat("listen: 127.0.0.1:0\nengine_metrics_interval_ms: ", o.metrics_interval_ms,
                   "\npools:\n  - name: ", o.model, "\n    tokenizer: ", o.tokenizer,
                   "\n    block_size: 16\n    workers:\n");
  for (size_t i = 0; i < engines.size(); ++i) {
    absl::StrAppend(&out, "      - name: w", i, "\n        url: http://",
                    engines[i]["http"].get<std::string>(), "\n");
    if (o.engine == DemoEngine::kLlamaCpp) {
      // No KV events: approximate mode; the tokenizer check speaks llama.cpp's endpoints.
      absl::StrAppend(&out, "        engine: llama.cpp\n");
      // Slots only: the router can model them (slot_model.h). With a host prompt cache of
      // unknown reach it keeps predicted entries for a TTL.
      if (o.llama.slot_model && o.llama.cache_ram_mib == 0) {
        absl::StrAppend(&out, "        slots: ", o.llama.slots, "\n        prompt_cache_tokens: 0\n");
      }
    } else {
      absl::StrAppend(&out, "        kv_events: ", engines[i]["kv_events"].get<std::string>(),
                      "\n        replay: ", engines[i]["replay"].get<std::string>(), "\n");
    }
  }
  return out;
}

// Starts the gateway over the engines with `policy`; returns its URL.
absl::StatusOr<std::string> StartGateway(const DemoOptions& o, const std::string& policy,
                                         const std::vector<nlohmann::json>& engines,
                                         const TempDir& dir, Children& children) {
  if (dir.path().empty()) return absl::UnavailableError("cannot create a temporary directory");
  const std::string config = dir.path() + "/router.yaml";
  std::ofstream(config) << RouterYaml(o, engines);
  std::vector<std::string> argv = {o.exe,      "serve", "--config",    config,
                                   "--policy", policy,  "--log-level", "warn"};
  KVR_ASSIGN_OR_RETURN(auto child, Child::Spawn("gateway (" + policy + ")", std::move(argv)));
  children.push_back(std::move(child));
  KVR_ASSIGN_OR_RETURN(std::string line, children.back()->ReadLine(o.ready_timeout, StopRequested));
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object() || !j["http"].is_string()) {
    return absl::UnavailableError("the gateway printed '" + line + "', not a readiness line");
  }
  return "http://" + j["http"].get<std::string>();
}

// Replays the workload through `target`; a child that dies or a stop signal ends it early.
// Returns the child that died, if one did.
absl::StatusOr<replay::ReplayResult> Replay(const DemoOptions& o, const std::string& policy,
                                            const std::string& target, const sim::Workload& w,
                                            Children& children, Child** died) {
  boost::asio::io_context io(1);
  replay::ReplayOptions ro{.target = target, .model = o.model, .label = policy};
  ro.duration_s = 0;
  ro.drain_timeout_s = o.drain_timeout_s;
  ro.concurrency_limit = o.concurrency_limit;
  ro.progress = o.progress;
  KVR_ASSIGN_OR_RETURN(auto replayer, replay::Replayer::Create(io, std::move(ro), w));
  boost::asio::steady_timer watch(io);
  std::function<void()> check = [&] {
    for (auto& c : children) {
      if (!*died && c->Exited()) *died = c.get();
    }
    if (*died || StopRequested()) replayer->Stop();
    watch.expires_after(std::chrono::milliseconds(100));
    watch.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) check();
    });
  };
  check();
  std::optional<replay::ReplayResult> result;
  replayer->Start([&](replay::ReplayResult r) {
    result = std::move(r);
    io.stop();
  });
  io.run();
  return *std::move(result);
}

// What the gateway's /metrics says at the end of a run: kvrouter_cached_tokens_total{source},
// the tokens it predicted the engines would reuse ("router") and those they reported ("engine"),
// and its peak resident memory; -1: unread.
struct GatewayCounters {
  double router_cached = -1, engine_cached = -1, peak_rss_bytes = -1;
};

GatewayCounters ScrapeGateway(const std::string& target) {
  GatewayCounters out;
  absl::StatusOr<std::pair<std::string, uint16_t>> hp = http::ParseHttpUrl(target);
  if (!hp.ok()) return out;
  boost::asio::io_context io(1);
  auto pool = http::ClientPool::Create(io, {.host = hp->first, .port = hp->second});
  std::string text;
  auto scrape = [&]() -> boost::asio::awaitable<void> {
    http::ClientRequest request;
    request.method = "GET";
    request.target = "/metrics";
    auto response = co_await pool->Send(std::move(request));
    if (response.ok()) {
      auto body = co_await (*response)->ReadAll();
      if (body.ok()) text = *std::move(body);
    }
    io.stop();
  };
  boost::asio::co_spawn(io, scrape, boost::asio::detached);
  io.run_for(std::chrono::seconds(10));
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const double v = std::strtod(line.substr(line.rfind(' ') + 1).c_str(), nullptr);
    if (line.starts_with("process_resident_memory_max_bytes ")) out.peak_rss_bytes = v;
    if (!line.starts_with("kvrouter_cached_tokens_total{")) continue;
    if (line.find("source=\"router\"") != std::string::npos) out.router_cached = v;
    if (line.find("source=\"engine\"") != std::string::npos) out.engine_cached = v;
  }
  return out;
}

// Gateway first (it drains its streams), then the engines; all reaped.
void StopAll(Children& children) {
  for (auto it = children.rbegin(); it != children.rend(); ++it) {
    (*it)->Stop(std::chrono::milliseconds(3000));
  }
  children.clear();
}

absl::StatusOr<replay::ReplayResult> RunPolicy(const DemoOptions& o, const std::string& policy,
                                               const sim::Workload& w) {
  Children children;  // killed and reaped on every return
  TempDir dir;
  if (o.log) {
    o.log(absl::StrCat(policy, ": starting ", o.workers,
                       o.engine == DemoEngine::kLlamaCpp ? " llama-servers" : " engine-sims",
                       " and a gateway"));
  }
  KVR_ASSIGN_OR_RETURN(auto engines, StartEngines(o, children));
  if (o.log && !o.speeds.empty()) {
    // As the engines report them: what they run at, not what was asked.
    std::string speeds;
    for (const nlohmann::json& e : engines) {
      absl::StrAppend(&speeds, speeds.empty() ? "" : ",",
                      e.contains("speed") ? e["speed"].dump() : "?");
    }
    o.log(absl::StrCat(policy, ": engine speeds ", speeds));
  }
  KVR_ASSIGN_OR_RETURN(std::string target, StartGateway(o, policy, engines, dir, children));
  if (o.log) o.log(absl::StrCat(policy, ": replaying ", w.requests.size(), " requests"));
  Child* died = nullptr;
  KVR_ASSIGN_OR_RETURN(replay::ReplayResult r, Replay(o, policy, target, w, children, &died));
  if (!died) {
    const GatewayCounters g = ScrapeGateway(target);
    r.summary.extra.emplace_back("router_cached_tokens", g.router_cached);
    r.summary.extra.emplace_back("engine_cached_tokens", g.engine_cached);
    r.summary.extra.emplace_back("gateway_peak_rss_mib",
                                 g.peak_rss_bytes < 0 ? -1 : g.peak_rss_bytes / (1 << 20));
  }
  if (died && !StopRequested()) {  // Ctrl-C reaches the children too: not a failure
    return absl::UnavailableError(absl::StrCat(died->name(), " ", died->Describe(), " during the ",
                                               policy, " run; its stderr ends:\n",
                                               died->StderrTail()));
  }
  StopAll(children);
  return r;
}

void AddRun(replay::ReplayResult run, DemoResult* out) {
  sim::PolicyResult summary = run.summary;
  summary.extra.emplace_back("completed", static_cast<double>(run.completed));
  summary.extra.emplace_back("errors", static_cast<double>(run.failed + run.cancelled));
  summary.extra.emplace_back("held_back", static_cast<double>(run.held_back));
  out->report.policies.push_back(std::move(summary));
  out->runs.push_back(std::move(run));
}

}  // namespace

void InstallStopHandler() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool StopRequested() { return stop_requested != 0; }

absl::StatusOr<DemoResult> RunDemo(const DemoOptions& options, const sim::Workload& workload) {
  DemoResult out;
  out.report.title = "kvrouter demo";
  sim::DescribeWorkload(workload, 16, &out.report);
  for (const std::string& policy : options.policies) {
    absl::StatusOr<replay::ReplayResult> run = RunPolicy(options, policy, workload);
    if (!run.ok() && StopRequested()) break;
    if (!run.ok()) return run.status();
    const bool interrupted = run->interrupted;
    AddRun(*std::move(run), &out);
    if (interrupted || StopRequested()) break;
  }
  out.interrupted = StopRequested();
  return out;
}

std::string DemoJson(const DemoResult& result) {
  auto j = nlohmann::ordered_json::parse(sim::ReportJson(result.report));
  nlohmann::ordered_json policies = nlohmann::ordered_json::object();
  for (const replay::ReplayResult& run : result.runs) {
    policies[run.summary.policy] = replay::ReplayJsonValue(run);
  }
  j["policies"] = std::move(policies);
  j["interrupted"] = result.interrupted;
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace kvr::demo
