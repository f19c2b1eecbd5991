// The compute arbiter with real processes: probe programs under the shim (LD_PRELOAD) against
// the fake driver, sharing one GPU's arbiter table the way containers on one GPU do.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "probe_process.h"
#include "shim/arbiter_region.h"
#include "shim/container_limits.h"
#include "shim_test_env.h"

namespace gpuslice::shim::testing {
namespace {

// One simulated node: a GPU's arbiter table and any number of containers on that GPU.
class ArbiterNode {
 public:
  ArbiterNode() {
    char pattern[] = "/tmp/gpuslice-arbiter-test-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    arbiter_path_ = (dir_ / "arbiter").string();
    if (ArbiterRegion::Create(arbiter_path_.c_str()) != 0) std::abort();
  }
  ~ArbiterNode() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  const std::string& arbiter_path() const { return arbiter_path_; }

  // The environment of a process of a new container with `weight` percent of the GPU.
  std::vector<std::string> Container(std::uint32_t weight) {
    const std::string name = "c" + std::to_string(containers_++);
    ContainerLimits limits;
    TestContainer::Copy((dir_ / (name + "-accounting")).string(), limits.region_path);
    TestContainer::Copy(GPUSLICE_FAKE_CUDA_PATH, limits.cuda_driver_path);
    TestContainer::Copy(GPUSLICE_FAKE_NVML_PATH, limits.nvml_driver_path);
    limits.device_count = 1;
    limits.devices[0].nvml_index = 0;
    limits.devices[0].memory_bytes = kGiB;
    limits.devices[0].compute_percent = weight;
    TestContainer::Copy(arbiter_path_, limits.devices[0].arbiter_path);
    const std::string limits_path = (dir_ / (name + "-limits")).string();
    if (!WriteContainerLimitsFile(limits_path, limits).ok()) std::abort();
    if (AccountingRegion::Create(limits.region_path) != 0) std::abort();
    return {std::string("LD_PRELOAD=") + GPUSLICE_CUDA_SHIM_PATH,
            "GPUSLICE_LIMITS_FILE=" + limits_path,
            "GPUSLICE_FAKE_GPUS=count=1,memory=16Gi",
            std::string("GPUSLICE_TEST_FAKE_CUDA=") + GPUSLICE_FAKE_CUDA_PATH,
            std::string("LD_LIBRARY_PATH=") + GPUSLICE_FAKE_CUDA_DIR,
            "ASAN_OPTIONS=verify_asan_link_order=0"};
  }

  // Whether the table has (or had: records outlive their process) a record of process `pid`.
  bool HasRecordOf(pid_t pid) {
    ArbiterRegion region;
    if (region.Open(arbiter_path_.c_str()) != 0) return false;
    for (const ArbiterTenant& t : region.table()->tenants) {
      if (t.pid == pid) return true;
    }
    return false;
  }

  // GPU time charged to the tenant record of process `pid` (records outlive their process).
  std::uint64_t ChargedNs(pid_t pid) {
    ArbiterRegion region;
    if (region.Open(arbiter_path_.c_str()) != 0) return 0;
    for (const ArbiterTenant& t : region.table()->tenants) {
      if (t.pid == pid) return t.charged_ns;
    }
    return 0;
  }

 private:
  std::filesystem::path dir_;
  std::string arbiter_path_;
  int containers_ = 0;
};

std::vector<std::string> Probe(std::vector<std::string> args) {
  args.insert(args.begin(), GPUSLICE_ARBITER_PROBE_PATH);
  return args;
}

class ArbiterIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ManagedNode()) GTEST_SKIP() << kDefaultLimitsPath << " exists: this is a managed node";
  }
};

TEST_F(ArbiterIntegration, TwoContainersShareTheTokenByWeight) {
  ArbiterNode node;
  ProbeProcess light(Probe({"spin", "1500"}), node.Container(30));
  ProbeProcess heavy(Probe({"spin", "1500"}), node.Container(70));
  ASSERT_EQ(light.Finish(), 0) << light.output();
  ASSERT_EQ(heavy.Finish(), 0) << heavy.output();
  EXPECT_GT(std::stoull(light.Value("launches")), 0u);
  EXPECT_GT(std::stoull(heavy.Value("launches")), 0u);
  // The fake's kernels take no time, so the charge is the time each held the token.
  const double a = static_cast<double>(node.ChargedNs(light.pid()));
  const double b = static_cast<double>(node.ChargedNs(heavy.pid()));
  ASSERT_GT(a + b, 0.0);
  std::printf("charged: light %.1f ms, heavy %.1f ms (%.1f %% / %.1f %%)\n", a / 1e6, b / 1e6,
              100 * a / (a + b), 100 * b / (a + b));
  EXPECT_NEAR(100 * a / (a + b), 30.0, 5.0);
}

TEST_F(ArbiterIntegration, AnIdleHolderIsRevokedAfterItsTurnAndLease) {
  ArbiterNode node;
  ProbeProcess holder(Probe({"hold"}), node.Container(50));
  ASSERT_TRUE(holder.WaitForLine("holding")) << holder.output();
  ProbeProcess other(Probe({"spin", "50"}), node.Container(50));
  ASSERT_EQ(other.Finish(), 0) << other.output();
  const ArbiterParams params;
  const auto waited_us = std::stoull(other.Value("first_wait_us"));
  EXPECT_GE(waited_us, (params.min_turn_ns + params.lease_ns) / 1000) << "it did wait";
  EXPECT_LT(waited_us, 2'000'000u) << "but only for the turn and the lease";
  holder.CloseStdin();
  EXPECT_EQ(holder.Finish(), 0);
}

TEST_F(ArbiterIntegration, ATenantInANewPidNamespaceCannotTakeALiveHoldersToken) {
  if (std::system("/usr/bin/unshare --user --pid --mount --mount-proc --fork true 2>/dev/null") !=
      0) {
    GTEST_SKIP() << "unprivileged user + pid namespaces are not available here";
  }
  ArbiterNode node;
  ProbeProcess holder(Probe({"hold"}), node.Container(50));
  ASSERT_TRUE(holder.WaitForLine("holding")) << holder.output();
  // Inside the namespace no other pid is visible: liveness by pid would call the holder dead.
  std::vector<std::string> argv = {"/usr/bin/unshare", "--user", "--pid", "--mount",
                                   "--mount-proc",     "--fork", "--"};
  for (const std::string& a : Probe({"spin", "50"})) argv.push_back(a);
  ProbeProcess other(argv, node.Container(50));
  ASSERT_EQ(other.Finish(), 0) << other.output();
  const ArbiterParams params;
  EXPECT_GE(std::stoull(other.Value("first_wait_us")),
            (params.min_turn_ns + params.lease_ns) / 1000)
      << "it waited out the live holder's turn and lease";
  holder.CloseStdin();
  EXPECT_EQ(holder.Finish(), 0);
}

TEST_F(ArbiterIntegration, ASigkilledHolderDoesNotStallOthers) {
  ArbiterNode node;
  ProbeProcess holder(Probe({"hold"}), node.Container(50));
  ASSERT_TRUE(holder.WaitForLine("holding")) << holder.output();
  holder.Kill(SIGKILL);
  holder.WaitForExit();
  ProbeProcess other(Probe({"spin", "50"}), node.Container(50));
  ASSERT_EQ(other.Finish(), 0) << other.output();
  const ArbiterParams params;
  EXPECT_LT(std::stoull(other.Value("first_wait_us")),
            (params.min_turn_ns + params.lease_ns) / 1000)
      << "the dead holder's lock is gone: its token is taken at once";
}

TEST_F(ArbiterIntegration, ARawForkChildIsATenantOfItsOwn) {
  ArbiterNode node;
  ProbeProcess parent(Probe({"raw-fork"}), node.Container(50));
  ASSERT_EQ(parent.Finish(), 0) << parent.output();
  EXPECT_EQ(parent.Value("child_status"), "0") << "the child's launches all went";
  EXPECT_TRUE(node.HasRecordOf(std::stoi(parent.Value("parent_pid"))));
  EXPECT_TRUE(node.HasRecordOf(std::stoi(parent.Value("child_pid"))))
      << "the child joined instead of launching on its parent's token";
}

TEST_F(ArbiterIntegration, GraphCaptureSucceedsWhileAnotherTenantContends) {
  ArbiterNode node;
  ProbeProcess busy(Probe({"spin", "1500"}), node.Container(50));
  ProbeProcess capture(Probe({"capture"}), node.Container(50));
  ASSERT_EQ(capture.Finish(), 0) << capture.output();
  EXPECT_EQ(capture.Value("captured"), "20");
  EXPECT_EQ(capture.Value("launched"), "5") << "captured launches run only in the graph";
  ASSERT_EQ(busy.Finish(), 0) << busy.output();
}

TEST_F(ArbiterIntegration, AZeroedTableIsRefusedAndLaunchesRunUnarbitrated) {
  ArbiterNode node;
  {
    std::ofstream zero(node.arbiter_path(), std::ios::binary | std::ios::trunc);
    zero << std::string(sizeof(ArbiterLayout), '\0');
  }
  ArbiterRegion region;
  EXPECT_EQ(region.Open(node.arbiter_path().c_str()), EPROTO) << "an opener never initialises";
  ProbeProcess probe(Probe({"spin", "20"}), node.Container(50));
  ASSERT_EQ(probe.Finish(), 0) << probe.output();
  EXPECT_GT(std::stoull(probe.Value("launches")), 0u);
}

TEST_F(ArbiterIntegration, AWriterOfTheTableCannotStallAnHonestTenantBeyondTheMaximumWait) {
  // The hostile tenant's view: the table is writable, so it forges a perpetual turn for a
  // record it holds. The honest tenant's own clock bounds its wait (then it runs unarbitrated).
  ArbiterNode node;
  ArbiterRegion hostile;
  ASSERT_EQ(hostile.Open(node.arbiter_path().c_str()), 0);
  const std::uint32_t me = hostile.Join(1, ::getpid());
  ASSERT_NE(me, kNoTenant);
  ArbiterLayout* t = hostile.table();
  t->tenants[me].state = static_cast<std::uint32_t>(TenantState::kHolding);
  t->tenants[me].charging = 1;
  t->header.turn_ns = UINT64_MAX / 4;  // a turn that never ends
  t->header.grant_ns = MonotonicNowNs();
  __atomic_store_n(&t->header.token, PackToken(me, 0), __ATOMIC_RELEASE);
  const ArbiterParams params;
  ProbeProcess honest(Probe({"spin", "20"}), node.Container(50));
  ASSERT_EQ(honest.Finish(), 0) << honest.output();
  const auto waited_us = std::stoull(honest.Value("first_wait_us"));
  EXPECT_GE(waited_us, params.max_wait_ns / 1000);
  EXPECT_LT(waited_us, params.max_wait_ns / 1000 + 2'000'000);
}

}  // namespace
}  // namespace gpuslice::shim::testing
