// AgentIsolation's Allocate side on a simulated r615 node: a fractional (gpuslice.io/gpu)
// container on a capable GPU gets a driver limit once the allocation hand-off has written its
// limits file, through the real hook and the agent's loop.
#include "node_agent/agent_isolation.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "backends/simulated_memory_limits.h"
#include "core/resource_names.h"
#include "fake_apiserver/fake_apiserver.h"
#include "fake_cgroup_tree.h"
#include "fake_mps_v3_control.h"
#include "isolation/oci_hook.h"
#include "kube/kube_client.h"
#include "node_agent/allocation_handoff.h"
#include "node_agent/cluster_side.h"
#include "shim/container_limits.h"

namespace gpuslice {
namespace {

using testing::FakeCgroupTree;

constexpr std::uint64_t kGi = 1ULL << 30;
const std::string kGpu0 = "GPU-11111111-2222-3333-4444-555555555555";

// nvidia.com/gpu with four replicas of kGpu0 under `sharing` (time-slicing or MPS).
AdvertisedResource FourReplicasOfGpu0(SharingStrategy sharing) {
  AdvertisedResource replicas;
  replicas.name = "nvidia.com/gpu";
  replicas.sharing = sharing;
  for (int i = 0; i < 4; ++i) {
    replicas.devices.push_back({kGpu0 + "::" + std::to_string(i), kGpu0, kGpu0, 0, -1, i});
  }
  return replicas;
}

// The agent's isolation options on `tree`: the hook installed, the hand-off's allocations and
// the MPS pipe directories under the tree, namespaces reconciled on every loop turn.
AgentIsolationOptions OptionsOn(const FakeCgroupTree& tree) {
  AgentIsolationOptions options;
  options.directory = tree.root() + "/iso";
  options.cgroup_mount = tree.cgroup_mount();
  options.hook_installed = true;
  options.allocations_dir = tree.root() + "/alloc";
  options.mps_root = tree.root() + "/mps";
  options.namespace_reconcile_interval = std::chrono::milliseconds(0);
  return options;
}

// kGpu0 with 40 GiB.
GpuInfo Gpu0() {
  GpuInfo gpu;
  gpu.uuid = kGpu0;
  gpu.memory_bytes = 40 * kGi;
  return gpu;
}

// gpuslice.io/gpu with `count` slots of kGpu0; compute shared by MPS v3 when `mps`.
AdvertisedResource SlotsOfGpu0(int count, bool mps = false) {
  AdvertisedResource slots;
  slots.name = "gpuslice.io/gpu";
  slots.fractional = true;
  slots.fractional_mps = mps;
  for (int i = 0; i < count; ++i) {
    slots.devices.push_back({kGpu0 + "::" + std::to_string(i), kGpu0, kGpu0, 0, -1, i});
  }
  return slots;
}

TEST(AgentIsolationTest, FractionalContainerGetsTheHandoffsLimitAsItsDriverLimit) {
  FakeCgroupTree tree;
  FileMemoryLimits driver({kGpu0});
  const AgentIsolationOptions options = OptionsOn(tree);
  AgentIsolation isolation(options, &driver, nullptr);
  const GpuInfo gpu = Gpu0();
  ASSERT_TRUE(isolation.Update({"615.20.03", 13040}, {gpu}).ok());
  const AdvertisedResource slots = SlotsOfGpu0(4);
  const std::vector<std::string> ids = {kGpu0 + "::1", kGpu0 + "::2"};
  v1beta1::ContainerAllocateResponse response;
  ASSERT_TRUE(isolation.Decorate(slots, {gpu}, ids, response).ok());
  ASSERT_EQ(response.envs().count(std::string(names::kIsolationTokenEnv)), 1u);
  const std::string token = response.envs().at(std::string(names::kIsolationTokenEnv));

  // The container is created (hook) before the hand-off knows its limits: it waits.
  const pid_t pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  tree.AddCgroup("/kubepods/pod1/ctr1", {pid});
  const std::string bundle =
      tree.AddBundle("ctr1", {std::string(names::kIsolationTokenEnv) + "=" + token});
  HookOptions hook;
  hook.spool_dir = isolation.spool_dir();
  hook.proc_root = tree.proc_root();
  hook.cgroup_mount = tree.cgroup_mount();
  hook.timeout = std::chrono::seconds(20);
  Status hook_status;
  std::atomic<bool> done{false};
  std::thread thread([&] {
    hook_status = RunCreateContainerHook(hook, FakeCgroupTree::State("ctr1", pid, bundle));
    done = true;
  });
  for (int i = 0; i < 50; ++i) {
    isolation.RunOnce();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_FALSE(done);
  // The hand-off writes the pod's assignment (6 GiB of the GPU) to the slots' limits file.
  shim::ContainerLimits limits;
  limits.version = shim::kContainerLimitsVersion;
  const std::string region = std::string(kContainerRegionDir) + "/accounting";
  region.copy(limits.region_path, region.size());
  limits.device_count = 1;
  limits.devices[0].nvml_index = 0;
  kGpu0.copy(limits.devices[0].uuid, kGpu0.size());
  limits.devices[0].memory_bytes = 6 * kGi;
  const std::string dir =
      options.allocations_dir + "/" + AllocationHandoff::KeyFor(ids) + "/limits";
  std::filesystem::create_directories(dir);
  Status written = shim::WriteContainerLimitsFile(dir + "/limits", limits);
  EXPECT_TRUE(written.ok()) << written.ToString();
  while (!done) {  // the hook gives up after its timeout if the limits never come
    isolation.RunOnce();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  thread.join();
  EXPECT_TRUE(hook_status.ok()) << hook_status.ToString();
  auto got = driver.GetMemoryLimits(kGpu0, tree.cgroup_mount() + "/kubepods/pod1/ctr1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->hard_limit_bytes, 6 * kGi);
  EXPECT_EQ(got->soft_limit_bytes, 6 * kGi);
  // The driver enforces it, so the container's shim (which reads the file only once the hook
  // has let the container start) reports it without refusing: the agent marked it so.
  Result<shim::ContainerLimits> reread = shim::ReadContainerLimitsFile(dir + "/limits");
  ASSERT_TRUE(reread.ok()) << reread.status().ToString();
  EXPECT_TRUE(reread->devices[0].driver_enforced);
  EXPECT_EQ(reread->devices[0].memory_bytes, 6 * kGi);
  EXPECT_STREQ(reread->region_path, limits.region_path);

  // A pod the hand-off refuses (no valid assignment) still starts, without a driver limit: its
  // shim fails GPU allocations closed, as on the shim tier.
  const std::vector<std::string> other = {kGpu0 + "::3"};
  v1beta1::ContainerAllocateResponse refused_response;
  ASSERT_TRUE(isolation.Decorate(slots, {gpu}, other, refused_response).ok());
  const std::string refused_dir =
      options.allocations_dir + "/" + AllocationHandoff::KeyFor(other) + "/limits";
  std::filesystem::create_directories(refused_dir);
  std::ofstream(refused_dir + "/refused") << "no gpuslice.io/assignment\n";
  tree.AddCgroup("/kubepods/pod2/ctr2", {pid});
  const std::string bundle2 =
      tree.AddBundle("ctr2", {std::string(names::kIsolationTokenEnv) + "=" +
                              refused_response.envs().at(std::string(names::kIsolationTokenEnv))});
  done = false;
  std::thread second([&] {
    hook_status = RunCreateContainerHook(hook, FakeCgroupTree::State("ctr2", pid, bundle2));
    done = true;
  });
  while (!done) {
    isolation.RunOnce();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  second.join();
  EXPECT_TRUE(hook_status.ok()) << hook_status.ToString();
  EXPECT_FALSE(driver.GetMemoryLimits(kGpu0, tree.cgroup_mount() + "/kubepods/pod2/ctr2")->set());
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

}  // namespace
}  // namespace gpuslice

namespace gpuslice {
namespace {

// The kubelet's PodResources as the test sets it; `fail` = the kubelet does not answer.
class ListedPods final : public PodResourcesSource {
 public:
  Result<std::vector<ContainerDevices>> List() override {
    if (fail) return Unavailable("kubelet down");
    return containers;
  }
  std::vector<ContainerDevices> containers;
  bool fail = false;
};

TEST(AgentIsolationTest, TokenOfAPodDeletedBeforeItsContainerWasCreatedIsReleased) {
  FakeCgroupTree tree;
  FileMemoryLimits driver({kGpu0});
  ListedPods pods;
  AgentIsolationOptions options;
  options.directory = tree.root() + "/iso";
  options.cgroup_mount = tree.cgroup_mount();
  options.hook_installed = true;
  options.namespace_reconcile_interval = std::chrono::milliseconds(0);
  options.pod_resources = &pods;
  options.unclaimed_token_grace = std::chrono::milliseconds(200);
  AgentIsolation isolation(options, &driver, nullptr);
  const GpuInfo gpu = Gpu0();
  ASSERT_TRUE(isolation.Update({"615.20.03", 13040}, {gpu}).ok());
  const AdvertisedResource replicas = FourReplicasOfGpu0(SharingStrategy::kTimeSlicing);
  const std::string env(names::kIsolationTokenEnv);
  v1beta1::ContainerAllocateResponse kept, deleted, bound;
  ASSERT_TRUE(isolation.Decorate(replicas, {gpu}, {kGpu0 + "::1"}, kept).ok());
  ASSERT_TRUE(isolation.Decorate(replicas, {gpu}, {kGpu0 + "::2"}, deleted).ok());
  ASSERT_TRUE(isolation.Decorate(replicas, {gpu}, {kGpu0 + "::3"}, bound).ok());
  ASSERT_EQ(isolation.manager()->PendingTokens(), 3u);
  // The third one's container is created (bound); the first's pod waits (an image pull) and is
  // listed; the second's pod was deleted before its container was created.
  const pid_t pid = getpid();
  tree.AddCgroup("/kubepods/pod3/ctr3", {pid});
  ASSERT_TRUE(
      isolation.manager()
          ->Bind("ctr3", pid, tree.cgroup_mount() + "/kubepods/pod3/ctr3", bound.envs().at(env))
          .ok());
  pods.containers = {{"default", "waiting", "main", "nvidia.com/gpu", {kGpu0 + "::1"}},
                     {"default", "running", "main", "nvidia.com/gpu", {kGpu0 + "::3"}}};
  // Within the grace period, and while the kubelet does not answer, nothing is released.
  isolation.RunOnce();
  EXPECT_EQ(isolation.manager()->PendingTokens(), 2u);
  pods.fail = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  isolation.RunOnce();
  EXPECT_EQ(isolation.manager()->PendingTokens(), 2u);
  pods.fail = false;
  isolation.RunOnce();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  isolation.RunOnce();
  ASSERT_EQ(isolation.manager()->PendingTokens(), 1u);
  EXPECT_TRUE(isolation.manager()->PartitionFor(kept.envs().at(env)).ok());
  EXPECT_FALSE(isolation.manager()->PartitionFor(deleted.envs().at(env)).ok());
  EXPECT_EQ(isolation.manager()->Bindings().size(), 1u);  // the bound one is not touched
  // Its pod being deleted too, the waiting one goes after the grace period as well.
  pods.containers.resize(1);
  pods.containers[0].device_ids = {kGpu0 + "::0"};
  isolation.RunOnce();
  EXPECT_EQ(isolation.manager()->PendingTokens(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  isolation.RunOnce();
  EXPECT_EQ(isolation.manager()->PendingTokens(), 0u);
}

}  // namespace
}  // namespace gpuslice

namespace gpuslice {
namespace {

const std::string kGpu1 = "GPU-66666666-7777-8888-9999-000000000000";

// A fractional container whose slots span two GPUs: one token binds a driver limit on each
// capable GPU, and the hand-off's file marks exactly those `enforcer=driver`.
TEST(AgentIsolationTest, FractionalContainerOnTwoGpusGetsADriverLimitOnEachCapableOne) {
  struct Row {
    const char* name;
    std::vector<std::string> capable;  // the GPUs the driver takes limits on
  };
  for (const Row& row : {Row{"BothCapable", {kGpu0, kGpu1}}, Row{"OnlyTheFirst", {kGpu0}}}) {
    SCOPED_TRACE(row.name);
    FakeCgroupTree tree;
    FileMemoryLimits driver(std::set<std::string>(row.capable.begin(), row.capable.end()));
    AgentIsolationOptions options;
    options.directory = tree.root() + "/iso";
    options.cgroup_mount = tree.cgroup_mount();
    options.hook_installed = true;
    options.allocations_dir = tree.root() + "/alloc";
    options.namespace_reconcile_interval = std::chrono::milliseconds(0);
    AgentIsolation isolation(options, &driver, nullptr);
    std::vector<GpuInfo> gpus(2);
    gpus[0].uuid = kGpu0;
    gpus[1].uuid = kGpu1;
    gpus[1].index = 1;
    for (GpuInfo& g : gpus) g.memory_bytes = 40 * kGi;
    ASSERT_TRUE(isolation.Update({"615.20.03", 13040}, gpus).ok());
    AdvertisedResource slots;
    slots.name = "gpuslice.io/gpu";
    slots.fractional = true;
    for (const GpuInfo& g : gpus) {
      for (int i = 0; i < 2; ++i) {
        slots.devices.push_back(
            {g.uuid + "::" + std::to_string(i), g.uuid, g.uuid, g.index, -1, i});
      }
    }
    const std::vector<std::string> ids = {kGpu0 + "::0", kGpu1 + "::0"};
    v1beta1::ContainerAllocateResponse response;
    ASSERT_TRUE(isolation.Decorate(slots, gpus, ids, response).ok());
    ASSERT_EQ(response.envs().count(std::string(names::kIsolationTokenEnv)), 1u);
    const std::string token = response.envs().at(std::string(names::kIsolationTokenEnv));
    // The hand-off's file: 6 GiB on each GPU.
    shim::ContainerLimits limits;
    limits.version = shim::kContainerLimitsVersion;
    std::string("/run/gpuslice/accounting").copy(limits.region_path, 24);
    limits.device_count = 2;
    for (std::uint32_t i = 0; i < 2; ++i) {
      limits.devices[i].nvml_index = static_cast<std::int32_t>(i);
      gpus[i].uuid.copy(limits.devices[i].uuid, gpus[i].uuid.size());
      limits.devices[i].memory_bytes = 6 * kGi;
    }
    const std::string dir =
        options.allocations_dir + "/" + AllocationHandoff::KeyFor(ids) + "/limits";
    std::filesystem::create_directories(dir);
    ASSERT_TRUE(shim::WriteContainerLimitsFile(dir + "/limits", limits).ok());
    isolation.RunOnce();  // takes the limits
    ASSERT_TRUE(isolation.manager()->AwaitingLimits().empty());
    Result<shim::ContainerLimits> marked = shim::ReadContainerLimitsFile(dir + "/limits");
    ASSERT_TRUE(marked.ok()) << marked.status().ToString();
    EXPECT_TRUE(marked->devices[0].driver_enforced);
    EXPECT_EQ(marked->devices[1].driver_enforced, row.capable.size() == 2);

    const pid_t pid = getpid();
    const std::string cgroup = tree.AddCgroup("/kubepods/pod1/ctr1", {pid});
    ASSERT_TRUE(isolation.manager()->Bind("ctr1", pid, cgroup, token).ok());
    EXPECT_EQ(driver.GetMemoryLimits(kGpu0, cgroup)->hard_limit_bytes, 6 * kGi);
    if (row.capable.size() == 2) {
      EXPECT_EQ(driver.GetMemoryLimits(kGpu1, cgroup)->hard_limit_bytes, 6 * kGi);
    } else {
      EXPECT_FALSE(driver.GetMemoryLimits(kGpu1, cgroup).ok());  // not a GPU of this driver
    }
    EXPECT_EQ(isolation.manager()->Usage().size(), row.capable.size());
  }
}

}  // namespace
}  // namespace gpuslice

namespace gpuslice {
namespace {

TEST(AgentIsolationTest, ReleasedMpsTokenTakesItsEmptyNamespaceDirectoryWithIt) {
  FakeCgroupTree tree;
  FileMemoryLimits driver({kGpu0});
  testing::InMemoryMpsV3 mps;
  ListedPods pods;  // the kubelet lists no pod: the one allocated was deleted
  AgentIsolationOptions options;
  options.directory = tree.root() + "/iso";
  options.cgroup_mount = tree.cgroup_mount();
  options.hook_installed = true;
  options.mps_root = tree.root() + "/mps";
  options.namespace_reconcile_interval = std::chrono::milliseconds(0);
  options.pod_resources = &pods;
  options.unclaimed_token_grace = std::chrono::milliseconds(0);
  AgentIsolation isolation(options, &driver, &mps);
  const GpuInfo gpu = Gpu0();
  ASSERT_TRUE(isolation.Update({"615.20.03", 13040}, {gpu}).ok());
  const AdvertisedResource replicas = FourReplicasOfGpu0(SharingStrategy::kMps);
  v1beta1::ContainerAllocateResponse response;
  ASSERT_TRUE(isolation.Decorate(replicas, {gpu}, {kGpu0 + "::1"}, response).ok());
  ASSERT_EQ(response.envs().count(std::string(names::kIsolationTokenEnv)), 1u);
  ASSERT_EQ(response.mounts_size(), 1);
  const std::string namespace_dir = response.mounts(0).host_path();
  ASSERT_TRUE(std::filesystem::is_directory(namespace_dir));
  isolation.RunOnce();
  EXPECT_EQ(isolation.manager()->PendingTokens(), 0u);
  EXPECT_FALSE(std::filesystem::exists(namespace_dir));
}

}  // namespace
}  // namespace gpuslice

namespace gpuslice {
namespace {

// The hand-off's limits file for one GPU: `memory` bytes at `compute` percent, arbitrated (a
// grant page and a request file, as the hand-off names them when the pod asks for compute).
void WriteHandoffLimits(const std::string& path, const std::string& gpu, std::uint64_t memory,
                        std::uint32_t compute) {
  shim::ContainerLimits limits;
  limits.version = shim::kContainerLimitsVersion;
  const std::string region = std::string(kContainerRegionDir) + "/accounting";
  region.copy(limits.region_path, region.size());
  limits.device_count = 1;
  shim::DeviceLimit& d = limits.devices[0];
  d.nvml_index = 0;
  gpu.copy(d.uuid, gpu.size());
  d.memory_bytes = memory;
  d.compute_percent = compute;
  d.compute_cap_percent = compute + 10;
  const std::string grant = "/run/gpuslice-arbiter/gpu0/grant";
  const std::string requests = std::string(kContainerRegionDir) + "/compute-requests";
  grant.copy(d.arbiter_path, grant.size());
  requests.copy(d.requests_path, requests.size());
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  ASSERT_TRUE(shim::WriteContainerLimitsFile(path, limits).ok());
}

// gpuslice.fractional.compute: mps on an r615 GPU with MPS v3: each fractional container gets
// its own namespace (threads = its gpuslice.io/gpu-compute, pinned memory = its
// gpuslice.io/gpu-memory) besides its driver limit, sees only that namespace's directory, and
// is no longer arbitrated by the shim. The namespaces follow the containers across an agent
// restart.
TEST(AgentIsolationTest, FractionalContainersOnAnMpsV3GpuEachGetANamespaceWithTheirShare) {
  FakeCgroupTree tree;
  FileMemoryLimits driver({kGpu0});
  testing::InMemoryMpsV3 mps;
  const AgentIsolationOptions options = OptionsOn(tree);
  const GpuInfo gpu = Gpu0();
  const AdvertisedResource slots = SlotsOfGpu0(4, /*mps=*/true);
  const std::string pipe_env(names::kMpsPipeDirectoryEnv);
  const std::string token_env(names::kIsolationTokenEnv);
  auto limits_file = [&](const std::vector<std::string>& ids) {
    return options.allocations_dir + "/" + AllocationHandoff::KeyFor(ids) + "/limits/limits";
  };
  auto namespace_of = [](const v1beta1::ContainerAllocateResponse& r) {
    for (const auto& m : r.mounts()) {
      if (m.container_path() == names::kMpsContainerPipeDirectory) return m.host_path();
    }
    return std::string();
  };
  const std::vector<std::string> a_ids = {kGpu0 + "::0"}, b_ids = {kGpu0 + "::1", kGpu0 + "::2"};
  v1beta1::ContainerAllocateResponse a, b;
  std::string server;
  {
    AgentIsolation isolation(options, &driver, &mps);
    ASSERT_TRUE(isolation.Update({"615.20.03", 13040}, {gpu}).ok());
    EXPECT_TRUE(isolation.FractionalComputeByMps(slots, kGpu0));
    server = isolation.manager()->MpsServerFor(kGpu0);
    ASSERT_TRUE(isolation.Decorate(slots, {gpu}, a_ids, a).ok());
    ASSERT_TRUE(isolation.Decorate(slots, {gpu}, b_ids, b).ok());
    // Each container's MPS pipe directory is its own namespace's, on the GPU's server.
    const std::string dir_a = namespace_of(a), dir_b = namespace_of(b);
    ASSERT_FALSE(dir_a.empty());
    ASSERT_FALSE(dir_b.empty());
    EXPECT_NE(dir_a, dir_b);
    EXPECT_EQ(std::filesystem::path(dir_a).parent_path().filename().string(), server);
    EXPECT_TRUE(std::filesystem::is_directory(dir_a));
    EXPECT_EQ(a.envs().at(pipe_env), names::kMpsContainerPipeDirectory);
    ASSERT_EQ(a.envs().count(token_env), 1u);
    ASSERT_EQ(b.envs().count(token_env), 1u);

    // The hand-off writes the pods' assignments: 8 GiB at 30 %, 16 GiB at 70 %.
    WriteHandoffLimits(limits_file(a_ids), kGpu0, 8 * kGi, 30);
    WriteHandoffLimits(limits_file(b_ids), kGpu0, 16 * kGi, 70);
    isolation.RunOnce();
    const pid_t pid = getpid();
    tree.AddCgroup("/kubepods/pa/a", {pid});
    tree.AddCgroup("/kubepods/pb/b", {pid});
    ASSERT_TRUE(isolation.manager()
                    ->Bind("a", pid, tree.cgroup_mount() + "/kubepods/pa/a", a.envs().at(token_env))
                    .ok());
    ASSERT_TRUE(isolation.manager()
                    ->Bind("b", pid, tree.cgroup_mount() + "/kubepods/pb/b", b.envs().at(token_env))
                    .ok());
    const std::string ns_a = std::filesystem::path(dir_a).filename().string();
    const std::string ns_b = std::filesystem::path(dir_b).filename().string();
    ASSERT_EQ(mps.servers[server].size(), 2u);
    EXPECT_EQ(mps.servers[server][ns_a], (MpsV3Namespace{server, ns_a, 8 * kGi, 30, 0}));
    EXPECT_EQ(mps.servers[server][ns_b], (MpsV3Namespace{server, ns_b, 16 * kGi, 70, 0}));
    EXPECT_EQ(
        driver.GetMemoryLimits(kGpu0, tree.cgroup_mount() + "/kubepods/pa/a")->hard_limit_bytes,
        8 * kGi);
    // Their shims report the driver's limit and do not arbitrate: MPS shares the compute.
    Result<shim::ContainerLimits> reread = shim::ReadContainerLimitsFile(limits_file(a_ids));
    ASSERT_TRUE(reread.ok()) << reread.status().ToString();
    EXPECT_TRUE(reread->devices[0].driver_enforced);
    EXPECT_STREQ(reread->devices[0].arbiter_path, "");
    EXPECT_STREQ(reread->devices[0].requests_path, "");
    EXPECT_EQ(reread->devices[0].compute_cap_percent, 0u);
    EXPECT_EQ(reread->devices[0].compute_percent, 30u);
    EXPECT_EQ(reread->devices[0].memory_bytes, 8 * kGi);
  }
  // An agent restart keeps both; then b's container ends and loses its namespace and limit.
  AgentIsolation restarted(options, &driver, &mps);
  ASSERT_TRUE(restarted.Update({"615.20.03", 13040}, {gpu}).ok());
  restarted.RunOnce();
  EXPECT_EQ(mps.servers[server].size(), 2u);
  FakeCgroupTree::SetProcs(tree.cgroup_mount() + "/kubepods/pb/b", {});
  restarted.RunOnce();
  ASSERT_EQ(mps.servers[server].size(), 1u);
  EXPECT_EQ(mps.servers[server].begin()->second.active_thread_percentage, 30);
  EXPECT_FALSE(driver.GetMemoryLimits(kGpu0, tree.cgroup_mount() + "/kubepods/pb/b")->set());

  // A hand-off file naming another GPU than the slots' (it cannot be this container's namespace):
  // the container binds with the least threads and no driver limit.
  const std::vector<std::string> c_ids = {kGpu0 + "::3"};
  v1beta1::ContainerAllocateResponse c;
  ASSERT_TRUE(restarted.Decorate(slots, {gpu}, c_ids, c).ok());
  WriteHandoffLimits(limits_file(c_ids), kGpu1, 8 * kGi, 50);
  restarted.RunOnce();
  tree.AddCgroup("/kubepods/pc/c", {getpid()});
  ASSERT_TRUE(
      restarted.manager()
          ->Bind("c", getpid(), tree.cgroup_mount() + "/kubepods/pc/c", c.envs().at(token_env))
          .ok());
  const std::string ns_c = std::filesystem::path(namespace_of(c)).filename().string();
  EXPECT_EQ(mps.servers[server][ns_c].active_thread_percentage, 1);
  EXPECT_FALSE(driver.GetMemoryLimits(kGpu0, tree.cgroup_mount() + "/kubepods/pc/c")->set());
}

// Without gpuslice.fractional.compute: mps, or on a GPU without MPS v3, fractional containers
// are not MPS clients: no namespace directory, and their limits file keeps the compute arbiter.
TEST(AgentIsolationTest, FractionalContainersStayArbitratedWithoutComputeMpsOrMpsV3) {
  struct Row {
    const char* name;
    bool fractional_mps;
    bool with_mps_control;  // no MPS v3 control: the GPU has no v3
  };
  for (const Row& row : {Row{"compute: arbiter", false, true}, Row{"no MPS v3", true, false}}) {
    SCOPED_TRACE(row.name);
    FakeCgroupTree tree;
    FileMemoryLimits driver({kGpu0});
    testing::InMemoryMpsV3 mps;
    const AgentIsolationOptions options = OptionsOn(tree);
    AgentIsolation isolation(options, &driver, row.with_mps_control ? &mps : nullptr);
    const GpuInfo gpu = Gpu0();
    ASSERT_TRUE(isolation.Update({"615.20.03", 13040}, {gpu}).ok());
    const AdvertisedResource slots = SlotsOfGpu0(1, row.fractional_mps);
    EXPECT_FALSE(isolation.FractionalComputeByMps(slots, kGpu0));
    v1beta1::ContainerAllocateResponse out;
    ASSERT_TRUE(isolation.Decorate(slots, {gpu}, {kGpu0 + "::0"}, out).ok());
    EXPECT_EQ(out.mounts_size(), 0);
    EXPECT_EQ(out.envs().count(std::string(names::kMpsPipeDirectoryEnv)), 0u);
    const std::string file = options.allocations_dir + "/" +
                             AllocationHandoff::KeyFor({kGpu0 + "::0"}) + "/limits/limits";
    WriteHandoffLimits(file, kGpu0, 8 * kGi, 30);
    isolation.RunOnce();
    Result<shim::ContainerLimits> reread = shim::ReadContainerLimitsFile(file);
    ASSERT_TRUE(reread.ok());
    EXPECT_TRUE(reread->devices[0].driver_enforced);  // the driver still enforces its memory
    EXPECT_STREQ(reread->devices[0].arbiter_path, "/run/gpuslice-arbiter/gpu0/grant");
    EXPECT_TRUE(mps.servers[isolation.manager()->MpsServerFor(kGpu0)].empty());
  }
}

}  // namespace
}  // namespace gpuslice

namespace gpuslice {
namespace {

// Captures the agent's log lines while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(text_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

// An MPS v3 container's client priority when the runtime did not put the pod's annotation in the
// bundle (containerd without `pod_annotations`): the agent reads it from the pod the bundle names,
// in the (fake) API server, over HTTP; the bundle's own annotation still wins, without a lookup.
TEST(AgentIsolationTest, MpsClientPriorityComesFromTheApiServerWhenTheBundleLacksIt) {
  fake::FakeApiServer apiserver;
  ASSERT_TRUE(apiserver.Start().ok());
  kube::KubeConfig config;
  config.server = apiserver.url();
  config.request_timeout = std::chrono::milliseconds(2000);
  Result<std::unique_ptr<kube::KubeClient>> client = kube::KubeClient::Create(config);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  const std::string key(names::kAnnotationPodMpsClientPriority);
  kube::ResourceRef namespaces;
  namespaces.resource = "namespaces";
  ASSERT_TRUE((*client)
                  ->Create(namespaces, {{"apiVersion", "v1"},
                                        {"kind", "Namespace"},
                                        {"metadata", {{"name", "team-a"}}}})
                  .ok());
  std::map<std::string, std::string> uid_of;  // pod name -> the UID the server gave it
  auto create_pod = [&](const std::string& name, const std::string& value) {
    kube::Json pod = {{"apiVersion", "v1"},
                      {"kind", "Pod"},
                      {"metadata", {{"name", name}, {"namespace", "team-a"}}},
                      {"spec", {{"containers", {{{"name", "main"}, {"image", "cuda"}}}}}}};
    if (!value.empty()) pod["metadata"]["annotations"] = {{key, value}};
    Result<kube::Json> created = (*client)->Create(kube::Pods("team-a"), pod);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    uid_of[name] = (*created)["metadata"]["uid"].get<std::string>();
  };

  FakeCgroupTree tree;
  FileMemoryLimits driver({kGpu0});
  testing::InMemoryMpsV3 mps;
  AgentIsolationOptions options = OptionsOn(tree);
  int lookups = 0;
  options.pod_annotation_of = [&](const PodRef& pod, const std::string& k) {
    ++lookups;
    return PodAnnotationFromApi(**client, pod, k);
  };
  AgentIsolation isolation(options, &driver, &mps);
  const GpuInfo gpu = Gpu0();
  ASSERT_TRUE(isolation.Update({"615.20.03", 13040}, {gpu}).ok());
  const std::string server = isolation.manager()->MpsServerFor(kGpu0);
  const AdvertisedResource replicas = FourReplicasOfGpu0(SharingStrategy::kMps);
  HookOptions hook;
  hook.spool_dir = isolation.spool_dir();
  hook.proc_root = tree.proc_root();
  hook.cgroup_mount = tree.cgroup_mount();
  LogCapture log;

  // One container through Allocate, the hook (containerd's pod annotations in its bundle) and the
  // agent's loop; returns the reply the hook would read.
  long next_pid = 6001;
  auto start = [&](const std::string& id, const std::string& pod,
                   std::map<std::string, std::string> bundle_annotations,
                   std::string* namespace_name) {
    v1beta1::ContainerAllocateResponse response;
    EXPECT_TRUE(isolation.Decorate(replicas, {gpu}, {kGpu0 + "::0"}, response).ok());
    const std::string token = response.envs().at(std::string(names::kIsolationTokenEnv));
    *namespace_name = std::filesystem::path(response.mounts(0).host_path()).filename().string();
    bundle_annotations[std::string(names::kContainerdPodNamespace)] = "team-a";
    bundle_annotations[std::string(names::kContainerdPodName)] = pod;
    // A pod the server does not know, or knows under another UID (deleted and recreated).
    bundle_annotations[std::string(names::kContainerdPodUid)] =
        uid_of.count(pod) > 0 ? uid_of[pod] : "00000000-0000-4000-8000-0000000000ff";
    const long pid = next_pid++;
    tree.AddCgroup("/kubepods/" + pod + "/" + id, {pid});
    const std::string bundle = tree.AddBundle(
        id, {std::string(names::kIsolationTokenEnv) + "=" + token}, bundle_annotations);
    Result<HookRequest> request = BuildHookRequest(hook, FakeCgroupTree::State(id, pid, bundle));
    EXPECT_TRUE(request.ok()) << request.status().ToString();
    std::filesystem::create_directories(hook.spool_dir + "/requests");
    std::ofstream(SpoolRequestPath(hook.spool_dir, id)) << HookRequestToJson(*request);
    isolation.RunOnce();
    std::ifstream reply(SpoolReplyPath(hook.spool_dir, id));
    return std::string((std::istreambuf_iterator<char>(reply)), {});
  };
  auto priority_of = [&](const std::string& ns) { return mps.servers[server][ns].client_priority; };

  create_pod("low", "1");
  create_pod("wins", "1");
  create_pod("bad", "high");
  create_pod("plain", "");
  create_pod("recreated", "1");
  uid_of.erase("recreated");  // the container's pod was another one of that name
  std::string ns;
  struct Row {
    const char* name;
    std::string pod;
    std::map<std::string, std::string> bundle;
    int want_priority;
    int want_lookups;
  };
  const Row rows[] = {
      {"api_says_below_normal", "low", {}, 1, 1},
      {"bundle_annotation_wins_without_a_lookup", "wins", {{key, "0"}}, 0, 0},
      {"pod_without_the_annotation", "plain", {}, 0, 1},
      {"pod_not_found", "missing", {}, 0, 1},
      {"pod_recreated_with_another_uid", "recreated", {}, 0, 1},
  };
  for (const Row& row : rows) {
    lookups = 0;
    const std::string reply = start(row.name, row.pod, row.bundle, &ns);
    EXPECT_NE(reply.find("\"ok\":true"), std::string::npos) << row.name << ": " << reply;
    ASSERT_EQ(mps.servers[server].count(ns), 1u) << row.name;
    EXPECT_EQ(priority_of(ns), row.want_priority) << row.name;
    EXPECT_EQ(lookups, row.want_lookups) << row.name;
  }
  EXPECT_NE(log.text().find("cannot read gpuslice.io/mps-client-priority of pod team-a/missing"),
            std::string::npos)
      << log.text();

  // An invalid value in the API fails the container's creation with the hook's message.
  const std::string refused = start("bad-value", "bad", {}, &ns);
  EXPECT_NE(refused.find("\"ok\":false"), std::string::npos) << refused;
  EXPECT_NE(refused.find("container bad-value: pod annotation gpuslice.io/mps-client-priority: "
                         "'high' is not an MPS client priority; accepted: \\\"0\\\" (normal) or "
                         "\\\"1\\\" (below normal)"),
            std::string::npos)
      << refused;
  EXPECT_EQ(mps.servers[server].count(ns), 0u);

  // The API server is down: the container starts at priority 0, and the agent says why.
  apiserver.Stop();
  const std::string down = start("api-down", "low", {}, &ns);
  EXPECT_NE(down.find("\"ok\":true"), std::string::npos) << down;
  EXPECT_EQ(priority_of(ns), 0);
  EXPECT_NE(log.text().find("container api-down: cannot read gpuslice.io/mps-client-priority of "
                            "pod team-a/low from the API server"),
            std::string::npos)
      << log.text();
}

}  // namespace
}  // namespace gpuslice

namespace gpuslice {
namespace {

// After the API server failed, the agent's loop does not wait for it again on every container
// created during the backoff; a pod not found is an answer, not a failure.
TEST(PodLookupWithBackoffTest, AFailedApiServerIsNotAskedAgainDuringTheBackoff) {
  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  int calls = 0;
  Status next = Unavailable("connect: refused");
  PodAnnotationSource lookup = PodLookupWithBackoff(
      [&](const PodRef&, const std::string&) -> Result<std::string> {
        ++calls;
        if (!next.ok()) return next;
        return std::string("1");
      },
      std::chrono::seconds(10), [&] { return now; });
  const PodRef pod{"team-a", "p", ""};
  EXPECT_EQ(lookup(pod, "k").status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(calls, 1);
  now += std::chrono::seconds(9);
  Result<std::string> skipped = lookup(pod, "k");
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(skipped.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(skipped.status().message().find("not asked: the API server failed less than 10000 ms "
                                            "ago (UNAVAILABLE: connect: refused)"),
            std::string::npos)
      << skipped.status().message();
  now += std::chrono::seconds(1);
  next = NotFound("pods \"p\" not found");
  EXPECT_EQ(lookup(pod, "k").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(calls, 2);
  next = Status::Ok();
  EXPECT_EQ(lookup(pod, "k").value_or(""), "1");  // NotFound started no backoff
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace gpuslice
