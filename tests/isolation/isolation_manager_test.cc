// The driver isolation tier end to end on fakes: the createContainer hook path into the manager,
// driver memory limits on a fake cgroup tree, MPS v3 namespaces, restart, reaping.
#include "isolation/isolation_manager.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "backends/sim_dmem_tree.h"
#include "backends/simulated_memory_limits.h"
#include "core/resource_names.h"
#include "fake_cgroup_tree.h"
#include "fake_mps_v3_control.h"
#include "hook_path.h"
#include "isolation/oci_hook.h"

namespace gpuslice {
namespace {

using testing::FakeCgroupTree;
using testing::InMemoryMpsV3;

constexpr std::uint64_t kGi = 1ULL << 30;
const std::string kGpu0 = "GPU-11111111-2222-3333-4444-555555555555";
const std::string kGpu1 = "GPU-66666666-7777-8888-9999-000000000000";

using testing::Sleeper;

class IsolationTest : public ::testing::Test {
 protected:
  IsolationManagerOptions Options() const { return testing::ManagerOptionsFor(tree_); }
  HookOptions Hook() const { return testing::HookOptionsFor(tree_); }
  Status StartContainer(IsolationManager& manager, const std::string& id, const std::string& path,
                        long pid, const std::string& token) {
    return testing::StartContainerThroughHook(tree_, manager, id, path, pid, token);
  }
  MemoryLimits Limits(const std::string& gpu, const std::string& cgroup) {
    Result<MemoryLimits> got = driver_.GetMemoryLimits(gpu, cgroup);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : MemoryLimits{};
  }

  FakeCgroupTree tree_;
  FileMemoryLimits driver_{{kGpu0, kGpu1}};
  InMemoryMpsV3 mps_;
  Sleeper a_, b_, c_;
};

TEST_F(IsolationTest, TimeSlicingTwoContainersThroughHookGetTheirOwnLimits) {
  IsolationManager manager(Options(), &driver_, nullptr);
  auto t1 = manager.RegisterPartition({kGpu0, 4 * kGi, 2 * kGi});
  auto t2 = manager.RegisterPartition({kGpu0, 10 * kGi, 10 * kGi});
  ASSERT_TRUE(t1.ok() && t2.ok());
  ASSERT_TRUE(StartContainer(manager, "ctr1", "/kubepods/pod1/ctr1", a_.pid, *t1).ok());
  ASSERT_TRUE(StartContainer(manager, "ctr2", "/kubepods/pod2/ctr2", b_.pid, *t2).ok());
  const MemoryLimits l1 = Limits(kGpu0, tree_.cgroup_mount() + "/kubepods/pod1/ctr1");
  const MemoryLimits l2 = Limits(kGpu0, tree_.cgroup_mount() + "/kubepods/pod2/ctr2");
  EXPECT_EQ(l1.hard_limit_bytes, 4 * kGi);
  EXPECT_EQ(l1.soft_limit_bytes, 2 * kGi);
  EXPECT_EQ(l2.hard_limit_bytes, 10 * kGi);
  EXPECT_EQ(l2.soft_limit_bytes, 10 * kGi);
  EXPECT_FALSE(Limits(kGpu1, tree_.cgroup_mount() + "/kubepods/pod1/ctr1").set());
  EXPECT_EQ(manager.Bindings().size(), 2u);
  EXPECT_EQ(manager.PendingTokens(), 0u);
}

TEST_F(IsolationTest, MpsTwoContainersGetTheirOwnNamespaceWithTheirShare) {
  IsolationManager manager(Options(), &driver_, &mps_);
  auto t1 = manager.RegisterPartition({kGpu0, 20 * kGi, 20 * kGi, true, 25, 0});
  auto t2 = manager.RegisterPartition({kGpu0, 40 * kGi, 40 * kGi, true, 50, 1});
  ASSERT_TRUE(t1.ok() && t2.ok());
  const std::string ns1 = manager.PartitionFor(*t1)->mps_namespace;
  const std::string ns2 = manager.PartitionFor(*t2)->mps_namespace;
  EXPECT_EQ(ns1, "ns-" + t1->substr(0, 16));
  EXPECT_NE(ns1, ns2);
  ASSERT_TRUE(StartContainer(manager, "ctr1", "/kubepods/pod1/ctr1", a_.pid, *t1).ok());
  ASSERT_TRUE(StartContainer(manager, "ctr2", "/kubepods/pod2/ctr2", b_.pid, *t2).ok());
  const std::string server = manager.MpsServerFor(kGpu0);
  EXPECT_EQ(server, "gpu-11111111");
  ASSERT_EQ(mps_.servers[server].size(), 2u);
  const MpsV3Namespace& n1 = mps_.servers[server][ns1];
  const MpsV3Namespace& n2 = mps_.servers[server][ns2];
  EXPECT_EQ(n1.pinned_memory_limit_bytes, 20 * kGi);
  EXPECT_EQ(n1.active_thread_percentage, 25);
  EXPECT_EQ(n1.client_priority, 0);
  EXPECT_EQ(n2.pinned_memory_limit_bytes, 40 * kGi);
  EXPECT_EQ(n2.active_thread_percentage, 50);
  EXPECT_EQ(n2.client_priority, 1);
  // The driver limit is set as well: the namespace limits pinned memory through MPS, the driver
  // limits the cgroup whatever the process does.
  EXPECT_EQ(Limits(kGpu0, tree_.cgroup_mount() + "/kubepods/pod1/ctr1").hard_limit_bytes, 20 * kGi);
}

TEST_F(IsolationTest, TwoProcessesInOneContainerShareOneLimit) {
  IsolationManager manager(Options(), &driver_, nullptr);
  auto token = manager.RegisterPartition({kGpu0, 1 * kGi, 512ULL << 20});
  ASSERT_TRUE(token.ok());
  ASSERT_TRUE(StartContainer(manager, "ctr1", "/kubepods/pod1/ctr1", a_.pid, *token).ok());
  const std::string cgroup = tree_.cgroup_mount() + "/kubepods/pod1/ctr1";
  FakeCgroupTree::SetProcs(cgroup, {a_.pid, b_.pid});  // a second process in the container
  // Each process alone stays under 1 GiB; together they would not: the second is refused.
  EXPECT_TRUE(simdmem::Charge(cgroup, kGpu0, a_.pid, 600LL << 20));
  EXPECT_FALSE(simdmem::Charge(cgroup, kGpu0, b_.pid, 600LL << 20));
  EXPECT_TRUE(simdmem::Charge(cgroup, kGpu0, b_.pid, 400LL << 20));
  EXPECT_EQ(Limits(kGpu0, cgroup).current_used_bytes, 1000ULL << 20);
  // A process that exits frees its memory, as the driver does.
  a_.Kill();
  EXPECT_EQ(Limits(kGpu0, cgroup).current_used_bytes, 400ULL << 20);
  EXPECT_TRUE(simdmem::Charge(cgroup, kGpu0, b_.pid, 600LL << 20));
}

TEST_F(IsolationTest, ContainerThatEndsHasItsLimitAndNamespaceCleared) {
  IsolationManager manager(Options(), &driver_, &mps_);
  auto t1 = manager.RegisterPartition({kGpu0, 4 * kGi, 4 * kGi, true, 50, 0});
  auto t2 = manager.RegisterPartition({kGpu0, 4 * kGi, 4 * kGi, true, 50, 0});
  const std::string ns1 = manager.PartitionFor(*t1)->mps_namespace;
  const std::string ns2 = manager.PartitionFor(*t2)->mps_namespace;
  ASSERT_TRUE(StartContainer(manager, "ctr1", "/kubepods/pod1/ctr1", a_.pid, *t1).ok());
  ASSERT_TRUE(StartContainer(manager, "ctr2", "/kubepods/pod2/ctr2", b_.pid, *t2).ok());
  const std::string cgroup1 = tree_.cgroup_mount() + "/kubepods/pod1/ctr1";
  EXPECT_EQ(manager.ReapEnded(), 0);
  FakeCgroupTree::SetProcs(cgroup1, {});  // its last process exited; the cgroup still exists
  EXPECT_EQ(manager.ReapEnded(), 1);
  EXPECT_FALSE(Limits(kGpu0, cgroup1).set());
  EXPECT_EQ(mps_.servers[manager.MpsServerFor(kGpu0)].count(ns1), 0u);
  EXPECT_EQ(mps_.servers[manager.MpsServerFor(kGpu0)].count(ns2), 1u);
  EXPECT_EQ(Limits(kGpu0, tree_.cgroup_mount() + "/kubepods/pod2/ctr2").hard_limit_bytes, 4 * kGi);
  ASSERT_EQ(manager.Bindings().size(), 1u);
  EXPECT_EQ(manager.Bindings()[0].container_id, "ctr2");
}

TEST_F(IsolationTest, AgentRestartKeepsLiveContainersAndCleansEndedOnes) {
  std::string t3, ns1, ns2;
  {
    IsolationManager manager(Options(), &driver_, &mps_);
    auto t1 = manager.RegisterPartition({kGpu0, 4 * kGi, 2 * kGi, true, 30, 0});
    auto t2 = manager.RegisterPartition({kGpu1, 8 * kGi, 8 * kGi, true, 70, 0});
    auto pending = manager.RegisterPartition({kGpu0, 2 * kGi, 2 * kGi});
    ASSERT_TRUE(t1.ok() && t2.ok() && pending.ok());
    t3 = *pending;
    ns1 = manager.PartitionFor(*t1)->mps_namespace;
    ns2 = manager.PartitionFor(*t2)->mps_namespace;
    ASSERT_TRUE(StartContainer(manager, "ctr1", "/kubepods/pod1/ctr1", a_.pid, *t1).ok());
    ASSERT_TRUE(StartContainer(manager, "ctr2", "/kubepods/pod2/ctr2", b_.pid, *t2).ok());
  }  // the agent stops
  // While it is down: ctr2 ends, and the MPS daemon restarted empty (namespaces are not
  // persisted by MPS v3 beyond the daemon's lifetime).
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/pod2/ctr2", {});
  mps_.servers.clear();
  IsolationManager restarted(Options(), &driver_, &mps_);
  ASSERT_TRUE(restarted.Restore().ok());
  ASSERT_EQ(restarted.Bindings().size(), 1u);
  EXPECT_EQ(restarted.Bindings()[0].container_id, "ctr1");
  EXPECT_EQ(Limits(kGpu0, tree_.cgroup_mount() + "/kubepods/pod1/ctr1").hard_limit_bytes, 4 * kGi);
  EXPECT_FALSE(Limits(kGpu1, tree_.cgroup_mount() + "/kubepods/pod2/ctr2").set());
  const auto& live = mps_.servers[restarted.MpsServerFor(kGpu0)];
  ASSERT_EQ(live.count(ns1), 1u);
  EXPECT_EQ(live.at(ns1).active_thread_percentage, 30);
  EXPECT_EQ(mps_.servers[restarted.MpsServerFor(kGpu1)].count(ns2), 0u);
  // A container allocated before the restart and created after it still binds.
  EXPECT_TRUE(StartContainer(restarted, "ctr3", "/kubepods/pod3/ctr3", c_.pid, t3).ok());
  EXPECT_EQ(Limits(kGpu0, tree_.cgroup_mount() + "/kubepods/pod3/ctr3").hard_limit_bytes, 2 * kGi);
}

TEST_F(IsolationTest, ContainerWithReplicasOfTwoGpusGetsADriverLimitOnEachThroughOneToken) {
  std::string token;
  const std::string cgroup = tree_.cgroup_mount() + "/kubepods/pod1/ctr1";
  {
    IsolationManager manager(Options(), &driver_, nullptr);
    Partition two{kGpu0, 10 * kGi, 10 * kGi};
    two.more_gpus = {{kGpu1, 20 * kGi, 20 * kGi}};
    auto registered = manager.RegisterPartition(two);
    ASSERT_TRUE(registered.ok()) << registered.status().ToString();
    token = *registered;
    ASSERT_TRUE(StartContainer(manager, "ctr1", "/kubepods/pod1/ctr1", a_.pid, token).ok());
    EXPECT_EQ(Limits(kGpu0, cgroup).hard_limit_bytes, 10 * kGi);
    EXPECT_EQ(Limits(kGpu1, cgroup).hard_limit_bytes, 20 * kGi);
    // Each GPU's limit holds on its own GPU.
    EXPECT_TRUE(simdmem::Charge(cgroup, kGpu1, a_.pid, static_cast<std::int64_t>(15 * kGi)));
    EXPECT_FALSE(simdmem::Charge(cgroup, kGpu0, a_.pid, static_cast<std::int64_t>(15 * kGi)));
    const std::vector<ContainerUsage> usage = manager.Usage();
    ASSERT_EQ(usage.size(), 2u);
    EXPECT_EQ(usage[0].gpu_uuid, kGpu0);
    EXPECT_EQ(usage[1].gpu_uuid, kGpu1);
    EXPECT_EQ(usage[1].hard_limit_bytes, 20 * kGi);
  }  // the agent stops; the driver lost the second GPU's limit meanwhile
  ASSERT_TRUE(driver_.ClearMemoryLimits(kGpu1, cgroup).ok());
  IsolationManager restarted(Options(), &driver_, nullptr);
  ASSERT_TRUE(restarted.Restore().ok());
  EXPECT_EQ(Limits(kGpu0, cgroup).hard_limit_bytes, 10 * kGi);
  EXPECT_EQ(Limits(kGpu1, cgroup).hard_limit_bytes, 20 * kGi);
  FakeCgroupTree::SetProcs(cgroup, {});  // the container ends: both limits are cleared
  EXPECT_EQ(restarted.ReapEnded(), 1);
  EXPECT_FALSE(Limits(kGpu0, cgroup).set());
  EXPECT_FALSE(Limits(kGpu1, cgroup).set());
}

TEST_F(IsolationTest, RegisterRejectsBadMultiGpuPartitions) {
  IsolationManager manager(Options(), &driver_, &mps_);
  Partition same{kGpu0, kGi, kGi};
  same.more_gpus = {{kGpu0, kGi, kGi}};
  EXPECT_FALSE(manager.RegisterPartition(same).ok());
  Partition soft_above{kGpu0, kGi, kGi};
  soft_above.more_gpus = {{kGpu1, kGi, 2 * kGi}};
  EXPECT_FALSE(manager.RegisterPartition(soft_above).ok());
  Partition mps{kGpu0, kGi, kGi, true, 50, 0};
  mps.more_gpus = {{kGpu1, kGi, kGi}};
  EXPECT_FALSE(manager.RegisterPartition(mps).ok());
}

TEST_F(IsolationTest, UsageReadsBackEachContainersLimitAndCurrentUse) {
  IsolationManager manager(Options(), &driver_, &mps_);
  auto t1 = manager.RegisterPartition({kGpu0, 4 * kGi, 2 * kGi});
  auto t2 = manager.RegisterPartition({kGpu0, 8 * kGi, 8 * kGi, true, 50, 0});
  ASSERT_TRUE(StartContainer(manager, "ctr1", "/kubepods/pod1/ctr1", a_.pid, *t1).ok());
  ASSERT_TRUE(StartContainer(manager, "ctr2", "/kubepods/pod2/ctr2", b_.pid, *t2).ok());
  const std::string cgroup1 = tree_.cgroup_mount() + "/kubepods/pod1/ctr1";
  ASSERT_TRUE(simdmem::Charge(cgroup1, kGpu0, a_.pid, 300LL << 20));
  std::vector<ContainerUsage> usage = manager.Usage();
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(usage[0].container_id, "ctr1");
  EXPECT_EQ(usage[0].hard_limit_bytes, 4 * kGi);
  EXPECT_EQ(usage[0].soft_limit_bytes, 2 * kGi);
  EXPECT_EQ(usage[0].current_used_bytes, 300ULL << 20);
  EXPECT_EQ(usage[0].mps_namespace, "");
  EXPECT_EQ(usage[1].current_used_bytes, 0u);
  EXPECT_EQ(usage[1].mps_namespace, manager.Bindings()[1].mps_namespace);
  EXPECT_TRUE(usage[1].error.empty()) << usage[1].error;
  const nlohmann::json json = nlohmann::json::parse(IsolationManager::UsageJson(usage));
  EXPECT_EQ(json["containers"][0]["currentUsedBytes"], 300ULL << 20);
  EXPECT_EQ(json["containers"][1]["hardLimitBytes"], 8 * kGi);
  // A limit the driver lost shows as what the driver says, not what gpuslice asked for.
  ASSERT_TRUE(driver_.ClearMemoryLimits(kGpu0, cgroup1).ok());
  EXPECT_EQ(manager.Usage()[0].hard_limit_bytes, kNoHardLimit);
}

TEST_F(IsolationTest, FractionalContainerWaitsForItsLimitsThenBinds) {
  IsolationManager manager(Options(), &driver_, nullptr);
  Partition awaiting{kGpu0, 0, 0};
  awaiting.awaiting_limits_from = tree_.root() + "/alloc/key/limits/limits";
  auto token = manager.RegisterPartition(awaiting);
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(manager.AwaitingLimits().at(*token), awaiting.awaiting_limits_from);
  tree_.AddCgroup("/kubepods/pod1/ctr1", {a_.pid});
  const std::string bundle =
      tree_.AddBundle("ctr1", {std::string(names::kIsolationTokenEnv) + "=" + *token});
  Status hook_status;
  std::atomic<bool> done{false};
  std::thread hook([&] {
    hook_status = RunCreateContainerHook(Hook(), FakeCgroupTree::State("ctr1", a_.pid, bundle));
    done = true;
  });
  // The request waits in the spool while the limits are unknown: the container does not start.
  while (!std::filesystem::exists(SpoolRequestPath(tree_.spool(), "ctr1"))) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(manager.ProcessRequests(), 0);
  EXPECT_FALSE(done);
  EXPECT_EQ(
      manager.Bind("ctr1", a_.pid, tree_.cgroup_mount() + "/kubepods/pod1/ctr1", *token).code(),
      ErrorCode::kUnavailable);
  EXPECT_FALSE(manager.SetPartitionLimits(*token, kGpu0, 0, 0).ok());
  EXPECT_FALSE(manager.SetPartitionLimits(*token, kGpu0, kGi, 2 * kGi).ok());
  EXPECT_EQ(manager.SetPartitionLimits("nope", kGpu0, kGi, kGi).code(), ErrorCode::kNotFound);
  ASSERT_TRUE(manager.SetPartitionLimits(*token, kGpu1, 3 * kGi, 3 * kGi).ok());
  EXPECT_TRUE(manager.AwaitingLimits().empty());
  while (!done) {
    manager.ProcessRequests();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  hook.join();
  EXPECT_TRUE(hook_status.ok()) << hook_status.ToString();
  EXPECT_EQ(Limits(kGpu1, tree_.cgroup_mount() + "/kubepods/pod1/ctr1").hard_limit_bytes, 3 * kGi);
}

// A fractional container whose compute MPS v3 shares: its namespace (directory named at
// Allocate, on its slots' GPU's server) gets the threads and memory the hand-off's file gives.
TEST_F(IsolationTest, FractionalMpsPartitionTakesItsThreadsWithItsLimitsOnItsOwnGpuOnly) {
  IsolationManager manager(Options(), &driver_, &mps_);
  Partition awaiting{kGpu0, 0, 0, /*mps=*/true, /*active_thread_percentage=*/1};
  awaiting.awaiting_limits_from = tree_.root() + "/alloc/key/limits/limits";
  auto token = manager.RegisterPartition(awaiting);
  ASSERT_TRUE(token.ok());
  // Another GPU's server, several GPUs, or threads outside 1..100: refused, still awaiting.
  EXPECT_EQ(manager.SetPartitionLimits(*token, {{kGpu1, kGi, kGi}}, 30).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(manager.SetPartitionLimits(*token, {{kGpu0, kGi, kGi}, {kGpu1, kGi, kGi}}, 30).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(manager.SetPartitionLimits(*token, {{kGpu0, kGi, kGi}}, 101).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(manager.AwaitingLimits().size(), 1u);
  ASSERT_TRUE(manager.SetPartitionLimits(*token, {{kGpu0, 6 * kGi, 6 * kGi}}, 30).ok());
  tree_.AddCgroup("/kubepods/pod1/ctr1", {a_.pid});
  const std::string cgroup = tree_.cgroup_mount() + "/kubepods/pod1/ctr1";
  ASSERT_TRUE(manager.Bind("ctr1", a_.pid, cgroup, *token).ok());
  const std::string server = manager.MpsServerFor(kGpu0);
  ASSERT_EQ(mps_.servers[server].size(), 1u);
  const MpsV3Namespace& ns = mps_.servers[server].begin()->second;
  EXPECT_EQ(ns.active_thread_percentage, 30);
  EXPECT_EQ(ns.pinned_memory_limit_bytes, 6 * kGi);
  EXPECT_EQ(Limits(kGpu0, cgroup).hard_limit_bytes, 6 * kGi);
}

TEST_F(IsolationTest, ContainerWhoseProcessesMovedToChildCgroupsStaysBound) {
  IsolationManager manager(Options(), &driver_, nullptr);
  auto token = manager.RegisterPartition({kGpu0, 4 * kGi, 4 * kGi});
  ASSERT_TRUE(StartContainer(manager, "ctr1", "/kubepods/pod1/ctr1", a_.pid, *token).ok());
  const std::string cgroup = tree_.cgroup_mount() + "/kubepods/pod1/ctr1";
  // The container nested a cgroup and moved its process there: cgroup.procs is empty but the
  // kernel still reports the subtree populated.
  std::ofstream(cgroup + "/cgroup.procs", std::ios::trunc).close();
  std::ofstream(cgroup + "/cgroup.events", std::ios::trunc) << "populated 1\nfrozen 0\n";
  EXPECT_EQ(manager.ReapEnded(), 0);
  EXPECT_EQ(Limits(kGpu0, cgroup).hard_limit_bytes, 4 * kGi);
  std::ofstream(cgroup + "/cgroup.events", std::ios::trunc) << "populated 0\nfrozen 0\n";
  EXPECT_EQ(manager.ReapEnded(), 1);
  EXPECT_FALSE(Limits(kGpu0, cgroup).set());
}

TEST_F(IsolationTest, RestoreReappliesALimitTheDriverLost) {
  {
    IsolationManager manager(Options(), &driver_, nullptr);
    auto t1 = manager.RegisterPartition({kGpu0, 3 * kGi, 1 * kGi});
    ASSERT_TRUE(StartContainer(manager, "ctr1", "/kubepods/pod1/ctr1", a_.pid, *t1).ok());
  }
  const std::string cgroup = tree_.cgroup_mount() + "/kubepods/pod1/ctr1";
  ASSERT_TRUE(driver_.ClearMemoryLimits(kGpu0, cgroup).ok());
  IsolationManager restarted(Options(), &driver_, nullptr);
  ASSERT_TRUE(restarted.Restore().ok());
  EXPECT_EQ(Limits(kGpu0, cgroup).hard_limit_bytes, 3 * kGi);
}

TEST_F(IsolationTest, ForgedOrReusedTokenIsRefusedAndTheHookFails) {
  IsolationManager manager(Options(), &driver_, nullptr);
  auto token = manager.RegisterPartition({kGpu0, 4 * kGi, 4 * kGi});
  ASSERT_TRUE(StartContainer(manager, "ctr1", "/kubepods/pod1/ctr1", a_.pid, *token).ok());
  Status reused = StartContainer(manager, "ctr2", "/kubepods/pod2/ctr2", b_.pid, *token);
  EXPECT_FALSE(reused.ok());
  EXPECT_NE(reused.message().find("did not issue or already bound"), std::string::npos)
      << reused.ToString();
  Status forged = StartContainer(manager, "ctr3", "/kubepods/pod3/ctr3", c_.pid, "0123abcd");
  EXPECT_FALSE(forged.ok());
  EXPECT_FALSE(Limits(kGpu0, tree_.cgroup_mount() + "/kubepods/pod2/ctr2").set());
  EXPECT_EQ(manager.Bindings().size(), 1u);
}

TEST_F(IsolationTest, ContainerWithoutTokenNeedsNoAgent) {
  const std::string bundle = tree_.AddBundle("plain", {"PATH=/bin"});
  HookOptions hook = Hook();
  hook.timeout = std::chrono::milliseconds(1);  // nobody serves the spool
  EXPECT_TRUE(RunCreateContainerHook(hook, FakeCgroupTree::State("plain", a_.pid, bundle)).ok());
}

TEST_F(IsolationTest, HookTimesOutClearlyWhenTheAgentIsDown) {
  tree_.AddCgroup("/kubepods/pod1/ctr1", {a_.pid});
  const std::string bundle =
      tree_.AddBundle("ctr1", {std::string(names::kIsolationTokenEnv) + "=abc"});
  HookOptions hook = Hook();
  hook.timeout = std::chrono::milliseconds(20);
  Status status = RunCreateContainerHook(hook, FakeCgroupTree::State("ctr1", a_.pid, bundle));
  EXPECT_EQ(status.code(), ErrorCode::kUnavailable);
  EXPECT_NE(status.message().find("is gpuslice-node-agent running"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(SpoolRequestPath(tree_.spool(), "ctr1")));
}

TEST_F(IsolationTest, RegisterRejectsBadPartitions) {
  IsolationManager manager(Options(), &driver_, &mps_);
  EXPECT_FALSE(manager.RegisterPartition({"", kGi, 0}).ok());
  EXPECT_FALSE(manager.RegisterPartition({kGpu0, kGi, 2 * kGi}).ok());
  EXPECT_FALSE(manager.RegisterPartition({kGpu0, kGi, kGi, true, 0, 0}).ok());
  EXPECT_FALSE(manager.RegisterPartition({kGpu0, kGi, kGi, true, 101, 0}).ok());
}

TEST_F(IsolationTest, CorruptStateFileIsAClearError) {
  std::ofstream(tree_.state_file()) << "{not json";
  IsolationManager manager(Options(), &driver_, nullptr);
  Status status = manager.Restore();
  EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(status.message().find(tree_.state_file()), std::string::npos);
}

TEST_F(IsolationTest, StateFileWithFieldsOfTheWrongTypeIsAClearErrorNotACrash) {
  for (const char* text :
       {R"({"version":"1"})", R"({"version":1,"containers":[{"id":7,"pid":"x"}]})",
        R"({"version":1,"pending":{"t":{"hard":"lots"}}})",
        R"({"version":1,"containers":[{"id":"c1","pid":1e20}]})",
        R"({"version":1,"pending":{"t":"GPU-1"}})"}) {
    std::ofstream(tree_.state_file()) << text;
    IsolationManager manager(Options(), &driver_, nullptr);
    Status status = manager.Restore();
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(status.message().find(tree_.state_file()), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace gpuslice
