#include "backends/isolation_capability.h"

#include <sys/statfs.h>

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "core/resource_names.h"

namespace gpuslice {
namespace {
constexpr long kCgroup2SuperMagic = 0x63677270;  // CGROUP2_SUPER_MAGIC, linux/magic.h
}  // namespace

int DriverMajorVersion(std::string_view driver_version) {
  int major = 0;
  const auto* end = driver_version.data() + driver_version.size();
  auto [ptr, ec] = std::from_chars(driver_version.data(), end, major);
  if (ec != std::errc() || ptr == driver_version.data()) return 0;
  if (ptr != end && *ptr != '.') return 0;
  return major;
}

bool IsCgroupV2(const std::string& cgroup_mount) {
  struct statfs fs {};
  if (statfs(cgroup_mount.c_str(), &fs) == 0 &&
      static_cast<long>(fs.f_type) == kCgroup2SuperMagic) {
    return true;
  }
  std::error_code ec;
  return std::filesystem::is_regular_file(cgroup_mount + "/cgroup.controllers", ec);
}

std::string NodeIsolation::MemoryIsolationTier() const {
  bool any = false;
  for (const auto& gpu : gpus) {
    if (!gpu.memory_partitions) return "shim";
    any = true;
  }
  return any ? "driver" : "shim";
}

std::string NodeIsolation::MpsTier() const {
  if (gpus.empty()) return "none";
  for (const auto& gpu : gpus) {
    if (!gpu.mps_v3) return "v2";
  }
  return "v3";
}

const GpuIsolation* NodeIsolation::Find(const std::string& uuid) const {
  for (const auto& gpu : gpus) {
    if (gpu.uuid == uuid) return &gpu;
  }
  return nullptr;
}

NodeIsolation DetectIsolation(const DriverInfo& driver, const std::vector<GpuInfo>& gpus,
                              bool cgroup_v2, bool memory_limit_api,
                              const std::vector<std::string>& unsupported_uuids) {
  NodeIsolation node;
  node.driver_version = driver.driver_version;
  node.driver_major = DriverMajorVersion(driver.driver_version);
  node.cgroup_v2 = cgroup_v2;
  node.memory_limit_api = memory_limit_api;
  const bool new_driver = node.driver_major >= kMinDriverMajorForDriverIsolation;
  for (const auto& gpu : gpus) {
    if (gpu.mig_enabled) continue;  // MIG devices: never driver-partitioned
    GpuIsolation iso;
    iso.uuid = gpu.uuid;
    const bool unsupported = std::find(unsupported_uuids.begin(), unsupported_uuids.end(),
                                       gpu.uuid) != unsupported_uuids.end();
    iso.mps_v3 = new_driver;
    iso.memory_partitions = new_driver && cgroup_v2 && memory_limit_api && !unsupported;
    if (!new_driver) {
      iso.reason = "driver " + (driver.driver_version.empty() ? "unknown" : driver.driver_version) +
                   " is older than r" + std::to_string(kMinDriverMajorForDriverIsolation);
    } else if (!cgroup_v2) {
      iso.reason = "the node does not use cgroup v2";
    } else if (!memory_limit_api) {
      iso.reason = "the driver library does not export nvmlDeviceSetMemoryLimits_v1";
    } else if (unsupported) {
      iso.reason = "the driver reports memory limits not supported on this GPU";
    }
    node.gpus.push_back(std::move(iso));
  }
  return node;
}

std::map<std::string, std::string> IsolationLabels(const NodeIsolation& node, bool mps_enabled) {
  return {{std::string(names::kLabelMemoryIsolation), node.MemoryIsolationTier()},
          {std::string(names::kLabelMps), mps_enabled ? node.MpsTier() : "none"}};
}

}  // namespace gpuslice
