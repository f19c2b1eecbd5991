// gpuslice-fake-mps-control: stands in for `nvidia-cuda-mps-control -f` where there is no GPU
// (simulated backend, tests). Like the real daemon in the foreground, it creates its control pipe
// in CUDA_MPS_PIPE_DIRECTORY and runs until SIGTERM/SIGINT, then removes it.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

int main() {
  const char* pipe_dir = std::getenv("CUDA_MPS_PIPE_DIRECTORY");
  const char* device = std::getenv("CUDA_VISIBLE_DEVICES");
  if (pipe_dir == nullptr) return 2;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  const std::string control = std::string(pipe_dir) + "/control";
  {
    std::ofstream out(control);
    out << "pid " << getpid() << " device " << (device != nullptr ? device : "") << "\n";
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::error_code ec;
  std::filesystem::remove(control, ec);
  return 0;
}
