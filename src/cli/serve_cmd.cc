// kvrouter serve: the KV-aware gateway (src/gateway), configured by a YAML file whose fields
// the flags override.
#include <utility>  // before Asio

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/run_server.h"
#include "common/log.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "scheduler/policy.h"

namespace kvr::cli {
namespace {

struct ServeFlags {
  std::string config;
  std::optional<std::string> host;
  std::optional<uint16_t> port;
  std::optional<std::string> policy;
  std::string log_level = "info";
};

// Flags override the file; the result is checked as the file is.
absl::StatusOr<gateway::GatewayConfig> Configure(const ServeFlags& f) {
  absl::StatusOr<gateway::GatewayConfig> c = gateway::LoadConfig(f.config);
  if (!c.ok()) return c.status();
  if (f.host) c->host = *f.host;
  if (f.port) c->port = *f.port;
  if (f.policy) {
    if (absl::StatusOr<PolicySpec> spec = ParsePolicySpec(*f.policy); !spec.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--policy: ", spec.status().message()));
    }
    for (gateway::PoolConfig& p : c->pools) p.policy = *f.policy;
  }
  return c;
}

int RunServe(const ServeFlags& f) {
  SetLogLevel(f.log_level);
  absl::StatusOr<gateway::GatewayConfig> config = Configure(f);
  if (!config.ok()) {
    std::cerr << "serve: " << config.status().message() << "\n";
    return 2;
  }
  boost::asio::io_context io(1);
  auto gw = gateway::Gateway::Start(io, *std::move(config));
  if (!gw.ok()) {
    std::cerr << "serve: " << gw.status().message() << "\n";
    return gw.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  const int code = RunUntilDrained(io, (*gw)->ReadyLine(),
                                   [&](std::function<void()> done) { (*gw)->Shutdown(done); });
  gw->reset();
  return code;
}

}  // namespace

void RegisterServe(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand("serve", "the KV-aware gateway in front of engines");
  cmd->add_option("--config", f->config, "router YAML file (docs/CONFIG.md)")->required();
  cmd->add_option("--host", f->host, "listen address (overrides `listen`)");
  cmd->add_option("--port", f->port, "listen port, 0 for a free one (overrides `listen`)");
  cmd->add_option("--policy", f->policy, "policy spec for every pool, e.g. kvrouter[work_weight=2]");
  cmd->add_option("--log-level", f->log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str();
  cmd->callback([f, exit_code] { *exit_code = RunServe(*f); });
}

}  // namespace kvr::cli
