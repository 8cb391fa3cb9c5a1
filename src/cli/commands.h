// One function per subcommand file: each adds its CLI11 subcommand (flags live only in cli/) and
// sets the callback that runs it. The callback stores the process exit code in *exit_code.
#pragma once

#include <CLI/CLI.hpp>

namespace kvr::cli {

void RegisterBench(CLI::App& app, int* exit_code);
void RegisterSimulate(CLI::App& app, int* exit_code);
void RegisterBenchIndex(CLI::App& bench, int* exit_code);
void RegisterBenchRoute(CLI::App& bench, int* exit_code);
void RegisterBenchJitter(CLI::App& bench, int* exit_code);
void RegisterTokenize(CLI::App& app, int* exit_code);
void RegisterBenchTokenizer(CLI::App& bench, int* exit_code);
void RegisterBenchPrepare(CLI::App& bench, int* exit_code);
void RegisterChatTemplate(CLI::App& app, int* exit_code);
void RegisterEngineSim(CLI::App& app, int* exit_code);
void RegisterKvEvents(CLI::App& app, int* exit_code);
void RegisterServe(CLI::App& app, int* exit_code);
void RegisterBenchChat(CLI::App& bench, int* exit_code);
void RegisterReplay(CLI::App& app, int* exit_code);
void RegisterDemo(CLI::App& app, int* exit_code);

}  // namespace kvr::cli
