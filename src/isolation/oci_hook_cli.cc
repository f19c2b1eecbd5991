#include "isolation/oci_hook_cli.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <iterator>
#include <string>

#include "isolation/oci_hook.h"

namespace gpuslice {

int RunOciHookCommand(int argc, char** argv, std::istream& state_in, std::ostream& errors) {
  CLI::App app{"gpuslice OCI hook: hands a shared container's cgroup to the node agent"};
  HookOptions options;
  int timeout_ms = static_cast<int>(options.timeout.count());
  auto* create = app.add_subcommand("create-container", "the createContainer hook")->required();
  create->add_option("--spool-dir", options.spool_dir, "the node agent's isolation spool")
      ->capture_default_str();
  create->add_option("--proc-root", options.proc_root, "procfs mount")->capture_default_str();
  create->add_option("--cgroup-mount", options.cgroup_mount, "cgroup v2 mount")
      ->capture_default_str();
  create->add_option("--timeout-ms", timeout_ms, "longest wait for the agent")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, errors, errors);
  }
  options.timeout = std::chrono::milliseconds(timeout_ms);
  const std::string state((std::istreambuf_iterator<char>(state_in)),
                          std::istreambuf_iterator<char>());
  const Status status = RunCreateContainerHook(options, state);
  if (!status.ok()) {
    errors << "gpuslice hook: " << status.ToString() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace gpuslice
