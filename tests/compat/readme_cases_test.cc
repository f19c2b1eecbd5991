// The configuration examples of NVIDIA's README (k8s-device-plugin v0.20.0, README.md "As a
// configuration file", "With CUDA Time-Slicing", "With CUDA MPS", "Multiple Config File
// Example"), each on an 8-GPU node as the README describes, with the capacity it states.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>

#include "compat/harness.h"
#include "node_agent/config_source.h"

namespace gpuslice::compat {
namespace {

// 8 GPUs without MIG (MPS is not supported with MIG, as the README notes).
constexpr char kEightGpus[] = "gpus:\n  - model: H100-80GB\n    count: 8\n";

constexpr char kConfig0[] =
    "version: v1\nflags:\n  migStrategy: \"none\"\n  failOnInitError: true\n"
    "  nvidiaDriverRoot: \"/\"\n  plugin:\n    passDeviceSpecs: false\n"
    "    deviceListStrategy: envvar\n    deviceIDStrategy: uuid\n";
constexpr char kConfig1[] =
    "version: v1\nflags:\n  migStrategy: \"mixed\" # Only change from config0.yaml\n"
    "  failOnInitError: true\n  nvidiaDriverRoot: \"/\"\n  plugin:\n"
    "    passDeviceSpecs: false\n    deviceListStrategy: envvar\n    deviceIDStrategy: uuid\n";

struct ReadmeCase {
  const char* nvidia_case;
  const char* config;
  const char* resource;
  std::size_t capacity;
};

void PrintTo(const ReadmeCase& c, std::ostream* os) { *os << c.nvidia_case; }

class ReadmeExamples : public ::testing::TestWithParam<ReadmeCase> {};

TEST_P(ReadmeExamples, AdvertiseTheCapacityTheReadmeStates) {
  const ReadmeCase& c = GetParam();
  Result<SharingConfig> config = ParseSharingConfig(c.config, "readme.yaml");
  ASSERT_TRUE(config.ok()) << c.nvidia_case << ": " << config.status().ToString();
  Result<NodeAdvertisement> ad = AdvertiseNode(Node(kEightGpus), *config);
  ASSERT_TRUE(ad.ok()) << c.nvidia_case << ": " << ad.status().ToString();
  ASSERT_EQ(ad->resources.size(), 1u) << c.nvidia_case;
  EXPECT_EQ(ad->resources[0].name, c.resource) << c.nvidia_case;
  EXPECT_EQ(ad->resources[0].devices.size(), c.capacity) << c.nvidia_case;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, ReadmeExamples,
    ::testing::Values(
        ReadmeCase{"README.md As a configuration file", kConfig0, "nvidia.com/gpu", 8},
        ReadmeCase{"README.md Multiple Config File Example (config1, mixed)", kConfig1,
                   "nvidia.com/gpu", 8},
        ReadmeCase{"README.md With CUDA Time-Slicing (replicas: 10 -> 80)",
                   "version: v1\nsharing:\n  timeSlicing:\n    resources:\n"
                   "    - name: nvidia.com/gpu\n      replicas: 10\n",
                   "nvidia.com/gpu", 80},
        ReadmeCase{"README.md With CUDA Time-Slicing (renameByDefault -> gpu.shared: 80)",
                   "version: v1\nsharing:\n  timeSlicing:\n    renameByDefault: true\n"
                   "    resources:\n    - name: nvidia.com/gpu\n      replicas: 10\n",
                   "nvidia.com/gpu.shared", 80},
        ReadmeCase{"README.md With CUDA MPS (replicas: 10 -> 80)",
                   "version: v1\nsharing:\n  mps:\n    resources:\n    - name: nvidia.com/gpu\n"
                   "      replicas: 10\n",
                   "nvidia.com/gpu", 80},
        ReadmeCase{"README.md With CUDA MPS (renameByDefault -> gpu.shared: 80)",
                   "version: v1\nsharing:\n  mps:\n    renameByDefault: true\n    resources:\n"
                   "    - name: nvidia.com/gpu\n      replicas: 10\n",
                   "nvidia.com/gpu.shared", 80}));

// README.md "Multiple Config File Example": config0 and config1 in one ConfigMap, config0 the
// default (helm's config.default), a node label picking config1.
TEST(CompatReadme, MultipleConfigFilesWithADefaultAndANodeLabel) {
  const std::string dir = ::testing::TempDir() + "compat-readme-" + std::to_string(getpid());
  std::filesystem::create_directories(dir + "/configs");
  std::ofstream(dir + "/configs/config0") << kConfig0;
  std::ofstream(dir + "/configs/config1") << kConfig1;
  NamedConfigOptions options;
  options.directory = dir + "/configs";
  options.default_name = "config0";
  NamedConfigSource source(options, std::make_unique<FileNodeLabelSource>(dir + "/labels"));
  Result<ConfigSnapshot> chosen = source.Read();
  ASSERT_TRUE(chosen.ok()) << chosen.status().ToString();
  EXPECT_EQ(chosen->name, "config0");
  EXPECT_EQ(Config(chosen->text).flags.mig_strategy, MigStrategy::kNone);

  std::ofstream(dir + "/labels") << "nvidia.com/device-plugin.config=config1\n";
  chosen = source.Read();
  ASSERT_TRUE(chosen.ok()) << chosen.status().ToString();
  EXPECT_EQ(chosen->name, "config1");
  EXPECT_EQ(Config(chosen->text).flags.mig_strategy, MigStrategy::kMixed);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gpuslice::compat
