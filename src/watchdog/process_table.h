// What the watchdog needs to know about a process to find its container: its cgroup and its
// parent. Behind an interface so tests can use a fake process tree as well as real children.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace gpuslice::watchdog {

class ProcessTable {
 public:
  virtual ~ProcessTable() = default;
  // The process's cgroup v2 path ("0::/kubepods/..." line of /proc/<pid>/cgroup; for cgroup v1
  // the memory controller's path), or nullopt when the process does not exist.
  virtual std::optional<std::string> CgroupOf(std::int32_t pid) = 0;
  // The parent's pid, or nullopt when the process does not exist.
  virtual std::optional<std::int32_t> ParentOf(std::int32_t pid) = 0;
};

// Reads <proc_root>/<pid>/cgroup and <proc_root>/<pid>/stat.
class ProcfsProcessTable final : public ProcessTable {
 public:
  explicit ProcfsProcessTable(std::string proc_root = "/proc") : root_(std::move(proc_root)) {}
  std::optional<std::string> CgroupOf(std::int32_t pid) override;
  std::optional<std::int32_t> ParentOf(std::int32_t pid) override;

  // Parses the text of a /proc/<pid>/cgroup file (exposed for tests and the fuzzer).
  static std::optional<std::string> ParseCgroupFile(const std::string& text);
  // The ppid field of a /proc/<pid>/stat text.
  static std::optional<std::int32_t> ParseStatParent(const std::string& text);

 private:
  std::string root_;
};

}  // namespace gpuslice::watchdog
