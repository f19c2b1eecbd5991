// A CUDA program for the compute-arbiter tests, linked directly against libcuda.so.1 (the fake
// driver at link time, the shim under LD_PRELOAD at run time). Commands:
//   spin <ms>   launch kernels for <ms> ms; prints launches, the first launch's wait (us), exit
//   hold        launch once (taking the token), print "holding", wait for stdin to close
//   raw-fork    launch, then SYS_fork a child that launches 100 times
//   capture     capture 20 launches into a graph on a new stream, instantiate, launch it 5 times
//   forge <grant page>   try to open the grant page for writing (prints the errno), then spin 50 ms
//   scribble <ms>        spin while scribbling over its own container's request file: every
//                        record claimed (locked, want), releases of grants it never held, forged
//                        completion times
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "shim/compute_arbiter.h"
#include "shim/container_limits.h"
#include "shim/cuda_driver_types.h"

extern "C" {
CUresult cuInit(unsigned int);
CUresult cuDevicePrimaryCtxRetain(CUcontext*, CUdevice);
CUresult cuCtxSetCurrent(CUcontext);
CUresult cuLaunchKernel(CUfunction, unsigned int, unsigned int, unsigned int, unsigned int,
                        unsigned int, unsigned int, unsigned int, CUstream, void**, void**);
CUresult cuStreamCreate(CUstream*, unsigned int);
CUresult cuStreamBeginCapture_v2(CUstream, CUstreamCaptureMode);
CUresult cuStreamEndCapture(CUstream, CUgraph*);
CUresult cuGraphInstantiateWithFlags(CUgraphExec*, CUgraph, unsigned long long);
CUresult cuGraphLaunch(CUgraphExec, CUstream);
CUresult cuStreamSynchronize(CUstream);
}

// The fake driver's test hooks, from the fake itself (the shim stands in for libcuda.so.1).
std::uint64_t FakeCounter(const char* name) {
  const char* path = std::getenv("GPUSLICE_TEST_FAKE_CUDA");
  void* handle = path != nullptr ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : nullptr;
  void* fn = handle != nullptr ? dlsym(handle, name) : nullptr;
  return fn != nullptr ? reinterpret_cast<std::uint64_t (*)()>(fn)() : ~0ULL;
}

namespace {

using Clock = std::chrono::steady_clock;

void Check(CUresult r, const char* what) {
  if (r != CUDA_SUCCESS) {
    std::printf("error=%s:%d\n", what, r);
    std::fflush(stdout);
    std::exit(3);
  }
}

void SetUp() {
  Check(cuInit(0), "cuInit");
  CUcontext context = nullptr;
  Check(cuDevicePrimaryCtxRetain(&context, 0), "retain");
  Check(cuCtxSetCurrent(context), "set-current");
}

CUresult Launch(CUstream stream) {
  return cuLaunchKernel(nullptr, 1, 1, 1, 1, 1, 1, 0, stream, nullptr, nullptr);
}

void Spin(std::uint64_t ms) {
  SetUp();
  const auto start = Clock::now();
  Check(Launch(nullptr), "first-launch");
  const auto first_wait =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
  std::uint64_t launches = 1;
  const auto end = start + std::chrono::milliseconds(ms);
  while (Clock::now() < end) {
    Check(Launch(nullptr), "launch");
    ++launches;
  }
  std::printf("launches=%llu\nfirst_wait_us=%lld\ndone\n",
              static_cast<unsigned long long>(launches), static_cast<long long>(first_wait));
}

void Forge(const char* grant_path) {
  const int fd = open(grant_path, O_RDWR);
  std::printf("open_for_writing=%d\n", fd < 0 ? errno : 0);
  if (fd >= 0) close(fd);
  Spin(50);
}

// The request file this process's container was given (from its limits file).
std::string RequestsPath() {
  const char* limits_path = std::getenv("GPUSLICE_LIMITS_FILE");
  FILE* f = limits_path != nullptr ? std::fopen(limits_path, "r") : nullptr;
  std::string text;
  char buffer[4096];
  while (f != nullptr && !std::feof(f)) {
    const std::size_t n = std::fread(buffer, 1, sizeof(buffer), f);
    if (n == 0) break;
    text.append(buffer, n);
  }
  if (f != nullptr) std::fclose(f);
  gpuslice::shim::ContainerLimits limits;
  char error[128];
  if (!gpuslice::shim::ParseContainerLimits(text.data(), text.size(), &limits, error,
                                            sizeof(error))) {
    return "";
  }
  return limits.devices[0].requests_path;
}

void Scribble(std::uint64_t ms) {
  using gpuslice::shim::ArbiterRequests;
  SetUp();
  Check(Launch(nullptr), "first-launch");  // joined: the shim holds one record
  const std::string path = RequestsPath();
  const int fd = open(path.c_str(), O_RDWR);
  void* mapping =
      fd < 0 ? MAP_FAILED
             : mmap(nullptr, sizeof(ArbiterRequests), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapping == MAP_FAILED) {
    std::printf("error=cannot map %s\n", path.c_str());
    std::exit(3);
  }
  auto* mine = static_cast<ArbiterRequests*>(mapping);
  for (std::uint32_t i = 0; i < gpuslice::shim::kProcessesPerTenant; ++i) {
    struct flock lock {};  // every free record looks alive
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = static_cast<off_t>(offsetof(ArbiterRequests, processes) +
                                      i * sizeof(gpuslice::shim::ProcessRequest));
    lock.l_len = 1;
    fcntl(fd, F_OFD_SETLK, &lock);
  }
  const auto end = Clock::now() + std::chrono::milliseconds(ms);
  std::uint64_t launches = 1;
  std::uint64_t forged = 0;
  while (Clock::now() < end) {
    for (std::uint32_t i = 1; i < gpuslice::shim::kProcessesPerTenant; ++i) {
      gpuslice::shim::ProcessRequest& r = mine->processes[i];
      r.in_use = 1;
      r.want = 1;
      r.completion_ns = 0;
      r.launches = 1'000'000'000;
      r.release_grant = ++forged;
    }
    __atomic_add_fetch(&mine->doorbell, 1, __ATOMIC_RELEASE);
    Check(Launch(nullptr), "launch");
    ++launches;
  }
  std::printf("launches=%llu\nfirst_wait_us=0\ndone\n", static_cast<unsigned long long>(launches));
}

void Hold() {
  SetUp();
  Check(Launch(nullptr), "launch");
  std::printf("holding\n");
  std::fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
}

// A raw fork (no pthread_atfork handlers) after taking the token: the child must not launch as
// its parent's tenant.
void RawFork() {
  SetUp();
  Check(Launch(nullptr), "parent-launch");
  const long child = syscall(SYS_fork);
  if (child == 0) {
    for (int i = 0; i < 100; ++i) {
      if (Launch(nullptr) != CUDA_SUCCESS) _exit(4);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(static_cast<pid_t>(child), &status, 0);
  std::printf("parent_pid=%d\nchild_pid=%ld\nchild_status=%d\ndone\n", getpid(), child, status);
}

void Capture() {
  SetUp();
  CUstream stream = nullptr;
  Check(cuStreamCreate(&stream, 0), "stream");
  Check(cuStreamBeginCapture_v2(stream, CU_STREAM_CAPTURE_MODE_GLOBAL), "begin-capture");
  for (int i = 0; i < 20; ++i) {  // 20 ms in all: longer than a turn
    Check(Launch(stream), "captured-launch");
    usleep(1000);
  }
  CUgraph graph = nullptr;
  Check(cuStreamEndCapture(stream, &graph), "end-capture");
  CUgraphExec exec = nullptr;
  Check(cuGraphInstantiateWithFlags(&exec, graph, 0), "instantiate");
  for (int i = 0; i < 5; ++i) Check(cuGraphLaunch(exec, stream), "graph-launch");
  Check(cuStreamSynchronize(stream), "sync");
  std::printf("captured=%llu\nlaunched=%llu\ndone\n",
              static_cast<unsigned long long>(FakeCounter("gpuslice_fake_cuda_captured_launches")),
              static_cast<unsigned long long>(FakeCounter("gpuslice_fake_cuda_launches")));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "spin") {
    Spin(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 100);
  } else if (command == "hold") {
    Hold();
  } else if (command == "raw-fork") {
    RawFork();
  } else if (command == "capture") {
    Capture();
  } else if (command == "forge" && argc > 2) {
    Forge(argv[2]);
  } else if (command == "scribble") {
    Scribble(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 100);
  } else {
    std::fprintf(stderr,
                 "usage: arbiter_probe spin <ms> | hold | raw-fork | capture | forge <page> | "
                 "scribble <ms>\n");
    return 2;
  }
  return 0;
}
