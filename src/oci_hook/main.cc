// gpuslice-oci-hook: the OCI createContainer hook, standalone and statically linked, so the
// container runtime can run it on the host (docs/isolation.md "Deployment").
//   gpuslice-oci-hook create-container --spool-dir DIR --cgroup-mount DIR < state.json
// The same command line as `gpuslice-node-agent hook create-container`; a leading `hook` word
// is accepted too, so a CDI spec written for the agent's subcommand runs unchanged.
#include <iostream>
#include <string_view>

#include "isolation/oci_hook_cli.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "hook") {
    argv[1] = argv[0];
    return gpuslice::RunOciHookCommand(argc - 1, argv + 1, std::cin, std::cerr);
  }
  return gpuslice::RunOciHookCommand(argc, argv, std::cin, std::cerr);
}
