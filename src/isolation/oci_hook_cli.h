// The createContainer hook's command line, shared by `gpuslice-node-agent hook ...` and the
// static `gpuslice-oci-hook` the agent installs on the host (docs/isolation.md):
//   create-container [--spool-dir DIR] [--proc-root DIR] [--cgroup-mount DIR] [--timeout-ms N]
// with the OCI state on stdin. This library links only the standard library and header-only
// parsers (no gRPC, protobuf or spdlog), because the runtime runs the hook on the host.
#pragma once

#include <istream>
#include <ostream>

namespace gpuslice {

// Parses `argv` (argv[0] is the command's name, argv[1] the subcommand), reads the OCI state from
// `state_in` and runs RunCreateContainerHook. Returns the process exit status: 0 lets the
// container start; 1 refuses it (the reason on `errors`); CLI11's status for bad flags.
int RunOciHookCommand(int argc, char** argv, std::istream& state_in, std::ostream& errors);

}  // namespace gpuslice
