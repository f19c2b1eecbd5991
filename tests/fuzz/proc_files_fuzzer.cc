// libFuzzer target: the watchdog's parsers of /proc/<pid>/cgroup and /proc/<pid>/stat text,
// which it reads for every GPU process on the node (the content is under the tenant's influence:
// a process names itself, and comm may hold spaces and parentheses). They must never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "watchdog/process_table.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)gpuslice::watchdog::ProcfsProcessTable::ParseCgroupFile(text);
  (void)gpuslice::watchdog::ProcfsProcessTable::ParseStatParent(text);
  return 0;
}
