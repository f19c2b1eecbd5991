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

// The directory the node agent mounts (read-only) into a fractional container, holding
// `limits` once the agent has matched the allocation to its pod, or `refused` (the reason) when
// it will not. Its presence means a limit is expected: the shim waits for either file.
inline constexpr const char* kManagedLimitsDir = "/etc/gpuslice";
inline constexpr unsigned kLimitsWaitMs = 5000;

// LoadLimitsForProcess with the managed directory and the wait as parameters (tests). When
// `managed_dir` exists but holds neither file after `wait_ms`, or holds `refused`, the result is
// enforcing and broken (fail closed), with one line to stderr saying why.
void LoadLimitsFrom(const char* managed_dir, unsigned wait_ms, LoadedLimits* out) noexcept;

// One line to stderr, at load time only: why GPU calls are going to fail.
void ShimComplain(const char* what, const char* detail) noexcept;

}  // namespace gpuslice::shim
