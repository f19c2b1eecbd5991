// The driver isolation tier through the real gpuslice-node-agent binary: a simulated r615 node,
// the test kubelet's Allocate, the CDI spec's createContainer hook run as the runtime runs it
// (state JSON on stdin), driver limits read back from the simulated driver, an agent restart,
// and an incapable node that stays on the shim tier.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent_process.h"
#include "backends/simulated_memory_limits.h"
#include "cluster_agent.h"
#include "core/gpu_annotations.h"
#include "core/resource_names.h"
#include "detached_daemons.h"
#include "fake_apiserver/fake_apiserver.h"
#include "fake_cgroup_tree.h"
#include "isolation/mps_v3_process.h"
#include "kube/kube_client.h"
#include "kube/kube_config.h"
#include "mps_v3_client.h"
#include "node_agent/allocation_handoff.h"
#include "node_agent/atomic_file.h"
#include "shim/container_limits.h"
#include "temp_dir.h"
#include "test_kubelet.h"
#include "test_pod_resources.h"

namespace gpuslice {
namespace {

using namespace std::chrono_literals;
using testing::AgentProcess;
using testing::FakeCgroupTree;
using testing::TempDir;
using testing::TestKubelet;

constexpr std::uint64_t kGi = 1ULL << 30;

std::string Node(const std::string& driver_version) {
  return "node:\n  name: iso-node\n  driverVersion: \"" + driver_version +
         "\"\ngpus:\n  - model: A100-SXM4-40GB\n    count: 2\n";
}
constexpr char kTimeSlicing4[] = R"(version: v1
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/gpu
        replicas: 4
)";

constexpr char kMps4[] = R"(version: v1
sharing:
  mps:
    resources:
      - name: nvidia.com/gpu
        replicas: 4
)";

// Where the fake MPS v3 daemon routes a CUDA client whose pipe directory is `dir` (what the
// container sees at /tmp/nvidia-mps); "" when nothing listens there.
std::string RoutedFrom(const std::string& dir) {
  const std::string command = "CUDA_MPS_PIPE_DIRECTORY='" + dir + "' '" +
                              GPUSLICE_FAKE_MPS_V3_CONTROL + "' --client-hello 2>/dev/null";
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  char buf[512];
  while (pipe != nullptr && fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  if (pipe != nullptr) pclose(pipe);
  return out;
}

class IsolationIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // MPS v3 daemons outlive the agent; orphaned by a killed agent, they come to the test.
    testing::BecomeSubreaper();
    kubelet_ = std::make_unique<TestKubelet>(dir_ / "dp");
    ASSERT_TRUE(kubelet_->Start());
  }
  void TearDown() override {
    if (agent_ != nullptr && HasFailure()) std::cerr << "---- agent log ----\n" << agent_->Log();
    if (agent_ != nullptr) agent_->Terminate(10s);
    // The agent leaves its MPS v3 daemons running by design; none may outlive the test.
    testing::KillRecordedDaemons(dir_ / "mps");
  }
  // The MPS v3 daemon recorded for a GPU: its record, or pid -1 when there is none.
  DaemonRecord RecordedDaemon(const std::string& gpu) {
    return ReadDaemonRecord(ProcessMpsV3::RecordPath(dir_ / ("mps/" + gpu + "/pipe")))
        .value_or(DaemonRecord{});
  }
  std::string ClientList(const std::string& pipe) {
    const std::string command = "CUDA_MPS_PIPE_DIRECTORY='" + pipe + "' '" +
                                GPUSLICE_FAKE_MPS_V3_CONTROL + "' client list 2>&1";
    std::string out;
    FILE* p = popen(command.c_str(), "r");
    char buf[512];
    while (p != nullptr && fgets(buf, sizeof(buf), p) != nullptr) out += buf;
    if (p != nullptr) pclose(p);
    return out;
  }
  void StartAgent(const std::string& driver_version, const char* config = kTimeSlicing4,
                  const std::vector<std::string>& extra_args = {}) {
    std::ofstream(dir_ / "node.yaml") << Node(driver_version);
    ASSERT_TRUE(WriteFileAtomically(dir_ / "config.yaml", config).ok());
    std::vector<std::string> args{GPUSLICE_NODE_AGENT,
                                  "--backend",
                                  "sim:" + (dir_ / "node.yaml"),
                                  "--config",
                                  dir_ / "config.yaml",
                                  "--device-plugin-dir",
                                  dir_ / "dp",
                                  "--features-file",
                                  dir_ / "features",
                                  "--cdi-dir",
                                  dir_ / "cdi",
                                  "--mps-root",
                                  dir_ / "mps",
                                  "--mig-minors-file",
                                  dir_ / "none",
                                  "--memory-watchdog",
                                  "off",
                                  "--isolation-dir",
                                  dir_ / "iso",
                                  "--cgroup-mount",
                                  tree_.cgroup_mount()};
    // Unless the test installs the static hook (--install-hook-from), the agent is the hook.
    if (std::find(extra_args.begin(), extra_args.end(), "--install-hook-from") ==
        extra_args.end()) {
      args.insert(args.end(), {"--hook-path", GPUSLICE_NODE_AGENT});
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    agent_ = std::make_unique<AgentProcess>(args, dir_ / "agent.log");
    ASSERT_TRUE(agent_->started());
    ++registrations_;
    ASSERT_TRUE(kubelet_->WaitForRegistration("nvidia.com/gpu", registrations_, 10s));
  }
  // The node's nvidia.com/gpu device IDs ("<uuid>::<n>"), sorted, once the kubelet sees all 8;
  // empty when it does not within 10 s.
  std::vector<std::string> DeviceIds() {
    auto client = kubelet_->Connect("nvidia.com/gpu");
    client->StartWatching();
    std::vector<std::string> ids;
    if (!client->WaitForDevices([](const auto& l) { return l.devices_size() == 8; }, 10s)) {
      return ids;
    }
    const v1beta1::ListAndWatchResponse list = client->latest();
    for (const auto& d : list.devices()) ids.push_back(d.id());
    std::sort(ids.begin(), ids.end());
    return ids;
  }
  v1beta1::ContainerAllocateResponse Allocate(const std::vector<std::string>& ids) {
    auto client = kubelet_->Connect("nvidia.com/gpu");
    v1beta1::AllocateResponse response;
    EXPECT_TRUE(client->Allocate({ids}, &response).ok());
    return response.container_responses_size() == 1 ? response.container_responses(0)
                                                    : v1beta1::ContainerAllocateResponse{};
  }
  // Runs the hook exactly as the CDI spec tells the runtime to, for a container with `env`.
  int RunHook(const std::string& id, long pid, const std::string& cgroup,
              const std::map<std::string, std::string>& env,
              const std::map<std::string, std::string>& annotations = {}) {
    tree_.AddCgroup(cgroup, {pid});
    std::vector<std::string> env_list;
    for (const auto& [k, v] : env) env_list.push_back(k + "=" + v);
    const std::string bundle = tree_.AddBundle(id, env_list, annotations);
    std::ofstream(dir_ / ("state-" + id)) << FakeCgroupTree::State(id, pid, bundle);
    const nlohmann::json spec =
        nlohmann::json::parse(ReadFileOrEmpty(dir_ / "cdi/gpuslice-nvidia-gpu.json"));
    const auto& hook = spec["containerEdits"]["hooks"][0];
    EXPECT_EQ(hook["hookName"], "createContainer");
    EXPECT_EQ(hook["args"][0], hook["path"]);
    std::string command = hook["path"].get<std::string>();
    for (std::size_t i = 1; i < hook["args"].size(); ++i) {
      command += " '" + hook["args"][i].get<std::string>() + "'";
    }
    command += " --proc-root '" + tree_.proc_root() + "' < '" + (dir_ / ("state-" + id)) + "'";
    const int rc = std::system(command.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  MemoryLimits Limits(const std::string& gpu, const std::string& cgroup) {
    FileMemoryLimits driver({gpu});
    auto got = driver.GetMemoryLimits(gpu, tree_.cgroup_mount() + cgroup);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : MemoryLimits{};
  }
  std::string Features() { return ReadFileOrEmpty(dir_ / "features"); }
  bool WaitFor(const std::function<bool()>& done) {
    for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(10ms);
    return done();
  }

  TempDir dir_;
  FakeCgroupTree tree_;
  std::unique_ptr<TestKubelet> kubelet_;
  std::unique_ptr<AgentProcess> agent_;
  int registrations_ = 0;
};

TEST_F(IsolationIntegrationTest, CapableNodeLimitsEachContainerThroughTheHookAndSurvivesRestart) {
  StartAgent("615.20.03");
  ASSERT_TRUE(WaitFor([&] { return !Features().empty(); }));
  EXPECT_NE(Features().find("gpuslice.io/memory-isolation=driver"), std::string::npos)
      << Features();
  EXPECT_NE(Features().find("gpuslice.io/mps=none"), std::string::npos);
  const std::string token_env(names::kIsolationTokenEnv);
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  const std::string gpu0 = ids[0].substr(0, ids[0].find("::"));
  auto one = Allocate({ids[0]});
  auto two = Allocate({ids[1], ids[2]});
  ASSERT_EQ(one.envs().count(token_env), 1u);
  ASSERT_EQ(two.envs().count(token_env), 1u);
  EXPECT_NE(one.envs().at(token_env), two.envs().at(token_env));

  EXPECT_EQ(RunHook("ctr1", 4101, "/kubepods/p1/ctr1", {{token_env, one.envs().at(token_env)}}), 0);
  EXPECT_EQ(RunHook("ctr2", 4102, "/kubepods/p2/ctr2", {{token_env, two.envs().at(token_env)}}), 0);
  EXPECT_EQ(Limits(gpu0, "/kubepods/p1/ctr1").hard_limit_bytes, 10 * kGi);
  EXPECT_EQ(Limits(gpu0, "/kubepods/p2/ctr2").hard_limit_bytes, 20 * kGi);
  // A container presenting a token already used is refused: the runtime fails its creation.
  EXPECT_NE(RunHook("ctr3", 4103, "/kubepods/p3/ctr3", {{token_env, one.envs().at(token_env)}}), 0);
  EXPECT_FALSE(Limits(gpu0, "/kubepods/p3/ctr3").set());
  // A container without a token (not shared) starts without the agent's involvement.
  EXPECT_EQ(RunHook("plain", 4104, "/kubepods/p4/plain", {{"PATH", "/bin"}}), 0);

  // Restart: ctr2 ends while the agent is down; ctr1 keeps its limit, ctr2's is cleared.
  ASSERT_EQ(agent_->Terminate(10s), 0);
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/p2/ctr2", {});
  StartAgent("615.20.03");
  EXPECT_TRUE(WaitFor([&] { return !Limits(gpu0, "/kubepods/p2/ctr2").set(); }));
  EXPECT_EQ(Limits(gpu0, "/kubepods/p1/ctr1").hard_limit_bytes, 10 * kGi);
  // And a container that ends while the agent runs is cleared by the loop.
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/p1/ctr1", {});
  EXPECT_TRUE(WaitFor([&] { return !Limits(gpu0, "/kubepods/p1/ctr1").set(); }));
}

// The deployment's way (deploy/base): the agent copies the static gpuslice-oci-hook from its image
// into a host directory and names that copy in the CDI spec; the runtime runs the copy.
TEST_F(IsolationIntegrationTest, InstalledStaticHookIsWhatTheCdiSpecRunsAndLimitsContainers) {
  const std::string image = std::filesystem::path(GPUSLICE_OCI_HOOK).parent_path().string();
  StartAgent("615.20.03", kTimeSlicing4,
             {"--install-hook-from", image, "--hook-dir", dir_ / "host-bin"});
  ASSERT_TRUE(WaitFor([&] { return !Features().empty(); }));
  const std::string installed = dir_ / "host-bin/gpuslice-oci-hook";
  const nlohmann::json spec =
      nlohmann::json::parse(ReadFileOrEmpty(dir_ / "cdi/gpuslice-nvidia-gpu.json"));
  const auto& hook = spec["containerEdits"]["hooks"][0];
  EXPECT_EQ(hook["path"], installed);
  EXPECT_EQ(hook["args"][1], "create-container");
  // Compared as a boolean, so a failure does not print the binary.
  EXPECT_TRUE(ReadFileOrEmpty(installed) == ReadFileOrEmpty(GPUSLICE_OCI_HOOK)) << installed;
  EXPECT_EQ(std::filesystem::status(installed).permissions() & std::filesystem::perms::all,
            static_cast<std::filesystem::perms>(0755));

  const std::string token_env(names::kIsolationTokenEnv);
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  const std::string gpu0 = ids[0].substr(0, ids[0].find("::"));
  auto one = Allocate({ids[0]});
  ASSERT_EQ(one.envs().count(token_env), 1u);
  EXPECT_EQ(RunHook("ctr1", 4201, "/kubepods/p1/ctr1", {{token_env, one.envs().at(token_env)}}), 0);
  EXPECT_EQ(Limits(gpu0, "/kubepods/p1/ctr1").hard_limit_bytes, 10 * kGi);
  EXPECT_NE(RunHook("ctr2", 4202, "/kubepods/p2/ctr2", {{token_env, one.envs().at(token_env)}}), 0);
  EXPECT_EQ(RunHook("plain", 4203, "/kubepods/p3/plain", {{"PATH", "/bin"}}), 0);
}

TEST_F(IsolationIntegrationTest, MpsV3NamespacePerContainerThroughTheHookAndAcrossRestart) {
  const std::vector<std::string> v3 = {"--mps-v3-control-command", GPUSLICE_FAKE_MPS_V3_CONTROL};
  StartAgent("615.20.03", kMps4, v3);
  ASSERT_TRUE(WaitFor([&] { return !Features().empty(); }));
  EXPECT_NE(Features().find("gpuslice.io/mps=v3"), std::string::npos) << Features();
  const std::string token_env(names::kIsolationTokenEnv);
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  const std::string gpu0 = ids[0].substr(0, ids[0].find("::"));
  // MPS replicas are one per container (failRequestsGreaterThanOne, as NVIDIA's plugin).
  auto one = Allocate({ids[0]});
  auto two = Allocate({ids[1]});
  ASSERT_EQ(one.envs().count(token_env), 1u);
  ASSERT_EQ(two.envs().count(token_env), 1u);
  // Each container has only its namespace's directory as its MPS pipe directory, and none of
  // NVIDIA's per-process limit variables (the namespace holds the container's limits).
  ASSERT_EQ(one.mounts_size(), 1);
  ASSERT_EQ(two.mounts_size(), 1);
  const std::string dir1 = one.mounts(0).host_path(), dir2 = two.mounts(0).host_path();
  const std::string pipe = dir_ / ("mps/" + gpu0 + "/pipe");
  EXPECT_EQ(one.mounts(0).container_path(), "/tmp/nvidia-mps");
  EXPECT_EQ(std::filesystem::path(dir1).parent_path().parent_path().string(), pipe);
  EXPECT_NE(dir1, dir2);
  EXPECT_EQ(one.envs().count(std::string(names::kMpsPinnedDeviceMemLimitEnv)), 0u);
  EXPECT_EQ(one.envs().count(std::string(names::kMpsActiveThreadPercentageEnv)), 0u);
  EXPECT_EQ(RoutedFrom(dir1), "");  // no namespace before the container is created

  EXPECT_EQ(RunHook("ctr1", 4201, "/kubepods/p1/ctr1", {{token_env, one.envs().at(token_env)}}), 0);
  // ctr2's pod asks for below-normal MPS client priority (CRI-O passes the pod's annotations).
  const std::string priority(names::kAnnotationPodMpsClientPriority);
  EXPECT_EQ(RunHook("ctr2", 4202, "/kubepods/p2/ctr2", {{token_env, two.envs().at(token_env)}},
                    {{std::string(names::kCrioPodAnnotations), "{\"" + priority + "\":\"1\"}"}}),
            0);
  // Each container's processes reach only its own namespace, with a quarter of the GPU.
  const std::string ns1 = std::filesystem::path(dir1).filename().string();
  const std::string ns2 = std::filesystem::path(dir2).filename().string();
  EXPECT_EQ(RoutedFrom(dir1),
            "server=" + std::filesystem::path(dir1).parent_path().filename().string() +
                " namespace=" + ns1 +
                " pinned_memory_limit=10G active_thread_percentage=25 "
                "client_priority=0\n");
  EXPECT_NE(RoutedFrom(dir2).find("namespace=" + ns2 +
                                  " pinned_memory_limit=10G active_thread_percentage=25 "
                                  "client_priority=1"),
            std::string::npos)
      << RoutedFrom(dir2);
  // A priority NVIDIA does not document fails the container's creation (the kubelet retries and
  // shows the hook's message); its namespace is never created.
  auto three = Allocate({ids[2]});
  ASSERT_EQ(three.envs().count(token_env), 1u);
  EXPECT_NE(RunHook("ctr3", 4203, "/kubepods/p3/ctr3", {{token_env, three.envs().at(token_env)}},
                    {{priority, "high"}}),
            0);
  EXPECT_EQ(RoutedFrom(three.mounts(0).host_path()), "");
  EXPECT_EQ(Limits(gpu0, "/kubepods/p1/ctr1").hard_limit_bytes, 10 * kGi);
  EXPECT_EQ(Limits(gpu0, "/kubepods/p2/ctr2").hard_limit_bytes, 10 * kGi);
  // The limits and current use for metrics.
  EXPECT_TRUE(WaitFor([&] {
    return ReadFileOrEmpty(dir_ / "iso/usage.json").find("\"id\": \"ctr2\"") != std::string::npos;
  })) << ReadFileOrEmpty(dir_ / "iso/usage.json");

  // Restart (SIGTERM): the MPS v3 daemon keeps running and is adopted; a client connected
  // before keeps its connection; ctr2 ends while the agent is down and loses its namespace.
  const DaemonRecord daemon = RecordedDaemon(gpu0);
  ASSERT_GT(daemon.pid, 0);
  const std::string routed1 = RoutedFrom(dir1);
  testing::MpsV3Client held(dir1);
  ASSERT_EQ(held.routed + "\n", routed1);
  ASSERT_EQ(agent_->Terminate(10s), 0);
  EXPECT_TRUE(IsRecordedDaemonAlive(daemon));
  EXPECT_EQ(RoutedFrom(dir1), routed1);  // served while no agent runs
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/p2/ctr2", {});
  StartAgent("615.20.03", kMps4, v3);
  EXPECT_TRUE(agent_->WaitForLog("adopted the running MPS v3 control daemon", 10s));
  EXPECT_EQ(RecordedDaemon(gpu0), daemon);
  EXPECT_TRUE(IsRecordedDaemonAlive(daemon));
  EXPECT_TRUE(WaitFor([&] { return RoutedFrom(dir2).empty(); }));
  EXPECT_EQ(RoutedFrom(dir1), routed1);  // same namespace, same limits
  EXPECT_NE(ClientList(pipe).find("pid=" + std::to_string(held.pid) + " "), std::string::npos)
      << ClientList(pipe);
  EXPECT_FALSE(Limits(gpu0, "/kubepods/p2/ctr2").set());
  EXPECT_EQ(Limits(gpu0, "/kubepods/p1/ctr1").hard_limit_bytes, 10 * kGi);
  // A container that ends while the agent runs loses its namespace and limit.
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/p1/ctr1", {});
  EXPECT_TRUE(WaitFor([&] { return RoutedFrom(dir1).empty(); }));
  EXPECT_FALSE(Limits(gpu0, "/kubepods/p1/ctr1").set());
  // The kubelet restarts it in its pod with the same Allocate response (same token, same
  // directory mounted): it gets its namespace and limit back. Another pod cannot use the token.
  EXPECT_TRUE(std::filesystem::is_directory(dir1));
  EXPECT_NE(RunHook("other", 4299, "/kubepods/p9/other", {{token_env, one.envs().at(token_env)}}),
            0);
  EXPECT_EQ(RunHook("ctr1-restarted", 4211, "/kubepods/p1/ctr1-restarted",
                    {{token_env, one.envs().at(token_env)}}),
            0);
  EXPECT_EQ(RoutedFrom(dir1), routed1);
  EXPECT_EQ(Limits(gpu0, "/kubepods/p1/ctr1-restarted").hard_limit_bytes, 10 * kGi);
  // The config no longer shares the GPUs under MPS (reloaded while the agent runs): the v3
  // daemon is stopped and its record removed.
  ASSERT_TRUE(WriteFileAtomically(dir_ / "config.yaml", kTimeSlicing4).ok());
  agent_->Signal(SIGHUP);
  EXPECT_TRUE(WaitFor([&] { return !IsRecordedDaemonAlive(daemon); }));
  EXPECT_TRUE(WaitFor([&] { return RecordedDaemon(gpu0).pid < 0; }));
}

TEST_F(IsolationIntegrationTest, MpsV3DaemonSurvivesAKilledAgentAndStopsWhenMpsIsConfiguredAway) {
  const std::vector<std::string> v3 = {"--mps-v3-control-command", GPUSLICE_FAKE_MPS_V3_CONTROL};
  StartAgent("615.20.03", kMps4, v3);
  const std::string token_env(names::kIsolationTokenEnv);
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  const std::string gpu0 = ids[0].substr(0, ids[0].find("::"));
  const std::string gpu1 = ids[4].substr(0, ids[4].find("::"));
  const std::string pipe1 = dir_ / ("mps/" + gpu1 + "/pipe");
  DaemonRecord impostor = RecordedDaemon(gpu1);
  ASSERT_GT(impostor.pid, 0);
  // A stale record naming an unrelated live process (this test, recorded with the start time it
  // has, the right boot and the daemon's command line): neither adopted nor signalled.
  ASSERT_EQ(agent_->Terminate(10s), 0);
  testing::KillRecordedDaemons(pipe1 + "/..");
  impostor.pid = getpid();
  impostor.start_time_ticks = testing::StartTimeTicks(getpid());
  ASSERT_TRUE(WriteDaemonRecord(ProcessMpsV3::RecordPath(pipe1), impostor).ok());
  StartAgent("615.20.03", kMps4, v3);
  ASSERT_TRUE(WaitFor([&] { return RecordedDaemon(gpu1).pid > 0; }));
  EXPECT_NE(RecordedDaemon(gpu1).pid, getpid());  // a new daemon; and this test still runs

  auto one = Allocate({ids[0]});
  ASSERT_EQ(one.envs().count(token_env), 1u);
  ASSERT_EQ(one.mounts_size(), 1);
  const std::string dir1 = one.mounts(0).host_path();
  EXPECT_EQ(RunHook("ctr1", 4301, "/kubepods/p1/ctr1", {{token_env, one.envs().at(token_env)}}), 0);
  const std::string routed1 = RoutedFrom(dir1);
  ASSERT_NE(routed1.find("pinned_memory_limit=10G active_thread_percentage=25"), std::string::npos)
      << routed1;
  const DaemonRecord daemon = RecordedDaemon(gpu0);
  testing::MpsV3Client held(dir1);

  // SIGKILL: nothing of the agent runs at its end; the daemon and the namespace stay.
  agent_->Signal(SIGKILL);
  ASSERT_EQ(agent_->Wait(10s), 128 + SIGKILL);
  EXPECT_TRUE(IsRecordedDaemonAlive(daemon));
  EXPECT_EQ(RoutedFrom(dir1), routed1);
  StartAgent("615.20.03", kMps4, v3);
  EXPECT_TRUE(agent_->WaitForLog("adopted the running MPS v3 control daemon for " + gpu0, 10s));
  EXPECT_EQ(RecordedDaemon(gpu0), daemon);
  // The loop's first reconcile has run when usage.json names the container.
  EXPECT_TRUE(WaitFor([&] {
    return ReadFileOrEmpty(dir_ / "iso/usage.json").find("\"id\": \"ctr1\"") != std::string::npos;
  }));
  EXPECT_EQ(RoutedFrom(dir1), routed1);
  EXPECT_NE(ClientList(dir_ / ("mps/" + gpu0 + "/pipe")).find("pid=" + std::to_string(held.pid)),
            std::string::npos);
  EXPECT_EQ(Limits(gpu0, "/kubepods/p1/ctr1").hard_limit_bytes, 10 * kGi);

  // Killed again, and restarted with MPS configured away: the daemons it left are stopped.
  agent_->Signal(SIGKILL);
  ASSERT_EQ(agent_->Wait(10s), 128 + SIGKILL);
  StartAgent("615.20.03", kTimeSlicing4);
  EXPECT_TRUE(WaitFor([&] { return !IsRecordedDaemonAlive(daemon); }));
  EXPECT_TRUE(
      WaitFor([&] { return RecordedDaemon(gpu0).pid < 0 && RecordedDaemon(gpu1).pid < 0; }));
  EXPECT_EQ(RoutedFrom(dir1), "");
}

TEST_F(IsolationIntegrationTest, MpsOnAnOldDriverKeepsNvidiasPerProcessLimits) {
  StartAgent("550.54.15", kMps4, {"--mps-v3-control-command", GPUSLICE_FAKE_MPS_V3_CONTROL});
  ASSERT_TRUE(WaitFor([&] { return !Features().empty(); }));
  EXPECT_NE(Features().find("gpuslice.io/mps=v2"), std::string::npos) << Features();
  EXPECT_NE(Features().find("gpuslice.io/memory-isolation=shim"), std::string::npos);
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  auto response = Allocate({ids[0]});
  EXPECT_EQ(response.envs().count(std::string(names::kIsolationTokenEnv)), 0u);
  EXPECT_EQ(response.envs().count(std::string(names::kMpsPinnedDeviceMemLimitEnv)), 1u);
  ASSERT_EQ(response.mounts_size(), 1);
  EXPECT_EQ(std::filesystem::path(response.mounts(0).host_path()).filename(), "pipe");
}

TEST_F(IsolationIntegrationTest, IncapableNodeFallsBackToShimAndLabelsItself) {
  StartAgent("550.54.15");
  ASSERT_TRUE(WaitFor([&] { return !Features().empty(); }));
  EXPECT_NE(Features().find("gpuslice.io/memory-isolation=shim"), std::string::npos) << Features();
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  auto response = Allocate({ids[0]});
  EXPECT_EQ(response.envs().count(std::string(names::kIsolationTokenEnv)), 0u);
}

// deploy/base's flags on an r550 node: the hook is installed but the CDI spec names none.
TEST_F(IsolationIntegrationTest, IncapableNodeWithTheInstalledHookWritesNoHookAndNoToken) {
  const std::string image = std::filesystem::path(GPUSLICE_OCI_HOOK).parent_path().string();
  StartAgent("550.54.15", kTimeSlicing4,
             {"--install-hook-from", image, "--hook-dir", dir_ / "host-bin"});
  ASSERT_TRUE(WaitFor([&] { return !Features().empty(); }));
  EXPECT_NE(Features().find("gpuslice.io/memory-isolation=shim"), std::string::npos) << Features();
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  const nlohmann::json spec =
      nlohmann::json::parse(ReadFileOrEmpty(dir_ / "cdi/gpuslice-nvidia-gpu.json"));
  EXPECT_FALSE(spec["containerEdits"].contains("hooks")) << spec.dump();
  auto response = Allocate({ids[0]});
  EXPECT_EQ(response.envs().count(std::string(names::kIsolationTokenEnv)), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "iso/spool"));
}

}  // namespace
}  // namespace gpuslice

namespace gpuslice {
namespace {

TEST_F(IsolationIntegrationTest, UnreadableStateFileTurnsTheTierOffAndIsKept) {
  std::filesystem::create_directories(dir_ / "iso");
  std::ofstream(dir_ / "iso/state.json") << "{garbage";
  StartAgent("615.20.03");
  ASSERT_TRUE(WaitFor([&] { return !Features().empty(); }));
  EXPECT_NE(Features().find("gpuslice.io/memory-isolation=shim"), std::string::npos) << Features();
  EXPECT_EQ(ReadFileOrEmpty(dir_ / "iso/state.json"), "{garbage");
  EXPECT_TRUE(agent_->WaitForLog("isolation state", 10s));
}

}  // namespace
}  // namespace gpuslice

// What a container sees on the driver tier: the agent mounts the shims into a replica container,
// with a limits file marking the GPU `enforcer=driver`; the shim reports the share as the total
// and counts use, and the (fake) driver's cgroup limit refuses, not the shim.
namespace gpuslice {
namespace {

// One process of a container: the shim probe, started stopped (`read`) so that the test can put
// its pid into the container's cgroup before it makes a CUDA call, as the runtime would.
struct ProbeRun {
  std::map<std::string, std::string> out;  // the probe's key=value lines
  std::string text;
};

ProbeRun RunProbeInCgroup(const std::string& cgroup_dir, long container_pid,
                          const std::vector<std::string>& env,
                          const std::vector<std::string>& args) {
  int to_child[2];
  int from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    close(to_child[1]);
    close(from_child[0]);
    std::vector<std::string> argv = {"/bin/sh", "-c", "read go && exec \"$0\" \"$@\"",
                                     GPUSLICE_PROBE_DLOPEN_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::vector<std::string> envs = env;
    std::vector<char*> cenv;
    for (std::string& e : envs) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    execve("/bin/sh", cargv.data(), cenv.data());
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  FakeCgroupTree::SetProcs(cgroup_dir, {container_pid, pid});
  const char go[] = "go\n";
  EXPECT_EQ(write(to_child[1], go, 3), 3);
  close(to_child[1]);
  ProbeRun run;
  char buf[512];
  for (ssize_t n; (n = read(from_child[0], buf, sizeof(buf))) > 0;) {
    run.text.append(buf, static_cast<std::size_t>(n));
  }
  close(from_child[0]);
  waitpid(pid, nullptr, 0);
  FakeCgroupTree::SetProcs(cgroup_dir, {container_pid});
  std::istringstream lines(run.text);
  for (std::string line; std::getline(lines, line);) {
    if (const auto eq = line.find('='); eq != std::string::npos) {
      run.out[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  return run;
}

const v1beta1::Mount* MountAt(const v1beta1::ContainerAllocateResponse& r, const std::string& at) {
  for (const auto& m : r.mounts()) {
    if (m.container_path() == at) return &m;
  }
  return nullptr;
}

// The container's view of the agent's limits file, on a host without mount namespaces: the
// file the agent wrote, with the region at the host path the agent mounts at /run/gpuslice and
// the fake drivers as the real ones. The device line (limit, enforcer) is the agent's, except
// that the fake CUDA's device 0 is matched by index (its UUIDs are not the simulated node's).
std::string ContainerView(const v1beta1::ContainerAllocateResponse& r, const std::string& into) {
  const v1beta1::Mount* limits_dir = MountAt(r, "/etc/gpuslice");
  const v1beta1::Mount* region_dir = MountAt(r, "/run/gpuslice");
  if (limits_dir == nullptr || region_dir == nullptr) return "";
  Result<shim::ContainerLimits> limits =
      shim::ReadContainerLimitsFile(limits_dir->host_path() + "/limits");
  EXPECT_TRUE(limits.ok()) << limits.status().ToString();
  if (!limits.ok()) return "";
  EXPECT_EQ(std::string(limits->region_path), "/run/gpuslice/accounting");
  const std::string region = region_dir->host_path() + "/accounting";
  std::snprintf(limits->region_path, sizeof(limits->region_path), "%s", region.c_str());
  std::snprintf(limits->cuda_driver_path, sizeof(limits->cuda_driver_path), "%s",
                GPUSLICE_FAKE_CUDA_PATH);
  std::snprintf(limits->nvml_driver_path, sizeof(limits->nvml_driver_path), "%s",
                GPUSLICE_FAKE_NVML_PATH);
  limits->devices[0].uuid[0] = '\0';
  limits->devices[0].nvml_index = 0;
  EXPECT_TRUE(shim::WriteContainerLimitsFile(into, *limits).ok());
  return into;
}

std::vector<std::string> ProbeEnv(const std::string& limits_file, const std::string& cgroup_root,
                                  const std::string& gpu, const std::vector<std::string>& extra) {
  std::vector<std::string> env = {
      std::string("LD_PRELOAD=") + GPUSLICE_CUDA_SHIM_PATH + " " + GPUSLICE_NVML_SHIM_PATH,
      "GPUSLICE_LIMITS_FILE=" + limits_file,
      std::string("GPUSLICE_TEST_FAKE_CUDA=") + GPUSLICE_FAKE_CUDA_PATH,
      "GPUSLICE_FAKE_GPUS=count=1,memory=40Gi",
      "GPUSLICE_FAKE_CGROUP_ROOT=" + cgroup_root,
      "GPUSLICE_FAKE_GPU_UUIDS=" + gpu,
      std::string("LD_LIBRARY_PATH=") + GPUSLICE_FAKE_CUDA_DIR + ":" + GPUSLICE_FAKE_NVML_DIR,
      "ASAN_OPTIONS=verify_asan_link_order=0",
  };
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

constexpr char kOutOfMemory[] = "2";  // CUDA_ERROR_OUT_OF_MEMORY

TEST_F(IsolationIntegrationTest, ReplicaContainerSeesItsShareWhileTheDriverEnforcesIt) {
  StartAgent("615.20.03", kTimeSlicing4, {"--shim-dir", GPUSLICE_SHIM_DIR});
  const std::string token_env(names::kIsolationTokenEnv);
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  const std::string gpu0 = ids[0].substr(0, ids[0].find("::"));
  auto response = Allocate({ids[0]});
  ASSERT_EQ(response.envs().count(token_env), 1u);
  // The shims, the preload file and the agent's limits file, all read-only; the region writable.
  for (const char* at :
       {"/usr/local/lib/gpuslice/libgpuslice-cuda.so",
        "/usr/local/lib/gpuslice/libgpuslice-nvml.so", "/etc/ld.so.preload", "/etc/gpuslice"}) {
    const v1beta1::Mount* mount = MountAt(response, at);
    ASSERT_NE(mount, nullptr) << at;
    EXPECT_TRUE(mount->read_only()) << at;
  }
  ASSERT_NE(MountAt(response, "/run/gpuslice"), nullptr);
  const std::string agent_file = MountAt(response, "/etc/gpuslice")->host_path() + "/limits";
  Result<shim::ContainerLimits> written = shim::ReadContainerLimitsFile(agent_file);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  ASSERT_EQ(written->device_count, 1u);
  EXPECT_EQ(std::string(written->devices[0].uuid), gpu0);
  EXPECT_EQ(written->devices[0].memory_bytes, 10 * kGi);  // 1 of 4 replicas of 40 GiB
  EXPECT_TRUE(written->devices[0].driver_enforced);
  EXPECT_NE(ReadFileOrEmpty(agent_file).find("enforcer=driver"), std::string::npos);
  EXPECT_EQ(std::filesystem::status(agent_file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::group_read |
                std::filesystem::perms::others_read);

  ASSERT_EQ(
      RunHook("ctr1", 4201, "/kubepods/p1/ctr1", {{token_env, response.envs().at(token_env)}}), 0);
  const std::string cgroup = tree_.cgroup_mount() + "/kubepods/p1/ctr1";
  ASSERT_EQ(Limits(gpu0, "/kubepods/p1/ctr1").hard_limit_bytes, 10 * kGi);
  const std::string view = ContainerView(response, dir_ / "container-limits");
  ASSERT_FALSE(view.empty());
  auto probe = [&](const std::vector<std::string>& args,
                   const std::vector<std::string>& extra_env = {}) {
    return RunProbeInCgroup(cgroup, 4201, ProbeEnv(view, tree_.cgroup_mount(), gpu0, extra_env),
                            args);
  };

  // The share is the total, through CUDA and NVML.
  ProbeRun info = probe({"info"});
  EXPECT_EQ(info.out["cuda_total"], std::to_string(10 * kGi)) << info.text;
  EXPECT_EQ(info.out["device_total"], std::to_string(10 * kGi)) << info.text;
  EXPECT_EQ(info.out["nvml_total"], std::to_string(10 * kGi)) << info.text;

  struct Row {
    const char* name;
    std::uint64_t driver_hard_bytes;  // the cgroup's driver limit for this row
    std::uint64_t alloc_bytes;
    const char* result;        // CUresult
    std::uint64_t fake_bytes;  // what the (fake) driver allocated: 0 when refused
  };
  const Row rows[] = {
      {"WithinTheShare", 10 * kGi, 9 * kGi, "0", 9 * kGi},
      {"BeyondTheShareTheDriverRefuses", 10 * kGi, 11 * kGi, kOutOfMemory, 0},
      // Driver limit above the reported share: the shim does not refuse what the driver allows.
      {"TheShimDoesNotRefuseWhatTheDriverAllows", 12 * kGi, 11 * kGi, "0", 11 * kGi},
      // Driver limit below the reported share: the driver refuses although the shim would not.
      {"TheDriverRefusesBelowTheReportedShare", 8 * kGi, 9 * kGi, kOutOfMemory, 0},
  };
  FileMemoryLimits driver({gpu0});
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    ASSERT_TRUE(
        driver.SetMemoryLimits(gpu0, cgroup, row.driver_hard_bytes, row.driver_hard_bytes).ok());
    ProbeRun run = probe({"alloc", std::to_string(row.alloc_bytes)});
    EXPECT_EQ(run.out["result"], row.result) << run.text;
    EXPECT_EQ(run.out["fake"], std::to_string(row.fake_bytes)) << run.text;
    // The shim counts what it let through (cuMemGetInfo's used; saturates at the share).
    EXPECT_EQ(run.out["counted"], std::to_string(std::min(row.fake_bytes, 10 * kGi))) << run.text;
  }
  // The tenant's environment cannot make the shim an enforcer again or raise what it reports.
  ASSERT_TRUE(driver.SetMemoryLimits(gpu0, cgroup, 12 * kGi, 12 * kGi).ok());
  ProbeRun raised = probe({"info"}, {"GPUSLICE_MEMORY_LIMIT=20Gi"});
  EXPECT_EQ(raised.out["cuda_total"], std::to_string(10 * kGi)) << raised.text;
  // A lower limit of its own still holds (the tenant asked the shim for it).
  ProbeRun lowered = probe({"alloc", std::to_string(5 * kGi)}, {"GPUSLICE_MEMORY_LIMIT=4Gi"});
  EXPECT_EQ(lowered.out["result"], kOutOfMemory) << lowered.text;

  // A GPU the file does not mark `enforcer=driver` (the shim tier): the shim refuses at the limit
  // even where the driver would allow more, whatever the tenant sets in its environment.
  Result<shim::ContainerLimits> shim_tier = shim::ReadContainerLimitsFile(view);
  ASSERT_TRUE(shim_tier.ok());
  shim_tier->devices[0].driver_enforced = false;
  const std::string shim_file = dir_ / "shim-tier-limits";
  ASSERT_TRUE(shim::WriteContainerLimitsFile(shim_file, *shim_tier).ok());
  ProbeRun enforced =
      RunProbeInCgroup(cgroup, 4201,
                       ProbeEnv(shim_file, tree_.cgroup_mount(), gpu0,
                                {"GPUSLICE_ENFORCER=driver", "GPUSLICE_MEMORY_LIMIT=20Gi"}),
                       {"alloc", std::to_string(11 * kGi)});
  EXPECT_EQ(enforced.out["result"], kOutOfMemory) << enforced.text;
  EXPECT_EQ(enforced.out["counted"], "0") << enforced.text;
  EXPECT_EQ(enforced.out["fake"], "0") << enforced.text;  // refused before the driver saw it

  // The container's pod ends: its shim directory goes with its token.
  FakeCgroupTree::SetProcs(cgroup, {});
  std::filesystem::remove_all(cgroup);
  std::filesystem::remove_all(tree_.cgroup_mount() + "/kubepods/p1");
  EXPECT_TRUE(WaitFor([&] { return !std::filesystem::exists(agent_file); }));
}

TEST_F(IsolationIntegrationTest, ContainerWithReplicasOfTwoGpusGetsBothDriverLimitsFromOneToken) {
  StartAgent("615.20.03", kTimeSlicing4, {"--shim-dir", GPUSLICE_SHIM_DIR});
  const std::string token_env(names::kIsolationTokenEnv);
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  const std::string gpu0 = ids[0].substr(0, ids[0].find("::"));
  const std::string gpu1 = ids[7].substr(0, ids[7].find("::"));
  ASSERT_NE(gpu0, gpu1);
  // One replica of the first GPU, two of the second.
  auto response = Allocate({ids[0], ids[6], ids[7]});
  ASSERT_EQ(response.envs().count(token_env), 1u);
  const v1beta1::Mount* limits_dir = MountAt(response, "/etc/gpuslice");
  ASSERT_NE(limits_dir, nullptr);
  Result<shim::ContainerLimits> written =
      shim::ReadContainerLimitsFile(limits_dir->host_path() + "/limits");
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  ASSERT_EQ(written->device_count, 2u);
  std::map<std::string, std::uint64_t> reported;
  for (std::uint32_t i = 0; i < written->device_count; ++i) {
    EXPECT_TRUE(written->devices[i].driver_enforced);
    reported[written->devices[i].uuid] = written->devices[i].memory_bytes;
  }
  EXPECT_EQ(reported[gpu0], 10 * kGi);
  EXPECT_EQ(reported[gpu1], 20 * kGi);
  ASSERT_EQ(
      RunHook("ctr1", 4301, "/kubepods/p1/ctr1", {{token_env, response.envs().at(token_env)}}), 0);
  EXPECT_EQ(Limits(gpu0, "/kubepods/p1/ctr1").hard_limit_bytes, 10 * kGi);
  EXPECT_EQ(Limits(gpu1, "/kubepods/p1/ctr1").hard_limit_bytes, 20 * kGi);
  // An agent restart keeps both; the container's end clears both.
  ASSERT_EQ(agent_->Terminate(10s), 0);
  StartAgent("615.20.03", kTimeSlicing4, {"--shim-dir", GPUSLICE_SHIM_DIR});
  EXPECT_EQ(Limits(gpu1, "/kubepods/p1/ctr1").hard_limit_bytes, 20 * kGi);
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/p1/ctr1", {});
  EXPECT_TRUE(WaitFor([&] {
    return !Limits(gpu0, "/kubepods/p1/ctr1").set() && !Limits(gpu1, "/kubepods/p1/ctr1").set();
  }));
}

TEST_F(IsolationIntegrationTest, MpsReplicaGetsItsNamespaceAndTheReportOnlyShim) {
  StartAgent(
      "615.20.03", kMps4,
      {"--mps-v3-control-command", GPUSLICE_FAKE_MPS_V3_CONTROL, "--shim-dir", GPUSLICE_SHIM_DIR});
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  auto response = Allocate({ids[0]});
  ASSERT_EQ(response.envs().count(std::string(names::kIsolationTokenEnv)), 1u);
  const v1beta1::Mount* pipe = MountAt(response, "/tmp/nvidia-mps");
  ASSERT_NE(pipe, nullptr);
  EXPECT_EQ(std::filesystem::path(pipe->host_path()).filename().string().rfind("ns-", 0), 0u);
  ASSERT_NE(MountAt(response, "/etc/ld.so.preload"), nullptr);
  const v1beta1::Mount* limits_dir = MountAt(response, "/etc/gpuslice");
  ASSERT_NE(limits_dir, nullptr);
  Result<shim::ContainerLimits> written =
      shim::ReadContainerLimitsFile(limits_dir->host_path() + "/limits");
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  ASSERT_EQ(written->device_count, 1u);
  EXPECT_TRUE(written->devices[0].driver_enforced);
  EXPECT_EQ(written->devices[0].memory_bytes, 10 * kGi);
}

TEST_F(IsolationIntegrationTest, TokenOfAPodDeletedBeforeItsContainerWasCreatedIsReleased) {
  testing::TestPodResources pod_resources(dir_ / "pod-resources.sock");
  ASSERT_TRUE(pod_resources.Start());
  StartAgent("615.20.03", kTimeSlicing4,
             {"--shim-dir", GPUSLICE_SHIM_DIR, "--pod-resources-socket",
              pod_resources.socket_path(), "--unclaimed-token-grace-ms", "300"});
  const std::string token_env(names::kIsolationTokenEnv);
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  // Both pods are admitted (the kubelet records their devices); one is deleted before its
  // container is created, the other's container is created late (an image pull).
  auto waiting = Allocate({ids[0]});
  pod_resources.RecordAllocation("default", "waiting", "main", "nvidia.com/gpu", {ids[0]});
  auto deleted = Allocate({ids[1]});
  pod_resources.RecordAllocation("default", "deleted", "main", "nvidia.com/gpu", {ids[1]});
  ASSERT_EQ(deleted.envs().count(token_env), 1u);
  const std::string deleted_shim = MountAt(deleted, "/etc/gpuslice")->host_path();
  ASSERT_TRUE(std::filesystem::exists(deleted_shim));
  pod_resources.ForgetPod("default", "deleted");
  EXPECT_TRUE(WaitFor([&] { return !std::filesystem::exists(deleted_shim); }));
  EXPECT_TRUE(agent_->WaitForLog("released the isolation token of nvidia.com/gpu " + ids[1], 5s));
  // Its token is gone (a container presenting it would be refused); the waiting pod's is kept
  // past the grace period and binds.
  EXPECT_NE(RunHook("late", 4401, "/kubepods/p9/late", {{token_env, deleted.envs().at(token_env)}}),
            0);
  EXPECT_EQ(RunHook("ctr1", 4402, "/kubepods/p1/ctr1", {{token_env, waiting.envs().at(token_env)}}),
            0);
  EXPECT_EQ(Limits(ids[0].substr(0, ids[0].find("::")), "/kubepods/p1/ctr1").hard_limit_bytes,
            10 * kGi);
}

TEST_F(IsolationIntegrationTest, IncapableNodeMountsNoReportOnlyShim) {
  StartAgent("550.54.15", kTimeSlicing4, {"--shim-dir", GPUSLICE_SHIM_DIR});
  const std::vector<std::string> ids = DeviceIds();
  ASSERT_EQ(ids.size(), 8u);
  auto response = Allocate({ids[0]});
  EXPECT_EQ(response.envs().count(std::string(names::kIsolationTokenEnv)), 0u);
  EXPECT_EQ(MountAt(response, "/etc/gpuslice"), nullptr);
  EXPECT_EQ(MountAt(response, "/etc/ld.so.preload"), nullptr);
}

}  // namespace
}  // namespace gpuslice

namespace gpuslice {
namespace {

using namespace std::chrono_literals;

// gpuslice.fractional.compute: mps on an r615 node, end to end through the binary: the extender's
// assignment on the pod (fake API server), the kubelet's Allocate and PodResources, the
// allocation hand-off's limits file, the CDI spec's hook and the fake MPS v3 daemon. Each
// fractional container reaches only its own namespace, with its gpu-compute as threads and its
// gpu-memory as pinned memory and driver limit; its shim does not arbitrate. The small pod's
// gpuslice.io/mps-client-priority is only in the API server: the hook passes the pod's names from
// containerd's annotations and the agent reads the priority from the pod.
TEST_F(IsolationIntegrationTest, FractionalPodsOnAnMpsV3NodeEachGetTheirOwnNamespace) {
  fake::FakeApiServer apiserver;
  ASSERT_TRUE(apiserver.Start().ok());
  std::ofstream(dir_ / "kubeconfig") << apiserver.Kubeconfig();
  Result<kube::KubeConfig> kubeconfig = kube::LoadKubeconfigFile(dir_ / "kubeconfig");
  ASSERT_TRUE(kubeconfig.ok());
  Result<std::unique_ptr<kube::KubeClient>> api = kube::KubeClient::Create(*kubeconfig);
  ASSERT_TRUE(api.ok());
  ASSERT_TRUE(
      (*api)
          ->Create(kube::Nodes(),
                   {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "iso-node"}}}})
          .ok());
  testing::TestPodResources pod_resources(dir_ / "pod-resources.sock");
  ASSERT_TRUE(pod_resources.Start());
  constexpr char kFractionalMps[] = R"(version: v1
gpuslice:
  fractional:
    enabled: true
    devices: [0]
    slotsPerGpu: 4
    compute: mps
)";
  StartAgent("615.20.03", kFractionalMps,
             {"--mps-v3-control-command", GPUSLICE_FAKE_MPS_V3_CONTROL, "--node-name", "iso-node",
              "--kubeconfig", dir_ / "kubeconfig", "--pod-resources-socket",
              dir_ / "pod-resources.sock", "--allocations-dir", dir_ / "allocations", "--shim-dir",
              dir_ / "host-shims", "--install-shims-from", GPUSLICE_SHIM_DIR});
  ASSERT_TRUE(WaitFor([&] { return !Features().empty(); }));
  EXPECT_NE(Features().find("gpuslice.io/mps=v3"), std::string::npos) << Features();
  ASSERT_TRUE(kubelet_->WaitForRegistration("gpuslice.io/gpu", 1, 10s)) << agent_->Log();
  auto slots = kubelet_->Connect("gpuslice.io/gpu");
  slots->StartWatching();
  ASSERT_TRUE(slots->WaitForDevices([](const auto& l) { return l.devices_size() == 4; }, 10s));
  const std::string first_slot = slots->latest().devices(0).id();
  const std::string gpu0 = first_slot.substr(0, first_slot.find("::"));
  // The fractional GPU's MPS v3 daemon runs (GPU 1, a whole nvidia.com/gpu, has none).
  ASSERT_TRUE(WaitFor([&] { return RecordedDaemon(gpu0).pid > 0; })) << agent_->Log();

  struct Pod {
    std::string name;
    std::int64_t memory;
    int compute;
    std::string slot;
    // The pod's gpuslice.io/mps-client-priority, in the API server only: the bundles below
    // carry containerd's pod names but not the annotation (no `pod_annotations` list).
    std::string priority;
    v1beta1::ContainerAllocateResponse response = {};
  };
  std::vector<Pod> pods = {{"small", 8 * static_cast<std::int64_t>(kGi), 30, gpu0 + "::0", "1"},
                           {"large", 16 * static_cast<std::int64_t>(kGi), 70, gpu0 + "::1", ""}};
  const std::string token_env(names::kIsolationTokenEnv);
  for (Pod& pod : pods) {
    GpuAssignment assignment;
    assignment.node = "iso-node";
    assignment.container = "main";
    assignment.gpus = {{0, gpu0}};
    assignment.memory_bytes = pod.memory;
    assignment.compute_percent = pod.compute;
    kube::Json object = {
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata",
         {{"name", pod.name},
          {"annotations",
           {{std::string(names::kAnnotationPodAssignment), EncodeAssignment(assignment)}}}}},
        {"spec",
         {{"nodeName", "iso-node"}, {"containers", {{{"name", "main"}, {"image", "cuda"}}}}}}};
    if (!pod.priority.empty()) {
      object["metadata"]["annotations"][std::string(names::kAnnotationPodMpsClientPriority)] =
          pod.priority;
    }
    ASSERT_TRUE((*api)->Create(kube::Pods("default"), object).ok());
    v1beta1::AllocateResponse response;
    grpc::Status allocated = slots->Allocate({{pod.slot}}, &response);
    ASSERT_TRUE(allocated.ok()) << allocated.error_message() << agent_->Log();
    pod_resources.RecordAllocation("default", pod.name, "main", "gpuslice.io/gpu", {pod.slot});
    pod.response = response.container_responses(0);
    ASSERT_EQ(pod.response.envs().count(token_env), 1u);
  }
  for (std::size_t i = 0; i < pods.size(); ++i) {
    const Pod& pod = pods[i];
    const v1beta1::Mount* mps_dir = testing::MountAt(pod.response, "/tmp/nvidia-mps");
    ASSERT_NE(mps_dir, nullptr);
    EXPECT_EQ(RoutedFrom(mps_dir->host_path()), "");  // no namespace before the hook
    // The hook waits for the hand-off's limits, then the agent binds the container.
    const std::string cgroup = "/kubepods/" + pod.name + "/main";
    EXPECT_EQ(RunHook(pod.name, 4300 + static_cast<long>(i), cgroup,
                      {{token_env, pod.response.envs().at(token_env)}},
                      {{std::string(names::kContainerdPodNamespace), "default"},
                       {std::string(names::kContainerdPodName), pod.name}}),
              0)
        << agent_->Log();
    const std::string ns = std::filesystem::path(mps_dir->host_path()).filename().string();
    const std::string server =
        std::filesystem::path(mps_dir->host_path()).parent_path().filename().string();
    EXPECT_EQ(RoutedFrom(mps_dir->host_path()),
              "server=" + server + " namespace=" + ns + " pinned_memory_limit=" +
                  std::to_string(pod.memory / static_cast<std::int64_t>(kGi)) +
                  "G active_thread_percentage=" + std::to_string(pod.compute) +
                  " client_priority=" + (pod.priority.empty() ? "0" : pod.priority) + "\n")
        << agent_->Log();
    EXPECT_EQ(Limits(gpu0, cgroup).hard_limit_bytes, static_cast<std::uint64_t>(pod.memory));
    const v1beta1::Mount* limits_dir = testing::MountAt(pod.response, kContainerLimitsDir);
    ASSERT_NE(limits_dir, nullptr);
    Result<shim::ContainerLimits> limits =
        shim::ReadContainerLimitsFile(limits_dir->host_path() + "/limits");
    ASSERT_TRUE(limits.ok()) << limits.status().ToString();
    EXPECT_TRUE(limits->devices[0].driver_enforced);
    EXPECT_STREQ(limits->devices[0].arbiter_path, "") << "MPS shares the compute, not the shim";
  }
  // The large pod's container ends: its namespace and limit go, the small one's stay.
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/large/main", {});
  const std::string large_dir = testing::MountAt(pods[1].response, "/tmp/nvidia-mps")->host_path();
  EXPECT_TRUE(WaitFor([&] { return RoutedFrom(large_dir).empty(); }));
  EXPECT_FALSE(Limits(gpu0, "/kubepods/large/main").set());
  EXPECT_NE(RoutedFrom(testing::MountAt(pods[0].response, "/tmp/nvidia-mps")->host_path()), "");
  pod_resources.Stop();
  apiserver.Stop();
}

}  // namespace
}  // namespace gpuslice
