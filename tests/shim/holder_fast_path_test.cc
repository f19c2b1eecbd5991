// The holder's fast path (launch_gate.h): while another container waits, the token holder's
// launches go on one compare of the token word and a budget decrement, without the slow path. Two
// guarantees must survive that, checked here through the real shim on the fake driver with the
// GPU's referee in this process (tests/fakes/arbitrated_shim.h): the holder drains its stream
// once it has about a turn of work queued, and it stops launching as soon as the referee ends its
// turn. One test (one process): the shim reads its configuration once per process, and the first
// part needs this process's gate fresh (its time per launch not yet measured).
// Built twice: as is (a one-GPU container: the process-wide fast-path state the assembly entries
// read) and with GPUSLICE_TEST_GPU=1 (a two-GPU container launching on GPU 1: that GPU's own
// fast-path state, tested after the driver names the current context's device).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "arbitrated_shim.h"

namespace {

using gpuslice::shim::GateDecision;
using gpuslice::shim::kTokenRelease;
using gpuslice::shim::TokenHolder;
using gpuslice::shim::TokenWaiters;
using LaunchFn = CUresult (*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void**, void**);
using Clock = std::chrono::steady_clock;

#ifndef GPUSLICE_TEST_GPU
#define GPUSLICE_TEST_GPU 0
#endif
constexpr std::uint32_t kGpu = GPUSLICE_TEST_GPU;  // the GPU this process launches on
#if GPUSLICE_TEST_GPU == 0
#define GPUSLICE_HOLDER_SUITE HolderFastPath
#else
#define GPUSLICE_HOLDER_SUITE HolderFastPathOnGpu1OfTwo  // a CTest name of its own
#endif

TEST(GPUSLICE_HOLDER_SUITE, DrainsWithinTheQueuedWorkBoundAndStopsAtItsTurnsEnd) {
  gpuslice::testing::ArbitratedShimOptions options;
  options.shim_path = GPUSLICE_CUDA_SHIM_PATH;
  options.fake_path = GPUSLICE_FAKE_CUDA_PATH;
  // Long turns and a lease no test outlasts: the holder's turn ends only by the referee's
  // "release", and the token changes hands only by the holder's hand-back.
  options.params.min_turn_ns = options.params.max_turn_ns = 200'000'000;
  options.params.lease_ns = 60'000'000'000;
  options.gpus = kGpu + 1;
  gpuslice::testing::ArbitratedShim setup;
  ASSERT_EQ(gpuslice::testing::SetUpArbitratedShim(options, &setup), "");
  if (kGpu != 0) {
    auto retain = reinterpret_cast<CUresult (*)(CUcontext*, CUdevice)>(
        ::dlsym(setup.shim, "cuDevicePrimaryCtxRetain"));
    auto set_current =
        reinterpret_cast<CUresult (*)(CUcontext)>(::dlsym(setup.shim, "cuCtxSetCurrent"));
    ASSERT_TRUE(retain != nullptr && set_current != nullptr);
    CUcontext context = nullptr;
    ASSERT_EQ(retain(&context, static_cast<CUdevice>(kGpu)), CUDA_SUCCESS);
    ASSERT_EQ(set_current(context), CUDA_SUCCESS);
  }
  auto launch = reinterpret_cast<LaunchFn>(::dlsym(setup.shim, "cuLaunchKernel"));
  auto launches =
      reinterpret_cast<std::uint64_t (*)()>(::dlsym(setup.fake, "gpuslice_fake_cuda_launches"));
  auto syncs = reinterpret_cast<std::uint64_t (*)()>(
      ::dlsym(setup.fake, "gpuslice_fake_cuda_synchronizations"));
  ASSERT_TRUE(launch != nullptr && launches != nullptr && syncs != nullptr);
  auto Launch = [&](CUstream stream = nullptr) {
    return launch(nullptr, 1, 1, 1, 32, 1, 1, 0, stream, nullptr, nullptr);
  };
  auto stream_create =
      reinterpret_cast<CUresult (*)(CUstream*, unsigned)>(::dlsym(setup.shim, "cuStreamCreate"));
  ASSERT_NE(stream_create, nullptr);
  CUstream second = nullptr;
  ASSERT_EQ(stream_create(&second, 0), CUDA_SUCCESS);

  ASSERT_EQ(Launch(), CUDA_SUCCESS);  // joins, takes the token alone
  ASSERT_EQ(Launch(), CUDA_SUCCESS);
  gpuslice::testing::OtherTenant other;
  ASSERT_EQ(other.Join(setup, {}, kGpu), "");
  const gpuslice::shim::ArbiterGrantPage* page = other.region.page();
  const std::uint32_t mine = TokenHolder(__atomic_load_n(&page->token, __ATOMIC_ACQUIRE));
  ASSERT_NE(mine, gpuslice::shim::kNoTenant);
  ASSERT_EQ(other.gate->BeforeLaunch(gpuslice::shim::MonotonicNowNs()), GateDecision::kWait);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (TokenWaiters(__atomic_load_n(&page->token, __ATOMIC_ACQUIRE)) == 0 &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  const std::uint64_t contended = __atomic_load_n(&page->token, __ATOMIC_ACQUIRE);
  ASSERT_EQ(TokenHolder(contended), mine);
  ASSERT_EQ(TokenWaiters(contended), 1u) << "the referee never saw the other container wait";

  // 1. Queued work: with its time per launch not yet known the gate allows 8 launches between
  // drains (ArbiterParams::kernels_per_turn), the ones since its grant included (two here).
  const std::uint64_t syncs_before = syncs();
  int drained_at = 0;
  for (int i = 1; i <= 8 && drained_at == 0; ++i) {
    ASSERT_EQ(Launch(), CUDA_SUCCESS);
    if (syncs() > syncs_before) drained_at = i;
  }
  ASSERT_EQ(__atomic_load_n(&page->token, __ATOMIC_ACQUIRE), contended)
      << "the turn ended or the waiters changed during the launches: inconclusive";
  EXPECT_NE(drained_at, 0) << "8 launches while another container waits and no drain: the "
                              "holder's fast path let it queue past the bound";
  if (drained_at != 0) {
    EXPECT_GE(drained_at, 6) << "drained earlier than the bound asks";
  }

  // 2. The turn's end: from the moment the referee sets "release" in the token until this
  // process hands the token back, at most the one launch already past its check may reach the
  // driver. The launches alternate between two streams (both admitted by the fast path). An
  // observer spins on the token (the other container's side); a round in which it did not see the
  // "release" state is repeated.
  std::atomic<bool> done{false};
  int conclusive_rounds = 0;
  std::uint64_t worst = 0;
  std::thread observer([&] {
    const auto until = Clock::now() + std::chrono::seconds(20);
    std::uint64_t token = 0;
    while (conclusive_rounds < 3 && Clock::now() < until) {
      token = __atomic_load_n(&page->token, __ATOMIC_ACQUIRE);
      if (TokenHolder(token) == other.id) {
        // The other container takes its turn (no work) and asks again at once.
        const std::uint64_t now = gpuslice::shim::MonotonicNowNs();
        if (other.gate->BeforeLaunch(now) == GateDecision::kGo && other.gate->holding()) {
          other.gate->Release(now, now, true);
        }
        continue;
      }
      if (TokenHolder(token) != mine) continue;
      std::uint64_t at_release = 0;
      bool seen_release = false;
      while (TokenHolder(token = __atomic_load_n(&page->token, __ATOMIC_ACQUIRE)) == mine &&
             Clock::now() < until) {
        if (!seen_release && (token & kTokenRelease) != 0) {
          at_release = launches();
          seen_release = true;
        }
      }
      const std::uint64_t at_hand_back = launches();
      if (TokenHolder(token) == mine) break;  // never handed back: the check below fails
      if (seen_release) {
        ++conclusive_rounds;
        if (at_hand_back - at_release > worst) worst = at_hand_back - at_release;
      }
    }
    // The other container stops wanting the GPU, so this process's launches end alone.
    while (Clock::now() < until + std::chrono::seconds(5)) {
      const std::uint32_t seen = __atomic_load_n(&page->seq, __ATOMIC_ACQUIRE);
      const std::uint64_t now = gpuslice::shim::MonotonicNowNs();
      const GateDecision d = other.gate->BeforeLaunch(now);
      if (d == GateDecision::kGo && other.gate->holding()) {
        other.gate->Release(now, now, false);
        break;
      }
      if (d == GateDecision::kDrainThenRelease) continue;
      other.gate->StopWanting();
      if (!other.gate->holding()) break;
      other.region.WaitForChange(seen, 1'000'000);
    }
    done = true;
  });
  std::uint64_t launched = 0;
  while (!done) {
    ASSERT_EQ(Launch(launched % 2 == 0 ? nullptr : second), CUDA_SUCCESS);
    ++launched;
  }
  observer.join();
  EXPECT_GE(conclusive_rounds, 1) << "the observer never saw a turn end (" << launched
                                  << " launches): the holder did not hand back";
  EXPECT_LE(worst, 1u) << "launches reached the driver after the referee ended the turn";
}

}  // namespace
