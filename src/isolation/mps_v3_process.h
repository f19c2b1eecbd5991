// ProcessMpsV3: MPS v3 on a node through the real control binary (or the project's fake).
//
// As an MpsControl it runs one v3 control daemon per GPU the agent gives it (UseV3For):
// `<command> -f -p 3 -a <pipe>/../mps-v3.toml`, with the GPU in CUDA_VISIBLE_DEVICES and the same
// pipe/log directories as today's per-device daemons. The TOML file declares one server,
// DefaultMpsV3ServerName(uuid), allowed_devices = the GPU, and the namespaces of live containers
// (SetNamespaceSource), so a daemon started after its predecessor died has them at once.
//
// The v3 daemons are independent of the agent process (like NVIDIA's separate MPS control
// daemon): started detached (LaunchDetachedDaemon: own session, not the agent's child), recorded
// in <pipe>/../mps-v3-daemon.json (DaemonRecord: pid, start time, boot, command line), and left
// running when the agent exits, is killed, or is destroyed, so running containers' MPS clients
// keep their server. A restarted agent's Start adopts the recorded daemon when the record still
// names it and it answers `namespace list`, instead of starting another; the isolation manager's
// restore and reconcile then fix its namespaces. A daemon is stopped only by Stop: the GPU is no
// longer shared under MPS v3 (config change, also one made while the agent was down), or it does
// not answer. A record naming any other process is dropped, and that process is never signalled.
// GPUs not given to UseV3For get NVIDIA's v2 daemon through `v2`.
//
// As an MpsV3Control it runs `<command> namespace create|delete|list ...` (MpsV3CreateArgs...)
// with CUDA_MPS_PIPE_DIRECTORY set to the server's pipe directory. Thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backends/mps_control.h"
#include "isolation/daemon_record.h"
#include "isolation/mps_v3.h"

namespace gpuslice {

class ProcessMpsV3 final : public MpsControl, public MpsV3Control {
 public:
  // `command`: {"nvidia-cuda-mps-control"} on a GPU node. `v2` must outlive this.
  // `pipe_directory_of`: the node's pipe directory of a GPU (MpsDaemonSupervisor's layout), so
  // that Stop finds the daemon a previous agent recorded; without it only daemons this object
  // started or adopted are stopped.
  using PipeDirectoryOf = std::function<std::string(const std::string& device_uuid)>;
  ProcessMpsV3(std::vector<std::string> command, MpsControl& v2,
               PipeDirectoryOf pipe_directory_of = {});
  ~ProcessMpsV3() override;  // leaves the v3 daemons running (see above)

  static std::vector<std::string> NvidiaCommand() { return {"nvidia-cuda-mps-control"}; }
  // Where Start writes a device's TOML file: next to its pipe directory.
  static std::string ConfigPath(const MpsDaemonSpec& spec);
  // Where Start records the daemon it started (DaemonRecord): next to its pipe directory.
  static std::string RecordPath(const MpsDaemonSpec& spec);
  static std::string RecordPath(const std::string& pipe_directory);

  Status Start(const MpsDaemonSpec& spec) override;
  Status Stop(const std::string& device_uuid) override;
  bool IsRunning(const std::string& device_uuid) override;

  Status CreateNamespace(const MpsV3Namespace& ns) override;
  Status DeleteNamespace(const std::string& server, const std::string& name) override;
  Result<std::vector<MpsV3Namespace>> ListNamespaces(const std::string& server) override;
  void UseV3For(const std::set<std::string>& gpu_uuids) override;
  void SetNamespaceSource(NamespaceSource source) override;

  // The agent is shutting down cleanly: later Stop calls (the supervisor's StopAll) forget the
  // v3 daemons instead of stopping them, so the next agent adopts them.
  void LeaveDaemonsRunning();

  // The v3 daemon's process id for a GPU, or -1 (tests).
  pid_t DaemonPid(const std::string& device_uuid);

 private:
  struct Daemon {
    MpsDaemonSpec spec;
    std::string server;
    DaemonRecord record;
  };
  // Runs the control binary against `server`'s daemon; its stdout, or the error with its stderr.
  Result<std::string> Run(const std::string& server, const std::vector<std::string>& args);
  bool IsV3(const std::string& device_uuid);
  std::vector<std::string> DaemonArgv(const MpsDaemonSpec& spec) const;
  // Adopts the daemon recorded for spec's GPU if the record names it and it answers; true then.
  // A recorded daemon of ours that is not adoptable (other command, no answer) is stopped.
  bool Adopt(const MpsDaemonSpec& spec, const std::string& server);
  // Stops the daemon a previous agent recorded in `pipe_directory`'s record, if it still runs.
  static Status StopRecorded(const std::string& pipe_directory);
  Status Launch(const MpsDaemonSpec& spec, const std::string& server);
  // Waits until the daemon Launch started answers `namespace list` for `server` (ready), it
  // exits, or timeout_ passes (only a failure waits that long).
  Status WaitUntilAnswering(const MpsDaemonSpec& spec, const std::string& server,
                            const DaemonRecord& record);

  const std::vector<std::string> command_;
  MpsControl& v2_;
  const PipeDirectoryOf pipe_directory_of_;
  std::chrono::milliseconds timeout_{10000};
  std::mutex mu_;
  std::set<std::string> v3_devices_;
  std::map<std::string, Daemon> daemons_;  // GPU UUID -> its v3 daemon
  bool leave_running_ = false;
  NamespaceSource source_;
};

}  // namespace gpuslice
