// gpuslice: inventory, simulation, MIG planning and sharing a GPU without Kubernetes.
// A thin composition root: each subcommand lives in its own *_command.cc.
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"gpuslice: share NVIDIA GPUs between Kubernetes workloads", "gpuslice"};
  app.require_subcommand(1);
  int exit_code = 0;
  gpuslice::cli::AddInventoryCommand(app, &exit_code);
  gpuslice::cli::AddSimulateCommand(app, &exit_code);
  gpuslice::cli::AddRunCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
