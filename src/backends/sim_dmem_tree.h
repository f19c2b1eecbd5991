// The on-disk format of a simulated cgroup tree with driver device-memory limits, shared by
// FileMemoryLimits (the simulated driver's nvmlDeviceSetMemoryLimits_v1) and the fake CUDA driver
// in tests/fakes (which fails allocations beyond the hard limit). Header-only and dependency-free
// so the fake libcuda can include it.
//
// A cgroup is a directory; `cgroup.procs` in it lists its member pids, one per line, as in
// cgroup v2. Per GPU, the driver state lives next to it:
//   nvidia.dmem.<uuid>.limits      "<soft bytes> <hard bytes>\n"; absent = no limit
//   nvidia.dmem.<uuid>.pid.<pid>   bytes allocated by that process (dead pids count 0, as the
//                                  real driver frees a process's memory when it exits)
//   nvidia.dmem.lock               flock'd around every check-and-charge
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace gpuslice::simdmem {

inline std::string LimitsFile(const std::string& cgroup, const std::string& uuid) {
  return cgroup + "/nvidia.dmem." + uuid + ".limits";
}
inline std::string ChargePrefix(const std::string& uuid) { return "nvidia.dmem." + uuid + ".pid."; }

inline bool PidAlive(long pid) {
  return pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

// Reads "<soft> <hard>"; false when no limit is set.
inline bool ReadLimits(const std::string& cgroup, const std::string& uuid, std::uint64_t& soft,
                       std::uint64_t& hard) {
  std::ifstream in(LimitsFile(cgroup, uuid));
  return static_cast<bool>(in >> soft >> hard);
}

// Sum of live processes' charges in `cgroup` on `uuid`.
inline std::uint64_t CurrentUse(const std::string& cgroup, const std::string& uuid) {
  std::uint64_t total = 0;
  std::error_code ec;
  const std::string prefix = ChargePrefix(uuid);
  for (const auto& entry : std::filesystem::directory_iterator(cgroup, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    if (!PidAlive(std::strtol(name.c_str() + prefix.size(), nullptr, 10))) continue;
    std::ifstream in(entry.path());
    std::uint64_t bytes = 0;
    if (in >> bytes) total += bytes;
  }
  return total;
}

// The cgroup directory under `root` whose cgroup.procs lists `pid`; "" when none.
inline std::string CgroupOfPid(const std::string& root, long pid) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->path().filename() != "cgroup.procs") continue;
    std::ifstream in(it->path());
    long member = 0;
    while (in >> member) {
      if (member == pid) return it->path().parent_path().string();
    }
  }
  return "";
}

// The cgroup's driver lock (nvidia.dmem.lock, flock'd) for the lifetime of the object: every
// check-and-charge holds it, so two processes of a cgroup cannot both pass the check with what
// only one of them may take.
class CgroupLock {
 public:
  explicit CgroupLock(const std::string& cgroup)
      : fd_(open((cgroup + "/nvidia.dmem.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644)) {
    if (fd_ >= 0) flock(fd_, LOCK_EX);
  }
  ~CgroupLock() {
    if (fd_ >= 0) close(fd_);  // releases the flock
  }
  CgroupLock(const CgroupLock&) = delete;
  CgroupLock& operator=(const CgroupLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_;
};

// Sets `pid`'s use in `cgroup` on `uuid` to `bytes` (no check: the allocation already happened).
// Written to a temporary file and renamed, so a reader never sees a half-written number.
inline void SetUse(const std::string& cgroup, const std::string& uuid, long pid,
                   std::uint64_t bytes) {
  const std::string file = cgroup + "/" + ChargePrefix(uuid) + std::to_string(pid);
  // Not named with the charge prefix, so CurrentUse never counts it.
  const std::string temporary = cgroup + "/tmp." + ChargePrefix(uuid) + std::to_string(pid);
  { std::ofstream(temporary, std::ios::trunc) << bytes << "\n"; }
  std::rename(temporary.c_str(), file.c_str());
}

// True when raising `pid`'s use to `bytes` would take the cgroup over its hard limit.
inline bool WouldExceed(const std::string& cgroup, const std::string& uuid, long pid,
                        std::uint64_t bytes) {
  std::uint64_t soft = 0, hard = 0;
  if (!ReadLimits(cgroup, uuid, soft, hard)) return false;
  std::uint64_t mine = 0;
  {
    std::ifstream in(cgroup + "/" + ChargePrefix(uuid) + std::to_string(pid));
    in >> mine;
  }
  const std::uint64_t others = CurrentUse(cgroup, uuid) - std::min(mine, CurrentUse(cgroup, uuid));
  return others + bytes > hard;
}

// Raises or lowers `pid`'s use to `bytes` in one step under the cgroup's lock: a use that grows
// and would take the cgroup over its hard limit is refused (false) and nothing changes, as the
// driver refuses the allocation.
inline bool SetUseIfFits(const std::string& cgroup, const std::string& uuid, long pid,
                         std::uint64_t bytes) {
  const CgroupLock lock(cgroup);
  if (!lock.held()) return false;
  if (WouldExceed(cgroup, uuid, pid, bytes)) {
    std::uint64_t mine = 0;
    std::ifstream(cgroup + "/" + ChargePrefix(uuid) + std::to_string(pid)) >> mine;
    if (bytes > mine) return false;  // lowering is always allowed
  }
  SetUse(cgroup, uuid, pid, bytes);
  return true;
}

// Charges `delta` bytes (negative: frees) to `pid` in `cgroup` on `uuid`. A positive charge that
// would take the cgroup's use over its hard limit is refused (false), as the driver refuses the
// allocation. Serialized across processes with the cgroup's lock.
inline bool Charge(const std::string& cgroup, const std::string& uuid, long pid,
                   std::int64_t delta) {
  const CgroupLock lock(cgroup);
  if (!lock.held()) return delta <= 0;
  bool ok = true;
  std::uint64_t soft = 0, hard = 0;
  if (delta > 0 && ReadLimits(cgroup, uuid, soft, hard)) {
    ok = CurrentUse(cgroup, uuid) + static_cast<std::uint64_t>(delta) <= hard;
  }
  if (ok) {
    const std::string file = cgroup + "/" + ChargePrefix(uuid) + std::to_string(pid);
    std::uint64_t mine = 0;
    {
      std::ifstream in(file);
      in >> mine;
    }
    const std::int64_t next = static_cast<std::int64_t>(mine) + delta;
    SetUse(cgroup, uuid, pid, static_cast<std::uint64_t>(next > 0 ? next : 0));
  }
  return ok;
}

}  // namespace gpuslice::simdmem
