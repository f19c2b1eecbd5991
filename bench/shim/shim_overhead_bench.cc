// The shim's added cost per intercepted call, against the fake driver: each call is measured
// through libgpuslice-cuda.so (enforcing a limit, with a shared accounting region) and straight
// into the fake driver, in the same process. Results: docs/benchmarks.md ("libcuda shim").
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "shim/accounting_region.h"
#include "shim/arbiter_referee.h"
#include "shim/arbiter_region.h"
#include "shim/compute_arbiter.h"
#include "shim/container_limits.h"
#include "shim/cuda_driver_types.h"

namespace {

using MemAllocFn = CUresult (*)(CUdeviceptr*, size_t);
using MemFreeFn = CUresult (*)(CUdeviceptr);
using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void**, void**);
using MemGetInfoFn = CUresult (*)(size_t*, size_t*);

struct Driver {
  MemAllocFn mem_alloc = nullptr;
  MemFreeFn mem_free = nullptr;
  LaunchFn launch = nullptr;
  MemGetInfoFn mem_get_info = nullptr;
};

Driver g_direct;
Driver g_shimmed;
std::string g_grant_path;
std::string g_waiter_requests;

template <typename Fn>
Fn Symbol(void* handle, const char* name) {
  auto* fn = reinterpret_cast<Fn>(dlsym(handle, name));
  if (fn == nullptr) {
    std::fprintf(stderr, "missing %s\n", name);
    std::exit(1);
  }
  return fn;
}

Driver Bind(void* handle) {
  return {Symbol<MemAllocFn>(handle, "cuMemAlloc_v2"), Symbol<MemFreeFn>(handle, "cuMemFree_v2"),
          Symbol<LaunchFn>(handle, "cuLaunchKernel"),
          Symbol<MemGetInfoFn>(handle, "cuMemGetInfo_v2")};
}

void MemAllocFree(benchmark::State& state, const Driver& driver) {
  for (auto _ : state) {
    CUdeviceptr p = 0;
    if (driver.mem_alloc(&p, 1 << 20) != CUDA_SUCCESS) state.SkipWithError("cuMemAlloc failed");
    driver.mem_free(p);
  }
}

void LaunchKernel(benchmark::State& state, const Driver& driver) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        driver.launch(nullptr, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr));
  }
}

// Another container that always wants the GPU and hands the token straight back whenever the
// referee grants it (it has no work): the shim's tenant then holds the token while another
// waits, every launch takes the slow path (process mutex, token and turn check, queued-work
// bound), and at each turn's end (2 ms) it drains, hands on and is granted the token again.
class EagerWaiter {
 public:
  explicit EagerWaiter(const std::string& requests) {
    using namespace gpuslice::shim;
    if (region_.Open(g_grant_path.c_str(), requests.c_str()) != 0) return;
    const std::uint32_t process = region_.Join(0);
    const std::uint32_t slot = region_.FindTenantSlot();
    if (process == kNoTenant || slot == kNoTenant) return;
    gate_ = std::make_unique<TenantGate>(region_.page(), &region_.requests()->processes[process],
                                         HolderId(slot, process), &region_, ArbiterParams{});
    thread_ = std::thread([this] { Loop(); });
  }
  ~EagerWaiter() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool ok() const { return gate_ != nullptr; }

 private:
  void Loop() {
    using namespace gpuslice::shim;
    while (!stop_) {
      const std::uint32_t seen = __atomic_load_n(&region_.page()->seq, __ATOMIC_ACQUIRE);
      const std::uint64_t now = MonotonicNowNs();
      const GateDecision d = gate_->BeforeLaunch(now);
      if (d == GateDecision::kWait) {
        region_.WaitForChange(seen, 1'000'000);
      } else {
        gate_->Release(now, now, true);
      }
    }
  }
  gpuslice::shim::ArbiterRegion region_;
  std::unique_ptr<gpuslice::shim::TenantGate> gate_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void LaunchKernelAsContendedHolder(benchmark::State& state, const Driver& driver) {
  driver.launch(nullptr, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr);  // the shim joins
  EagerWaiter waiter(g_waiter_requests);
  if (!waiter.ok()) state.SkipWithError("no arbiter");
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        driver.launch(nullptr, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr));
  }
}

void MemGetInfo(benchmark::State& state, const Driver& driver) {
  for (auto _ : state) {
    size_t free_bytes = 0, total = 0;
    benchmark::DoNotOptimize(driver.mem_get_info(&free_bytes, &total));
  }
}

BENCHMARK_CAPTURE(MemAllocFree, unshimmed, g_direct);
BENCHMARK_CAPTURE(MemAllocFree, shimmed, g_shimmed);
BENCHMARK_CAPTURE(LaunchKernel, unshimmed, g_direct);
BENCHMARK_CAPTURE(LaunchKernel, shimmed, g_shimmed);
BENCHMARK_CAPTURE(MemGetInfo, unshimmed, g_direct);
BENCHMARK_CAPTURE(MemGetInfo, shimmed, g_shimmed);
BENCHMARK_CAPTURE(LaunchKernelAsContendedHolder, shimmed, g_shimmed);

}  // namespace

int main(int argc, char** argv) {
  // A container with one 8 GiB GPU and 50 % of its time, as `gpuslice run --compute 50` would
  // set it up (alone on the GPU: LaunchKernel/shimmed is the arbitrated lone tenant).
  char pattern[] = "/tmp/gpuslice-shim-bench-XXXXXX";
  const std::filesystem::path dir = mkdtemp(pattern);
  gpuslice::shim::ContainerLimits limits;
  std::snprintf(limits.region_path, sizeof(limits.region_path), "%s/accounting", dir.c_str());
  std::snprintf(limits.cuda_driver_path, sizeof(limits.cuda_driver_path), "%s",
                GPUSLICE_FAKE_CUDA_PATH);
  limits.device_count = 1;
  limits.devices[0].nvml_index = 0;
  limits.devices[0].memory_bytes = 8ULL << 30;
  limits.devices[0].compute_percent = 50;
  // The GPU's referee runs in this process (as in the node agent); the shim's container is
  // slot 0, the waiter's slot 1.
  g_grant_path = (dir / "grant").string();
  const std::string requests = (dir / "requests").string();
  g_waiter_requests = (dir / "waiter-requests").string();
  // GPUSLICE_BENCH_UNARBITRATED=1: the container names no arbiter, so launches take the
  // not-arbitrated path (LaunchKernelAsContendedHolder then measures that path too).
  const char* unarbitrated = std::getenv("GPUSLICE_BENCH_UNARBITRATED");
  if (unarbitrated == nullptr || std::strcmp(unarbitrated, "1") != 0) {
    std::snprintf(limits.devices[0].arbiter_path, sizeof(limits.devices[0].arbiter_path), "%s",
                  g_grant_path.c_str());
    std::snprintf(limits.devices[0].requests_path, sizeof(limits.devices[0].requests_path), "%s",
                  requests.c_str());
  }
  auto referee = gpuslice::shim::ArbiterReferee::Start(g_grant_path);
  if (!referee.ok() || gpuslice::shim::ArbiterRegion::CreateRequests(requests.c_str()) != 0 ||
      gpuslice::shim::ArbiterRegion::CreateRequests(g_waiter_requests.c_str()) != 0 ||
      !(*referee)->AddTenant("bench", requests, 50, 0).ok() ||
      !(*referee)->AddTenant("waiter", g_waiter_requests, 50, 0).ok()) {
    return 1;
  }
  const std::string limits_path = (dir / "limits").string();
  if (!gpuslice::shim::WriteContainerLimitsFile(limits_path, limits).ok()) return 1;
  if (gpuslice::shim::AccountingRegion::Create(limits.region_path) != 0) return 1;
  setenv("GPUSLICE_LIMITS_FILE", limits_path.c_str(), 1);
  setenv("GPUSLICE_FAKE_GPUS", "count=1,memory=16Gi", 1);

  void* fake = dlopen(GPUSLICE_FAKE_CUDA_PATH, RTLD_NOW | RTLD_LOCAL);
  // GPUSLICE_BENCH_SHIM: another build of the shim to measure (e.g. a reference build).
  const char* shim_path = std::getenv("GPUSLICE_BENCH_SHIM");
  void* shim =
      dlopen(shim_path != nullptr ? shim_path : GPUSLICE_CUDA_SHIM_PATH, RTLD_NOW | RTLD_LOCAL);
  if (fake == nullptr || shim == nullptr) {
    std::fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  g_direct = Bind(fake);
  g_shimmed = Bind(shim);
  // Initialise through the shim (so it resolves devices) and make the primary context current.
  auto init = Symbol<CUresult (*)(unsigned)>(shim, "cuInit");
  auto retain = Symbol<CUresult (*)(CUcontext*, CUdevice)>(shim, "cuDevicePrimaryCtxRetain");
  auto set_current = Symbol<CUresult (*)(CUcontext)>(shim, "cuCtxSetCurrent");
  CUcontext context = nullptr;
  if (init(0) != CUDA_SUCCESS || retain(&context, 0) != CUDA_SUCCESS ||
      set_current(context) != CUDA_SUCCESS) {
    std::fprintf(stderr, "cannot set up the fake driver through the shim\n");
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  referee->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
