// The configs shipped under deploy/ (NVIDIA's ConfigMaps unchanged, and gpuslice's examples) must
// load and apply to a simulated node: a cluster switching from NVIDIA's plugin keeps its file.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "core/advertised_resources.h"
#include "core/sharing_config.h"
#include "node_agent/atomic_file.h"
#include "test_nodes.h"

namespace gpuslice {
namespace {

// Every sharing config under deploy/: ConfigMap data entries and plain config files.
std::vector<std::pair<std::string, std::string>> DeployConfigs() {
  std::vector<std::pair<std::string, std::string>> out;
  const std::filesystem::path root = std::filesystem::path(GPUSLICE_SOURCE_DIR) / "deploy";
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.path().extension() != ".yaml") continue;
    const std::string path = entry.path().string();
    // A plain sharing config (config.yaml, or a configMapGenerator's file): `version`, no kind.
    const YAML::Node first = YAML::LoadFile(path);
    if (entry.path().filename() == "config.yaml" ||
        (first.IsMap() && first["version"] && !first["kind"])) {
      out.emplace_back(path, ReadFileOrEmpty(path));
      continue;
    }
    for (const YAML::Node& doc : YAML::LoadAllFromFile(path)) {
      if (!doc["kind"] || doc["kind"].as<std::string>() != "ConfigMap" || !doc["data"]) continue;
      for (const auto& item : doc["data"]) {
        out.emplace_back(path + ":" + item.first.as<std::string>(), item.second.as<std::string>());
      }
    }
  }
  return out;
}

TEST(DeployExamplesTest, EveryShippedConfigLoadsAndApplies) {
  const auto configs = DeployConfigs();
  // base, NVIDIA's all + fine (2 keys), mig-mixed, mps, fractional's two named configs
  ASSERT_GE(configs.size(), 8u);
  const std::string nodes = std::string(GPUSLICE_SOURCE_DIR) + "/fixtures/nodes/";
  const std::vector<GpuInfo> gpus = testing::GpusOf(ReadFileOrEmpty(nodes + "a100-40gb-8x.yaml"));
  // MPS is refused on nodes with MIG-enabled GPUs (as NVIDIA's plugin); the A100 node has one.
  const std::vector<GpuInfo> no_mig = testing::GpusOf(ReadFileOrEmpty(nodes + "h100-80gb-8x.yaml"));
  for (const auto& [name, text] : configs) {
    Result<SharingConfig> config = ParseSharingConfig(text, name);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    const bool mps = config->sharing_strategy() == SharingStrategy::kMps;
    Result<NodeAdvertisement> adv = AdvertiseNode(mps ? no_mig : gpus, *config);
    ASSERT_TRUE(adv.ok()) << name << ": " << adv.status().ToString();
    EXPECT_FALSE(adv->resources.empty()) << name;
  }
}

}  // namespace
}  // namespace gpuslice
