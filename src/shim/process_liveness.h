// Whether a process recorded in the accounting region still exists. A pid alone is not enough:
// pids are reused, so a process is identified by (pid, start time in clock ticks since boot).
#pragma once

#include <cstdint>

namespace gpuslice::shim {

struct ProcessIdentity {
  std::int32_t pid = 0;
  std::uint64_t start_ticks = 0;
};

class ProcessLiveness {
 public:
  virtual ~ProcessLiveness() = default;
  // True when the process `id` names is still running (same pid and same start time).
  virtual bool IsAlive(const ProcessIdentity& id) noexcept = 0;
};

// Reads /proc/<pid>/stat. Only valid within one pid namespace (a container's).
class ProcfsLiveness final : public ProcessLiveness {
 public:
  bool IsAlive(const ProcessIdentity& id) noexcept override;
};

// The calling process's identity (getpid + /proc/self/stat); start_ticks 0 if unreadable.
ProcessIdentity CurrentProcessIdentity() noexcept;

// The start time field of /proc/<pid>/stat; false when the process does not exist.
bool ReadProcessStartTicks(std::int32_t pid, std::uint64_t* start_ticks) noexcept;

// Start time and state letter (R, S, Z, ...) of /proc/<pid>/stat; false when it does not exist.
bool ReadProcessStat(std::int32_t pid, std::uint64_t* start_ticks, char* state) noexcept;

}  // namespace gpuslice::shim
