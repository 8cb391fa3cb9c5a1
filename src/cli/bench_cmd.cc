#include "cli/commands.h"

namespace kvr::cli {

void RegisterBench(CLI::App& app, int* exit_code) {
  auto* bench = app.add_subcommand("bench", "Micro-benchmarks that print JSON");
  bench->require_subcommand(1);
  RegisterBenchIndex(*bench, exit_code);
  RegisterBenchRoute(*bench, exit_code);
  RegisterBenchJitter(*bench, exit_code);
  RegisterBenchTokenizer(*bench, exit_code);
  RegisterBenchPrepare(*bench, exit_code);
  RegisterBenchChat(*bench, exit_code);
}

}  // namespace kvr::cli
