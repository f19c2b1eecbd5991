// A process's identity as recorded in its accounting-region slot: (pid, start time in clock ticks
// since boot), both as the process itself sees them. Diagnostics only: liveness is decided by the
// slot's lock (accounting_region.h), which no pid namespace can fake.
#pragma once

#include <cstdint>

namespace gpuslice::shim {

struct ProcessIdentity {
  std::int32_t pid = 0;
  std::uint64_t start_ticks = 0;
};

// The calling process's identity (getpid + /proc/self/stat); start_ticks 0 if unreadable.
ProcessIdentity CurrentProcessIdentity() noexcept;

// The start time field of /proc/<pid>/stat; false when the process does not exist.
bool ReadProcessStartTicks(std::int32_t pid, std::uint64_t* start_ticks) noexcept;

// Start time and state letter (R, S, Z, ...) of /proc/<pid>/stat; false when it does not exist.
bool ReadProcessStat(std::int32_t pid, std::uint64_t* start_ticks, char* state) noexcept;

}  // namespace gpuslice::shim
