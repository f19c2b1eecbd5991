#include "watchdog/process_table.h"

#include <fstream>
#include <sstream>

namespace gpuslice::watchdog {
namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::optional<std::string> ProcfsProcessTable::ParseCgroupFile(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  std::optional<std::string> v1_memory;
  while (std::getline(lines, line)) {
    // "hierarchy-id:controllers:path"
    const std::size_t first = line.find(':');
    if (first == std::string::npos) continue;
    const std::size_t second = line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string id = line.substr(0, first);
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (id == "0" && controllers.empty()) return path;  // cgroup v2
    std::istringstream names(controllers);
    std::string name;
    while (std::getline(names, name, ',')) {
      if (name == "memory") v1_memory = path;
    }
  }
  return v1_memory;
}

std::optional<std::int32_t> ProcfsProcessTable::ParseStatParent(const std::string& text) {
  // "pid (comm) state ppid ...": comm may hold spaces and ')', so start after the last ')'.
  const std::size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 1));
  std::string state;
  long long ppid = -1;
  if (!(rest >> state >> ppid) || ppid < 0 || ppid > INT32_MAX) return std::nullopt;
  return static_cast<std::int32_t>(ppid);
}

std::optional<std::string> ProcfsProcessTable::CgroupOf(std::int32_t pid) {
  const std::optional<std::string> text = ReadFile(root_ + "/" + std::to_string(pid) + "/cgroup");
  if (!text) return std::nullopt;
  return ParseCgroupFile(*text);
}

std::optional<std::int32_t> ProcfsProcessTable::ParentOf(std::int32_t pid) {
  const std::optional<std::string> text = ReadFile(root_ + "/" + std::to_string(pid) + "/stat");
  if (!text) return std::nullopt;
  return ParseStatParent(*text);
}

}  // namespace gpuslice::watchdog
