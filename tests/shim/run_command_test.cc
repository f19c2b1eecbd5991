// `gpuslice run` end to end: the built CLI runs the probe under the shims with the fake driver.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "probe_process.h"
#include "shim/compute_arbiter.h"
#include "shim_test_env.h"

namespace gpuslice::shim::testing {
namespace {

class RunCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ManagedNode()) {
      GTEST_SKIP() << kDefaultLimitsPath << " exists: this is a managed node";
    }
    char pattern[] = "/tmp/gpuslice-run-test-XXXXXX";
    state_dir_ = ::mkdtemp(pattern);
  }
  void TearDown() override {
    std::error_code ignored;
    if (!state_dir_.empty()) std::filesystem::remove_all(state_dir_, ignored);
  }

  // Runs `gpuslice run ARGS` with the fakes on the library path.
  ProbeProcess Run(std::vector<std::string> args, const std::string& gpus = "count=1,memory=16Gi",
                   const std::vector<std::string>& extra_env = {}) {
    args.insert(args.begin(), {GPUSLICE_CLI_PATH, "run", "--state-dir", state_dir_});
    std::vector<std::string> env = {
        std::string("LD_LIBRARY_PATH=") + GPUSLICE_FAKE_CUDA_DIR + ":" + GPUSLICE_FAKE_NVML_DIR,
        std::string("GPUSLICE_TEST_FAKE_CUDA=") + GPUSLICE_FAKE_CUDA_PATH,
        "GPUSLICE_FAKE_GPUS=" + gpus, "PATH=/usr/bin:/bin",
        "ASAN_OPTIONS=verify_asan_link_order=0"};
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    return ProbeProcess(args, env);
  }

  std::string state_dir_;
};

TEST_F(RunCommandTest, TheCommandSeesTheLimitAsTheGpu) {
  ProbeProcess run =
      Run({"--gpu", "0", "--memory", "4Gi", "--", GPUSLICE_PROBE_DLOPEN_PATH, "info"});
  ASSERT_EQ(run.Finish(), 0) << run.output();
  EXPECT_EQ(run.Value("cuda_total"), std::to_string(4 * kGiB));
  EXPECT_EQ(run.Value("nvml_total"), std::to_string(4 * kGiB));
}

TEST_F(RunCommandTest, RunsOnOneGpuShareItsTimeByTheirComputeWeights) {
  ProbeProcess light = Run(
      {"--memory", "1Gi", "--compute", "30", "--", GPUSLICE_ARBITER_PROBE_PATH, "spin", "1500"});
  ProbeProcess heavy = Run(
      {"--memory", "1Gi", "--compute", "70", "--", GPUSLICE_ARBITER_PROBE_PATH, "spin", "1500"});
  // Both runs use the GPU's one grant page under the state directory; one supervisor referees.
  // The referee publishes each container's charge there while it runs (sampled: a referee
  // that takes over when the first run ends starts a fresh page).
  double charged[101] = {};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1300);
  std::filesystem::path grant;
  while (std::chrono::steady_clock::now() < deadline) {  // both spin for 1.5 s
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(state_dir_, ec)) {
      if (entry.path().filename().string().rfind("gpu-", 0) == 0) grant = entry.path() / "grant";
    }
    std::ifstream in(grant, std::ios::binary);
    ArbiterGrantPage page{};
    if (in.read(reinterpret_cast<char*>(&page), sizeof(page)) && page.magic == kArbiterMagic) {
      for (const PublishedTenant& t : page.tenants) {
        if (t.weight <= 100 && t.state != 0) {
          charged[t.weight] = std::max(charged[t.weight], static_cast<double>(t.charged_ns));
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(light.Finish(), 0) << light.output();
  ASSERT_EQ(heavy.Finish(), 0) << heavy.output();
  std::printf("first launch waited %s us (30 %%), %s us (70 %%)\n",
              light.Value("first_wait_us").c_str(), heavy.Value("first_wait_us").c_str());
  ASSERT_FALSE(grant.empty());
  ASSERT_GT(charged[30] + charged[70], 0.0);
  std::printf("charged: 30 %% run %.1f ms, 70 %% run %.1f ms\n", charged[30] / 1e6,
              charged[70] / 1e6);
  EXPECT_NEAR(100 * charged[30] / (charged[30] + charged[70]), 30.0, 5.0);
}

TEST_F(RunCommandTest, ACapBelowTheRequestIsRefused) {
  ProbeProcess run = Run({"--memory", "1Gi", "--compute", "50", "--compute-cap", "40", "--",
                          GPUSLICE_PROBE_DIRECT_PATH, "info"});
  EXPECT_NE(run.Finish(), 0);
}

TEST_F(RunCommandTest, AllocationsPastTheLimitFail) {
  ProbeProcess run =
      Run({"--memory", "1Gi", "--", GPUSLICE_PROBE_DIRECT_PATH, "alloc", std::to_string(2 * kGiB)});
  ASSERT_EQ(run.Finish(), 0) << run.output();
  EXPECT_EQ(run.Value("result"), "2");
  EXPECT_EQ(run.Value("fake"), "0");
}

TEST_F(RunCommandTest, TheEnvironmentCannotRaiseTheLimit) {
  ProbeProcess run =
      Run({"--memory", "1Gi", "--", GPUSLICE_PROBE_DIRECT_PATH, "alloc", std::to_string(2 * kGiB)},
          "count=1,memory=16Gi", {"GPUSLICE_MEMORY_LIMIT=8Gi"});
  ASSERT_EQ(run.Finish(), 0) << run.output();
  EXPECT_EQ(run.Value("result"), "2");
}

TEST_F(RunCommandTest, AGpuNotGivenToTheRunHasNoMemory) {
  // The fake driver ignores CUDA_VISIBLE_DEVICES, so ordinal 0 is GPU 0, which the run was not
  // given: the shims match GPUs by UUID and refuse it even a context.
  ProbeProcess refused =
      Run({"--gpu", "1", "--memory", "4Gi", "--", GPUSLICE_PROBE_DIRECT_PATH, "info"},
          "count=2,memory=16Gi");
  EXPECT_EQ(refused.Finish(), 2);
  EXPECT_NE(refused.output().find("error=cuDevicePrimaryCtxRetain code=2"), std::string::npos)
      << refused.output();
  // The same run given GPU 0 works.
  ProbeProcess allowed =
      Run({"--gpu", "0", "--memory", "4Gi", "--", GPUSLICE_PROBE_DIRECT_PATH, "info"},
          "count=2,memory=16Gi");
  ASSERT_EQ(allowed.Finish(), 0) << allowed.output();
  EXPECT_EQ(allowed.Value("cuda_total"), std::to_string(4 * kGiB));
}

TEST_F(RunCommandTest, ReturnsTheCommandsExitCodeAndCleansUp) {
  ProbeProcess run = Run({"--memory", "1Gi", "--", "/bin/sh", "-c", "exit 7"});
  EXPECT_EQ(run.Finish(), 7);
  // The run directory is removed; the GPU's arbiter table, shared by every run on it, stays.
  for (const auto& entry : std::filesystem::directory_iterator(state_dir_)) {
    EXPECT_EQ(entry.path().filename().string().rfind("gpu-", 0), 0u) << entry.path();
  }
}

TEST_F(RunCommandTest, RejectsBadFlagsWithAMessage) {
  struct Row {
    std::vector<std::string> args;
    const char* message;
  };
  const Row rows[] = {
      {{"--memory", "lots", "--", "true"}, "not a memory size"},
      {{"--memory", "1Gi", "--gpu", "a", "--", "true"}, "not a GPU index"},
      {{"--memory", "1Gi", "--compute", "0", "--", "true"}, "1-100"},
      {{"--memory", "1Gi", "--shim-dir", "/nonexistent", "--", "true"}, "--shim-dir"},
  };
  for (const Row& row : rows) {
    ProbeProcess run = Run(row.args);
    EXPECT_NE(run.Finish(), 0);
  }
}

// Issue 11, item 2/3: under `gpuslice run` the command can point the shim at a limits file of
// its own (GPUSLICE_LIMITS_FILE, with a region it made), so the shim allows 2 GiB under a 1 GiB
// run. The supervisor's watchdog, whose limit the command cannot reach, kills it.
TEST_F(RunCommandTest, ALimitsFileOfTheCommandsOwnIsCaughtByTheSupervisorsWatchdog) {
  const std::string driver_dir = state_dir_ + "/driver";
  std::filesystem::create_directories(driver_dir);
  TestContainer own(8 * kGiB);  // the tenant's own limits file and region
  const std::string command = "GPUSLICE_LIMITS_FILE=" + own.limits_path + " exec " +
                              GPUSLICE_PROBE_DIRECT_PATH + " hold " + std::to_string(2 * kGiB);
  ProbeProcess run = Run({"--memory", "1Gi", "--watchdog-interval-ms", "100", "--watchdog-grace-ms",
                          "0", "--", "/bin/sh", "-c", command},
                         "count=1,memory=16Gi", {"GPUSLICE_FAKE_DRIVER_DIR=" + driver_dir});
  ASSERT_TRUE(run.WaitForLine("ready")) << run.output();
  EXPECT_EQ(run.Value("result"), "0") << "the shim, pointed at the tenant's file, allowed it";
  std::atomic<bool> exited{false};
  std::thread guard([&] {  // on failure: end the run instead of hanging
    for (int i = 0; i < 300 && !exited; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!exited) run.Kill(SIGTERM);
  });
  const int status = run.WaitForExit();
  exited = true;
  guard.join();
  EXPECT_EQ(status, 128 + SIGKILL) << "the command was killed by the watchdog\n" << run.output();
}

// The same with no shim at all: the command unsets LD_PRELOAD for its child.
TEST_F(RunCommandTest, ACommandThatDropsTheShimIsCaughtByTheSupervisorsWatchdog) {
  const std::string driver_dir = state_dir_ + "/driver";
  std::filesystem::create_directories(driver_dir);
  ProbeProcess run = Run({"--memory", "1Gi", "--watchdog-interval-ms", "100", "--watchdog-grace-ms",
                          "0", "--", "/usr/bin/env", "-u", "LD_PRELOAD", GPUSLICE_PROBE_DIRECT_PATH,
                          "hold", std::to_string(2 * kGiB)},
                         "count=1,memory=16Gi", {"GPUSLICE_FAKE_DRIVER_DIR=" + driver_dir});
  ASSERT_TRUE(run.WaitForLine("ready")) << run.output();
  EXPECT_EQ(run.Value("result"), "0") << "no shim: the driver gave it 2 GiB";
  std::atomic<bool> exited{false};
  std::thread guard([&] {
    for (int i = 0; i < 300 && !exited; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!exited) run.Kill(SIGTERM);
  });
  const int status = run.WaitForExit();
  exited = true;
  guard.join();
  EXPECT_EQ(status, 128 + SIGKILL) << run.output();
}

TEST_F(RunCommandTest, TheWatchdogLeavesARunWithinItsLimitAlone) {
  const std::string driver_dir = state_dir_ + "/driver";
  std::filesystem::create_directories(driver_dir);
  ProbeProcess run =
      Run({"--memory", "1Gi", "--watchdog-interval-ms", "50", "--watchdog-grace-ms", "0", "--",
           GPUSLICE_PROBE_DIRECT_PATH, "hold", std::to_string(512 * kMiB)},
          "count=1,memory=16Gi", {"GPUSLICE_FAKE_DRIVER_DIR=" + driver_dir});
  ASSERT_TRUE(run.WaitForLine("ready")) << run.output();
  // Several checks pass while it holds 512 MiB of its 1 GiB.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(run.Finish(), 0) << run.output();
}

TEST_F(RunCommandTest, RejectsABadWatchdogSetting) {
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{"--watchdog", "maybe"},
        std::vector<std::string>{"--watchdog-interval-ms", "5000"},
        std::vector<std::string>{"--watchdog-grace-ms", "-1"}}) {
    std::vector<std::string> args = {"--memory", "1Gi"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), {"--", "/bin/true"});
    ProbeProcess run = Run(args);
    EXPECT_EQ(run.Finish(), 2) << flags[0];
  }
}

}  // namespace
}  // namespace gpuslice::shim::testing
