// The OCI createContainer hook on the host (docs/isolation.md "Deployment"). The runtime runs the
// hook the CDI spec names in the host's mount namespace, so it must be a host path of a binary
// that runs there: the static gpuslice-oci-hook, which the agent copies from its image into a
// host directory (as it does the shims), or an operator-installed binary given by --hook-path.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace gpuslice {

inline constexpr const char* kOciHookFileName = "gpuslice-oci-hook";
// --hook-dir's default: a host directory the DaemonSet mounts at the same path.
inline constexpr const char* kDefaultHostHookDir = "/var/lib/gpuslice/bin";

// Copies `<from_dir>/gpuslice-oci-hook` into `to_dir` (mode 0755; written beside its target
// and renamed over it, so a hook running from the old copy is not disturbed; an identical file
// is left alone). Returns the installed path; errors name the file and the flag.
Result<std::string> InstallOciHook(const std::string& from_dir, const std::string& to_dir);

// The CDI createContainer hook's argv for the agent's isolation spool and cgroup mount.
// `agent_subcommand`: the binary at `hook_path` takes the agent's `hook create-container` form
// (--hook-path: the agent itself, or gpuslice-oci-hook, which accepts it too); else the
// installed gpuslice-oci-hook's own `create-container`.
std::vector<std::string> OciHookCommand(const std::string& hook_path, bool agent_subcommand,
                                        const std::string& spool_dir,
                                        const std::string& cgroup_mount);

}  // namespace gpuslice
