// How a shim finds and applies the container's limits when it loads (never on a hot path).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "shim/container_limits.h"

namespace gpuslice::shim {

struct LoadedLimits {
  bool enforcing = false;  // a limits file applies to this process
  bool broken = false;     // ... but it cannot be read or parsed: fail closed
  ContainerLimits limits;
  // Per limits entry: the file's memory-bytes, lowered (never raised) by GPUSLICE_MEMORY_LIMIT.
  std::uint64_t limit_bytes[kMaxLimitedDevices] = {};
  // Per limits entry: where the shim refuses an allocation. limit_bytes, except on a GPU the
  // file marks `enforcer=driver`: there UINT64_MAX (report-only; the driver refuses), unless
  // GPUSLICE_MEMORY_LIMIT lowered the limit (the tenant's own lower limit is still enforced).
  std::uint64_t refuse_above_bytes[kMaxLimitedDevices] = {};
};

// The limits file is kDefaultLimitsPath when it exists (the node agent mounts it read-only);
// only when it does not, GPUSLICE_LIMITS_FILE names one (`gpuslice run`), and that file must pass
// OpenTrustedLimitsFile: kRootOnly when the process has no_new_privs set (as every process under
// `gpuslice run --user` has, irrevocably), else kRootOrSelf. A file that fails is refused and
// the process fails closed. Reads the environment, so call it once, at load.
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

// Who may own a GPUSLICE_LIMITS_FILE and every directory above it.
enum class LimitsFileOwners {
  kRootOnly,    // a privilege-dropped tenant: nothing it owns can hold its limit
  kRootOrSelf,  // same-user `gpuslice run`: root or the process's real uid (advisory)
};

// Opens `path` for reading if it may be trusted as this process's limits: after resolving
// symbolic links, the file and every directory from / down to it are owned by an allowed owner
// (root; or `self_uid` too under kRootOrSelf) and none is writable by group or others, except a
// sticky directory (like /tmp), whose entries only their owner or root can replace. The checks
// are made on the opened directories and file themselves (openat, O_NOFOLLOW, fstat), so a
// path swapped during the walk is seen. Returns the open file descriptor, or -1 with the reason
// (path, owner or mode, what is accepted) in `why`. At load only (a few syscalls per path
// component).
int OpenTrustedLimitsFile(const char* path, LimitsFileOwners owners, uid_t self_uid, char* why,
                          std::size_t why_size) noexcept;

// One line to stderr, at load time only: why GPU calls are going to fail.
void ShimComplain(const char* what, const char* detail) noexcept;

}  // namespace gpuslice::shim
