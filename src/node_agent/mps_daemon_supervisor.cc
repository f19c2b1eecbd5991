#include "node_agent/mps_daemon_supervisor.h"

#include <spdlog/spdlog.h>

#include <filesystem>

namespace gpuslice {

MpsDaemonSupervisor::MpsDaemonSupervisor(MpsControl& control, std::string mps_root)
    : control_(control), mps_root_(std::move(mps_root)) {}

std::string MpsDaemonSupervisor::PipeDirectory(const std::string& mps_root,
                                               const std::string& device_uuid) {
  return mps_root + "/" + device_uuid + "/pipe";
}

std::string MpsDaemonSupervisor::LogDirectory(const std::string& mps_root,
                                              const std::string& device_uuid) {
  return mps_root + "/" + device_uuid + "/log";
}

std::vector<Status> MpsDaemonSupervisor::Reconcile(const std::set<std::string>& device_uuids) {
  std::vector<Status> errors;
  if (!reconciled_) {
    // Daemons a previous agent left running (MPS v3 outlives the agent) for devices no longer
    // shared under MPS: the control stops what it finds recorded there; no-op for the others.
    reconciled_ = true;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(mps_root_, ec)) {
      const std::string uuid = entry.path().filename().string();
      if (!entry.is_directory(ec) || device_uuids.count(uuid) > 0) continue;
      if (Status s = control_.Stop(uuid); !s.ok()) errors.push_back(s);
    }
  }
  for (const std::string& uuid : wanted_) {
    if (device_uuids.count(uuid)) continue;
    spdlog::info("stopping MPS control daemon for {}: no MPS replicas advertised any more", uuid);
    Status s = control_.Stop(uuid);
    if (!s.ok()) errors.push_back(s);
  }
  wanted_ = device_uuids;
  for (const std::string& uuid : wanted_) {
    if (control_.IsRunning(uuid)) continue;
    Status s =
        control_.Start({uuid, PipeDirectory(mps_root_, uuid), LogDirectory(mps_root_, uuid)});
    if (s.ok()) {
      spdlog::info("started MPS control daemon for {} (pipes in {})", uuid,
                   PipeDirectory(mps_root_, uuid));
    } else {
      spdlog::error("cannot start MPS control daemon for {}: {}", uuid, s.message());
      errors.push_back(s);
    }
  }
  return errors;
}

std::vector<std::string> MpsDaemonSupervisor::RestartDead() {
  std::vector<std::string> restarted;
  for (const std::string& uuid : wanted_) {
    if (control_.IsRunning(uuid)) continue;
    spdlog::warn("MPS control daemon for {} is not running; restarting it", uuid);
    Status s =
        control_.Start({uuid, PipeDirectory(mps_root_, uuid), LogDirectory(mps_root_, uuid)});
    if (s.ok()) {
      restarted.push_back(uuid);
    } else {
      spdlog::error("cannot restart MPS control daemon for {}: {}", uuid, s.message());
    }
  }
  return restarted;
}

void MpsDaemonSupervisor::StopAll() {
  for (const std::string& uuid : wanted_) (void)control_.Stop(uuid);
  wanted_.clear();
}

}  // namespace gpuslice
