// Simulated nodes and configs shared by the node agent's tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/simulated_backend.h"
#include "core/advertised_resources.h"
#include "core/sharing_config.h"

namespace gpuslice::testing {

// 4 whole A100s on 2 NUMA nodes (GPUs 0,1 on node 0; 2,3 on node 1).
inline constexpr char kFourA100[] = R"(node:
  name: agent-test
  numaNodes: 2
gpus:
  - model: A100-SXM4-40GB
    count: 4
)";

// 2 whole A100s and one in MIG mode (3g.20gb, 2g.10gb, 1g.5gb, 1g.5gb).
inline constexpr char kA100WithMig[] = R"(node:
  name: agent-mig
gpus:
  - model: A100-SXM4-40GB
    count: 2
  - model: A100-SXM4-40GB
    mig:
      enabled: true
      devices:
        - profile: 3g.20gb
        - profile: 2g.10gb
        - profile: 1g.5gb
        - profile: 1g.5gb
)";

// NVIDIA's time-slicing example (4 replicas per GPU) and the same under MPS.
inline constexpr char kTimeSliced[] = R"(version: v1
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/gpu
        replicas: 4
)";
inline constexpr char kMps[] = R"(version: v1
sharing:
  mps:
    failRequestsGreaterThanOne: false
    resources:
      - name: nvidia.com/gpu
        replicas: 4
)";

inline std::vector<GpuInfo> GpusOf(const std::string& node_yaml) {
  Result<SimulatedNode> node = ParseSimulatedNode(node_yaml, "test-node");
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  return node.ok() ? node->gpus : std::vector<GpuInfo>{};
}

inline DriverInfo DriverOf(const std::string& node_yaml) {
  Result<SimulatedNode> node = ParseSimulatedNode(node_yaml, "test-node");
  return node.ok() ? node->driver : DriverInfo{};
}

inline SharingConfig ConfigOf(const std::string& config_yaml) {
  Result<SharingConfig> config = ParseSharingConfig(config_yaml, "test-config");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? *config : DefaultSharingConfig();
}

// The resource `name` advertised for `gpus` under `config_yaml` (empty if none).
inline AdvertisedResource ResourceOf(const std::vector<GpuInfo>& gpus,
                                     const std::string& config_yaml, const std::string& name) {
  Result<NodeAdvertisement> adv = AdvertiseNode(gpus, ConfigOf(config_yaml));
  EXPECT_TRUE(adv.ok()) << adv.status().ToString();
  if (!adv.ok()) return {};
  const AdvertisedResource* r = adv->Find(name);
  EXPECT_NE(r, nullptr) << name << " not advertised";
  return r != nullptr ? *r : AdvertisedResource{};
}

}  // namespace gpuslice::testing
