// MpsDaemonSupervisor: keeps one MPS control daemon running per device that MPS replicas are
// advertised for, through MpsControl (the real nvidia-cuda-mps-control, or a test helper).
// Not thread-safe; the node agent calls it from its control loop.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "backends/mps_control.h"

namespace gpuslice {

class MpsDaemonSupervisor {
 public:
  // `control` must outlive the supervisor. `mps_root` is the host directory that holds one
  // directory per device: <mps_root>/<uuid>/pipe and <mps_root>/<uuid>/log.
  MpsDaemonSupervisor(MpsControl& control, std::string mps_root);

  static std::string PipeDirectory(const std::string& mps_root, const std::string& device_uuid);
  static std::string LogDirectory(const std::string& mps_root, const std::string& device_uuid);

  // Starts daemons for devices in `device_uuids` that have none, stops the others'. The first
  // call also asks the control to stop any daemon left for the other devices under mps_root (a
  // previous agent's MPS v3 daemons). Returns the errors of daemons that failed to start (they
  // are retried by RestartDead).
  std::vector<Status> Reconcile(const std::set<std::string>& device_uuids);
  // Restarts daemons that exited; returns the devices whose daemon was restarted.
  std::vector<std::string> RestartDead();
  // Stops every daemon.
  void StopAll();

  const std::set<std::string>& devices() const { return wanted_; }

 private:
  MpsControl& control_;
  std::string mps_root_;
  std::set<std::string> wanted_;
  bool reconciled_ = false;
};

}  // namespace gpuslice
