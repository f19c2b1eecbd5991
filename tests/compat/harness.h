// Helpers for the ported NVIDIA k8s-device-plugin / GPU Feature Discovery test cases.
//
// Every case of this suite names the NVIDIA test it was taken from, as
// "<file> <TestName>/<case>", from NVIDIA/k8s-device-plugin v0.20.0
// (tag v0.20.0, commit 1b826acc6af3079d8923bac395c3124b8861a9a6). The cases are rewritten for
// gpuslice's inputs (YAML config files, simulated nodes, the node agent's gRPC API); no code is
// copied. docs/migrating-from-nvidia.md lists where gpuslice deliberately differs.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "backends/simulated_backend.h"
#include "core/advertised_resources.h"
#include "core/sharing_config.h"

namespace gpuslice::compat {

inline constexpr char kNvidiaVersion[] = "v0.20.0";

// The GPUs of a simulated node given as YAML.
inline std::vector<GpuInfo> Node(const std::string& yaml) {
  Result<SimulatedNode> node = ParseSimulatedNode(yaml, "compat-node");
  EXPECT_TRUE(node.ok()) << node.status().ToString();
  return node.ok() ? node->gpus : std::vector<GpuInfo>{};
}

inline SharingConfig Config(const std::string& yaml) {
  if (yaml.empty()) return DefaultSharingConfig();
  Result<SharingConfig> config = ParseSharingConfig(yaml, "compat.yaml");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  return config.ok() ? *config : DefaultSharingConfig();
}

// The labels GFD's resource labelers write (what NVIDIA's internal/lm tables compare): the
// nvidia.com/gpu.* and nvidia.com/mig* keys, without those of other labelers (gpu.machine,
// gpu.mode, mig.capable).
inline std::map<std::string, std::string> ResourceLabels(
    const std::map<std::string, std::string>& labels) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : labels) {
    const bool resource = key.starts_with("nvidia.com/gpu.") || key.starts_with("nvidia.com/mig");
    if (!resource || key == "nvidia.com/gpu.machine" || key == "nvidia.com/gpu.mode" ||
        key == "nvidia.com/mig.capable") {
      continue;
    }
    out[key] = value;
  }
  return out;
}

}  // namespace gpuslice::compat
