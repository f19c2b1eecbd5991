// The configs shipped under deploy/ (NVIDIA's ConfigMaps unchanged, and gpuslice's examples) must
// load and apply to a simulated node: a cluster switching from NVIDIA's plugin keeps its file.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>

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

// The agent's host-path flags in deploy/base: Allocate answers, the CDI spec and the hook (run on
// the host) name these paths, so each flag's directory must be a hostPath volume mounted at the
// same path in the agent's container.
TEST(DeployExamplesTest, BaseMountsEveryHostPathFlagAtTheSamePathAsOnTheHost) {
  const YAML::Node daemonset =
      YAML::LoadFile(std::string(GPUSLICE_SOURCE_DIR) + "/deploy/base/daemonset.yaml");
  const YAML::Node pod = daemonset["spec"]["template"]["spec"];
  const YAML::Node container = pod["containers"][0];
  std::map<std::string, std::string> flags;  // "--hook-dir" -> "/var/lib/gpuslice/bin"
  for (const YAML::Node& arg : container["args"]) {
    const std::string text = arg.as<std::string>();
    const auto eq = text.find('=');
    if (eq != std::string::npos) flags[text.substr(0, eq)] = text.substr(eq + 1);
  }
  std::map<std::string, std::string> host_paths;  // volume name -> host path
  for (const YAML::Node& volume : pod["volumes"]) {
    if (volume["hostPath"]) {
      host_paths[volume["name"].as<std::string>()] = volume["hostPath"]["path"].as<std::string>();
    }
  }
  std::map<std::string, std::string> mounted;  // mount path -> host path
  for (const YAML::Node& mount : container["volumeMounts"]) {
    const auto host = host_paths.find(mount["name"].as<std::string>());
    if (host != host_paths.end()) mounted[mount["mountPath"].as<std::string>()] = host->second;
  }
  for (const char* flag : {"--isolation-dir", "--cgroup-mount", "--hook-dir", "--shim-dir",
                           "--allocations-dir", "--cdi-dir", "--mps-root"}) {
    SCOPED_TRACE(flag);
    ASSERT_EQ(flags.count(flag), 1u);
    const auto mount = mounted.find(flags[flag]);
    ASSERT_NE(mount, mounted.end()) << flags[flag] << " is not a hostPath mount";
    EXPECT_EQ(mount->second, flags[flag]) << "mounted from a different host path";
  }
  // The driver tier: the hook comes from the image (not a host path) and --isolation is auto.
  EXPECT_EQ(flags["--install-hook-from"], "/usr/local/libexec/gpuslice");
  EXPECT_EQ(flags["--isolation"], "auto");
  EXPECT_EQ(flags.count("--hook-path"), 0u);
}

}  // namespace
}  // namespace gpuslice
