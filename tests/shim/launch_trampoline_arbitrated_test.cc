// The gated launch entry (src/shim/gated_trampoline.h) of an arbitrated process that is not
// alone: a launch through the exported cuLaunchKernel must take AdmitLaunch's slow path — hand
// the token on at the end of its turn and wait while another tenant holds it — rather than the
// assembly entry's jump. In process, as the node agent would set it up: a referee for the GPU,
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

#include "shim/accounting_region.h"
#include "shim/arbiter_referee.h"
#include "shim/arbiter_region.h"
#include "shim/compute_arbiter.h"
#include "shim/container_limits.h"
#include "shim/cuda_driver_types.h"

namespace {

using gpuslice::shim::GateDecision;
using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void**, void**);

class GatedLaunchTrampolineArbitrated : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/gpuslice-trampoline-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    gpuslice::shim::ContainerLimits limits;
    std::snprintf(limits.region_path, sizeof(limits.region_path), "%s/accounting", dir_.c_str());
    std::snprintf(limits.cuda_driver_path, sizeof(limits.cuda_driver_path), "%s",
                  GPUSLICE_FAKE_CUDA_PATH);
    limits.device_count = 1;
    limits.devices[0].nvml_index = 0;
    limits.devices[0].memory_bytes = 8ULL << 30;
    limits.devices[0].compute_percent = 50;
    grant_ = (dir_ / "grant").string();
    const std::string requests = (dir_ / "requests").string();
    other_requests_ = (dir_ / "other-requests").string();
    std::snprintf(limits.devices[0].arbiter_path, sizeof(limits.devices[0].arbiter_path), "%s",
                  grant_.c_str());
    std::snprintf(limits.devices[0].requests_path, sizeof(limits.devices[0].requests_path), "%s",
                  requests.c_str());
    auto referee = gpuslice::shim::ArbiterReferee::Start(grant_);
    ASSERT_TRUE(referee.ok());
    referee_ = std::move(*referee);
    using gpuslice::shim::ArbiterRegion;
    ASSERT_EQ(ArbiterRegion::CreateRequests(requests.c_str()), 0);
    ASSERT_EQ(ArbiterRegion::CreateRequests(other_requests_.c_str()), 0);
    ASSERT_TRUE(referee_->AddTenant("this", requests, 50, 0).ok());
    ASSERT_TRUE(referee_->AddTenant("other", other_requests_, 50, 0).ok());
    const std::string limits_path = (dir_ / "limits").string();
    ASSERT_TRUE(gpuslice::shim::WriteContainerLimitsFile(limits_path, limits).ok());
    ASSERT_EQ(gpuslice::shim::AccountingRegion::Create(limits.region_path), 0);
    ::setenv("GPUSLICE_LIMITS_FILE", limits_path.c_str(), 1);
    ::setenv("GPUSLICE_FAKE_GPUS", "count=1,memory=16Gi", 1);

    void* fake = ::dlopen(GPUSLICE_FAKE_CUDA_PATH, RTLD_NOW | RTLD_LOCAL);
    void* shim = ::dlopen(GPUSLICE_CUDA_SHIM_PATH, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(fake, nullptr) << ::dlerror();
    ASSERT_NE(shim, nullptr) << ::dlerror();
    fake_launches_ =
        reinterpret_cast<std::uint64_t (*)()>(::dlsym(fake, "gpuslice_fake_cuda_launches"));
    launch_ = reinterpret_cast<LaunchFn>(::dlsym(shim, "cuLaunchKernel"));
    auto init = reinterpret_cast<CUresult (*)(unsigned)>(::dlsym(shim, "cuInit"));
    auto retain = reinterpret_cast<CUresult (*)(CUcontext*, CUdevice)>(
        ::dlsym(shim, "cuDevicePrimaryCtxRetain"));
    auto set_current = reinterpret_cast<CUresult (*)(CUcontext)>(::dlsym(shim, "cuCtxSetCurrent"));
    ASSERT_TRUE(fake_launches_ != nullptr && launch_ != nullptr && init != nullptr &&
                retain != nullptr && set_current != nullptr);
    CUcontext context = nullptr;
    ASSERT_EQ(init(0), CUDA_SUCCESS);
    ASSERT_EQ(retain(&context, 0), CUDA_SUCCESS);
    ASSERT_EQ(set_current(context), CUDA_SUCCESS);
  }

  void TearDown() override {
    referee_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  CUresult Launch() { return launch_(nullptr, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr); }

  std::filesystem::path dir_;
  std::string grant_;
  std::string other_requests_;
  std::unique_ptr<gpuslice::shim::ArbiterReferee> referee_;
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
