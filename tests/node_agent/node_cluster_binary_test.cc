// The real gpuslice-node-agent binary with --node-name: its main wires the Kubernetes side
// (capacity annotation, config label from the API server, Allocate -> PodResources -> limits
// file). Fake API server and test kubelet (device plugin + PodResources) in this process.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>

#include "agent_process.h"
#include "cluster_agent.h"
#include "contending_tenant.h"
#include "core/gpu_annotations.h"
#include "core/resource_names.h"
#include "fake_apiserver/fake_apiserver.h"
#include "kube/kube_client.h"
#include "kube/kube_config.h"
#include "node_agent/allocation_handoff.h"
#include "node_agent/atomic_file.h"
#include "node_agent/compute_arbiters.h"
#include "shim/compute_arbiter.h"
#include "shim/container_limits.h"
#include "temp_dir.h"
#include "test_kubelet.h"
#include "test_nodes.h"
#include "test_pod_resources.h"

namespace gpuslice::testing {
namespace {

using kube::Json;
using namespace std::chrono_literals;
constexpr std::int64_t kGi = 1024LL * 1024 * 1024;

// The weight the referee publishes on `grant` for the container whose request file is
// `requests` (matched by the file's identity, as the shim does); 0 when none.
shim::PublishedTenant PublishedFor(const std::string& grant, const std::string& requests) {
  struct stat st {};
  shim::ArbiterGrantPage page{};
  std::ifstream in(grant, std::ios::binary);
  if (::stat(requests.c_str(), &st) != 0 ||
      !in.read(reinterpret_cast<char*>(&page), sizeof(page))) {
    return {};
  }
  for (const shim::PublishedTenant& t : page.tenants) {
    if (t.state != 0 && t.requests_ino == st.st_ino && t.requests_dev == st.st_dev) return t;
  }
  return {};
}
std::uint32_t PublishedWeight(const std::string& grant, const std::string& requests) {
  return PublishedFor(grant, requests).weight;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(NodeClusterBinaryTest, AgentPublishesCapacityFollowsTheLabelAndWritesLimits) {
  TempDir dir;
  fake::FakeApiServer server;
  ASSERT_TRUE(server.Start().ok());
  std::ofstream(dir / "kubeconfig") << server.Kubeconfig();
  Result<kube::KubeConfig> config = kube::LoadKubeconfigFile(dir / "kubeconfig");
  ASSERT_TRUE(config.ok());
  Result<std::unique_ptr<kube::KubeClient>> api = kube::KubeClient::Create(*config);
  ASSERT_TRUE(api.ok());
  const std::string label(names::kLabelDevicePluginConfig);
  ASSERT_TRUE((*api)
                  ->Create(kube::Nodes(),
                           {{"apiVersion", "v1"},
                            {"kind", "Node"},
                            {"metadata", {{"name", "gpu-node-1"}, {"labels", {{label, "one"}}}}}})
                  .ok());
  std::filesystem::create_directories(dir / "configs");
  ASSERT_TRUE(WriteFileAtomically(dir / "configs/one",
                                  "version: v1\ngpuslice:\n  fractional:\n    enabled: true\n"
                                  "    devices: [0]\n    slotsPerGpu: 2\n")
                  .ok());
  ASSERT_TRUE(WriteFileAtomically(dir / "configs/all",
                                  "version: v1\ngpuslice:\n  fractional:\n    enabled: true\n"
                                  "    slotsPerGpu: 2\n")
                  .ok());
  std::ofstream(dir / "node.yaml") << kFourA100;
  const std::vector<GpuInfo> gpus = GpusOf(kFourA100);
  std::filesystem::create_directories(dir / "dp");
  TestKubelet kubelet(dir / "dp");
  ASSERT_TRUE(kubelet.Start());
  TestPodResources pod_resources(dir / "pod-resources.sock");
  ASSERT_TRUE(pod_resources.Start());

  // The agent installs the shims into the host directory the kubelet's containers mount from.
  AgentProcess agent(ClusterAgentArgs({.binary = GPUSLICE_NODE_AGENT,
                                       .sim_node = dir / "node.yaml",
                                       .dir = dir.path(),
                                       .node_name = "gpu-node-1",
                                       .kubeconfig = dir / "kubeconfig",
                                       .shim_dir = dir / "host-shims",
                                       .shims_from = GPUSLICE_SHIM_DIR}),
                     dir / "agent.log");
  ASSERT_TRUE(agent.started());
  auto published = [&] {
    std::vector<int> out;
    for (const auto& g : PublishedGpus(**api, "gpu-node-1")) out.push_back(g.index);
    return out;
  };
  ASSERT_TRUE(Eventually([&] { return published() == std::vector<int>{0}; })) << agent.Log();

  // A pod the extender bound to GPU 0 with 6 GiB and 40 %.
  GpuAssignment assignment;
  assignment.node = "gpu-node-1";
  assignment.container = "main";
  assignment.gpus = {{0, gpus[0].uuid}};
  assignment.memory_bytes = 6 * kGi;
  assignment.compute_percent = 40;
  ASSERT_TRUE(
      (*api)
          ->Create(
              kube::Pods("default"),
              {{"apiVersion", "v1"},
               {"kind", "Pod"},
               {"metadata",
                {{"name", "train"},
                 {"annotations",
                  {{std::string(names::kAnnotationPodAssignment), EncodeAssignment(assignment)}}}}},
               {"spec",
                {{"nodeName", "gpu-node-1"},
                 {"containers", {{{"name", "main"}, {"image", "cuda"}}}}}}})
          .ok());
  ASSERT_TRUE(kubelet.WaitForRegistration("gpuslice.io/gpu", 1, 10s)) << agent.Log();
  std::unique_ptr<PluginClient> plugin = kubelet.Connect("gpuslice.io/gpu");
  ASSERT_NE(plugin, nullptr);
  const std::vector<std::string> ids = {gpus[0].uuid + "::1"};
  v1beta1::AllocateResponse response;
  grpc::Status allocated = plugin->Allocate({ids}, &response);
  ASSERT_TRUE(allocated.ok()) << allocated.error_message() << agent.Log();
  pod_resources.RecordAllocation("default", "train", "main", "gpuslice.io/gpu", ids);
  const v1beta1::ContainerAllocateResponse& container = response.container_responses(0);
  ASSERT_NE(MountAt(container, kContainerLimitsDir), nullptr);
  const std::string limits_dir = MountAt(container, kContainerLimitsDir)->host_path();
  // The shims, from the directory the agent installed them into, and the preload file.
  for (const char* name : {"libgpuslice-cuda.so", "libgpuslice-nvml.so"}) {
    const v1beta1::Mount* shim = MountAt(container, std::string("/usr/local/lib/gpuslice/") + name);
    ASSERT_NE(shim, nullptr) << name;
    EXPECT_EQ(shim->host_path(), dir / (std::string("host-shims/") + name));
    EXPECT_EQ(ReadFileOrEmpty(shim->host_path()),
              ReadFileOrEmpty(std::string(GPUSLICE_SHIM_DIR) + "/" + name));
  }
  ASSERT_NE(MountAt(container, "/etc/ld.so.preload"), nullptr);
  EXPECT_EQ(ReadFileOrEmpty(MountAt(container, "/etc/ld.so.preload")->host_path()),
            "/usr/local/lib/gpuslice/libgpuslice-cuda.so\n"
            "/usr/local/lib/gpuslice/libgpuslice-nvml.so\n");
  ASSERT_TRUE(Eventually([&] { return std::filesystem::exists(limits_dir + "/limits"); }))
      << agent.Log();
  Result<shim::ContainerLimits> limits = shim::ReadContainerLimitsFile(limits_dir + "/limits");
  ASSERT_TRUE(limits.ok()) << limits.status().ToString();
  EXPECT_EQ(std::string(limits->devices[0].uuid), gpus[0].uuid);
  EXPECT_EQ(limits->devices[0].memory_bytes, static_cast<std::uint64_t>(6 * kGi));
  EXPECT_EQ(limits->devices[0].compute_percent, 40u);

  // Relabel the node: the agent switches to "all" and publishes four GPUs.
  ASSERT_TRUE((*api)
                  ->Patch(kube::Node("gpu-node-1"), kube::PatchType::kMerge,
                          {{"metadata", {{"labels", {{label, "all"}}}}}})
                  .ok());
  ASSERT_TRUE(Eventually([&] {
    return published() == std::vector<int>{0, 1, 2, 3};
  })) << agent.Log();

  // Issue 14: the agent dies (SIGKILL) and a new one starts over the same directories. It
  // registers the running container with the GPU's referee again, from the limits file, on the
  // grant page the container has mapped (emptied here, so only the new referee can fill it).
  const v1beta1::Mount* arbiter_mount = MountAt(container, kContainerArbiterDir);
  ASSERT_NE(arbiter_mount, nullptr);
  const std::string grant = arbiter_mount->host_path() + "/" + kArbiterGrantFileName;
  const std::string requests =
      MountAt(container, kContainerRegionDir)->host_path() + "/" + kArbiterRequestsFileName;
  ASSERT_TRUE(Eventually([&] { return PublishedWeight(grant, requests) == 40; })) << agent.Log();
  // Two of the container's processes want the GPU at once, so its referee charges it; the
  // charge must survive the SIGKILL (the referee writes it beside the GPU's directory within a
  // second).
  {
    ContendingTenant first;
    ContendingTenant second;
    ASSERT_EQ(first.Start(grant, requests), "");
    ASSERT_EQ(second.Start(grant, requests), "");
    ASSERT_TRUE(Eventually([&] { return first.grants() >= 3 && second.grants() >= 3; }));
  }
  std::uint64_t charged_ns = 0;
  ASSERT_TRUE(Eventually([&] {  // settled: the same twice, 50 ms apart
    const std::uint64_t before = PublishedFor(grant, requests).charged_ns;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    charged_ns = PublishedFor(grant, requests).charged_ns;
    return charged_ns > 0 && charged_ns == before;
  }));
  const std::uint64_t vtime = PublishedFor(grant, requests).vtime;
  const std::string charges = arbiter_mount->host_path() + ".charges";
  const std::string line =
      " vtime=" + std::to_string(vtime) + " charged_ns=" + std::to_string(charged_ns) + "\n";
  ASSERT_TRUE(Eventually([&] { return ReadFile(charges).find(line) != std::string::npos; }))
      << charges << ":\n"
      << ReadFile(charges);
  agent.Signal(SIGKILL);
  EXPECT_EQ(agent.Wait(10s), 128 + SIGKILL);
  {
    std::fstream page(grant, std::ios::in | std::ios::out | std::ios::binary);
    const std::string zeros(sizeof(shim::ArbiterGrantPage), '\0');
    page.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  }
  ASSERT_EQ(PublishedWeight(grant, requests), 0);
  AgentProcess restarted(ClusterAgentArgs({.binary = GPUSLICE_NODE_AGENT,
                                           .sim_node = dir / "node.yaml",
                                           .dir = dir.path(),
                                           .node_name = "gpu-node-1",
                                           .kubeconfig = dir / "kubeconfig",
                                           .shim_dir = dir / "host-shims"}),
                         dir / "agent2.log");
  ASSERT_TRUE(restarted.started());
  ASSERT_TRUE(Eventually([&] { return PublishedWeight(grant, requests) == 40; }))
      << restarted.Log();
  EXPECT_EQ(PublishedFor(grant, requests).charged_ns, charged_ns) << "the charge is kept";
  EXPECT_EQ(PublishedFor(grant, requests).vtime, vtime);
  EXPECT_EQ(restarted.Terminate(10s), 0) << restarted.Log();
  kubelet.Stop();
  pod_resources.Stop();
  server.Stop();
}

}  // namespace
}  // namespace gpuslice::testing

namespace gpuslice::testing {
namespace {

using namespace std::chrono_literals;

TEST(NodeClusterBinaryTest, AgentWithoutTheShimsOnTheHostRefusesToStartAndSaysWhere) {
  TempDir dir;
  fake::FakeApiServer server;
  ASSERT_TRUE(server.Start().ok());
  std::ofstream(dir / "kubeconfig") << server.Kubeconfig();
  std::ofstream(dir / "node.yaml") << kFourA100;
  std::filesystem::create_directories(dir / "configs");
  AgentProcess agent(ClusterAgentArgs({.binary = GPUSLICE_NODE_AGENT,
                                       .sim_node = dir / "node.yaml",
                                       .dir = dir.path(),
                                       .node_name = "gpu-node-1",
                                       .kubeconfig = dir / "kubeconfig",
                                       .shim_dir = dir / "no-shims"}),
                     dir / "agent.log");
  ASSERT_TRUE(agent.started());
  EXPECT_EQ(agent.Wait(10s), 1) << agent.Log();
  EXPECT_NE(agent.Log().find(dir / "no-shims/libgpuslice-cuda.so does not exist"),
            std::string::npos)
      << agent.Log();
  server.Stop();
}

}  // namespace
}  // namespace gpuslice::testing
