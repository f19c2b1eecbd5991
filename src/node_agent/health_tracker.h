// HealthTracker: which GPUs and MIG devices are unhealthy, from backend health events.
//
// An Xid on a GPU makes the GPU and everything on it (replicas, MIG devices) unhealthy; an Xid on
// a MIG device only that device and its replicas. A recovery event for a device clears it, so
// devices come back without restarting the agent. Application Xids (by default 13, 31, 43, 45,
// 68, 109: faults caused by a user's program, not the GPU) are ignored. Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "backends/gpu_backend.h"
#include "core/advertised_resources.h"
#include "core/status.h"

namespace gpuslice {

class HealthTracker {
 public:
  explicit HealthTracker(std::set<std::uint64_t> ignored_xids = DefaultIgnoredXids());

  static std::set<std::uint64_t> DefaultIgnoredXids();
  // "13,31,43" -> {13, 31, 43}; "" -> {} (nothing ignored). Errors name the bad entry.
  static Result<std::set<std::uint64_t>> ParseXidList(std::string_view text);

  // Applies one event; true when the set of unhealthy devices changed.
  bool Apply(const HealthEvent& event);
  // Marks a device (GPU or MIG UUID) unhealthy for `reason`, e.g. because the backend reported
  // it so at start. True when it changed anything.
  bool MarkUnhealthy(const std::string& device_uuid, std::string reason);

  // A device ID is healthy when neither its device nor its physical GPU is marked.
  bool IsHealthy(const AdvertisedDevice& device) const;
  // Why the device is unhealthy, or "" when it is healthy.
  std::string Reason(const AdvertisedDevice& device) const;

  const std::map<std::string, std::string>& unhealthy() const { return unhealthy_; }
  const std::set<std::uint64_t>& ignored_xids() const { return ignored_xids_; }

 private:
  std::set<std::uint64_t> ignored_xids_;
  std::map<std::string, std::string> unhealthy_;  // device UUID -> reason
};

}  // namespace gpuslice
