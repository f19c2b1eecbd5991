// Runs the gpuslice binary with arguments and captures its exit code, stdout and stderr.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <string>
#include <vector>

namespace gpuslice::testing_support {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string ReadAll(int fd) {
  std::string data;
  std::array<char, 4096> buf{};
  ssize_t n = 0;
  while ((n = read(fd, buf.data(), buf.size())) > 0) data.append(buf.data(), static_cast<size_t>(n));
  return data;
}

// Runs GPUSLICE_CLI_PATH with `args`; stdout and stderr go to temporary files so large outputs
// cannot deadlock the pipes.
inline CliResult RunCli(const std::vector<std::string>& args) {
  char out_path[] = "/tmp/gpuslice-cli-out-XXXXXX";
  char err_path[] = "/tmp/gpuslice-cli-err-XXXXXX";
  const int out_fd = mkstemp(out_path);
  const int err_fd = mkstemp(err_path);
  CliResult result;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    std::vector<char*> argv;
    std::string binary = GPUSLICE_CLI_PATH;
    argv.push_back(binary.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  lseek(out_fd, 0, SEEK_SET);
  lseek(err_fd, 0, SEEK_SET);
  result.out = ReadAll(out_fd);
  result.err = ReadAll(err_fd);
  close(out_fd);
  close(err_fd);
  unlink(out_path);
  unlink(err_path);
  return result;
}

}  // namespace gpuslice::testing_support
