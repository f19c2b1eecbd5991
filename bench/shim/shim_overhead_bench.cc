// The shim's added cost per intercepted call, against the fake driver: each call is measured
// through libgpuslice-cuda.so (enforcing a limit, with a shared accounting region) and straight
// into the fake driver, in the same process. Results: docs/benchmarks.md ("libcuda shim").
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "arbitrated_shim.h"  // tests/fakes: the arbitrated container, as the tests set it up
#include "shim/arbiter_region.h"
#include "shim/compute_arbiter.h"
#include "shim/cuda_driver_types.h"

namespace {

using MemAllocFn = CUresult (*)(CUdeviceptr*, size_t);
using MemFreeFn = CUresult (*)(CUdeviceptr);
using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void**, void**);
using MemGetInfoFn = CUresult (*)(size_t*, size_t*);
using StreamCreateFn = CUresult (*)(CUstream*, unsigned);

struct Driver {
  MemAllocFn mem_alloc = nullptr;
  MemFreeFn mem_free = nullptr;
  LaunchFn launch = nullptr;
  MemGetInfoFn mem_get_info = nullptr;
  StreamCreateFn stream_create = nullptr;
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
          Symbol<MemGetInfoFn>(handle, "cuMemGetInfo_v2"),
          Symbol<StreamCreateFn>(handle, "cuStreamCreate")};
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

// The same, the launches alternating between the legacy stream and a second one (the holder's
// fast path admits up to 4 streams of the turn's drain list).
void LaunchKernelAsContendedHolderTwoStreams(benchmark::State& state, const Driver& driver) {
  CUstream second = nullptr;
  if (driver.stream_create == nullptr || driver.stream_create(&second, 0) != CUDA_SUCCESS) {
    state.SkipWithError("cuStreamCreate failed");
    return;
  }
  driver.launch(nullptr, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr);  // the shim joins
  EagerWaiter waiter(g_waiter_requests);
  if (!waiter.ok()) state.SkipWithError("no arbiter");
  std::uint64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(driver.launch(nullptr, 1, 1, 1, 32, 1, 1, 0,
                                           (++i & 1) != 0 ? second : nullptr, nullptr, nullptr));
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
BENCHMARK_CAPTURE(LaunchKernelAsContendedHolderTwoStreams, unshimmed, g_direct);  // the baseline
BENCHMARK_CAPTURE(LaunchKernelAsContendedHolderTwoStreams, shimmed, g_shimmed);

}  // namespace

int main(int argc, char** argv) {
  // A container with one 8 GiB GPU and 50 % of its time, as the node agent would set it up, the
  // GPU's referee in this process and another container registered with it (the EagerWaiter's;
  // alone on the GPU, LaunchKernel/shimmed is the arbitrated lone tenant).
  gpuslice::testing::ArbitratedShimOptions options;
  options.fake_path = GPUSLICE_FAKE_CUDA_PATH;
  // GPUSLICE_BENCH_SHIM: another build of the shim to measure (e.g. a reference build).
  const char* shim_path = std::getenv("GPUSLICE_BENCH_SHIM");
  options.shim_path = shim_path != nullptr ? shim_path : GPUSLICE_CUDA_SHIM_PATH;
  // GPUSLICE_BENCH_UNARBITRATED=1: the container names no arbiter, so launches take the
  // not-arbitrated path (LaunchKernelAsContendedHolder then measures that path too).
  const char* unarbitrated = std::getenv("GPUSLICE_BENCH_UNARBITRATED");
  options.arbitrated = unarbitrated == nullptr || std::strcmp(unarbitrated, "1") != 0;
  // GPUSLICE_BENCH_GPUS=2: a two-GPU container (each GPU with its referee), launching on GPU 0:
  // the per-GPU holder fast path (the driver names the current context's device first).
  if (const char* gpus = std::getenv("GPUSLICE_BENCH_GPUS"); gpus != nullptr) {
    options.gpus = static_cast<std::uint32_t>(std::strtoul(gpus, nullptr, 10));
    if (options.gpus < 1 || options.gpus > 8) options.gpus = 1;
  }
  gpuslice::testing::ArbitratedShim setup;
  if (const std::string error = gpuslice::testing::SetUpArbitratedShim(options, &setup);
      !error.empty()) {
    std::fprintf(stderr, "cannot set up the arbitrated container: %s\n", error.c_str());
    return 1;
  }
  g_grant_path = setup.grant;
  g_waiter_requests = setup.other_requests;
  g_direct = Bind(setup.fake);
  g_shimmed = Bind(setup.shim);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
