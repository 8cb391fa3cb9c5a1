// kvrouter: one binary, subcommands (see docs/CLI.md for the contract).
#include <cstdio>

#include "cli/commands.h"

int main(int argc, char** argv) {
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
