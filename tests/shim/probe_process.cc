#include "probe_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>
#include <stdexcept>

namespace gpuslice::shim::testing {

ProbeProcess::ProbeProcess(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env) {
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  stdin_fd_ = in_pipe[1];
  stdout_fd_ = out_pipe[0];
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + " failed");
}

ProbeProcess::~ProbeProcess() {
  if (!finished_) {
    Kill(SIGKILL);
    Finish();
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

bool ProbeProcess::ReadMore() {
  char buffer[4096];
  const ssize_t n = ::read(stdout_fd_, buffer, sizeof(buffer));
  if (n <= 0) return false;
  output_.append(buffer, static_cast<std::size_t>(n));
  return true;
}

bool ProbeProcess::WaitForLine(const std::string& line) {
  for (;;) {
    std::size_t newline;
    while ((newline = output_.find('\n', consumed_)) != std::string::npos) {
      const std::string current = output_.substr(consumed_, newline - consumed_);
      consumed_ = newline + 1;
      if (current == line) return true;
    }
    if (!ReadMore()) return false;
  }
}

void ProbeProcess::WriteStdin(const std::string& data) {
  if (stdin_fd_ >= 0) {
    [[maybe_unused]] const ssize_t n = ::write(stdin_fd_, data.data(), data.size());
  }
}

void ProbeProcess::CloseStdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

void ProbeProcess::Kill(int signal) {
  if (!finished_ && pid_ > 0) ::kill(pid_, signal);
}

int ProbeProcess::Finish() {
  CloseStdin();
  return WaitForExit();
}

int ProbeProcess::WaitForExit() {
  if (!finished_) {
    while (ReadMore()) {
    }
    ::waitpid(pid_, &status_, 0);
    finished_ = true;
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return -WTERMSIG(status_);
  return -1000;
}

std::string TokenValue(const std::string& line, const std::string& key) {
  std::istringstream tokens(line);
  std::string token;
  std::string value;
  while (tokens >> token) {
    if (token.rfind(key + "=", 0) == 0) value = token.substr(key.size() + 1);
  }
  return value;
}

std::string ProbeProcess::Value(const std::string& key) const {
  std::istringstream lines(output_);
  std::string line;
  std::string value;
  while (std::getline(lines, line)) {
    if (std::string v = TokenValue(line, key); !v.empty()) value = v;
  }
  return value;
}

std::vector<std::string> ProbeProcess::Lines(const std::string& prefix) const {
  std::istringstream lines(output_);
  std::string line;
  std::vector<std::string> result;
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) == 0) result.push_back(line);
  }
  return result;
}

}  // namespace gpuslice::shim::testing
