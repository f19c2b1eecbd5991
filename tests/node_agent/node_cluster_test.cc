// The node agent's Kubernetes side (issue 13 parts 5 and 7), with real parts: the fake API
// server over HTTP on loopback, the test kubelet's device-plugin client and PodResources server
// over gRPC on Unix sockets, the simulated GPU backend, real files.
//
// A pod bound by the extender carries gpuslice.io/assignment; the test kubelet Allocates
// gpuslice.io/gpu slots and records them in PodResources as the kubelet does; the agent maps the
// slots to the pod, reads its assignment and writes the container's limits file.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends/simulated_backend.h"
#include "contending_tenant.h"
#include "core/clock.h"
#include "core/gpu_annotations.h"
#include "core/resource_names.h"
#include "fake_apiserver/fake_apiserver.h"
#include "kube/kube_client.h"
#include "kube/kube_config.h"
#include "node_agent/atomic_file.h"
#include "node_agent/cluster_side.h"
#include "node_agent/node_agent.h"
#include "node_agent/shim_injection.h"
#include "shim/compute_arbiter.h"
#include "shim/container_limits.h"
#include "temp_dir.h"
#include "test_kubelet.h"
#include "test_nodes.h"
#include "test_pod_resources.h"
#include "watchdog/memory_watchdog.h"

namespace gpuslice::testing {
namespace {

using kube::Json;
constexpr std::int64_t kGi = 1024LL * 1024 * 1024;
constexpr char kNode[] = "node-1";
constexpr char kSlots[] = "gpuslice.io/gpu";

// Named configs: GPUs 0 and 1 take fractional requests, or all four.
constexpr char kFrac2[] = R"(version: v1
gpuslice:
  fractional:
    enabled: true
    devices: [0, 1]
    slotsPerGpu: 4
)";
constexpr char kFrac4[] = R"(version: v1
gpuslice:
  fractional:
    enabled: true
    slotsPerGpu: 4
)";

class NullMps final : public MpsControl {
 public:
  Status Start(const MpsDaemonSpec&) override { return Status::Ok(); }
  Status Stop(const std::string&) override { return Status::Ok(); }
  bool IsRunning(const std::string&) override { return true; }
};

std::unique_ptr<kube::KubeClient> ClientFor(const std::string& kubeconfig_path) {
  Result<kube::KubeConfig> config = kube::LoadKubeconfigFile(kubeconfig_path);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  config->request_timeout = std::chrono::milliseconds(5000);
  Result<std::unique_ptr<kube::KubeClient>> client = kube::KubeClient::Create(*config);
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return std::move(*client);
}

class NodeClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok());
    const std::string kubeconfig = dir_ / "kubeconfig";
    std::ofstream(kubeconfig) << server_.Kubeconfig();
    api_ = ClientFor(kubeconfig);
    ASSERT_TRUE(
        api_->Create(kube::Nodes(),
                     {{"apiVersion", "v1"},
                      {"kind", "Node"},
                      {"metadata",
                       {{"name", kNode},
                        {"labels", {{std::string(names::kLabelDevicePluginConfig), "frac2"}}}}}})
            .ok());
    std::filesystem::create_directories(dir_ / "configs");
    ASSERT_TRUE(WriteFileAtomically(dir_ / "configs/frac2", kFrac2).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_ / "configs/frac4", kFrac4).ok());

    Result<SimulatedNode> node = ParseSimulatedNode(kFourA100, "four-a100");
    ASSERT_TRUE(node.ok());
    gpus_ = node->gpus;
    backend_ = std::make_unique<SimulatedBackend>(*node, "four-a100", clock_);
    ASSERT_TRUE(pod_resources_.Start());
    ASSERT_TRUE(kubelet_.Start());

    ClusterSideOptions cluster;
    cluster.node_name = kNode;
    cluster.pod_resources_socket = pod_resources_.socket_path();
    cluster.handoff.host_root = dir_ / "allocations";
    cluster.handoff.reconcile_interval = std::chrono::milliseconds(10);
    cluster.handoff.release_interval = std::chrono::milliseconds(20);
    cluster.handoff.give_up_after = std::chrono::seconds(2);
    // A copy of the built shims, so that a test can take one away.
    ASSERT_TRUE(InstallShims(GPUSLICE_SHIM_DIR, dir_ / "shims").ok());
    cluster.handoff.shim_dir = dir_ / "shims";
    Result<std::unique_ptr<ClusterSide>> side = ClusterSide::Create(cluster, ClientFor(kubeconfig));
    ASSERT_TRUE(side.ok()) << side.status().ToString();
    side_ = std::move(*side);

    NodeAgentOptions options;
    options.named.directory = dir_ / "configs";
    options.device_plugin_dir = dir_.path();
    options.features_file = dir_ / "features";
    options.cdi_dir = dir_ / "cdi";
    options.mps_root = dir_ / "mps";
    options.mig_minors_file = dir_ / "no-mig-minors";
    options.poll_interval = std::chrono::milliseconds(5);
    agent_ = std::make_unique<NodeAgent>(
        options, *backend_, mps_,
        std::make_unique<NamedConfigSource>(options.named, side_->MakeLabelSource()));
    side_->Attach(*agent_);
    Status started = agent_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    side_->Start();
    ASSERT_TRUE(RunUntil([&] { return kubelet_.WaitForRegistration(kSlots, 1, kTick); }));
    client_ = kubelet_.Connect(kSlots);
    ASSERT_NE(client_, nullptr);
  }
  void TearDown() override {
    if (side_) side_->Stop();
    if (agent_) agent_->Stop();
    kubelet_.Stop();
    pod_resources_.Stop();
    server_.Stop();
  }

  static constexpr std::chrono::milliseconds kTick{5};
  // Runs the agent's loop until `done` (false after ~5 s).
  template <typename F>
  bool RunUntil(F done) {
    for (int i = 0; i < 1000; ++i) {
      agent_->RunOnce();
      if (done()) return true;
    }
    return false;
  }

  std::string Uuid(int index) const { return gpus_.at(static_cast<std::size_t>(index)).uuid; }
  std::string Slot(int gpu, int slot) const { return Uuid(gpu) + "::" + std::to_string(slot); }

  // A pod bound to kNode, with the assignment the extender would write ("" = none).
  void CreatePod(const std::string& name, const std::string& assignment,
                 int compute_limit_percent = 0, const std::string& compute_cap_annotation = "") {
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"spec",
                 {{"nodeName", kNode},
                  {"schedulerName", "gpuslice-scheduler"},
                  {"containers", {{{"name", "main"}, {"image", "cuda"}}}}}},
                {"status", {{"qosClass", "BestEffort"}}}};
    if (compute_limit_percent > 0) {
      pod["spec"]["containers"][0]["resources"] = {
          {"limits", {{std::string(names::kGpusliceGpuCompute), compute_limit_percent}}}};
    }
    if (!assignment.empty()) {
      pod["metadata"]["annotations"] = {{std::string(names::kAnnotationPodAssignment), assignment}};
    }
    if (!compute_cap_annotation.empty()) {
      pod["metadata"]["annotations"][std::string(names::kAnnotationPodGpuComputeCap)] =
          compute_cap_annotation;
    }
    ASSERT_TRUE(api_->Create(kube::Pods("default"), pod).ok());
  }
  std::string AssignmentFor(int gpu, std::int64_t memory_bytes, int compute_percent) const {
    GpuAssignment a;
    a.node = kNode;
    a.container = "main";
    a.gpus = {{gpu, Uuid(gpu)}};
    a.memory_bytes = memory_bytes;
    a.compute_percent = compute_percent;
    return EncodeAssignment(a);
  }

  // The kubelet's part: Allocate, then (only on success) record the devices for the container.
  v1beta1::ContainerAllocateResponse Allocate(const std::string& pod,
                                              const std::vector<std::string>& ids) {
    v1beta1::AllocateResponse response;
    grpc::Status s = client_->Allocate({ids}, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok() || response.container_responses_size() != 1) return {};
    pod_resources_.RecordAllocation("default", pod, "main", kSlots, ids);
    return response.container_responses(0);
  }
  static std::string HostDir(const v1beta1::ContainerAllocateResponse& r,
                             const std::string& container_path) {
    for (const auto& m : r.mounts()) {
      if (m.container_path() == container_path) return m.host_path();
    }
    return "";
  }
  static bool ReadOnlyMount(const v1beta1::ContainerAllocateResponse& r,
                            const std::string& container_path) {
    for (const auto& m : r.mounts()) {
      if (m.container_path() == container_path) return m.read_only();
    }
    return false;
  }
  // The referee's published record of the container whose request file is `requests` (matched
  // the way the shim matches it: by the file's identity), or null.
  static std::unique_ptr<shim::PublishedTenant> PublishedFor(const std::string& grant,
                                                             const std::string& requests) {
    struct stat st {};
    shim::ArbiterGrantPage page{};
    std::ifstream in(grant, std::ios::binary);
    if (::stat(requests.c_str(), &st) != 0 ||
        !in.read(reinterpret_cast<char*>(&page), sizeof(page))) {
      return nullptr;
    }
    for (const shim::PublishedTenant& t : page.tenants) {
      if (t.state != 0 && t.requests_ino == st.st_ino && t.requests_dev == st.st_dev) {
        return std::make_unique<shim::PublishedTenant>(t);
      }
    }
    return nullptr;
  }

  std::string NodeAnnotation() {
    Result<Json> node = api_->Get(kube::Node(kNode));
    if (!node.ok()) return "";
    const Json& meta = (*node)["metadata"];
    if (!meta.contains("annotations")) return "";
    auto it = meta["annotations"].find(std::string(names::kAnnotationNodeGpus));
    return it == meta["annotations"].end() ? "" : it->get<std::string>();
  }
  std::vector<int> PublishedIndices() {
    Result<std::vector<NodeGpu>> gpus = DecodeNodeGpus(NodeAnnotation());
    std::vector<int> out;
    if (gpus.ok()) {
      for (const auto& g : *gpus) out.push_back(g.index);
    }
    return out;
  }

  TempDir dir_;
  fake::FakeApiServer server_;
  std::unique_ptr<kube::KubeClient> api_;
  SteadyClock clock_;
  NullMps mps_;
  std::vector<GpuInfo> gpus_;
  std::unique_ptr<SimulatedBackend> backend_;
  TestPodResources pod_resources_{dir_ / "pod-resources.sock"};
  TestKubelet kubelet_{dir_.path()};
  std::unique_ptr<ClusterSide> side_;
  std::unique_ptr<NodeAgent> agent_;
  std::unique_ptr<PluginClient> client_;
};

TEST_F(NodeClusterTest, FractionalPodGetsTheLimitsItsAssignmentSays) {
  CreatePod("p1", AssignmentFor(1, 8 * kGi, 30));
  const std::vector<std::string> ids = {Slot(1, 0)};
  v1beta1::ContainerAllocateResponse r = Allocate("p1", ids);
  const std::string limits_dir = HostDir(r, kContainerLimitsDir);
  ASSERT_FALSE(limits_dir.empty()) << r.DebugString();
  ASSERT_FALSE(HostDir(r, kContainerRegionDir).empty());
  ASSERT_TRUE(side_->handoff().WaitSettled(ids, std::chrono::seconds(5)));

  Result<shim::ContainerLimits> limits = shim::ReadContainerLimitsFile(limits_dir + "/limits");
  ASSERT_TRUE(limits.ok()) << limits.status().ToString();
  ASSERT_EQ(limits->device_count, 1u);
  EXPECT_EQ(std::string(limits->devices[0].uuid), Uuid(1));
  EXPECT_EQ(limits->devices[0].nvml_index, 1);
  EXPECT_EQ(limits->devices[0].memory_bytes, static_cast<std::uint64_t>(8 * kGi));
  EXPECT_EQ(limits->devices[0].compute_percent, 30u);
  EXPECT_EQ(std::string(limits->region_path), "/run/gpuslice/accounting");
  EXPECT_TRUE(std::filesystem::exists(HostDir(r, kContainerRegionDir) + "/accounting"));
  // Read-only for the container: mode 0444 and a read-only mount.
  EXPECT_EQ(
      std::filesystem::status(limits_dir + "/limits").permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_read | std::filesystem::perms::group_read |
          std::filesystem::perms::others_read);
  const HandoffResult result = side_->handoff().ResultFor(ids);
  EXPECT_EQ(result.pod, "default/p1");
  EXPECT_EQ(result.container, "main");
  EXPECT_GE(pod_resources_.list_calls(), 1);
}

// The mounts of one container path; the host path and read-only flag, or nullopt.
std::optional<v1beta1::Mount> MountAt(const v1beta1::ContainerAllocateResponse& r,
                                      const std::string& container_path) {
  std::optional<v1beta1::Mount> found;
  int count = 0;
  for (const auto& m : r.mounts()) {
    if (m.container_path() == container_path) {
      found = m;
      ++count;
    }
  }
  EXPECT_LE(count, 1) << "two mounts at " << container_path;
  return found;
}

TEST_F(NodeClusterTest, FractionalContainerGetsBothShimsAndAPreloadNamingThem) {
  CreatePod("shimmed", AssignmentFor(0, 8 * kGi, 30));
  const v1beta1::ContainerAllocateResponse r = Allocate("shimmed", {Slot(0, 0)});
  const std::string shims = dir_ / "shims";
  for (const char* name : {"libgpuslice-cuda.so", "libgpuslice-nvml.so"}) {
    const std::optional<v1beta1::Mount> shim =
        MountAt(r, std::string("/usr/local/lib/gpuslice/") + name);
    ASSERT_TRUE(shim.has_value()) << name << "\n" << r.DebugString();
    EXPECT_EQ(shim->host_path(), shims + "/" + name);
    EXPECT_TRUE(shim->read_only()) << name;
  }
  const std::optional<v1beta1::Mount> preload = MountAt(r, "/etc/ld.so.preload");
  ASSERT_TRUE(preload.has_value()) << r.DebugString();
  EXPECT_TRUE(preload->read_only());
  EXPECT_EQ(ReadFileOrEmpty(preload->host_path()),
            "/usr/local/lib/gpuslice/libgpuslice-cuda.so\n"
            "/usr/local/lib/gpuslice/libgpuslice-nvml.so\n");
  struct stat st {};
  ASSERT_EQ(::stat(preload->host_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  // In this container's allocation directory, so it goes when the allocation does.
  EXPECT_EQ(std::filesystem::path(preload->host_path()).parent_path(),
            std::filesystem::path(HostDir(r, kContainerLimitsDir)).parent_path());
}

TEST_F(NodeClusterTest, ShimRemovedFromTheHostFailsTheAllocateWithTheReason) {
  CreatePod("unshimmed", AssignmentFor(0, kGi, 10));
  std::filesystem::remove(dir_ / "shims/libgpuslice-nvml.so");
  v1beta1::AllocateResponse response;
  const grpc::Status s = client_->Allocate({{Slot(0, 1)}}, &response);
  ASSERT_FALSE(s.ok()) << "a container without its shim would run unlimited";
  EXPECT_NE(s.error_message().find("libgpuslice-nvml.so does not exist"), std::string::npos)
      << s.error_message();
  EXPECT_NE(s.error_message().find("--shim-dir"), std::string::npos) << s.error_message();
}

struct ShimDirRow {
  const char* name;
  std::function<void(const std::string& dir)> damage;
  const char* want;
};
class ShimDirTest : public ::testing::TestWithParam<ShimDirRow> {};
TEST_P(ShimDirTest, ClusterSideRefusesToStartWithoutUsableShims) {
  TempDir dir;
  ASSERT_TRUE(InstallShims(GPUSLICE_SHIM_DIR, dir / "shims").ok());
  GetParam().damage(dir / "shims");
  ClusterSideOptions options;
  options.node_name = kNode;
  options.handoff.shim_dir = dir / "shims";
  options.handoff.host_root = dir / "allocations";
  fake::FakeApiServer server;
  ASSERT_TRUE(server.Start().ok());
  std::ofstream(dir / "kubeconfig") << server.Kubeconfig();
  Result<std::unique_ptr<ClusterSide>> side =
      ClusterSide::Create(options, ClientFor(dir / "kubeconfig"));
  if (std::string(GetParam().want).empty()) {
    EXPECT_TRUE(side.ok()) << side.status().ToString();
  } else {
    ASSERT_FALSE(side.ok());
    EXPECT_NE(side.status().message().find(GetParam().want), std::string::npos)
        << side.status().message();
  }
  server.Stop();
}
INSTANTIATE_TEST_SUITE_P(
    Rows, ShimDirTest,
    ::testing::Values(
        ShimDirRow{"BothShimsStart", [](const std::string&) {}, ""},
        ShimDirRow{"MissingDirectory", [](const std::string& d) { std::filesystem::remove_all(d); },
                   "libgpuslice-cuda.so does not exist"},
        ShimDirRow{
            "MissingCudaShim",
            [](const std::string& d) { std::filesystem::remove(d + "/libgpuslice-cuda.so"); },
            "libgpuslice-cuda.so does not exist; fractional containers would run without "
            "their GPU limits"},
        ShimDirRow{
            "MissingNvmlShim",
            [](const std::string& d) { std::filesystem::remove(d + "/libgpuslice-nvml.so"); },
            "libgpuslice-nvml.so does not exist"},
        ShimDirRow{"NotAnElfFile",
                   [](const std::string& d) {
                     std::filesystem::remove(d + "/libgpuslice-nvml.so");
                     std::ofstream(d + "/libgpuslice-nvml.so") << "#!/bin/sh\n";
                   },
                   "libgpuslice-nvml.so is not a shared library"},
        ShimDirRow{"ADirectoryInstead",
                   [](const std::string& d) {
                     std::filesystem::remove(d + "/libgpuslice-cuda.so");
                     std::filesystem::create_directory(d + "/libgpuslice-cuda.so");
                   },
                   "libgpuslice-cuda.so is not a regular file"}),
    [](const ::testing::TestParamInfo<ShimDirRow>& row) { return std::string(row.param.name); });

TEST(InstallShimsTest, ReplacesByRenameSoAMappedOldCopyStaysIntact) {
  TempDir dir;
  ASSERT_TRUE(InstallShims(GPUSLICE_SHIM_DIR, dir / "host").ok());
  const std::string target = dir / "host/libgpuslice-cuda.so";
  EXPECT_EQ(ReadFileOrEmpty(target),
            ReadFileOrEmpty(std::string(GPUSLICE_SHIM_DIR) + "/libgpuslice-cuda.so"));
  struct stat before {};
  ASSERT_EQ(::stat(target.c_str(), &before), 0);
  EXPECT_EQ(before.st_mode & 0777, 0755u);
  // Unchanged source: the file is left alone (same inode).
  ASSERT_TRUE(InstallShims(GPUSLICE_SHIM_DIR, dir / "host").ok());
  struct stat same {};
  ASSERT_EQ(::stat(target.c_str(), &same), 0);
  EXPECT_EQ(same.st_ino, before.st_ino);
  // A new build: a new inode; a container holding the old one (here: an open descriptor) keeps
  // the old bytes.
  ASSERT_TRUE(InstallShims(GPUSLICE_SHIM_DIR, dir / "image").ok());
  std::ofstream(dir / "image/libgpuslice-cuda.so", std::ios::app) << "new build";
  std::ifstream old_copy(target, std::ios::binary);
  const std::string old_bytes = ReadFileOrEmpty(target);
  ASSERT_TRUE(InstallShims(dir / "image", dir / "host").ok());
  struct stat after {};
  ASSERT_EQ(::stat(target.c_str(), &after), 0);
  EXPECT_NE(after.st_ino, before.st_ino);
  std::string still((std::istreambuf_iterator<char>(old_copy)), std::istreambuf_iterator<char>());
  EXPECT_EQ(still, old_bytes);
  EXPECT_NE(ReadFileOrEmpty(target), old_bytes);
}

TEST(InstallShimsTest, MissingSourceSaysWhichFlag) {
  TempDir dir;
  const Status s = InstallShims(dir / "nothing", dir / "host");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--install-shims-from"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("does not exist"), std::string::npos) << s.message();
}

TEST_F(NodeClusterTest, TwoPodsOnTwoGpusEachGetTheirOwnGpu) {
  CreatePod("a", AssignmentFor(0, 4 * kGi, 50));
  CreatePod("b", AssignmentFor(1, 10 * kGi, 20));
  const v1beta1::ContainerAllocateResponse ra = Allocate("a", {Slot(0, 2)});
  const v1beta1::ContainerAllocateResponse rb = Allocate("b", {Slot(1, 3)});
  ASSERT_TRUE(side_->handoff().WaitSettled({Slot(0, 2)}, std::chrono::seconds(5)));
  ASSERT_TRUE(side_->handoff().WaitSettled({Slot(1, 3)}, std::chrono::seconds(5)));
  ASSERT_NE(HostDir(ra, kContainerLimitsDir), HostDir(rb, kContainerLimitsDir));
  Result<shim::ContainerLimits> a =
      shim::ReadContainerLimitsFile(HostDir(ra, kContainerLimitsDir) + "/limits");
  Result<shim::ContainerLimits> b =
      shim::ReadContainerLimitsFile(HostDir(rb, kContainerLimitsDir) + "/limits");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(std::string(a->devices[0].uuid), Uuid(0));
  EXPECT_EQ(a->devices[0].memory_bytes, static_cast<std::uint64_t>(4 * kGi));
  EXPECT_EQ(a->devices[0].compute_percent, 50u);
  EXPECT_EQ(std::string(b->devices[0].uuid), Uuid(1));
  EXPECT_EQ(b->devices[0].memory_bytes, static_cast<std::uint64_t>(10 * kGi));
  EXPECT_EQ(b->devices[0].compute_percent, 20u);
}

TEST_F(NodeClusterTest, PodWithoutAssignmentIsRefusedWithAReason) {
  CreatePod("stray", "");
  const std::vector<std::string> ids = {Slot(0, 1)};
  const v1beta1::ContainerAllocateResponse r = Allocate("stray", ids);
  ASSERT_TRUE(side_->handoff().WaitSettled(ids, std::chrono::seconds(5)));
  EXPECT_EQ(side_->handoff().ResultFor(ids).state, HandoffResult::State::kRefused);
  const std::string dir = HostDir(r, kContainerLimitsDir);
  EXPECT_FALSE(std::filesystem::exists(dir + "/limits"));
  const std::string refused = ReadFileOrEmpty(dir + "/refused");
  EXPECT_NE(refused.find("pod default/stray"), std::string::npos) << refused;
  EXPECT_NE(refused.find("has no gpuslice.io/assignment annotation"), std::string::npos) << refused;
}

TEST_F(NodeClusterTest, KubeletsGpuWinsAndTheAssignmentIsCorrected) {
  CreatePod("moved", AssignmentFor(0, 2 * kGi, 10));
  const std::vector<std::string> ids = {Slot(1, 0)};  // the kubelet picked a slot of GPU 1
  const v1beta1::ContainerAllocateResponse r = Allocate("moved", ids);
  ASSERT_TRUE(side_->handoff().WaitSettled(ids, std::chrono::seconds(5)));
  Result<shim::ContainerLimits> limits =
      shim::ReadContainerLimitsFile(HostDir(r, kContainerLimitsDir) + "/limits");
  ASSERT_TRUE(limits.ok());
  EXPECT_EQ(std::string(limits->devices[0].uuid), Uuid(1));
  EXPECT_EQ(limits->devices[0].memory_bytes, static_cast<std::uint64_t>(2 * kGi));
  Result<Json> pod = api_->Get(kube::Pod("default", "moved"));
  ASSERT_TRUE(pod.ok());
  Result<GpuAssignment> now = DecodeAssignment(
      (*pod)["metadata"]["annotations"][std::string(names::kAnnotationPodAssignment)]
          .get<std::string>());
  ASSERT_TRUE(now.ok());
  ASSERT_EQ(now->gpus.size(), 1u);
  EXPECT_EQ(now->gpus[0].uuid, Uuid(1));
  EXPECT_EQ(now->gpus[0].index, 1);
  EXPECT_EQ(now->memory_bytes, 2 * kGi);
  EXPECT_NE(side_->handoff().ResultFor(ids).message.find("the kubelet allocated GPU"),
            std::string::npos);
}

TEST_F(NodeClusterTest, AllocationUnknownToPodResourcesStaysPending) {
  // The kubelet has not recorded it (yet): no guess, no limits file.
  CreatePod("later", AssignmentFor(0, kGi, 10));
  v1beta1::AllocateResponse response;
  ASSERT_TRUE(client_->Allocate({{Slot(0, 3)}}, &response).ok());
  const int calls = pod_resources_.list_calls();
  ASSERT_TRUE(RunUntil([&] { return pod_resources_.list_calls() >= calls + 3; }));
  EXPECT_EQ(side_->handoff().ResultFor({Slot(0, 3)}).state, HandoffResult::State::kPending);
  const std::string dir = HostDir(response.container_responses(0), kContainerLimitsDir);
  EXPECT_FALSE(std::filesystem::exists(dir + "/limits"));
  pod_resources_.RecordAllocation("default", "later", "main", kSlots, {Slot(0, 3)});
  ASSERT_TRUE(side_->handoff().WaitSettled({Slot(0, 3)}, std::chrono::seconds(5)));
  EXPECT_TRUE(std::filesystem::exists(dir + "/limits"));
}

TEST_F(NodeClusterTest, NodeAnnotationFollowsTheConfigTheNodeLabelPicks) {
  // frac2: GPUs 0 and 1, published as format v1.
  ASSERT_TRUE(RunUntil([&] {
    return PublishedIndices() == std::vector<int>{0, 1};
  })) << NodeAnnotation();
  Result<std::vector<NodeGpu>> published = DecodeNodeGpus(NodeAnnotation());
  ASSERT_TRUE(published.ok()) << published.status().ToString();
  EXPECT_EQ((*published)[0].uuid, Uuid(0));
  EXPECT_EQ((*published)[0].memory_bytes, static_cast<std::int64_t>(gpus_[0].memory_bytes));
  EXPECT_EQ((*published)[0].model, "NVIDIA-A100-SXM4-40GB");
  EXPECT_EQ(agent_->applied_config().name, "frac2");

  // The GPU Operator's way: relabel the Node in the API server.
  const Json patch = {
      {"metadata", {{"labels", {{std::string(names::kLabelDevicePluginConfig), "frac4"}}}}}};
  ASSERT_TRUE(api_->Patch(kube::Node(kNode), kube::PatchType::kMerge, patch).ok());
  ASSERT_TRUE(RunUntil([&] { return agent_->applied_config().name == "frac4"; }));
  ASSERT_TRUE(RunUntil([&] {
    return PublishedIndices() == std::vector<int>{0, 1, 2, 3};
  })) << NodeAnnotation();
  EXPECT_EQ(agent_->applied_config().selected_by, "label nvidia.com/device-plugin.config=frac4");
}

TEST_F(NodeClusterTest, UnhealthyGpuLeavesTheNodeAnnotationUntilItRecovers) {
  ASSERT_TRUE(RunUntil([&] { return PublishedIndices() == std::vector<int>{0, 1}; }));
  backend_->InjectHealthEvent({HealthEvent::Kind::kXid, Uuid(1), 79, "fell off the bus"});
  ASSERT_TRUE(RunUntil([&] { return PublishedIndices() == std::vector<int>{0}; }))
      << NodeAnnotation();
  backend_->InjectHealthEvent({HealthEvent::Kind::kRecovered, Uuid(1), 0, "reset"});
  ASSERT_TRUE(RunUntil([&] {
    return PublishedIndices() == std::vector<int>{0, 1};
  })) << NodeAnnotation();
}

// The watchdog's view of processes: one process of the pod's cgroup on GPU 1.
class OneProcess final : public watchdog::GpuProcessUsageSource, public watchdog::ProcessTable {
 public:
  Result<std::vector<watchdog::GpuProcessUsage>> ReadProcessUsage() override {
    return std::vector<watchdog::GpuProcessUsage>{{4242, 1, used_bytes}};
  }
  std::optional<std::string> CgroupOf(std::int32_t pid) override {
    return pid == 4242 ? std::optional<std::string>(cgroup) : std::nullopt;
  }
  std::optional<std::int32_t> ParentOf(std::int32_t) override { return 1; }
  std::string cgroup;
  std::uint64_t used_bytes = 0;
};
class Events final : public watchdog::WatchdogEventSink, public watchdog::ProcessKiller {
 public:
  void OnEvent(const watchdog::WatchdogEvent& event) override { events.push_back(event); }
  void Kill(std::int32_t pid) override { killed.push_back(pid); }
  std::vector<watchdog::WatchdogEvent> events;
  std::vector<std::int32_t> killed;
};

TEST_F(NodeClusterTest, LimitedContainerIsWatchedByTheMemoryWatchdog) {
  OneProcess node;
  Events events;
  ManualClock clock;
  watchdog::WatchdogOptions options;
  options.kill = false;
  watchdog::MemoryWatchdog dog(options, node, node, events, events, clock);
  side_->AttachWatchdog(&dog);
  CreatePod("watched", AssignmentFor(1, 8 * kGi, 30));
  Result<Json> pod = api_->Get(kube::Pod("default", "watched"));
  ASSERT_TRUE(pod.ok());
  const std::string uid = (*pod)["metadata"]["uid"].get<std::string>();
  ASSERT_FALSE(uid.empty());
  std::string underscored = uid;
  std::replace(underscored.begin(), underscored.end(), '-', '_');
  node.cgroup = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + underscored +
                ".slice/cri-containerd-abc.scope";
  node.used_bytes = 9 * static_cast<std::uint64_t>(kGi);  // over its 8 GiB

  ASSERT_TRUE(dog.CheckOnce().ok());
  EXPECT_TRUE(events.events.empty()) << "not registered yet, so not watched";
  Allocate("watched", {Slot(1, 1)});
  ASSERT_TRUE(side_->handoff().WaitSettled({Slot(1, 1)}, std::chrono::seconds(5)));
  ASSERT_TRUE(dog.CheckOnce().ok());
  ASSERT_EQ(events.events.size(), 1u);
  EXPECT_EQ(events.events[0].kind, watchdog::WatchdogEventKind::kOverLimit);
  EXPECT_EQ(events.events[0].container, "default/watched/main");
  EXPECT_EQ(events.events[0].limit_bytes, static_cast<std::uint64_t>(8 * kGi));
}

// Issue 11: through the agent's own sink, the breach becomes a core/v1 Event on the pod.
TEST_F(NodeClusterTest, OverLimitContainerGetsAnEventOnItsPodThroughTheAgentsSink) {
  OneProcess node;
  Events killer;
  ManualClock clock;
  watchdog::WatchdogOptions options;
  options.kill = false;
  watchdog::MemoryWatchdog dog(options, node, node, killer, side_->event_sink(), clock);
  side_->AttachWatchdog(&dog);
  CreatePod("breach", AssignmentFor(1, 8 * kGi, 30));
  Result<Json> pod = api_->Get(kube::Pod("default", "breach"));
  ASSERT_TRUE(pod.ok());
  const std::string uid = (*pod)["metadata"]["uid"].get<std::string>();
  std::string underscored = uid;
  std::replace(underscored.begin(), underscored.end(), '-', '_');
  node.cgroup = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + underscored +
                ".slice/cri-containerd-abc.scope";
  node.used_bytes = 9 * static_cast<std::uint64_t>(kGi);
  Allocate("breach", {Slot(1, 1)});
  ASSERT_TRUE(side_->handoff().WaitSettled({Slot(1, 1)}, std::chrono::seconds(5)));
  ASSERT_TRUE(dog.CheckOnce().ok());
  ASSERT_TRUE(side_->event_sink().Flush(std::chrono::seconds(10)));
  Result<Json> list = api_->List({"v1", "events", "default", "", ""}, {});
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ((*list)["items"].size(), 1u) << list->dump();
  const Json& event = (*list)["items"][0];
  EXPECT_EQ(event["reason"], kReasonGpuMemoryLimitExceeded);
  EXPECT_EQ(event["type"], "Warning");
  EXPECT_EQ(event["involvedObject"]["kind"], "Pod");
  EXPECT_EQ(event["involvedObject"]["name"], "breach");
  EXPECT_EQ(event["involvedObject"]["uid"], uid);
  EXPECT_EQ(event["source"]["host"], kNode);
}

// A pod deleted between Allocate and its container's creation: PodResources never lists its
// slots, the hand-off gives up and then removes the directory it prepared.
TEST_F(NodeClusterTest, GivenUpAllocationsDirectoryIsRemoved) {
  CreatePod("deleted", AssignmentFor(0, kGi, 10));
  v1beta1::AllocateResponse response;
  ASSERT_TRUE(client_->Allocate({{Slot(0, 2)}}, &response).ok());
  const std::string dir =
      std::filesystem::path(HostDir(response.container_responses(0), kContainerLimitsDir))
          .parent_path();
  ASSERT_TRUE(std::filesystem::exists(dir));
  ASSERT_TRUE(RunUntil([&] { return !std::filesystem::exists(dir); }));
  EXPECT_EQ(side_->handoff().ResultFor({Slot(0, 2)}).state, HandoffResult::State::kPending);
}

TEST_F(NodeClusterTest, EndedPodsDirectoryIsRemovedAndItsWatchEnds) {
  CreatePod("short", AssignmentFor(0, kGi, 10));
  const std::vector<std::string> ids = {Slot(0, 0)};
  const v1beta1::ContainerAllocateResponse r = Allocate("short", ids);
  ASSERT_TRUE(side_->handoff().WaitSettled(ids, std::chrono::seconds(5)));
  const std::string dir = std::filesystem::path(HostDir(r, kContainerLimitsDir)).parent_path();
  ASSERT_TRUE(std::filesystem::exists(dir + "/limits/limits"));
  pod_resources_.ForgetPod("default", "short");  // the pod ended; the kubelet forgets it
  const std::string key = side_->handoff().ResultFor(ids).key;
  ASSERT_TRUE(side_->handoff().arbiters().Referee(Uuid(0))->HasTenant(key));
  ASSERT_TRUE(RunUntil([&] { return !std::filesystem::exists(dir); }));
  EXPECT_EQ(side_->handoff().ResultFor(ids).state, HandoffResult::State::kPending);
  EXPECT_FALSE(side_->handoff().arbiters().Referee(Uuid(0))->HasTenant(key))
      << "its referee dropped the container with its directory";
}

// Issue 14: the node agent writes the compute arbiter for each fractional container.
TEST_F(NodeClusterTest, FractionalPodIsRegisteredWithItsGpusComputeArbiter) {
  CreatePod("p1", AssignmentFor(1, 8 * kGi, 30));
  const std::vector<std::string> ids = {Slot(1, 0)};
  v1beta1::ContainerAllocateResponse r = Allocate("p1", ids);
  ASSERT_TRUE(side_->handoff().WaitSettled(ids, std::chrono::seconds(5)));
  // The GPU's directory (its grant page) read-only; the request file in the container's own
  // read-write directory, which no other container mounts.
  const std::string gpu_dir = HostDir(r, kContainerArbiterDir);
  ASSERT_FALSE(gpu_dir.empty()) << r.DebugString();
  EXPECT_TRUE(ReadOnlyMount(r, kContainerArbiterDir));
  const std::string grant = gpu_dir + "/" + kArbiterGrantFileName;
  const std::string requests = HostDir(r, kContainerRegionDir) + "/" + kArbiterRequestsFileName;
  ASSERT_TRUE(std::filesystem::exists(grant));
  ASSERT_TRUE(std::filesystem::exists(requests));
  EXPECT_EQ(std::filesystem::status(grant).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::others_read);

  Result<shim::ContainerLimits> limits =
      shim::ReadContainerLimitsFile(HostDir(r, kContainerLimitsDir) + "/limits");
  ASSERT_TRUE(limits.ok()) << limits.status().ToString();
  EXPECT_EQ(std::string(limits->devices[0].arbiter_path), "/run/gpuslice-arbiter/grant");
  EXPECT_EQ(std::string(limits->devices[0].requests_path), "/run/gpuslice/compute-requests");
  EXPECT_EQ(limits->devices[0].compute_cap_percent, 0u) << "no limit above the request";

  // The referee took the weight from the pod, not from anything the container writes.
  shim::ArbiterReferee* referee = side_->handoff().arbiters().Referee(Uuid(1));
  ASSERT_NE(referee, nullptr);
  EXPECT_TRUE(referee->HasTenant(side_->handoff().ResultFor(ids).key));
  ASSERT_TRUE(RunUntil([&] { return PublishedFor(grant, requests) != nullptr; }));
  EXPECT_EQ(PublishedFor(grant, requests)->weight, 30u);
  EXPECT_EQ(PublishedFor(grant, requests)->cap_percent, 0u);
}

TEST_F(NodeClusterTest, AComputeLimitAboveTheRequestBecomesTheCap) {
  CreatePod("capped", AssignmentFor(0, 4 * kGi, 30), /*compute_limit_percent=*/60);
  const std::vector<std::string> ids = {Slot(0, 1)};
  v1beta1::ContainerAllocateResponse r = Allocate("capped", ids);
  ASSERT_TRUE(side_->handoff().WaitSettled(ids, std::chrono::seconds(5)));
  Result<shim::ContainerLimits> limits =
      shim::ReadContainerLimitsFile(HostDir(r, kContainerLimitsDir) + "/limits");
  ASSERT_TRUE(limits.ok()) << limits.status().ToString();
  EXPECT_EQ(limits->devices[0].compute_percent, 30u);
  EXPECT_EQ(limits->devices[0].compute_cap_percent, 60u);
  EXPECT_EQ(side_->handoff().ResultFor(ids).compute_cap_percent, 60);
  const std::string grant = HostDir(r, kContainerArbiterDir) + "/" + kArbiterGrantFileName;
  const std::string requests = HostDir(r, kContainerRegionDir) + "/" + kArbiterRequestsFileName;
  ASSERT_TRUE(RunUntil([&] { return PublishedFor(grant, requests) != nullptr; }));
  EXPECT_EQ(PublishedFor(grant, requests)->cap_percent, 60u) << "the referee enforces the cap";
}

// Kubernetes requires requests = limits for extended resources: the cap comes from an annotation.
TEST_F(NodeClusterTest, TheComputeCapAnnotationBecomesTheCap) {
  CreatePod("annotated", AssignmentFor(0, 4 * kGi, 30), /*compute_limit_percent=*/30, "45");
  const std::vector<std::string> ids = {Slot(0, 2)};
  v1beta1::ContainerAllocateResponse r = Allocate("annotated", ids);
  ASSERT_TRUE(side_->handoff().WaitSettled(ids, std::chrono::seconds(5)));
  Result<shim::ContainerLimits> limits =
      shim::ReadContainerLimitsFile(HostDir(r, kContainerLimitsDir) + "/limits");
  ASSERT_TRUE(limits.ok()) << limits.status().ToString();
  EXPECT_EQ(limits->devices[0].compute_percent, 30u);
  EXPECT_EQ(limits->devices[0].compute_cap_percent, 45u);
  const std::string grant = HostDir(r, kContainerArbiterDir) + "/" + kArbiterGrantFileName;
  const std::string requests = HostDir(r, kContainerRegionDir) + "/" + kArbiterRequestsFileName;
  ASSERT_TRUE(RunUntil([&] { return PublishedFor(grant, requests) != nullptr; }));
  EXPECT_EQ(PublishedFor(grant, requests)->cap_percent, 45u);
  EXPECT_EQ(PublishedFor(grant, requests)->weight, 30u);
}

TEST_F(NodeClusterTest, AnInvalidComputeCapAnnotationIsLoggedAndTheContainerKeepsItsWeight) {
  CreatePod("badcap", AssignmentFor(0, 4 * kGi, 30), /*compute_limit_percent=*/30, "20");
  const std::vector<std::string> ids = {Slot(0, 3)};
  v1beta1::ContainerAllocateResponse r = Allocate("badcap", ids);
  ASSERT_TRUE(side_->handoff().WaitSettled(ids, std::chrono::seconds(5)));
  const HandoffResult result = side_->handoff().ResultFor(ids);
  EXPECT_EQ(result.state, HandoffResult::State::kLimited);
  EXPECT_NE(result.message.find("gpuslice.io/gpu-compute-cap=\"20\""), std::string::npos)
      << result.message;
  Result<shim::ContainerLimits> limits =
      shim::ReadContainerLimitsFile(HostDir(r, kContainerLimitsDir) + "/limits");
  ASSERT_TRUE(limits.ok()) << limits.status().ToString();
  EXPECT_EQ(limits->devices[0].compute_percent, 30u);
  EXPECT_EQ(limits->devices[0].compute_cap_percent, 0u);
  const std::string grant = HostDir(r, kContainerArbiterDir) + "/" + kArbiterGrantFileName;
  const std::string requests = HostDir(r, kContainerRegionDir) + "/" + kArbiterRequestsFileName;
  ASSERT_TRUE(RunUntil([&] { return PublishedFor(grant, requests) != nullptr; }));
  EXPECT_EQ(PublishedFor(grant, requests)->weight, 30u);
}

TEST_F(NodeClusterTest, TwoPodsOnOneGpuShareItsArbiterEachWithItsOwnRequestFile) {
  CreatePod("a", AssignmentFor(0, 4 * kGi, 20));
  CreatePod("b", AssignmentFor(0, 4 * kGi, 50));
  const v1beta1::ContainerAllocateResponse ra = Allocate("a", {Slot(0, 0)});
  const v1beta1::ContainerAllocateResponse rb = Allocate("b", {Slot(0, 1)});
  ASSERT_TRUE(side_->handoff().WaitSettled({Slot(0, 0)}, std::chrono::seconds(5)));
  ASSERT_TRUE(side_->handoff().WaitSettled({Slot(0, 1)}, std::chrono::seconds(5)));
  EXPECT_EQ(HostDir(ra, kContainerArbiterDir), HostDir(rb, kContainerArbiterDir));
  EXPECT_NE(HostDir(ra, kContainerRegionDir), HostDir(rb, kContainerRegionDir));
  shim::ArbiterReferee* referee = side_->handoff().arbiters().Referee(Uuid(0));
  ASSERT_NE(referee, nullptr);
  EXPECT_EQ(referee->tenant_count(), 2u);
  const std::string grant = HostDir(ra, kContainerArbiterDir) + "/" + kArbiterGrantFileName;
  ASSERT_TRUE(RunUntil([&] {
    return PublishedFor(grant, HostDir(rb, kContainerRegionDir) + "/compute-requests") != nullptr;
  }));
  EXPECT_EQ(PublishedFor(grant, HostDir(ra, kContainerRegionDir) + "/compute-requests")->weight,
            20u);
  EXPECT_EQ(PublishedFor(grant, HostDir(rb, kContainerRegionDir) + "/compute-requests")->weight,
            50u);
}

// Issue 14: an agent restart keeps the running containers in their GPU's compute arbiter. The
// new agent rebuilds the registrations from the allocation directories (limits files and request
// files), re-using the grant page the containers have mapped; a container whose pod ended while
// the agent was down is dropped with its directory.
TEST_F(NodeClusterTest, RestartedAgentRegistersRunningContainersAgainFromDisk) {
  CreatePod("thirty", AssignmentFor(0, 4 * kGi, 30));
  CreatePod("seventy", AssignmentFor(0, 4 * kGi, 70));
  CreatePod("gone", AssignmentFor(0, kGi, 10));
  const v1beta1::ContainerAllocateResponse ra = Allocate("thirty", {Slot(0, 0)});
  const v1beta1::ContainerAllocateResponse rb = Allocate("seventy", {Slot(0, 1)});
  const v1beta1::ContainerAllocateResponse rc = Allocate("gone", {Slot(0, 2)});
  for (int slot = 0; slot < 3; ++slot) {
    ASSERT_TRUE(side_->handoff().WaitSettled({Slot(0, slot)}, std::chrono::seconds(5)));
  }
  const std::string key_a = AllocationHandoff::KeyFor({Slot(0, 0)});
  const std::string key_b = AllocationHandoff::KeyFor({Slot(0, 1)});
  const std::string key_c = AllocationHandoff::KeyFor({Slot(0, 2)});
  const std::string grant = HostDir(ra, kContainerArbiterDir) + "/" + kArbiterGrantFileName;
  const std::string requests_a = HostDir(ra, kContainerRegionDir) + "/" + kArbiterRequestsFileName;
  const std::string requests_b = HostDir(rb, kContainerRegionDir) + "/" + kArbiterRequestsFileName;
  const std::string dir_c = std::filesystem::path(HostDir(rc, kContainerLimitsDir)).parent_path();
  struct stat before {};
  ASSERT_EQ(::stat(grant.c_str(), &before), 0);

  // Both containers busy for a while: their GPU's referee charges them (charges that must
  // survive the restart, or the restarted referee would start both at virtual time 0).
  shim::ArbiterReferee* first = side_->handoff().arbiters().Referee(Uuid(0));
  ASSERT_NE(first, nullptr);
  {
    gpuslice::testing::ContendingTenant a;
    gpuslice::testing::ContendingTenant b;
    ASSERT_EQ(a.Start(grant, requests_a), "");
    ASSERT_EQ(b.Start(grant, requests_b), "");
    ASSERT_TRUE(RunUntil([&] { return a.grants() >= 3 && b.grants() >= 3; }));
  }
  std::uint64_t charged_a = 0;
  std::uint64_t charged_b = 0;
  ASSERT_TRUE(RunUntil([&] {  // both stopped wanting the GPU: the charges settle
    const bool same = charged_a == first->ChargedNs(key_a) && charged_b == first->ChargedNs(key_b);
    charged_a = first->ChargedNs(key_a);
    charged_b = first->ChargedNs(key_b);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return same && charged_a > 0 && charged_b > 0;
  }));
  const std::uint64_t vtime_a = first->VirtualTime(key_a);
  const std::uint64_t vtime_b = first->VirtualTime(key_b);

  // The agent stops, its referees with it; "gone" ends while it is down.
  agent_->Stop();
  agent_.reset();
  side_->Stop();
  side_.reset();
  pod_resources_.ForgetPod("default", "gone");

  HandoffOptions options;
  options.host_root = dir_ / "allocations";
  options.node_name = kNode;
  options.reconcile_interval = std::chrono::milliseconds(10);
  options.release_interval = std::chrono::milliseconds(20);
  options.shim_dir = dir_ / "shims";
  GrpcPodResources pod_resources(pod_resources_.socket_path());
  AllocationHandoff restarted(options, *api_, pod_resources);
  std::mutex watched_mu;
  std::vector<std::string> watched;  // what the memory watchdog would watch again
  restarted.SetLimitsListener([&](const HandoffResult& r) {
    std::lock_guard<std::mutex> lock(watched_mu);
    watched.push_back(r.pod + "/" + r.container + " " + r.qos_class + " " +
                      std::to_string(r.limit_bytes.size()));
  });
  restarted.Start();
  shim::ArbiterReferee* referee = restarted.arbiters().Referee(Uuid(0));
  ASSERT_NE(referee, nullptr) << "the restarted agent has no referee for the GPU";
  EXPECT_TRUE(referee->HasTenant(key_a));
  EXPECT_TRUE(referee->HasTenant(key_b));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto settled = [&] {
    return PublishedFor(grant, requests_a) != nullptr &&
           PublishedFor(grant, requests_b) != nullptr && !std::filesystem::exists(dir_c) &&
           !referee->HasTenant(key_c);
  };
  while (!settled() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(kTick);
  }
  ASSERT_TRUE(settled()) << "dir of the ended pod exists: " << std::filesystem::exists(dir_c)
                         << ", still registered: " << referee->HasTenant(key_c);
  EXPECT_EQ(PublishedFor(grant, requests_a)->weight, 30u);
  EXPECT_EQ(PublishedFor(grant, requests_b)->weight, 70u);
  EXPECT_EQ(referee->tenant_count(), 2u);
  EXPECT_EQ(referee->ChargedNs(key_a), charged_a) << "the charge before the restart is kept";
  EXPECT_EQ(referee->ChargedNs(key_b), charged_b);
  EXPECT_EQ(referee->VirtualTime(key_a), vtime_a);
  EXPECT_EQ(referee->VirtualTime(key_b), vtime_b);
  EXPECT_EQ(PublishedFor(grant, requests_a)->vtime, vtime_a);
  EXPECT_EQ(restarted.ResultFor({Slot(0, 0)}).state, HandoffResult::State::kLimited);
  EXPECT_EQ(restarted.ResultFor({Slot(0, 1)}).compute_percent, 70);
  struct stat after {};
  ASSERT_EQ(::stat(grant.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the grant page the containers mapped is re-used";
  restarted.Stop();
  std::sort(watched.begin(), watched.end());
  EXPECT_EQ(watched, (std::vector<std::string>{"default/gone/main BestEffort 1",
                                               "default/seventy/main BestEffort 1",
                                               "default/thirty/main BestEffort 1"}))
      << "recovered containers are handed to the limits listener (the memory watchdog) again";
}

// A container with two GPUs: each GPU's referee arbitrates it (a request file and a read-only
// grant-page mount per GPU, both named in its limits file), also after an agent restart.
TEST_F(NodeClusterTest, EveryGpuOfATwoGpuContainerIsArbitratedByItsOwnReferee) {
  GpuAssignment a;
  a.node = kNode;
  a.container = "main";
  a.gpus = {{0, Uuid(0)}, {1, Uuid(1)}};
  a.memory_bytes = 2 * kGi;
  a.compute_percent = 40;
  CreatePod("two", EncodeAssignment(a));
  const std::vector<std::string> ids = {Slot(0, 0), Slot(1, 0)};
  const v1beta1::ContainerAllocateResponse r = Allocate("two", ids);
  ASSERT_TRUE(side_->handoff().WaitSettled(ids, std::chrono::seconds(5)));
  const std::string other_dir = std::string(kContainerArbiterDir) + "-" + Uuid(1);
  ASSERT_FALSE(HostDir(r, kContainerArbiterDir).empty()) << r.DebugString();
  ASSERT_FALSE(HostDir(r, other_dir).empty()) << r.DebugString();
  EXPECT_TRUE(ReadOnlyMount(r, kContainerArbiterDir));
  EXPECT_TRUE(ReadOnlyMount(r, other_dir));
  EXPECT_NE(HostDir(r, kContainerArbiterDir), HostDir(r, other_dir));

  Result<shim::ContainerLimits> limits =
      shim::ReadContainerLimitsFile(HostDir(r, kContainerLimitsDir) + "/limits");
  ASSERT_TRUE(limits.ok()) << limits.status().ToString();
  ASSERT_EQ(limits->device_count, 2u);
  EXPECT_EQ(std::string(limits->devices[0].arbiter_path), "/run/gpuslice-arbiter/grant");
  EXPECT_EQ(std::string(limits->devices[0].requests_path), "/run/gpuslice/compute-requests");
  EXPECT_EQ(std::string(limits->devices[1].arbiter_path), other_dir + "/grant");
  EXPECT_EQ(std::string(limits->devices[1].requests_path),
            "/run/gpuslice/compute-requests-" + Uuid(1));
  const std::string key = AllocationHandoff::KeyFor(ids);
  for (int gpu : {0, 1}) {
    shim::ArbiterReferee* referee = side_->handoff().arbiters().Referee(Uuid(gpu));
    ASSERT_NE(referee, nullptr) << "GPU " << gpu;
    EXPECT_TRUE(referee->HasTenant(key)) << "GPU " << gpu;
  }
  const std::string requests1 =
      HostDir(r, kContainerRegionDir) + "/" + kArbiterRequestsFileName + "-" + Uuid(1);
  const std::string grant1 = HostDir(r, other_dir) + "/" + kArbiterGrantFileName;
  ASSERT_TRUE(RunUntil([&] { return PublishedFor(grant1, requests1) != nullptr; }));
  EXPECT_EQ(PublishedFor(grant1, requests1)->weight, 40u);

  // The agent restarts: both GPUs' referees get the container back from its limits file.
  agent_->Stop();
  agent_.reset();
  side_->Stop();
  side_.reset();
  HandoffOptions options;
  options.host_root = dir_ / "allocations";
  options.node_name = kNode;
  options.reconcile_interval = std::chrono::milliseconds(10);
  options.shim_dir = dir_ / "shims";
  GrpcPodResources pod_resources(pod_resources_.socket_path());
  AllocationHandoff restarted(options, *api_, pod_resources);
  restarted.Start();
  for (int gpu : {0, 1}) {
    shim::ArbiterReferee* referee = restarted.arbiters().Referee(Uuid(gpu));
    ASSERT_NE(referee, nullptr) << "GPU " << gpu;
    EXPECT_TRUE(referee->HasTenant(key)) << "GPU " << gpu << " after the restart";
  }
  restarted.Stop();
}

// An agent that stopped between Allocate and the reconcile: the new one settles the allocation,
// the device IDs coming from PodResources (the directory name is only their hash).
TEST_F(NodeClusterTest, AllocationNotYetSettledWhenTheAgentStoppedIsSettledAfterTheRestart) {
  CreatePod("early", AssignmentFor(1, 2 * kGi, 40));
  HandoffOptions options;
  options.host_root = dir_ / "restart-allocations";
  options.node_name = kNode;
  options.reconcile_interval = std::chrono::milliseconds(10);
  options.shim_dir = dir_ / "shims";
  GrpcPodResources pod_resources(pod_resources_.socket_path());
  const std::vector<std::string> ids = {Slot(1, 3)};
  {
    AllocationHandoff stopped(options, *api_, pod_resources);
    v1beta1::ContainerAllocateResponse response;
    ASSERT_TRUE(stopped.PrepareAllocation(ids, response).ok());
  }  // gone before any reconcile
  pod_resources_.RecordAllocation("default", "early", "main", kSlots, ids);

  AllocationHandoff restarted(options, *api_, pod_resources);
  restarted.Start();
  ASSERT_TRUE(restarted.WaitSettled(ids, std::chrono::seconds(5)));
  const HandoffResult result = restarted.ResultFor(ids);
  EXPECT_EQ(result.state, HandoffResult::State::kLimited) << result.message;
  EXPECT_EQ(result.pod, "default/early");
  EXPECT_EQ(result.device_ids, ids);
  EXPECT_EQ(result.compute_percent, 40);
  shim::ArbiterReferee* referee = restarted.arbiters().Referee(Uuid(1));
  ASSERT_NE(referee, nullptr);
  EXPECT_TRUE(referee->HasTenant(result.key));
  restarted.Stop();
}

struct CapRow {
  const char* name;
  const char* text;
  std::uint32_t weight;
  std::uint32_t want;  // 0: refused
};
class ParseComputeCapTest : public ::testing::TestWithParam<CapRow> {};
TEST_P(ParseComputeCapTest, AcceptsAWholePercentFromTheRequestTo100) {
  const CapRow& row = GetParam();
  Result<std::uint32_t> cap = ParseComputeCap(row.text, row.weight);
  if (row.want == 0) {
    ASSERT_FALSE(cap.ok()) << row.text << " -> " << *cap;
    EXPECT_EQ(cap.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(cap.status().message().find("gpuslice.io/gpu-compute-cap"), std::string::npos);
    EXPECT_NE(cap.status().message().find("to 100"), std::string::npos) << "says what is accepted";
  } else {
    ASSERT_TRUE(cap.ok()) << cap.status().ToString();
    EXPECT_EQ(*cap, row.want);
  }
}
INSTANTIATE_TEST_SUITE_P(
    Rows, ParseComputeCapTest,
    ::testing::Values(CapRow{"EqualToTheRequest", "30", 30, 30},
                      CapRow{"BetweenRequestAnd100", "60", 30, 60},
                      CapRow{"Hundred", "100", 30, 100}, CapRow{"LeadingZero", "060", 30, 60},
                      CapRow{"BelowTheRequest", "20", 30, 0}, CapRow{"Zero", "0", 1, 0},
                      CapRow{"Over100", "101", 30, 0}, CapRow{"Negative", "-50", 30, 0},
                      CapRow{"PercentSign", "60%", 30, 0}, CapRow{"Fraction", "60.5", 30, 0},
                      CapRow{"Spaces", " 60", 30, 0}, CapRow{"Empty", "", 30, 0},
                      CapRow{"HugeNumber", "99999999999999999999999", 30, 0},
                      CapRow{"Words", "sixty", 30, 0}),
    [](const ::testing::TestParamInfo<CapRow>& row) { return std::string(row.param.name); });

struct CgroupRow {
  const char* name;
  CgroupDriver driver;
  const char* qos;
  const char* want;
};
class PodCgroupPathTest : public ::testing::TestWithParam<CgroupRow> {};
TEST_P(PodCgroupPathTest, MatchesTheKubeletsLayout) {
  EXPECT_EQ(PodCgroupPath(GetParam().driver, "1a2b-3c", GetParam().qos), GetParam().want);
}
INSTANTIATE_TEST_SUITE_P(
    Rows, PodCgroupPathTest,
    ::testing::Values(
        CgroupRow{"SystemdGuaranteed", CgroupDriver::kSystemd, "Guaranteed",
                  "/kubepods.slice/kubepods-pod1a2b_3c.slice"},
        CgroupRow{"SystemdBurstable", CgroupDriver::kSystemd, "Burstable",
                  "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c.slice"},
        CgroupRow{"SystemdBestEffort", CgroupDriver::kSystemd, "BestEffort",
                  "/kubepods.slice/kubepods-besteffort.slice/"
                  "kubepods-besteffort-pod1a2b_3c.slice"},
        CgroupRow{"CgroupfsGuaranteed", CgroupDriver::kCgroupfs, "Guaranteed",
                  "/kubepods/pod1a2b-3c"},
        CgroupRow{"CgroupfsBurstable", CgroupDriver::kCgroupfs, "Burstable",
                  "/kubepods/burstable/pod1a2b-3c"},
        CgroupRow{"UnknownQosIsNotGuessed", CgroupDriver::kSystemd, "", ""}),
    [](const ::testing::TestParamInfo<CgroupRow>& row) { return std::string(row.param.name); });

}  // namespace
}  // namespace gpuslice::testing
