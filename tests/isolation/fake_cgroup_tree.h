// A fake cgroup v2 tree and /proc for isolation tests: real directories and files under a
// temporary directory, in the layout the kernel gives (cgroup.controllers at the root,
// cgroup.procs per cgroup, /proc/<pid>/cgroup with a "0::<path>" line) and OCI bundles with a
// config.json, so the hook and the manager run their real file code against it.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gpuslice::testing {

class FakeCgroupTree {
 public:
  FakeCgroupTree() {
    char tmpl[] = "/tmp/gpuslice-cgroup-XXXXXX";
    root_ = mkdtemp(tmpl);
    std::filesystem::create_directories(cgroup_mount());
    std::filesystem::create_directories(proc_root());
    std::ofstream(cgroup_mount() + "/cgroup.controllers") << "cpuset cpu io memory pids dmem\n";
  }
  ~FakeCgroupTree() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  FakeCgroupTree(const FakeCgroupTree&) = delete;
  FakeCgroupTree& operator=(const FakeCgroupTree&) = delete;

  std::string root() const { return root_; }
  std::string cgroup_mount() const { return root_ + "/sys/fs/cgroup"; }
  std::string proc_root() const { return root_ + "/proc"; }
  std::string spool() const { return root_ + "/spool"; }
  std::string state_file() const { return root_ + "/isolation-state.json"; }

  // Creates cgroup `path` ("/kubepods/pod1/ctr1") with `pids` as members and returns its full
  // sysfs path; writes /proc/<pid>/cgroup for each pid.
  std::string AddCgroup(const std::string& path, const std::vector<long>& pids) {
    const std::string dir = cgroup_mount() + path;
    std::filesystem::create_directories(dir);
    SetProcs(dir, pids);
    for (long pid : pids) {
      std::filesystem::create_directories(proc_root() + "/" + std::to_string(pid));
      std::ofstream(proc_root() + "/" + std::to_string(pid) + "/cgroup") << "0::" << path << "\n";
    }
    return dir;
  }
  // Writes cgroup.procs and cgroup.events ("populated 0|1"), as the kernel keeps them.
  static void SetProcs(const std::string& dir, const std::vector<long>& pids) {
    {
      std::ofstream out(dir + "/cgroup.procs", std::ios::trunc);
      for (long pid : pids) out << pid << "\n";
    }
    std::ofstream(dir + "/cgroup.events", std::ios::trunc)
        << "populated " << (pids.empty() ? 0 : 1) << "\nfrozen 0\n";
  }
  // An OCI bundle whose config.json has `env` and `annotations`; returns the bundle directory.
  std::string AddBundle(const std::string& id, const std::vector<std::string>& env,
                        const std::map<std::string, std::string>& annotations = {}) {
    const std::string dir = root_ + "/bundles/" + id;
    std::filesystem::create_directories(dir);
    nlohmann::json config = {{"ociVersion", "1.1.0"}, {"process", {{"env", env}}}};
    if (!annotations.empty()) config["annotations"] = annotations;
    std::ofstream(dir + "/config.json") << config.dump();
    return dir;
  }
  static std::string State(const std::string& id, long pid, const std::string& bundle) {
    return nlohmann::json{{"ociVersion", "1.1.0"}, {"id", id},
                          {"status", "created"},   {"pid", pid},
                          {"bundle", bundle},      {"annotations", {}}}
        .dump();
  }

 private:
  std::string root_;
};

}  // namespace gpuslice::testing
