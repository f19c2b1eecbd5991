// Runs the shim probe (or any program) as a child process with a chosen environment, its stdin
// and stdout on pipes, and parses the key=value lines it prints. Test-only.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace gpuslice::shim::testing {

class ProbeProcess {
 public:
  // Starts `argv` with exactly `env` as its environment.
  ProbeProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env);
  ~ProbeProcess();
  ProbeProcess(const ProbeProcess&) = delete;
  ProbeProcess& operator=(const ProbeProcess&) = delete;

  // Reads stdout until a line equal to `line` (true) or end of output (false).
  bool WaitForLine(const std::string& line);
  void WriteStdin(const std::string& data);
  void CloseStdin();
  // Reads the rest of stdout and waits for exit; returns the exit status (-signal if killed).
  int Finish();
  // Like Finish, but leaves stdin open: for a process expected to be ended by someone else.
  int WaitForExit();
  void Kill(int signal);

  const std::string& output() const { return output_; }
  // Last value printed for `key` ("key=value" lines or "key=value" tokens), "" if none.
  std::string Value(const std::string& key) const;
  // Every line starting with `prefix`.
  std::vector<std::string> Lines(const std::string& prefix) const;
  pid_t pid() const { return pid_; }

 private:
  bool ReadMore();
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string output_;
  std::size_t consumed_ = 0;
  int status_ = 0;
  bool finished_ = false;
};

// Finds "key=value" in a line of space-separated tokens.
std::string TokenValue(const std::string& line, const std::string& key);

}  // namespace gpuslice::shim::testing
