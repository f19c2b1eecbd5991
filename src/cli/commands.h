// The `gpuslice` CLI's subcommands. Each Add*Command registers one subcommand on the app and
// sets its callback; the callback's exit code is stored in `*exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace gpuslice::cli {

void AddInventoryCommand(CLI::App& app, int* exit_code);
void AddSimulateCommand(CLI::App& app, int* exit_code);
void AddRunCommand(CLI::App& app, int* exit_code);

}  // namespace gpuslice::cli
