// MemoryLimitDriver: per-cgroup device-memory limits enforced by the NVIDIA driver (r615+).
//
// Follows nvmlDeviceSetMemoryLimits_v1 / nvmlDeviceGetMemoryLimits_v1: a limit names a device and
// a cgroup by the full sysfs path of its directory ("/sys/fs/cgroup/kubepods/.../cri-...");
// allocations by processes in that cgroup beyond the hard limit fail; the soft limit is what is
// guaranteed before allocations may fail under memory pressure. Clearing = soft 0 and hard
// kNoHardLimit (NVML_DEVICE_MEMORY_LIMIT_MAX); removing the cgroup also clears it. MIG devices
// are not supported by the driver, so callers never pass a MIG UUID.
//
// A separate small interface (not part of GpuBackend) so backends without the feature and the
// existing fakes need no change: NvmlBackend and SimulatedBackend expose one through
// memory_limits(); nullptr means the node has no driver-enforced memory partitions.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "core/status.h"

namespace gpuslice {

// NVML_DEVICE_MEMORY_LIMIT_MAX. ASSUMED to be ULLONG_MAX: NVIDIA's structure documentation names
// the constant but the stored documentation does not give its value (see docs/isolation.md).
inline constexpr std::uint64_t kNoHardLimit = std::numeric_limits<std::uint64_t>::max();

struct MemoryLimits {
  std::uint64_t soft_limit_bytes = 0;
  std::uint64_t hard_limit_bytes = kNoHardLimit;
  std::uint64_t current_used_bytes = 0;  // read back only
  bool set() const { return soft_limit_bytes != 0 || hard_limit_bytes != kNoHardLimit; }
};

class MemoryLimitDriver {
 public:
  virtual ~MemoryLimitDriver() = default;

  // True when `gpu_uuid` (a whole GPU, not MIG) accepts per-cgroup limits.
  virtual bool Supported(const std::string& gpu_uuid) = 0;
  // Sets soft and hard limits for processes in `cgroup_path` (full sysfs path) on `gpu_uuid`.
  virtual Status SetMemoryLimits(const std::string& gpu_uuid, const std::string& cgroup_path,
                                 std::uint64_t soft_limit_bytes,
                                 std::uint64_t hard_limit_bytes) = 0;
  // The limits and current use; limits unset (soft 0, hard kNoHardLimit) when none is set.
  virtual Result<MemoryLimits> GetMemoryLimits(const std::string& gpu_uuid,
                                               const std::string& cgroup_path) = 0;
  // Clears the limits (soft 0, hard kNoHardLimit, as NVIDIA documents).
  Status ClearMemoryLimits(const std::string& gpu_uuid, const std::string& cgroup_path) {
    return SetMemoryLimits(gpu_uuid, cgroup_path, 0, kNoHardLimit);
  }
};

}  // namespace gpuslice
