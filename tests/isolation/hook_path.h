// The createContainer hook path for manager tests: the manager's and the hook's options on a
// FakeCgroupTree, a real process to put in a cgroup, and a container started through the real
// hook while a manager serves the spool. Shared by isolation_manager_test and
// mps_v3_process_test.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <thread>

#include "core/resource_names.h"
#include "fake_cgroup_tree.h"
#include "isolation/isolation_manager.h"
#include "isolation/oci_hook.h"

namespace gpuslice::testing {

// A process that sleeps until killed: a real pid to put in a cgroup.
struct Sleeper {
  Sleeper() {
    pid = fork();
    if (pid == 0) {
      pause();
      _exit(0);
    }
  }
  ~Sleeper() { Kill(); }
  Sleeper(const Sleeper&) = delete;
  Sleeper& operator=(const Sleeper&) = delete;
  void Kill() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
  pid_t pid = -1;
};

inline IsolationManagerOptions ManagerOptionsFor(const FakeCgroupTree& tree) {
  IsolationManagerOptions o;
  o.spool_dir = tree.spool();
  o.state_file = tree.state_file();
  return o;
}

inline HookOptions HookOptionsFor(const FakeCgroupTree& tree) {
  HookOptions h;
  h.spool_dir = tree.spool();
  h.proc_root = tree.proc_root();
  h.cgroup_mount = tree.cgroup_mount();
  h.timeout = std::chrono::seconds(20);
  return h;
}

// Runs the real hook for a container (cgroup `path` with member `pid`, its token in the
// environment, the pod's `annotations` in the bundle) while `manager` serves the spool; returns
// the hook's status.
inline Status StartContainerThroughHook(
    FakeCgroupTree& tree, IsolationManager& manager, const std::string& id, const std::string& path,
    long pid, const std::string& token,
    const std::map<std::string, std::string>& annotations = {}) {
  tree.AddCgroup(path, {pid});
  const std::string bundle = tree.AddBundle(
      id, {"PATH=/bin", std::string(names::kIsolationTokenEnv) + "=" + token}, annotations);
  Status hook_status;
  std::atomic<bool> done{false};
  std::thread hook([&] {
    hook_status =
        RunCreateContainerHook(HookOptionsFor(tree), FakeCgroupTree::State(id, pid, bundle));
    done = true;
  });
  while (!done) {
    manager.ProcessRequests();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  hook.join();
  return hook_status;
}

}  // namespace gpuslice::testing
