#include <dlfcn.h>
#include <gtest/gtest.h>

#include <ostream>
#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "core/sharing_config.h"

namespace gpuslice {
namespace {

using testing_support::RunCli;

const std::string kRoot = GPUSLICE_SOURCE_DIR;
const std::string kA100 = "sim:" + kRoot + "/fixtures/nodes/a100-40gb-8x.yaml";
const std::string kTimeSlicing4 = kRoot + "/fixtures/configs/time-slicing-4.yaml";

TEST(InventoryCommandTest, TimeSlicingOnA100AdvertisesThirtyTwoSharedGpus) {
  auto r = RunCli({"inventory", "--backend", kA100, "--config", kTimeSlicing4, "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json report = nlohmann::json::parse(r.out);
  ASSERT_EQ(report["gpus"].size(), 8u);
  ASSERT_EQ(report["resources"].size(), 1u);
  EXPECT_EQ(report["resources"][0]["name"], "nvidia.com/gpu");
  EXPECT_EQ(report["resources"][0]["count"], 32);
  EXPECT_EQ(report["resources"][0]["deviceIDs"].size(), 32u);
  EXPECT_EQ(report["labels"]["nvidia.com/gpu.product"], "NVIDIA-A100-SXM4-40GB-SHARED");
  EXPECT_EQ(report["labels"]["nvidia.com/gpu.replicas"], "4");
  EXPECT_EQ(report["gpus"][7]["migDevices"].size(), 4u);
}

TEST(InventoryCommandTest, TableShowsGpusResourcesAndLabels) {
  auto r = RunCli({"inventory", "--backend", kA100, "--config", kTimeSlicing4});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("GPUs (8)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nvidia.com/gpu"), std::string::npos);
  EXPECT_NE(r.out.find("32    devices"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nvidia.com/gpu.product=NVIDIA-A100-SXM4-40GB-SHARED"), std::string::npos);
  EXPECT_NE(r.out.find("MIG 3g.20gb"), std::string::npos);
}

TEST(InventoryCommandTest, YamlOutputParsesAndAgreesWithJson) {
  const std::string node = "sim:" + kRoot + "/fixtures/nodes/mixed.yaml";
  const std::string config = kRoot + "/fixtures/configs/mig-mixed.yaml";
  auto json_run = RunCli({"inventory", "--backend", node, "--config", config, "-o", "json"});
  auto yaml_run = RunCli({"inventory", "--backend", node, "--config", config, "-o", "yaml"});
  ASSERT_EQ(json_run.exit_code, 0) << json_run.err;
  ASSERT_EQ(yaml_run.exit_code, 0) << yaml_run.err;
  nlohmann::json j = nlohmann::json::parse(json_run.out);
  YAML::Node y = YAML::Load(yaml_run.out);
  ASSERT_EQ(y["resources"].size(), j["resources"].size());
  for (std::size_t i = 0; i < j["resources"].size(); ++i) {
    EXPECT_EQ(y["resources"][i]["name"].as<std::string>(), j["resources"][i]["name"]);
    EXPECT_EQ(y["resources"][i]["count"].as<std::size_t>(), j["resources"][i]["count"]);
  }
  EXPECT_EQ(y["labels"]["nvidia.com/mig.strategy"].as<std::string>(), "mixed");
}

TEST(InventoryCommandTest, ShowDeviceIdsListsReplicaIds) {
  auto r = RunCli({"inventory", "--backend", kA100, "--config", kTimeSlicing4, "--show-device-ids"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("::3\n"), std::string::npos);
}

TEST(InventoryCommandTest, WithoutADriverNvmlSaysSoPlainly) {
  if (void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(nvml);
    GTEST_SKIP() << "an NVIDIA driver is installed here";
  }
  auto r = RunCli({"inventory", "--backend", "nvml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("NVML is not available: cannot load libnvidia-ml.so.1"), std::string::npos)
      << r.err;
}

struct BadInvocation {
  std::string name;
  std::vector<std::string> args;
  std::string expected_stderr;
  // CTest shows the row name rather than the struct's bytes.
  friend void PrintTo(const BadInvocation& c, std::ostream* os) { *os << c.name; }
};

class InventoryBadInputTest : public testing::TestWithParam<BadInvocation> {};

TEST_P(InventoryBadInputTest, ExitsNonZeroWithAClearMessage) {
  auto r = RunCli(GetParam().args);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(GetParam().expected_stderr), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, InventoryBadInputTest,
    testing::Values(
        BadInvocation{"UnknownBackend", {"inventory", "--backend", "cuda"},
                      "unknown backend \"cuda\"; accepted: nvml, sim:"},
        BadInvocation{"MissingNodeFile", {"inventory", "--backend", "sim:/nonexistent.yaml"},
                      "/nonexistent.yaml: cannot be opened"},
        BadInvocation{"MissingConfig",
                      {"inventory", "--backend", kA100, "--config", "/nonexistent-config.yaml"},
                      "/nonexistent-config.yaml"},
        BadInvocation{"BadOutputFormat", {"inventory", "--backend", kA100, "-o", "xml"}, "xml"},
        BadInvocation{"MalformedNode",
                      {"inventory", "--backend",
                       "sim:" + kRoot + "/fixtures/configs/time-slicing-4.yaml"},
                      "unknown field"}),
    [](const testing::TestParamInfo<BadInvocation>& p) { return p.param.name; });

// --show-config prints the configuration in force with every default spelt out, and it loads
// back as the same configuration.
TEST(InventoryCommandTest, ShowConfigPrintsTheEffectiveDefaultedConfig) {
  const std::string mps = kRoot + "/fixtures/configs/mps-4.yaml";
  auto r = RunCli({"inventory", "--config", mps, "--show-config"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* line : {"migStrategy: none", "failRequestsGreaterThanOne: true",
                           "sharedDevicesAllocationPolicy: distributed", "sleepInterval: 60s",
                           "devices: all"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  }
  Result<SharingConfig> printed = ParseSharingConfig(r.out, "show-config");
  ASSERT_TRUE(printed.ok()) << printed.status().ToString();
  Result<SharingConfig> file = LoadSharingConfigFile(mps);
  ASSERT_TRUE(file.ok());
  printed->mps->resources[0].source_line = file->mps->resources[0].source_line;
  EXPECT_EQ(*printed, *file);

  auto defaults = RunCli({"inventory", "--show-config"});
  ASSERT_EQ(defaults.exit_code, 0) << defaults.err;
  EXPECT_EQ(defaults.out, FormatSharingConfig(DefaultSharingConfig()));
}

TEST(InventoryCommandTest, ShowConfigOfABrokenFileSaysWhy) {
  auto r = RunCli({"inventory", "--config", kRoot + "/fixtures/configs/invalid/wrong-version.yaml",
                   "--show-config"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("version: unknown value \"v2\""), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gpuslice
