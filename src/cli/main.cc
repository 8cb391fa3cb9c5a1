// kvrouter: one binary, subcommands (see docs/CLI.md for the contract).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>

#include "cli/commands.h"

namespace {

// Every stream through the gateway holds two sockets (client and engine), and a load test holds
// one per request in flight: a soft limit of 1,024 open files (Debian's default) would stop a
// gateway near 500 concurrent streams. Raise the soft limit to the hard one, as nginx's
// worker_rlimit_nofile does by hand; child processes (demo) inherit it.
void RaiseOpenFileLimit() {
  constexpr rlim_t kEnough = rlim_t{1} << 20;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t want = limit.rlim_max == RLIM_INFINITY ? kEnough : std::min(limit.rlim_max, kEnough);
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= want) return;
  limit.rlim_cur = want;
  (void)setrlimit(RLIMIT_NOFILE, &limit);  // on failure the old limit stays
}

}  // namespace

int main(int argc, char** argv) {
  RaiseOpenFileLimit();
  CLI::App app{"kvrouter: a KV-cache-aware request router for LLM inference engines"};
  app.require_subcommand(1);
  int exit_code = 0;
  kvr::cli::RegisterSimulate(app, &exit_code);
  kvr::cli::RegisterBench(app, &exit_code);
  kvr::cli::RegisterTokenize(app, &exit_code);
  kvr::cli::RegisterChatTemplate(app, &exit_code);
  kvr::cli::RegisterEngineSim(app, &exit_code);
  kvr::cli::RegisterServe(app, &exit_code);
  kvr::cli::RegisterKvEvents(app, &exit_code);
  kvr::cli::RegisterReplay(app, &exit_code);
  kvr::cli::RegisterDemo(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
