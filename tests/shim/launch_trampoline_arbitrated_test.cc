// The gated launch entry (src/shim/gated_trampoline.h) of an arbitrated process that is not
// alone: a launch through the exported cuLaunchKernel must take AdmitLaunch's C++ part (the
// holder's fast path, then the slow path) — hand the token on at the end of its turn and wait
// while another tenant holds it — rather than the assembly entry's jump. In process, as the node agent would set it up: a referee for the GPU,
// this process's container (50 %) and another container (50 %) played by a TenantGate here; the
// fake driver counts the launches that reach it.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "arbitrated_shim.h"

namespace {

using gpuslice::shim::GateDecision;
using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void**, void**);

class GatedLaunchTrampolineArbitrated : public ::testing::Test {
 protected:
  void SetUp() override {
    gpuslice::testing::ArbitratedShimOptions options;
    options.shim_path = GPUSLICE_CUDA_SHIM_PATH;
    options.fake_path = GPUSLICE_FAKE_CUDA_PATH;
    ASSERT_EQ(gpuslice::testing::SetUpArbitratedShim(options, &setup_), "");
    grant_ = setup_.grant;
    other_requests_ = setup_.other_requests;
    fake_launches_ =
        reinterpret_cast<std::uint64_t (*)()>(::dlsym(setup_.fake, "gpuslice_fake_cuda_launches"));
    launch_ = reinterpret_cast<LaunchFn>(::dlsym(setup_.shim, "cuLaunchKernel"));
    ASSERT_TRUE(fake_launches_ != nullptr && launch_ != nullptr);
  }

  CUresult Launch() { return launch_(nullptr, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr); }

  gpuslice::testing::ArbitratedShim setup_;
  std::string grant_;
  std::string other_requests_;
  std::uint64_t (*fake_launches_)() = nullptr;
  LaunchFn launch_ = nullptr;
};

// This process holds the token alone (the entry's jump is valid), then the other container asks
// for the GPU, gets the token and keeps it for 2 ms (within its turn and lease). This process
// launches all the while from one thread: it must hand the token on at its turn's end and none
// of its launches may reach the driver while the other holds the token. A round in which the
// referee took the token back during the hold (a machine stalled past the lease) proves nothing
// and is repeated.
TEST_F(GatedLaunchTrampolineArbitrated, AContendedLaunchTakesTheSlowPathAndWaitsForTheToken) {
  ASSERT_EQ(Launch(), CUDA_SUCCESS);  // joins, takes the token alone
  ASSERT_EQ(Launch(), CUDA_SUCCESS);

  using namespace gpuslice::shim;
  ArbiterRegion region;
  ASSERT_EQ(region.Open(grant_.c_str(), other_requests_.c_str()), 0);
  const std::uint32_t process = region.Join(0);
  const std::uint32_t slot = region.FindTenantSlot();
  ASSERT_NE(process, kNoTenant);
  ASSERT_NE(slot, kNoTenant);
  const std::uint32_t other_id = HolderId(slot, process);
  TenantGate other(region.page(), &region.requests()->processes[process], other_id, &region,
                   ArbiterParams{});
  const ArbiterGrantPage* page = region.page();

  bool conclusive = false;
  for (int round = 0; round < 5 && !conclusive; ++round) {
    std::atomic<bool> done{false};
    bool granted = false;
    bool kept = false;  // the token stayed the other's, same grant, through the hold
    std::uint64_t at_grant = 0;
    std::uint64_t at_release = 0;
    std::thread other_tenant([&] {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (std::chrono::steady_clock::now() < deadline) {
        const std::uint32_t seen = __atomic_load_n(&page->seq, __ATOMIC_ACQUIRE);
        const std::uint64_t now = MonotonicNowNs();
        const GateDecision d = other.BeforeLaunch(now);
        if (d == GateDecision::kGo && other.holding()) {
          const std::uint64_t grant = __atomic_load_n(&page->grant_id, __ATOMIC_ACQUIRE);
          at_grant = fake_launches_();
          granted = true;
          std::this_thread::sleep_for(std::chrono::milliseconds(2));  // holds, launches nothing
          at_release = fake_launches_();
          kept = __atomic_load_n(&page->grant_id, __ATOMIC_ACQUIRE) == grant &&
                 TokenHolder(__atomic_load_n(&page->token, __ATOMIC_ACQUIRE)) == other_id;
          other.Release(MonotonicNowNs(), MonotonicNowNs(), false);
          break;
        }
        if (d == GateDecision::kWait) region.WaitForChange(seen, 1'000'000);
        if (d == GateDecision::kDrainThenRelease) other.Release(now, now, true);
      }
      done = true;
    });
    std::uint64_t launched = 0;
    while (!done) {
      ASSERT_EQ(Launch(), CUDA_SUCCESS);
      ++launched;
    }
    other_tenant.join();
    ASSERT_TRUE(granted) << "this process never handed the token on (" << launched
                         << " launches): its launches skipped the slow path";
    if (!kept) continue;
    conclusive = true;
    EXPECT_EQ(at_release, at_grant)
        << "launches reached the driver while the other container held the token";
  }
  EXPECT_TRUE(conclusive) << "the referee revoked the other container's token in every round";
  const std::uint64_t before = fake_launches_();
  ASSERT_EQ(Launch(), CUDA_SUCCESS);  // the token is free again
  EXPECT_EQ(fake_launches_(), before + 1);
}

}  // namespace
