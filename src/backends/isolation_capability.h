// Isolation capability: which isolation tier each GPU of a node can give.
//
// Driver tier (docs/isolation.md): device-memory limits per cgroup enforced by the driver
// (nvmlDeviceSetMemoryLimits_v1, driver r615+, cgroup v2, whole GPUs only) and MPS v3 servers with
// per-container namespaces (`nvidia-cuda-mps-control -p 3`, r615+). Shim tier: gpuslice's
// libcuda shim and its watchdog enforce, as before. MIG devices are never driver-partitioned
// (MIG already partitions memory in hardware).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/gpu.h"

namespace gpuslice {

inline constexpr int kMinDriverMajorForDriverIsolation = 615;

struct GpuIsolation {
  std::string uuid;
  bool memory_partitions = false;  // driver-enforced per-cgroup memory limits usable
  bool mps_v3 = false;             // MPS v3 servers and namespaces usable
  std::string reason;              // why not, when either is false ("" otherwise)
};

struct NodeIsolation {
  std::string driver_version;
  int driver_major = 0;  // 0 when the version does not parse
  bool cgroup_v2 = false;
  bool memory_limit_api = false;  // the driver exports the memory-limit calls
  std::vector<GpuIsolation> gpus;

  // "driver" when every whole (non-MIG) GPU has memory partitions, else "shim".
  std::string MemoryIsolationTier() const;
  // "v3" when every whole GPU has MPS v3, "v2" when MPS exists but not v3, "none" with no GPUs.
  std::string MpsTier() const;
  const GpuIsolation* Find(const std::string& uuid) const;
};

// The driver's major version: "615.20.03" -> 615; 0 when it does not parse.
int DriverMajorVersion(std::string_view driver_version);

// True when `cgroup_mount` (normally /sys/fs/cgroup) is a cgroup v2 (unified) mount. A directory
// holding a `cgroup.controllers` file also counts, so a fake cgroup tree can stand in for it.
bool IsCgroupV2(const std::string& cgroup_mount);

// Decides per GPU. `memory_limit_api`: the driver exports the memory-limit calls and reports
// them supported for the GPU (checked by the caller through MemoryLimitDriver::Supported).
NodeIsolation DetectIsolation(const DriverInfo& driver, const std::vector<GpuInfo>& gpus,
                              bool cgroup_v2, bool memory_limit_api,
                              const std::vector<std::string>& unsupported_uuids = {});

// The node labels: gpuslice.io/memory-isolation=driver|shim, gpuslice.io/mps=v3|v2|none.
// `mps_enabled`: the node's configuration shares a GPU with MPS ("none" otherwise).
std::map<std::string, std::string> IsolationLabels(const NodeIsolation& node, bool mps_enabled);

}  // namespace gpuslice
