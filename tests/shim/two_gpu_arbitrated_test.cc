// A container with two GPUs, each arbitrated by its own GPU's referee (docs/shim.md, "Compute
// shares"): a launch waits for the token of the GPU the calling thread's current context is on,
// and only for that one. The real shim on the fake driver with two GPUs, both referees in this
// process (tests/fakes/arbitrated_shim.h); another container on GPU 1 holds that GPU's token.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "arbitrated_shim.h"

namespace {

using gpuslice::shim::GateDecision;
using gpuslice::shim::TokenHolder;
using gpuslice::shim::TokenWaiters;
using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void**, void**);
using Clock = std::chrono::steady_clock;

TEST(TwoGpuContainer, ALaunchWaitsForTheTokenOfItsOwnGpuOnly) {
  gpuslice::testing::ArbitratedShimOptions options;
  options.shim_path = GPUSLICE_CUDA_SHIM_PATH;
  options.fake_path = GPUSLICE_FAKE_CUDA_PATH;
  options.gpus = 2;
  gpuslice::testing::ArbitratedShim setup;
  ASSERT_EQ(gpuslice::testing::SetUpArbitratedShim(options, &setup), "");
  auto launch = reinterpret_cast<LaunchFn>(::dlsym(setup.shim, "cuLaunchKernel"));
  auto launches =
      reinterpret_cast<std::uint64_t (*)()>(::dlsym(setup.fake, "gpuslice_fake_cuda_launches"));
  auto retain = reinterpret_cast<CUresult (*)(CUcontext*, CUdevice)>(
      ::dlsym(setup.shim, "cuDevicePrimaryCtxRetain"));
  auto set_current =
      reinterpret_cast<CUresult (*)(CUcontext)>(::dlsym(setup.shim, "cuCtxSetCurrent"));
  ASSERT_TRUE(launch != nullptr && launches != nullptr && retain != nullptr &&
              set_current != nullptr);
  auto Launch = [&] { return launch(nullptr, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr); };
  CUcontext gpu1 = nullptr;
  ASSERT_EQ(retain(&gpu1, 1), CUDA_SUCCESS);

  // The other container takes GPU 1's token (alone there) and keeps it.
  gpuslice::testing::OtherTenant other;
  ASSERT_EQ(other.Join(setup, {}, 1), "");
  const gpuslice::shim::ArbiterGrantPage* page1 = other.region.page();
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!other.gate->holding() && Clock::now() < deadline) {
    const std::uint32_t seen = __atomic_load_n(&page1->seq, __ATOMIC_ACQUIRE);
    if (other.gate->BeforeLaunch(gpuslice::shim::MonotonicNowNs()) == GateDecision::kWait) {
      other.region.WaitForChange(seen, 1'000'000);
    }
  }
  ASSERT_TRUE(other.gate->holding()) << "the other container never got GPU 1's token";

  // GPU 0 (this thread's current context): free, the launch goes at once.
  const std::uint64_t before = launches();
  ASSERT_EQ(Launch(), CUDA_SUCCESS);
  EXPECT_EQ(launches(), before + 1);

  // GPU 1: the launch waits for the token the other container holds.
  std::atomic<bool> launched{false};
  std::thread on_gpu1([&] {
    EXPECT_EQ(set_current(gpu1), CUDA_SUCCESS);
    EXPECT_EQ(Launch(), CUDA_SUCCESS);
    launched = true;
  });
  while (TokenWaiters(__atomic_load_n(&page1->token, __ATOMIC_ACQUIRE)) == 0 && !launched &&
         Clock::now() < deadline + std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_FALSE(launched) << "a launch on GPU 1 went while another container held its token";
  EXPECT_EQ(TokenWaiters(__atomic_load_n(&page1->token, __ATOMIC_ACQUIRE)), 1u)
      << "this process never asked GPU 1's referee for the token";
  EXPECT_EQ(launches(), before + 1);

  // Waiting for GPU 1 does not hold up GPU 0.
  ASSERT_EQ(Launch(), CUDA_SUCCESS);
  EXPECT_EQ(launches(), before + 2);
  EXPECT_FALSE(launched);

  const std::uint64_t now = gpuslice::shim::MonotonicNowNs();
  other.gate->Release(now, now, false);  // GPU 1's turn passes to this process
  on_gpu1.join();
  EXPECT_TRUE(launched);
  EXPECT_EQ(launches(), before + 3);
  EXPECT_NE(TokenHolder(__atomic_load_n(&page1->token, __ATOMIC_ACQUIRE)), other.id);
}

}  // namespace
