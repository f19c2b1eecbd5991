#include "shim/process_liveness.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace gpuslice::shim {

bool ReadProcessStat(std::int32_t pid, std::uint64_t* start_ticks, char* state) noexcept {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buffer[1024];
  const ssize_t n = ::read(fd, buffer, sizeof(buffer) - 1);
  ::close(fd);
  if (n <= 0) return false;
  buffer[n] = '\0';
  // "pid (comm) state ppid ..."; comm may hold spaces and parentheses, so start after the last
  // ')'. starttime is field 22, the 20th after the comm.
  const char* p = std::strrchr(buffer, ')');
  if (p == nullptr) return false;
  ++p;
  while (*p == ' ') ++p;
  *state = *p;
  for (int field = 3; field < 22; ++field) {
    while (*p == ' ') ++p;
    while (*p != ' ' && *p != '\0') ++p;
    if (*p == '\0') return false;
  }
  while (*p == ' ') ++p;
  std::uint64_t value = 0;
  bool any = false;
  while (*p >= '0' && *p <= '9') {
    value = value * 10 + static_cast<std::uint64_t>(*p - '0');
    ++p;
    any = true;
  }
  if (!any) return false;
  *start_ticks = value;
  return true;
}

bool ReadProcessStartTicks(std::int32_t pid, std::uint64_t* start_ticks) noexcept {
  char state = 0;
  return ReadProcessStat(pid, start_ticks, &state);
}

ProcessIdentity CurrentProcessIdentity() noexcept {
  ProcessIdentity id;
  id.pid = static_cast<std::int32_t>(::getpid());
  ReadProcessStartTicks(id.pid, &id.start_ticks);
  return id;
}

}  // namespace gpuslice::shim
