// How a shim finds and applies the container's limits when it loads (never on a hot path).
#pragma once

#include <cstdint>

#include "shim/container_limits.h"

namespace gpuslice::shim {

struct LoadedLimits {
  bool enforcing = false;  // a limits file applies to this process
  bool broken = false;     // ... but it cannot be read or parsed: fail closed
  ContainerLimits limits;
  // Per limits entry: the file's memory-bytes, lowered (never raised) by GPUSLICE_MEMORY_LIMIT.
  std::uint64_t limit_bytes[kMaxLimitedDevices] = {};
};

// The limits file is kDefaultLimitsPath when it exists (the node agent mounts it read-only);
// only when it does not, GPUSLICE_LIMITS_FILE names one (`gpuslice run`). Reads the environment,
// so call it once, at load.
void LoadLimitsForProcess(LoadedLimits* out) noexcept;

// One line to stderr, at load time only: why GPU calls are going to fail.
void ShimComplain(const char* what, const char* detail) noexcept;

}  // namespace gpuslice::shim
