// MPS v3 daemons outlive the ProcessMpsV3 (and the agent) that started them, by design. Tests
// make their process the daemons' subreaper, so that a daemon orphaned by a killed agent comes to
// the test and can be reaped, and kill every daemon recorded under their directory at the end.
#pragma once

#include <sys/prctl.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "isolation/daemon_record.h"

namespace gpuslice::testing {

// A process's start time (field 22 of /proc/<pid>/stat); 0 when it does not exist.
inline std::uint64_t StartTimeTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  const std::size_t paren = text.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(text.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
  }
  return std::strtoull(field.c_str(), nullptr, 10);
}

// True while `pid` exists and is not a zombie.
inline bool ProcessRuns(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  const std::size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] != 'Z';
}

inline void BecomeSubreaper() { prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

// Stops every daemon whose record (mps-v3-daemon.json) lies under `root`; returns how many ran.
inline int KillRecordedDaemons(const std::string& root) {
  int killed = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename() != "mps-v3-daemon.json") continue;
    Result<DaemonRecord> record = ReadDaemonRecord(it->path().string());
    if (!record.ok() || !IsRecordedDaemonAlive(*record)) continue;
    (void)StopRecordedDaemon(*record, std::chrono::milliseconds(2000));
    ++killed;
  }
  return killed;
}

}  // namespace gpuslice::testing
