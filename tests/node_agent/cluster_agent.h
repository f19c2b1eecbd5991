// Shared by the tests that run gpuslice-node-agent binaries with the Kubernetes side on
// (node_cluster_binary_test, tests/e2e): the agent's command line for a simulated node laid out
// in one directory, waiting for a condition, and reading what the agent published or mounted.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/gpu_annotations.h"
#include "core/resource_names.h"
#include "kube/kube_api.h"
#include "node_agent/device_plugin_api.pb.h"

namespace gpuslice::testing {

// Polls `done` every 10 ms until it holds or `timeout` passes; its last value.
template <typename F>
bool Eventually(F done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// One simulated node's agent with the API side on. Under `dir`: configs/ (named configs), dp/
// (the test kubelet's device-plugin directory), pod-resources.sock, allocations/, and the
// agent's feature file, CDI and MPS directories.
struct ClusterAgentSpec {
  std::string binary = {};      // gpuslice-node-agent
  std::string sim_node = {};    // simulated node YAML
  std::string dir = {};         // the node's directory
  std::string node_name = {};   // --node-name
  std::string kubeconfig = {};  // --kubeconfig
  std::string shim_dir = {};    // --shim-dir (or the target of --install-shims-from)
  std::string shims_from = {};  // --install-shims-from; "" = not given
};

inline std::vector<std::string> ClusterAgentArgs(const ClusterAgentSpec& spec) {
  std::vector<std::string> args = {spec.binary,
                                   "--backend",
                                   "sim:" + spec.sim_node,
                                   "--config-dir",
                                   spec.dir + "/configs",
                                   "--device-plugin-dir",
                                   spec.dir + "/dp",
                                   "--features-file",
                                   spec.dir + "/features",
                                   "--cdi-dir",
                                   spec.dir + "/cdi",
                                   "--mps-root",
                                   spec.dir + "/mps",
                                   "--mig-minors-file",
                                   spec.dir + "/no-mig-minors",
                                   "--memory-watchdog",
                                   "off",
                                   "--node-name",
                                   spec.node_name,
                                   "--kubeconfig",
                                   spec.kubeconfig,
                                   "--pod-resources-socket",
                                   spec.dir + "/pod-resources.sock",
                                   "--allocations-dir",
                                   spec.dir + "/allocations",
                                   "--shim-dir",
                                   spec.shim_dir};
  if (!spec.shims_from.empty()) {
    args.push_back("--install-shims-from");
    args.push_back(spec.shims_from);
  }
  return args;
}

// The GPUs a node's agent published in its gpuslice.io/gpus annotation (empty when none).
inline std::vector<NodeGpu> PublishedGpus(kube::KubeApi& api, const std::string& node_name) {
  Result<kube::Json> node = api.Get(kube::Node(node_name));
  if (!node.ok() || !(*node)["metadata"].contains("annotations")) return {};
  const kube::Json& annotations = (*node)["metadata"]["annotations"];
  auto it = annotations.find(std::string(names::kAnnotationNodeGpus));
  if (it == annotations.end() || !it->is_string()) return {};
  Result<std::vector<NodeGpu>> gpus = DecodeNodeGpus(it->get<std::string>());
  return gpus.ok() ? *gpus : std::vector<NodeGpu>{};
}

// The mount at `container_path` in an Allocate answer; nullptr when there is none.
inline const v1beta1::Mount* MountAt(const v1beta1::ContainerAllocateResponse& response,
                                     const std::string& container_path) {
  for (const auto& mount : response.mounts()) {
    if (mount.container_path() == container_path) return &mount;
  }
  return nullptr;
}

}  // namespace gpuslice::testing
