// MpsControl: starts, stops and checks the per-device MPS control daemon.
//
// The node agent supervises one daemon per shared device through this interface, so the same
// supervision code runs against the real `nvidia-cuda-mps-control` and, in tests, against a
// helper process the project builds.
#pragma once

#include <sys/types.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"

namespace gpuslice {

// Where one device's MPS control daemon keeps its pipes and logs (host paths).
struct MpsDaemonSpec {
  std::string device_uuid;     // GPU or MIG UUID the daemon serves (CUDA_VISIBLE_DEVICES)
  std::string pipe_directory;  // CUDA_MPS_PIPE_DIRECTORY
  std::string log_directory;   // CUDA_MPS_LOG_DIRECTORY
};

// The environment an MPS control daemon for `spec` runs with: this process's, with
// CUDA_VISIBLE_DEVICES, CUDA_MPS_PIPE_DIRECTORY and CUDA_MPS_LOG_DIRECTORY set from `spec`.
std::vector<std::string> MpsDaemonEnvironment(const MpsDaemonSpec& spec);

class MpsControl {
 public:
  virtual ~MpsControl() = default;

  // Starts the daemon for spec.device_uuid, creating its directories. AlreadyExists if running.
  virtual Status Start(const MpsDaemonSpec& spec) = 0;
  // Stops the daemon for `device_uuid`; OK when none runs.
  virtual Status Stop(const std::string& device_uuid) = 0;
  // True while the daemon started for `device_uuid` is alive.
  virtual bool IsRunning(const std::string& device_uuid) = 0;
};

// Runs the daemon as a child process in the foreground (so its exit is seen with waitpid), with
// CUDA_VISIBLE_DEVICES, CUDA_MPS_PIPE_DIRECTORY and CUDA_MPS_LOG_DIRECTORY set. The command is
// `nvidia-cuda-mps-control -f` on a GPU node; tests pass a helper binary. Thread-safe.
class ProcessMpsControl final : public MpsControl {
 public:
  explicit ProcessMpsControl(std::vector<std::string> command);
  ~ProcessMpsControl() override;  // stops every daemon it started

  static std::vector<std::string> NvidiaCommand() { return {"nvidia-cuda-mps-control", "-f"}; }

  Status Start(const MpsDaemonSpec& spec) override;
  Status Stop(const std::string& device_uuid) override;
  bool IsRunning(const std::string& device_uuid) override;

  // The child's process id, or -1 (for tests).
  pid_t ChildPid(const std::string& device_uuid);

 private:
  const std::vector<std::string> command_;
  std::mutex mu_;
  std::map<std::string, pid_t> children_;
};

}  // namespace gpuslice
