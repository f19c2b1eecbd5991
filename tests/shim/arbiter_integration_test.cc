// The compute arbiter with real processes: probe programs under the shim (LD_PRELOAD) against
// the fake driver, sharing one GPU's arbiter table the way containers on one GPU do.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "probe_process.h"
#include "shim/arbiter_referee.h"
#include "shim/arbiter_region.h"
#include "shim/container_limits.h"
#include "shim_test_env.h"

namespace gpuslice::shim::testing {
namespace {

// One simulated node: a GPU's referee (in this process, as in the node agent), its grant page,
// and any number of containers on that GPU, each with its own request file.
class ArbiterNode {
 public:
  ArbiterNode() {
    char pattern[] = "/tmp/gpuslice-arbiter-test-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    ::chmod(dir_.c_str(), 0755);  // a probe may run as another user
    grant_path_ = (dir_ / "grant").string();
    Result<std::unique_ptr<ArbiterReferee>> referee = ArbiterReferee::Start(grant_path_);
    if (!referee.ok()) std::abort();
    referee_ = *std::move(referee);
  }
  ~ArbiterNode() {
    referee_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  const std::string& grant_path() const { return grant_path_; }
  ArbiterReferee& referee() { return *referee_; }

  // The environment of a process of a new container `name` with `weight` percent of the GPU.
  std::vector<std::string> Container(std::uint32_t weight, std::string name = "") {
    if (name.empty()) name = "c" + std::to_string(containers_++);
    ContainerLimits limits;
    TestContainer::Copy((dir_ / (name + "-accounting")).string(), limits.region_path);
    TestContainer::Copy(GPUSLICE_FAKE_CUDA_PATH, limits.cuda_driver_path);
    TestContainer::Copy(GPUSLICE_FAKE_NVML_PATH, limits.nvml_driver_path);
    limits.device_count = 1;
    limits.devices[0].nvml_index = 0;
    limits.devices[0].memory_bytes = kGiB;
    limits.devices[0].compute_percent = weight;
    const std::string requests = (dir_ / (name + "-requests")).string();
    TestContainer::Copy(grant_path_, limits.devices[0].arbiter_path);
    TestContainer::Copy(requests, limits.devices[0].requests_path);
    const std::string limits_path = (dir_ / (name + "-limits")).string();
    if (!WriteContainerLimitsFile(limits_path, limits).ok()) std::abort();
    if (AccountingRegion::Create(limits.region_path) != 0) std::abort();
    if (ArbiterRegion::CreateRequests(requests.c_str()) != 0) std::abort();
    if (!referee_->AddTenant(name, requests, weight, 0).ok()) std::abort();
    tenants_.push_back({name, requests, weight});
    return {std::string("LD_PRELOAD=") + GPUSLICE_CUDA_SHIM_PATH,
            "GPUSLICE_LIMITS_FILE=" + limits_path,
            "GPUSLICE_FAKE_GPUS=count=1,memory=16Gi",
            std::string("GPUSLICE_TEST_FAKE_CUDA=") + GPUSLICE_FAKE_CUDA_PATH,
            std::string("LD_LIBRARY_PATH=") + GPUSLICE_FAKE_CUDA_DIR,
            "ASAN_OPTIONS=verify_asan_link_order=0"};
  }

  // A new referee takes over the page (as after an agent restart, or another `gpuslice run`
  // supervisor taking over), listing the containers in the reverse order: other slots.
  void RestartReferee() {
    referee_.reset();
    Result<std::unique_ptr<ArbiterReferee>> referee = ArbiterReferee::Start(grant_path_);
    if (!referee.ok()) std::abort();
    referee_ = *std::move(referee);
    for (auto t = tenants_.rbegin(); t != tenants_.rend(); ++t) {
      if (!referee_->AddTenant(t->name, t->requests, t->weight, 0).ok()) std::abort();
    }
  }

  // Maps container `name`'s files as one of its processes does.
  int OpenAs(const std::string& name, ArbiterRegion& region) {
    return region.Open(grant_path_.c_str(), (dir_ / (name + "-requests")).c_str());
  }

  // Whether container `name`'s request file has (or had) a record of process `pid`.
  bool HasRecordOf(const std::string& name, pid_t pid) {
    ArbiterRegion region;
    if (region.Open(grant_path_.c_str(), (dir_ / (name + "-requests")).c_str()) != 0) return false;
    for (const ProcessRequest& r : region.requests()->processes) {
      if (r.pid == pid) return true;
    }
    return false;
  }

 private:
  std::filesystem::path dir_;
  std::string grant_path_;
  std::unique_ptr<ArbiterReferee> referee_;
  struct Registered {
    std::string name;
    std::string requests;
    std::uint32_t weight;
  };
  std::vector<Registered> tenants_;
  int containers_ = 0;
};

std::vector<std::string> Probe(std::vector<std::string> args) {
  args.insert(args.begin(), GPUSLICE_ARBITER_PROBE_PATH);
  return args;
}

// A tenant that asked while a live holder held the token waited out the holder's turn and lease.
void ExpectWaitedOutTurnAndLease(const ProbeProcess& tenant, const char* why) {
  const ArbiterParams params;
  EXPECT_GE(std::stoull(tenant.Value("first_wait_us")),
            (params.min_turn_ns + params.lease_ns) / 1000)
      << why;
}

class ArbiterIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ManagedNode()) GTEST_SKIP() << kDefaultLimitsPath << " exists: this is a managed node";
  }
};

TEST_F(ArbiterIntegration, TwoContainersShareTheTokenByWeight) {
  ArbiterNode node;
  ProbeProcess light(Probe({"spin", "1500"}), node.Container(30, "light"));
  ProbeProcess heavy(Probe({"spin", "1500"}), node.Container(70, "heavy"));
  ASSERT_EQ(light.Finish(), 0) << light.output();
  ASSERT_EQ(heavy.Finish(), 0) << heavy.output();
  EXPECT_GT(std::stoull(light.Value("launches")), 0u);
  EXPECT_GT(std::stoull(heavy.Value("launches")), 0u);
  // The fake's kernels take no time, so the charge is the time each held the token (the
  // referee's own accounts).
  const double a = static_cast<double>(node.referee().ChargedNs("light"));
  const double b = static_cast<double>(node.referee().ChargedNs("heavy"));
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
  ExpectWaitedOutTurnAndLease(other, "it waited out the live holder's turn and lease");
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
  ProbeProcess parent(Probe({"raw-fork"}), node.Container(50, "forker"));
  ASSERT_EQ(parent.Finish(), 0) << parent.output();
  EXPECT_EQ(parent.Value("child_status"), "0") << "the child's launches all went";
  EXPECT_TRUE(node.HasRecordOf("forker", std::stoi(parent.Value("parent_pid"))));
  EXPECT_TRUE(node.HasRecordOf("forker", std::stoi(parent.Value("child_pid"))))
      << "the child took a record of its own instead of launching on its parent's token";
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

// A tenant sees the grant page through a read-only mount (here: a file it may not write); the
// shim needs no more than that, and the tenant cannot write it.
TEST_F(ArbiterIntegration, ATenantThatCannotWriteTheGrantPageIsArbitratedAndCannotForgeIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the probe as another user";
  ArbiterNode node;
  ProbeProcess holder(Probe({"hold"}), node.Container(50));
  ASSERT_TRUE(holder.WaitForLine("holding")) << holder.output();
  std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                   "--clear-groups", "--"};
  for (const std::string& a : Probe({"forge", node.grant_path()})) argv.push_back(a);
  ProbeProcess other(argv, node.Container(50));
  ASSERT_EQ(other.Finish(), 0) << other.output();
  EXPECT_EQ(other.Value("open_for_writing"), std::to_string(EACCES));
  ExpectWaitedOutTurnAndLease(
      other, "arbitrated through its read-only view: it waited out the holder's turn and lease");
  holder.CloseStdin();
  EXPECT_EQ(holder.Finish(), 0);
}

// Where the page is mounted writable after all: zeroing it resets nothing, the referee rebuilds
// it from its own state at its next look.
TEST_F(ArbiterIntegration, AZeroedGrantPageIsRebuiltAndTheLiveHolderKeepsItsTurn) {
  ArbiterNode node;
  ProbeProcess holder(Probe({"hold"}), node.Container(50));
  ASSERT_TRUE(holder.WaitForLine("holding")) << holder.output();
  {
    std::ofstream zero(node.grant_path(), std::ios::binary | std::ios::in | std::ios::out);
    zero << std::string(sizeof(ArbiterGrantPage), '\0');
  }
  ProbeProcess other(Probe({"spin", "50"}), node.Container(50));  // rings: the referee looks
  ASSERT_EQ(other.Finish(), 0) << other.output();
  ExpectWaitedOutTurnAndLease(other, "the holder's turn survived the zeroing");
  holder.CloseStdin();
  EXPECT_EQ(holder.Finish(), 0);
}

// A container that scribbles over its own request file (claims every record, releases grants it
// never held, forges completions) while spinning gets no more than its weight.
TEST_F(ArbiterIntegration, AContainerScribblingItsRequestFileGetsNoMoreThanItsWeight) {
  ArbiterNode node;
  ProbeProcess hostile(Probe({"scribble", "2500"}), node.Container(30, "hostile"));
  ProbeProcess honest(Probe({"spin", "1500"}), node.Container(70, "honest"));
  ASSERT_EQ(honest.Finish(), 0) << honest.output();
  // Charged while both ran (the hostile one goes on alone a while).
  const double a = static_cast<double>(node.referee().ChargedNs("hostile"));
  const double b = static_cast<double>(node.referee().ChargedNs("honest"));
  ASSERT_EQ(hostile.Finish(), 0) << hostile.output();
  ASSERT_GT(a + b, 0.0);
  std::printf("charged: hostile %.1f ms, honest %.1f ms (%.1f %%)\n", a / 1e6, b / 1e6,
              100 * a / (a + b));
  EXPECT_LE(100 * a / (a + b), 35.0);
}

TEST_F(ArbiterIntegration, ARunningTenantFollowsARefereeThatTookOverWithOtherSlots) {
  ArbiterNode node;
  const auto start = std::chrono::steady_clock::now();
  ProbeProcess running(Probe({"spin", "800"}), node.Container(50, "first"));
  node.Container(50, "second");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  node.RestartReferee();
  ASSERT_EQ(running.Finish(), 0) << running.output();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 3.0) << "it waited for grants naming its old slot";
}

// A container can ring its doorbell as fast as it likes: the referee looks at most every 50 us.
TEST_F(ArbiterIntegration, ADoorbellRungInALoopCostsTheRefereeAtMostOneLookPer50us) {
  ArbiterNode node;
  node.Container(50, "noisy");
  ArbiterRegion noisy;
  ASSERT_EQ(node.OpenAs("noisy", noisy), 0);
  const std::uint64_t before = node.referee().looks();
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(200)) noisy.Ring();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::uint64_t looks = node.referee().looks() - before;
  std::printf("doorbell spam: %llu looks in %.3f s\n", static_cast<unsigned long long>(looks),
              seconds);
  EXPECT_LE(static_cast<double>(looks), seconds / 50e-6 + 100);
}

// `gpuslice run`'s referee: one of the runs on a GPU referees; when its run ends another takes
// over and lists the remaining runs.
TEST(SharedReferee, AnotherRunTakesOverWhenTheRefereesRunEnds) {
  char pattern[] = "/tmp/gpuslice-shared-referee-XXXXXX";
  const std::filesystem::path dir = ::mkdtemp(pattern);
  const std::string a_requests = (dir / "a-requests").string();
  const std::string b_requests = (dir / "b-requests").string();
  ASSERT_EQ(ArbiterRegion::CreateRequests(a_requests.c_str()), 0);
  ASSERT_EQ(ArbiterRegion::CreateRequests(b_requests.c_str()), 0);
  auto eventually = [](auto done) {
    for (int i = 0; i < 300 && !done(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
  };
  Result<std::unique_ptr<SharedReferee>> a =
      SharedReferee::Join((dir / "gpu-0").string(), "a", a_requests, 30, 0);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(eventually([&] { return (*a)->leading(); }));
  Result<std::unique_ptr<SharedReferee>> b =
      SharedReferee::Join((dir / "gpu-0").string(), "b", b_requests, 70, 0);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_FALSE((*b)->leading()) << "one referee per GPU";
  a->reset();  // the referee's run ends
  ASSERT_TRUE(eventually([&] { return (*b)->leading(); }));
  ArbiterRegion region;
  ASSERT_TRUE(eventually([&] {
    return region.Open((*b)->grant_path().c_str(), b_requests.c_str()) == 0 &&
           region.FindTenantSlot() != kNoTenant;
  })) << "the new referee lists the remaining run";
  EXPECT_EQ(region.page()->tenants[region.FindTenantSlot()].weight, 70u);
  b->reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace
}  // namespace gpuslice::shim::testing
