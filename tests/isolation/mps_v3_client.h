// A CUDA client of the fake MPS v3 daemon, as a process in a container would be: its
// CUDA_MPS_PIPE_DIRECTORY is what the container has mounted at /tmp/nvidia-mps. It connects,
// reports where the daemon routed it, and keeps its connection until destroyed (so `client list`
// shows it). Needs GPUSLICE_FAKE_MPS_V3_CONTROL.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace gpuslice::testing {

struct MpsV3Client {
  explicit MpsV3Client(const std::string& pipe) {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    pid = fork();
    if (pid == 0) {
      dup2(fds[1], 1);
      setenv("CUDA_MPS_PIPE_DIRECTORY", pipe.c_str(), 1);
      execl(GPUSLICE_FAKE_MPS_V3_CONTROL, GPUSLICE_FAKE_MPS_V3_CONTROL, "--client-hello", "--hold",
            nullptr);
      _exit(127);
    }
    close(fds[1]);
    char c = 0;
    while (read(fds[0], &c, 1) == 1 && c != '\n') routed += c;
    close(fds[0]);
  }
  ~MpsV3Client() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  MpsV3Client(const MpsV3Client&) = delete;
  MpsV3Client& operator=(const MpsV3Client&) = delete;

  pid_t pid = -1;
  std::string routed;  // "server=S namespace=N pinned_memory_limit=..."; "" when not served
};

}  // namespace gpuslice::testing
