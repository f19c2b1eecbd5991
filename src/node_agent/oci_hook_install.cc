#include "node_agent/oci_hook_install.h"

#include <filesystem>

#include "node_agent/atomic_file.h"

namespace gpuslice {

Result<std::string> InstallOciHook(const std::string& from_dir, const std::string& to_dir) {
  namespace fs = std::filesystem;
  const fs::path from = fs::path(from_dir) / kOciHookFileName;
  std::error_code ec;
  if (!fs::is_regular_file(from, ec)) {
    return FailedPrecondition("--install-hook-from " + from_dir + ": " + from.string() +
                              " is not a regular file; give the directory of the image that "
                              "holds gpuslice-oci-hook (cmake --install: <prefix>/libexec/"
                              "gpuslice), or install a hook yourself and pass --hook-path");
  }
  if (to_dir.empty()) return InvalidArgument("--hook-dir is empty; give a host directory");
  const std::string to = (fs::path(to_dir) / kOciHookFileName).string();
  GPUSLICE_RETURN_IF_ERROR(InstallFileAtomically(from.string(), to, 0755)
                               .WithContext("installing the OCI hook into --hook-dir " + to_dir));
  return to;
}

std::vector<std::string> OciHookCommand(const std::string& hook_path, bool agent_subcommand,
                                        const std::string& spool_dir,
                                        const std::string& cgroup_mount) {
  std::vector<std::string> argv{hook_path};
  if (agent_subcommand) argv.push_back("hook");
  for (const char* word : {"create-container", "--spool-dir"}) argv.emplace_back(word);
  argv.push_back(spool_dir);
  argv.push_back("--cgroup-mount");
  argv.push_back(cgroup_mount);
  return argv;
}

}  // namespace gpuslice
