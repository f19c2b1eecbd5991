// Runs an external client (kubectl, python3) for the kube tests and captures its output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <functional>
#include <string>

namespace gpuslice::kube {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `command` through /bin/sh with a hard `timeout_s`; `on_line` (optional) sees each output
// line as it arrives.
inline CommandResult RunCommand(const std::string& command, int timeout_s,
                                const std::function<void(const std::string&)>& on_line = {}) {
  CommandResult result;
  const std::string full = "timeout " + std::to_string(timeout_s) + " " + command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe) != nullptr) {
    result.output += buffer.data();
    if (on_line) on_line(buffer.data());
  }
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

inline bool CommandExists(const std::string& check) {
  return std::system((check + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace gpuslice::kube
