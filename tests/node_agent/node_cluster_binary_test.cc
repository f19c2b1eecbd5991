// The real gpuslice-node-agent binary with --node-name: its main wires the Kubernetes side
// (capacity annotation, config label from the API server, Allocate -> PodResources -> limits
// file). Fake API server and test kubelet (device plugin + PodResources) in this process.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "agent_process.h"
#include "core/resource_names.h"
#include "fake_apiserver/fake_apiserver.h"
#include "kube/kube_client.h"
#include "kube/kube_config.h"
#include "node_agent/allocation_handoff.h"
#include "node_agent/atomic_file.h"
#include "scheduler/kube_objects.h"
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

template <typename F>
bool Eventually(F done, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
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

  AgentProcess agent({GPUSLICE_NODE_AGENT,
                      "--backend",
                      "sim:" + (dir / "node.yaml"),
                      "--config-dir",
                      dir / "configs",
                      "--device-plugin-dir",
                      dir / "dp",
                      "--features-file",
                      dir / "features",
                      "--cdi-dir",
                      dir / "cdi",
                      "--mps-root",
                      dir / "mps",
                      "--mig-minors-file",
                      dir / "no-mig-minors",
                      "--memory-watchdog",
                      "off",
                      "--node-name",
                      "gpu-node-1",
                      "--kubeconfig",
                      dir / "kubeconfig",
                      "--pod-resources-socket",
                      dir / "pod-resources.sock",
                      "--allocations-dir",
                      dir / "allocations"},
                     dir / "agent.log");
  ASSERT_TRUE(agent.started());
  auto published = [&]() -> std::vector<int> {
    Result<Json> node = (*api)->Get(kube::Node("gpu-node-1"));
    std::vector<int> out;
    if (!node.ok() || !(*node)["metadata"].contains("annotations")) return out;
    const Json& a = (*node)["metadata"]["annotations"];
    auto it = a.find(std::string(names::kAnnotationNodeGpus));
    if (it == a.end()) return out;
    Result<std::vector<scheduler::NodeGpu>> decoded =
        scheduler::DecodeNodeGpus(it->get<std::string>());
    if (decoded.ok()) {
      for (const auto& g : *decoded) out.push_back(g.index);
    }
    return out;
  };
  ASSERT_TRUE(Eventually([&] { return published() == std::vector<int>{0}; })) << agent.Log();

  // A pod the extender bound to GPU 0 with 6 GiB and 40 %.
  scheduler::GpuAssignment assignment;
  assignment.node = "gpu-node-1";
  assignment.container = "main";
  assignment.gpus = {{0, gpus[0].uuid}};
  assignment.memory_bytes = 6 * kGi;
  assignment.compute_percent = 40;
  ASSERT_TRUE((*api)
                  ->Create(kube::Pods("default"),
                           {{"apiVersion", "v1"},
                            {"kind", "Pod"},
                            {"metadata",
                             {{"name", "train"},
                              {"annotations",
                               {{std::string(names::kAnnotationPodAssignment),
                                 scheduler::EncodeAssignment(assignment)}}}}},
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
  std::string limits_dir;
  for (const auto& m : response.container_responses(0).mounts()) {
    if (m.container_path() == kContainerLimitsDir) limits_dir = m.host_path();
  }
  ASSERT_FALSE(limits_dir.empty());
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
  EXPECT_EQ(agent.Terminate(10s), 0) << agent.Log();
  kubelet.Stop();
  pod_resources.Stop();
  server.Stop();
}

}  // namespace
}  // namespace gpuslice::testing
