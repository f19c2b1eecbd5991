// End to end: a real process WITHOUT the shim allocates past its container's limit on the fake
// driver; the watchdog, reading the fake NVML through the real dlopen-based reader, sees it at
// the first check and kills it once the grace period has passed.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <thread>

#include "fakes/watchdog_fakes.h"
#include "probe_process.h"
#include "watchdog/memory_watchdog.h"
#include "watchdog/nvml_process_usage.h"

namespace gpuslice::watchdog {
namespace {

using shim::testing::ProbeProcess;
using std::chrono::milliseconds;
constexpr std::uint64_t kGiB = 1ULL << 30;

using testing::RecordingSink;

class WatchdogFakeDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/gpuslice-watchdog-test-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    // The fake NVML, loaded into this test process, reads the same directory.
    ::setenv("GPUSLICE_FAKE_DRIVER_DIR", dir_.c_str(), 1);
    ::setenv("GPUSLICE_FAKE_GPUS", "count=1,memory=16Gi", 1);
    auto nvml = NvmlProcessUsage::Open(GPUSLICE_FAKE_NVML_PATH);
    ASSERT_TRUE(nvml.ok()) << nvml.status().message();
    nvml_ = std::move(*nvml);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  // A process with no shim, straight on the fake driver, holding `bytes`.
  std::unique_ptr<ProbeProcess> Hold(std::uint64_t bytes) {
    auto p = std::make_unique<ProbeProcess>(
        std::vector<std::string>{GPUSLICE_PROBE_DIRECT_PATH, "hold", std::to_string(bytes)},
        std::vector<std::string>{
            "GPUSLICE_FAKE_GPUS=count=1,memory=16Gi", "GPUSLICE_FAKE_DRIVER_DIR=" + dir_.string(),
            std::string("LD_LIBRARY_PATH=") + GPUSLICE_FAKE_CUDA_DIR + ":" +
                std::filesystem::path(GPUSLICE_FAKE_NVML_PATH).parent_path().string()});
    EXPECT_TRUE(p->WaitForLine("ready")) << p->output();
    EXPECT_EQ(p->Value("result"), "0") << p->output();
    return p;
  }

  std::filesystem::path dir_;
  std::unique_ptr<NvmlProcessUsage> nvml_;
  ProcfsProcessTable processes_;
  SigkillProcessKiller killer_;
  RecordingSink sink_;
};

TEST_F(WatchdogFakeDriverTest, NvmlReaderSeesEachProcessesUsage) {
  auto a = Hold(kGiB);
  auto b = Hold(2 * kGiB);
  auto rows = nvml_->ReadProcessUsage();
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  std::map<std::int32_t, std::uint64_t> by_pid;
  for (const GpuProcessUsage& row : *rows) by_pid[row.pid] += row.used_bytes;
  EXPECT_EQ(by_pid[a->pid()], kGiB);
  EXPECT_EQ(by_pid[b->pid()], 2 * kGiB);
  a->CloseStdin();
  EXPECT_EQ(a->Finish(), 0);
  rows = nvml_->ReadProcessUsage();
  ASSERT_TRUE(rows.ok());
  for (const GpuProcessUsage& row : *rows) EXPECT_NE(row.pid, a->pid()) << "exited: holds nothing";
  b->CloseStdin();
  b->Finish();
}

TEST_F(WatchdogFakeDriverTest, UnshimmedProcessOverItsLimitIsDetectedAtTheFirstCheckAndKilled) {
  ManualClock clock;
  MemoryWatchdog watchdog({milliseconds(1000), milliseconds(3000), true}, *nvml_, processes_,
                          killer_, sink_, clock);
  auto within = Hold(kGiB / 2);
  watchdog.Watch({"within", "", within->pid(), {{0, kGiB}}});
  auto tenant = Hold(2 * kGiB);
  watchdog.Watch({"tenant", "", tenant->pid(), {{0, kGiB}}});

  // The first check after the allocation (checks run every <= 1 s) sees it.
  ASSERT_TRUE(watchdog.CheckOnce().ok());
  ASSERT_EQ(sink_.Count(WatchdogEventKind::kOverLimit), 1u);
  EXPECT_EQ(sink_.events[0].container, "tenant");
  EXPECT_EQ(sink_.events[0].used_bytes, 2 * kGiB);
  clock.Advance(milliseconds(2000));
  ASSERT_TRUE(watchdog.CheckOnce().ok());
  EXPECT_EQ(sink_.Count(WatchdogEventKind::kKilled), 0u) << "still within the grace period";
  clock.Advance(milliseconds(1000));
  ASSERT_TRUE(watchdog.CheckOnce().ok());
  EXPECT_EQ(sink_.Count(WatchdogEventKind::kKilled), 1u);
  EXPECT_EQ(tenant->Finish(), -SIGKILL);

  within->CloseStdin();
  EXPECT_EQ(within->Finish(), 0) << "the container within its limit is left alone";
}

TEST_F(WatchdogFakeDriverTest, RunningWatchdogKillsAnOffenderOnItsOwn) {
  SteadyClock clock;
  MemoryWatchdog watchdog({milliseconds(100), milliseconds(0), true}, *nvml_, processes_, killer_,
                          sink_, clock);
  auto tenant = Hold(3 * kGiB);
  watchdog.Watch({"tenant", "", tenant->pid(), {{0, kGiB}}});
  watchdog.Start();
  // Wait for the kill (Finish would close the probe's stdin and let it exit by itself).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (sink_.Count(WatchdogEventKind::kKilled) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  watchdog.Stop();
  EXPECT_GE(sink_.Count(WatchdogEventKind::kKilled), 1u);
  EXPECT_EQ(tenant->Finish(), -SIGKILL);
}

}  // namespace
}  // namespace gpuslice::watchdog
