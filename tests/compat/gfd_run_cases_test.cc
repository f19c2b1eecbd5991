// NVIDIA's GFD end-to-end runs (cmd/gpu-feature-discovery/main_test.go and mig_test.go, v0.20.0)
// through the real `gpuslice inventory` binary on simulated nodes. As NVIDIA's checkResult,
// every label written must match one of the patterns the run allows (vGPU labels aside);
// additionally every key NVIDIA's expected-output lists for the run must be present.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <regex>
#include <string>
#include <vector>

#include "cli/cli_runner.h"

namespace gpuslice::compat {
namespace {

using testing_support::RunCli;

// Allowed label lines, as anchored regular expressions of our own.
const std::vector<std::string>& BaseLines() {
  static const std::vector<std::string> lines = {
      R"(nvidia\.com/gfd\.timestamp=[0-9]{10})",
      R"(nvidia\.com/cuda\.driver\.(major|minor)=[0-9]+)",
      R"(nvidia\.com/cuda\.driver\.rev=[0-9]*)",
      R"(nvidia\.com/cuda\.runtime\.(major|minor)=[0-9]+)",
      R"(nvidia\.com/cuda\.driver-version\.(major|minor)=[0-9]+)",
      R"(nvidia\.com/cuda\.driver-version\.revision=[0-9]*)",
      R"(nvidia\.com/cuda\.driver-version\.full=[0-9]+\.[0-9]+\.[0-9]+)",
      R"(nvidia\.com/cuda\.runtime-version\.(major|minor)=[0-9]+)",
      R"(nvidia\.com/cuda\.runtime-version\.full=[0-9]+\.[0-9]+)",
      R"(nvidia\.com/gpu\.machine=.*)",
      R"(nvidia\.com/gpu\.(count|replicas|memory)=[0-9]+)",
      R"(nvidia\.com/gpu\.sharing-strategy=(none|mps|time-slicing))",
      R"(nvidia\.com/gpu\.product=[A-Za-z0-9_.-]+)",
      R"(nvidia\.com/gpu\.family=[a-z-]+)",
      R"(nvidia\.com/gpu\.mode=(unknown|compute|graphics))",
      R"(nvidia\.com/mig\.capable=(true|false))",
      R"(nvidia\.com/gpu\.compute\.(major|minor)=[0-9]+)",
      R"(nvidia\.com/mps\.capable=(true|false))"};
  return lines;
}
const std::vector<std::string> kSingleLines = {
    R"(nvidia\.com/mig\.strategy=single)",
    R"(nvidia\.com/gpu\.(multiprocessors|slices\.gi|slices\.ci)=[0-9]+)",
    R"(nvidia\.com/gpu\.engines\.(copy|decoder|encoder|jpeg|ofa)=[0-9]+)"};
const std::vector<std::string> kMixedLines = {
    R"(nvidia\.com/mig\.strategy=mixed)",
    R"(nvidia\.com/mig-[0-9]+g\.[0-9]+gb\.(count|replicas|memory|multiprocessors)=[0-9]+)",
    R"(nvidia\.com/mig-[0-9]+g\.[0-9]+gb\.sharing-strategy=(none|mps|time-slicing))",
    R"(nvidia\.com/mig-[0-9]+g\.[0-9]+gb\.product=[A-Za-z0-9_.-]+)",
    R"(nvidia\.com/mig-[0-9]+g\.[0-9]+gb\.engines\.(copy|decoder|encoder|jpeg|ofa)=[0-9]+)",
    R"(nvidia\.com/mig-[0-9]+g\.[0-9]+gb\.slices\.(gi|ci)=[0-9]+)"};

// Keys every expected-output file names for a whole-GPU node.
const std::vector<std::string> kRequiredKeys = {"nvidia.com/cuda.driver.major",
                                                "nvidia.com/cuda.runtime.major",
                                                "nvidia.com/cuda.driver-version.full",
                                                "nvidia.com/cuda.runtime-version.full",
                                                "nvidia.com/gpu.machine",
                                                "nvidia.com/gpu.count",
                                                "nvidia.com/gpu.replicas",
                                                "nvidia.com/gpu.sharing-strategy",
                                                "nvidia.com/gpu.product",
                                                "nvidia.com/gpu.memory",
                                                "nvidia.com/gpu.family",
                                                "nvidia.com/gpu.mode",
                                                "nvidia.com/mig.capable",
                                                "nvidia.com/gpu.compute.major",
                                                "nvidia.com/mps.capable"};

struct GfdRun {
  const char* nvidia_case;
  const char* node;
  const char* flags;  // `flags:` of the config (machineTypeFile is added)
  std::vector<std::string> extra_lines;
  std::vector<std::string> extra_keys;
  bool timestamp;
};

void PrintTo(const GfdRun& c, std::ostream* os) { *os << c.nvidia_case; }

class GfdRuns : public ::testing::TestWithParam<GfdRun> {};

TEST_P(GfdRuns, LabelsMatchNvidiasExpectedOutput) {
  const GfdRun& c = GetParam();
  const std::string dir = ::testing::TempDir() + "compat-gfd-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/machine-type") << "product-name\n";  // as NVIDIA's test writes it
  std::ofstream(dir + "/node.yaml") << c.node;
  std::ofstream(dir + "/config.yaml")
      << "version: v1\nflags:\n"
      << c.flags << "  gfd:\n    machineTypeFile: " << dir
      << "/machine-type\n    noTimestamp: " << (c.timestamp ? "false" : "true") << "\n";
  const auto result = RunCli({"inventory", "--backend", "sim:" + dir + "/node.yaml", "--config",
                              dir + "/config.yaml", "-o", "json"});
  std::filesystem::remove_all(dir);
  ASSERT_EQ(result.exit_code, 0) << c.nvidia_case << ": " << result.err;
  const nlohmann::json labels = nlohmann::json::parse(result.out)["labels"];

  std::vector<std::regex> allowed;
  for (const auto* set : {&BaseLines(), &c.extra_lines}) {
    for (const std::string& line : *set) allowed.emplace_back(line);
  }
  for (const auto& [key, value] : labels.items()) {
    if (key.find("vgpu") != std::string::npos) continue;  // as NVIDIA's non-vGPU check
    const std::string line = key + "=" + value.get<std::string>();
    const bool ok = std::any_of(allowed.begin(), allowed.end(),
                                [&](const std::regex& r) { return std::regex_match(line, r); });
    EXPECT_TRUE(ok) << c.nvidia_case << ": label line matches no expected pattern: " << line;
  }
  for (const auto* keys : {&kRequiredKeys, &c.extra_keys}) {
    for (const std::string& key : *keys) {
      EXPECT_TRUE(labels.contains(key)) << c.nvidia_case << ": missing " << key;
    }
  }
  EXPECT_EQ(labels.value("nvidia.com/gpu.machine", ""), "product-name") << c.nvidia_case;
  EXPECT_EQ(labels.contains("nvidia.com/gfd.timestamp"), c.timestamp) << c.nvidia_case;
}

constexpr char kFullGpu[] = "gpus: [{model: A100-SXM4-40GB}]\n";
constexpr char kMigTwo3g[] =
    "gpus:\n  - model: A100-SXM4-40GB\n"
    "    mig: {enabled: true, devices: [{profile: 3g.20gb}, {profile: 3g.20gb}]}\n";
constexpr char kMig3gAnd1g[] =
    "gpus:\n  - model: A100-SXM4-40GB\n"
    "    mig: {enabled: true, devices: [{profile: 3g.20gb}, {profile: 1g.5gb}]}\n";

INSTANTIATE_TEST_SUITE_P(
    Compat, GfdRuns,
    ::testing::Values(
        GfdRun{"main_test.go TestRunOneshot", kFullGpu, "  migStrategy: none\n", {}, {}, true},
        GfdRun{"main_test.go TestRunWithNoTimestamp",
               kFullGpu,
               "  migStrategy: none\n",
               {},
               {},
               false},
        GfdRun{"mig_test.go TestMigStrategyNone", kMigTwo3g, "  migStrategy: none\n", {}, {}, true},
        GfdRun{"mig_test.go TestMigStrategySingleForNoMigDevices",
               kFullGpu,
               "  migStrategy: single\n",
               kSingleLines,
               {"nvidia.com/mig.strategy"},
               true},
        GfdRun{"mig_test.go TestMigStrategySingleForMigDeviceMigDisabled (MIG capable, MIG off)",
               kFullGpu,
               "  migStrategy: single\n",
               kSingleLines,
               {"nvidia.com/mig.strategy"},
               true},
        GfdRun{"mig_test.go TestMigStrategySingle",
               kMigTwo3g,
               "  migStrategy: single\n",
               kSingleLines,
               {"nvidia.com/mig.strategy", "nvidia.com/gpu.multiprocessors",
                "nvidia.com/gpu.slices.gi", "nvidia.com/gpu.engines.copy"},
               true},
        GfdRun{"mig_test.go TestMigStrategyMixed",
               kMig3gAnd1g,
               "  migStrategy: mixed\n",
               kMixedLines,
               {"nvidia.com/mig.strategy", "nvidia.com/mig-3g.20gb.count",
                "nvidia.com/mig-3g.20gb.sharing-strategy", "nvidia.com/mig-1g.5gb.product",
                "nvidia.com/mig-1g.5gb.sharing-strategy", "nvidia.com/mig-1g.5gb.slices.ci"},
               true}));

// GFD on a node without GPUs writes no device labels (NVIDIA's NewDeviceLabeler returns an empty
// labeler), only its timestamp and vGPU presence; the inventory says nothing is advertised.
TEST(CompatGfd, NodeWithoutGpusHasNoDeviceLabels) {
  // internal/lm/nvml.go NewDeviceLabeler (len(devices) == 0) as exercised by
  // mig-strategy_test.go TestMigStrategyNoneLabels/no devices returns empty labels
  const std::string dir = ::testing::TempDir() + "compat-gfd-empty-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/node.yaml") << "node: {name: cpu-node}\ngpus: []\n";
  const auto result = RunCli({"inventory", "--backend", "sim:" + dir + "/node.yaml", "-o", "json"});
  std::filesystem::remove_all(dir);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const nlohmann::json report = nlohmann::json::parse(result.out);
  EXPECT_TRUE(report["resources"].empty());
  std::vector<std::string> keys;
  for (const auto& [key, value] : report["labels"].items()) keys.push_back(key);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"nvidia.com/gfd.timestamp", "nvidia.com/vgpu.present"}));
  EXPECT_EQ(report["labels"]["nvidia.com/vgpu.present"], "false");
  EXPECT_NE(report["warnings"].dump().find("no GPUs on this node"), std::string::npos);
}

}  // namespace
}  // namespace gpuslice::compat
