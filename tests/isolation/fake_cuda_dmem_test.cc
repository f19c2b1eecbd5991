// The fake CUDA driver under driver-enforced per-cgroup limits: real processes load the fake
// libcuda.so.1 and allocate; the limit is the cgroup's, shared by every process in it.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "backends/simulated_memory_limits.h"
#include "fake_cgroup_tree.h"

namespace gpuslice {
namespace {

constexpr std::uint64_t kMi = 1ULL << 20;
const std::string kGpu = "GPU-aaaaaaaa-0000-0000-0000-000000000000";

// A child process that loads the fake driver, waits for "go", allocates `bytes` with
// `entry` ("cuMemAlloc_v2" or "cuMemAllocManaged"), reports the CUresult and holds the memory
// until killed.
class Allocator {
 public:
  Allocator(const std::string& cgroup_root, std::uint64_t bytes,
            const char* entry = "cuMemAlloc_v2") {
    if (pipe(go_) != 0 || pipe(result_) != 0) return;
    pid_ = fork();
    if (pid_ == 0) Child(cgroup_root, bytes, entry);
    close(go_[0]);
    close(result_[1]);
  }
  ~Allocator() { Kill(); }
  pid_t pid() const { return pid_; }
  // Lets the child allocate; returns its CUresult (0 = success), -1 if it died.
  int Allocate() {
    const char go = 'g';
    if (write(go_[1], &go, 1) != 1) return -1;
    int rc = -1;
    if (read(result_[0], &rc, sizeof(rc)) != sizeof(rc)) return -1;
    return rc;
  }
  void Kill() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      close(go_[1]);
      close(result_[0]);
      pid_ = -1;
    }
  }

 private:
  [[noreturn]] void Child(const std::string& root, std::uint64_t bytes, const char* entry) {
    close(go_[1]);
    close(result_[0]);
    char go = 0;
    if (read(go_[0], &go, 1) != 1) _exit(1);
    setenv("GPUSLICE_FAKE_CGROUP_ROOT", root.c_str(), 1);
    setenv("GPUSLICE_FAKE_GPU_UUIDS", kGpu.c_str(), 1);
    int rc = -1;
    if (void* lib = dlopen(GPUSLICE_FAKE_CUDA_PATH, RTLD_NOW | RTLD_LOCAL); lib != nullptr) {
      using Init = int (*)(unsigned);
      using CtxCreate = int (*)(void**, unsigned, int);
      auto init = reinterpret_cast<Init>(dlsym(lib, "cuInit"));
      auto create = reinterpret_cast<CtxCreate>(dlsym(lib, "cuCtxCreate_v2"));
      void* ctx = nullptr;
      unsigned long long ptr = 0;
      if (init != nullptr && create != nullptr && init(0) == 0 && create(&ctx, 0, 0) == 0) {
        if (std::string(entry) == "cuMemAllocManaged") {
          using Managed = int (*)(unsigned long long*, std::size_t, unsigned);
          rc = reinterpret_cast<Managed>(dlsym(lib, entry))(&ptr, bytes, 1);
        } else {
          using Alloc = int (*)(unsigned long long*, std::size_t);
          rc = reinterpret_cast<Alloc>(dlsym(lib, entry))(&ptr, bytes);
        }
      }
    }
    if (write(result_[1], &rc, sizeof(rc)) != sizeof(rc)) _exit(1);
    pause();
    _exit(0);
  }
  int go_[2] = {-1, -1};
  int result_[2] = {-1, -1};
  pid_t pid_ = -1;
};

constexpr int kOutOfMemory = 2;  // CUDA_ERROR_OUT_OF_MEMORY

TEST(FakeCudaDmemTest, ProcessesOfOneCgroupShareItsHardLimit) {
  testing::FakeCgroupTree tree;
  const std::string ctr1 = tree.AddCgroup("/kubepods/ctr1", {});
  const std::string ctr2 = tree.AddCgroup("/kubepods/ctr2", {});
  FileMemoryLimits driver({kGpu});
  ASSERT_TRUE(driver.SetMemoryLimits(kGpu, ctr1, 512 * kMi, 1024 * kMi).ok());

  Allocator a(tree.cgroup_mount(), 600 * kMi), b(tree.cgroup_mount(), 600 * kMi),
      managed(tree.cgroup_mount(), 600 * kMi, "cuMemAllocManaged"),
      other(tree.cgroup_mount(), 600 * kMi), late(tree.cgroup_mount(), 600 * kMi);
  testing::FakeCgroupTree::SetProcs(ctr1, {a.pid(), b.pid(), managed.pid(), late.pid()});
  testing::FakeCgroupTree::SetProcs(ctr2, {other.pid()});

  EXPECT_EQ(a.Allocate(), 0);
  EXPECT_EQ(driver.GetMemoryLimits(kGpu, ctr1)->current_used_bytes, 600 * kMi);
  // Alone, 600 MiB is under the 1 GiB limit; with the first process's 600 MiB it is not.
  EXPECT_EQ(b.Allocate(), kOutOfMemory);
  EXPECT_EQ(managed.Allocate(), kOutOfMemory);
  // Another cgroup has no limit.
  EXPECT_EQ(other.Allocate(), 0);
  // When the first process exits its memory is freed (as the driver does) and the next fits.
  a.Kill();
  EXPECT_EQ(late.Allocate(), 0);
  EXPECT_EQ(driver.GetMemoryLimits(kGpu, ctr1)->current_used_bytes, 600 * kMi);
}

// The driver charges atomically: processes of one cgroup allocating at the same instant never
// hold together more than its hard limit. Four processes race to take 600 MiB of a 1 GiB limit
// and free it again; each counts itself in a shared "holders" word while it holds the memory.
// A check and a charge made in two steps let two of them hold at once.
TEST(FakeCudaDmemTest, ConcurrentAllocationsInOneCgroupNeverTogetherPassItsLimit) {
  testing::FakeCgroupTree tree;
  const std::string ctr = tree.AddCgroup("/kubepods/racers", {});
  FileMemoryLimits driver({kGpu});
  ASSERT_TRUE(driver.SetMemoryLimits(kGpu, ctr, 1024 * kMi, 1024 * kMi).ok());
  struct Shared {
    std::atomic<int> holders{0};
    std::atomic<int> most{0};
    std::atomic<int> successes{0};
    std::atomic<int> ready{0};
  };
  void* mapped =
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mapped, MAP_FAILED);
  auto* shared = new (mapped) Shared;
  constexpr int kRacers = 4;
  constexpr int kRounds = 150;
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> racers;
  for (int r = 0; r < kRacers; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      close(go[1]);
      char byte = 0;
      if (read(go[0], &byte, 1) != 1) _exit(1);
      setenv("GPUSLICE_FAKE_CGROUP_ROOT", tree.cgroup_mount().c_str(), 1);
      setenv("GPUSLICE_FAKE_GPU_UUIDS", kGpu.c_str(), 1);
      void* lib = dlopen(GPUSLICE_FAKE_CUDA_PATH, RTLD_NOW | RTLD_LOCAL);
      if (lib == nullptr) _exit(2);
      auto init = reinterpret_cast<int (*)(unsigned)>(dlsym(lib, "cuInit"));
      auto create = reinterpret_cast<int (*)(void**, unsigned, int)>(dlsym(lib, "cuCtxCreate_v2"));
      auto alloc =
          reinterpret_cast<int (*)(unsigned long long*, std::size_t)>(dlsym(lib, "cuMemAlloc_v2"));
      auto release = reinterpret_cast<int (*)(unsigned long long)>(dlsym(lib, "cuMemFree_v2"));
      void* ctx = nullptr;
      if (init(0) != 0 || create(&ctx, 0, 0) != 0) _exit(3);
      shared->ready.fetch_add(1);
      while (shared->ready.load() < kRacers) sched_yield();
      for (int i = 0; i < kRounds; ++i) {
        unsigned long long ptr = 0;
        if (alloc(&ptr, 600 * kMi) != 0) continue;
        const int now = shared->holders.fetch_add(1) + 1;
        int most = shared->most.load();
        while (now > most && !shared->most.compare_exchange_weak(most, now)) {
        }
        shared->successes.fetch_add(1);
        sched_yield();
        shared->holders.fetch_sub(1);
        if (release(ptr) != 0) _exit(4);
      }
      _exit(0);
    }
    racers.push_back(pid);
  }
  close(go[0]);
  std::vector<long> pids(racers.begin(), racers.end());
  testing::FakeCgroupTree::SetProcs(ctr, pids);
  const std::string bytes(kRacers, 'g');
  ASSERT_EQ(write(go[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(go[1]);
  for (pid_t pid : racers) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "racer exit status " << status;
  }
  EXPECT_GT(shared->successes.load(), 0);
  EXPECT_EQ(shared->most.load(), 1) << "two processes held 600 MiB each under a 1 GiB limit";
  munmap(mapped, sizeof(Shared));
}

}  // namespace
}  // namespace gpuslice
