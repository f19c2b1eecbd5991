// ProcessMpsV3: MPS v3 on a node through the real control binary (or the project's fake).
//
// As an MpsControl it runs one v3 control daemon per GPU the agent gives it (UseV3For), in the
// foreground so its exit is seen: `<command> -f -p 3 -a <pipe>/../mps-v3.toml`, with the GPU in
// CUDA_VISIBLE_DEVICES and the same pipe/log directories as today's per-device daemons. The TOML
// file declares one server, DefaultMpsV3ServerName(uuid), allowed_devices = the GPU, and the
// namespaces of live containers (SetNamespaceSource), so a restarted daemon has them at once.
// GPUs not given to UseV3For get NVIDIA's v2 daemon through `v2`.
// As an MpsV3Control it runs `<command> namespace create|delete|list ...` (MpsV3CreateArgs...)
// with CUDA_MPS_PIPE_DIRECTORY set to the server's pipe directory. Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backends/mps_control.h"
#include "isolation/mps_v3.h"

namespace gpuslice {

class ProcessMpsV3 final : public MpsControl, public MpsV3Control {
 public:
  // `command`: {"nvidia-cuda-mps-control"} on a GPU node. `v2` must outlive this.
  ProcessMpsV3(std::vector<std::string> command, MpsControl& v2);
  ~ProcessMpsV3() override;  // stops the v3 daemons it started

  static std::vector<std::string> NvidiaCommand() { return {"nvidia-cuda-mps-control"}; }
  // Where Start writes a device's TOML file: next to its pipe directory.
  static std::string ConfigPath(const MpsDaemonSpec& spec);

  Status Start(const MpsDaemonSpec& spec) override;
  Status Stop(const std::string& device_uuid) override;
  bool IsRunning(const std::string& device_uuid) override;

  Status CreateNamespace(const MpsV3Namespace& ns) override;
  Status DeleteNamespace(const std::string& server, const std::string& name) override;
  Result<std::vector<MpsV3Namespace>> ListNamespaces(const std::string& server) override;
  void UseV3For(const std::set<std::string>& gpu_uuids) override;
  void SetNamespaceSource(NamespaceSource source) override;

  // The v3 daemon's process id for a GPU, or -1 (tests).
  pid_t ChildPid(const std::string& device_uuid);

 private:
  struct Daemon {
    MpsDaemonSpec spec;
    std::string server;
    std::unique_ptr<ProcessMpsControl> process;
  };
  // Runs the control binary against `server`'s daemon; its stdout, or the error with its stderr.
  Result<std::string> Run(const std::string& server, const std::vector<std::string>& args);
  bool IsV3(const std::string& device_uuid);

  const std::vector<std::string> command_;
  MpsControl& v2_;
  std::chrono::milliseconds timeout_{10000};
  std::mutex mu_;
  std::set<std::string> v3_devices_;
  std::map<std::string, Daemon> daemons_;  // GPU UUID -> its v3 daemon
  NamespaceSource source_;
};

}  // namespace gpuslice
