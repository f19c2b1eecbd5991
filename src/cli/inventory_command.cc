// Placeholder while the foundation is being assembled; replaced by the real inventory command.
#include "cli/commands.h"

namespace gpuslice::cli {

void AddInventoryCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("inventory", "GPUs, advertised resources and labels of a node");
  cmd->callback([exit_code] { *exit_code = 1; });
}

}  // namespace gpuslice::cli
