// What the GPU driver itself says each process holds: the watchdog's view of GPU memory, which
// no path inside a tenant's process (shim or not) can hide.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace gpuslice::watchdog {

// One process's memory on one GPU, as the driver accounts it.
struct GpuProcessUsage {
  std::int32_t pid = 0;         // in the reader's pid namespace (the host's for the node agent)
  std::uint32_t gpu_index = 0;  // NVML index
  std::uint64_t used_bytes = 0;
};

// The driver's per-process accounting (NVML's running-process lists in production).
class GpuProcessUsageSource {
 public:
  virtual ~GpuProcessUsageSource() = default;
  // Every process holding memory on any GPU, one row per (process, GPU).
  virtual Result<std::vector<GpuProcessUsage>> ReadProcessUsage() = 0;
};

}  // namespace gpuslice::watchdog
