#include "backends/mps_control.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <thread>

extern char** environ;

namespace gpuslice {
namespace {

// Waits up to `timeout` for `pid` to exit; true when it did (and was reaped).
bool WaitForExit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

std::vector<std::string> MpsDaemonEnvironment(const MpsDaemonSpec& spec) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.starts_with("CUDA_VISIBLE_DEVICES=") ||
        entry.starts_with("CUDA_MPS_PIPE_DIRECTORY=") ||
        entry.starts_with("CUDA_MPS_LOG_DIRECTORY=")) {
      continue;
    }
    env.emplace_back(entry);
  }
  env.push_back("CUDA_VISIBLE_DEVICES=" + spec.device_uuid);
  env.push_back("CUDA_MPS_PIPE_DIRECTORY=" + spec.pipe_directory);
  env.push_back("CUDA_MPS_LOG_DIRECTORY=" + spec.log_directory);
  return env;
}

ProcessMpsControl::ProcessMpsControl(std::vector<std::string> command)
    : command_(std::move(command)) {}

ProcessMpsControl::~ProcessMpsControl() {
  std::vector<std::string> devices;
  {
    std::lock_guard lock(mu_);
    for (const auto& [uuid, pid] : children_) devices.push_back(uuid);
  }
  for (const std::string& uuid : devices) (void)Stop(uuid);
}

Status ProcessMpsControl::Start(const MpsDaemonSpec& spec) {
  if (command_.empty()) return InvalidArgument("MPS control command is empty");
  if (IsRunning(spec.device_uuid)) {
    return AlreadyExists("MPS control daemon for " + spec.device_uuid + " is already running");
  }
  std::error_code ec;
  for (const std::string& dir : {spec.pipe_directory, spec.log_directory}) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Unavailable("cannot create MPS directory " + dir + ": " + ec.message());
  }

  std::vector<std::string> env_storage = MpsDaemonEnvironment(spec);
  std::vector<char*> envp;
  for (std::string& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = command_;
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);

  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), envp.data());
  if (rc != 0) {
    return Unavailable("cannot start MPS control daemon \"" + command_[0] + "\" for " +
                       spec.device_uuid + ": " + std::strerror(rc));
  }
  std::lock_guard lock(mu_);
  children_[spec.device_uuid] = pid;
  return Status::Ok();
}

Status ProcessMpsControl::Stop(const std::string& device_uuid) {
  pid_t pid = -1;
  {
    std::lock_guard lock(mu_);
    auto it = children_.find(device_uuid);
    if (it == children_.end()) return Status::Ok();
    pid = it->second;
    children_.erase(it);
  }
  kill(pid, SIGTERM);
  if (!WaitForExit(pid, std::chrono::seconds(5))) {
    kill(pid, SIGKILL);
    WaitForExit(pid, std::chrono::seconds(5));
  }
  return Status::Ok();
}

bool ProcessMpsControl::IsRunning(const std::string& device_uuid) {
  std::lock_guard lock(mu_);
  auto it = children_.find(device_uuid);
  if (it == children_.end()) return false;
  int status = 0;
  const pid_t r = waitpid(it->second, &status, WNOHANG);
  if (r == 0) return true;
  children_.erase(it);  // exited (reaped now) or not our child any more
  return false;
}

pid_t ProcessMpsControl::ChildPid(const std::string& device_uuid) {
  std::lock_guard lock(mu_);
  auto it = children_.find(device_uuid);
  return it == children_.end() ? -1 : it->second;
}

}  // namespace gpuslice
