// Runs an external client (kubectl, python3) for the kube tests and captures its output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
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

// The kubectl to run: GPUSLICE_KUBECTL names another binary (e.g. Debian's 1.20 one unpacked
// elsewhere), else the one on PATH.
inline std::string KubectlBinary() {
  const char* chosen = std::getenv("GPUSLICE_KUBECTL");
  return chosen != nullptr && *chosen != '\0' ? chosen : "kubectl";
}

// The client's minor version, or 0 when it cannot be read.
inline int KubectlMinorVersion(const std::string& kubectl) {
  const CommandResult version = RunCommand(kubectl + " version --client -o json", 30);
  const nlohmann::json parsed = nlohmann::json::parse(version.output, nullptr, false);
  if (parsed.is_discarded() || !parsed["clientVersion"]["minor"].is_string()) return 0;
  return std::atoi(parsed["clientVersion"]["minor"].get<std::string>().c_str());
}

// kubectl >= 1.26 learns from /openapi/v3 that the server validates fields and skips its own
// validation. Older clients (Debian's 1.20) validate against the full protobuf OpenAPI v2 schema,
// which the fake API server does not serve: only for them, create -f needs --validate=false.
inline std::string KubectlValidateFlag(int minor_version) {
  return minor_version >= 26 ? "" : " --validate=false";
}

}  // namespace gpuslice::kube
