#include "core/sharing_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "device_selectors.h"

namespace gpuslice {
namespace {

namespace fs = std::filesystem;

const std::string kConfigDir = std::string(GPUSLICE_SOURCE_DIR) + "/fixtures/configs";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> FixtureNames(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Source lines differ after re-formatting; everything else must survive a round trip.
SharingConfig WithoutLines(SharingConfig config) {
  for (auto* shared : {&config.time_slicing, &config.mps}) {
    if (!shared->has_value()) continue;
    for (ReplicatedResource& r : (*shared)->resources) r.source_line = 0;
  }
  return config;
}

using test_support::Count;
using test_support::List;

const char kTsHeader[] = "version: v1\nsharing:\n  timeSlicing:\n    resources:\n";  // 4 lines

std::string TimeSlicing(const std::string& entries) { return kTsHeader + entries; }

// --- Valid configurations: NVIDIA's documented examples and gpuslice's extensions ---

struct ValidCase {
  std::string name;
  std::string yaml;
  std::function<void(const SharingConfig&)> check;
};

void PrintTo(const ValidCase& c, std::ostream* os) { *os << c.name; }

class ValidConfigTest : public testing::TestWithParam<ValidCase> {};

TEST_P(ValidConfigTest, Parses) {
  const ValidCase& c = GetParam();
  Result<SharingConfig> config = ParseSharingConfig(c.yaml, c.name + ".yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  c.check(*config);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ValidConfigTest,
    testing::Values(
        ValidCase{"VersionOnlyIsTheDefault", "version: v1\n",
                  [](const SharingConfig& c) {
                    EXPECT_EQ(c, DefaultSharingConfig());
                    EXPECT_EQ(c.sharing_strategy(), SharingStrategy::kNone);
                    EXPECT_EQ(c.replicated(), nullptr);
                    EXPECT_TRUE(c.flags.fail_on_init_error);
                    EXPECT_EQ(c.flags.plugin.device_list_strategies,
                              std::vector<DeviceListStrategy>{DeviceListStrategy::kEnvvar});
                  }},
        ValidCase{"VersionOmittedIsV1LikeNvidia", "flags:\n  migStrategy: mixed\n",
                  [](const SharingConfig& c) {
                    EXPECT_EQ(c.version, "v1");
                    EXPECT_EQ(c.flags.mig_strategy, MigStrategy::kMixed);
                  }},
        ValidCase{"NvidiaTimeSlicing4Replicas",
                  R"(version: v1
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      replicas: 4
)",
                  [](const SharingConfig& c) {
                    ASSERT_EQ(c.sharing_strategy(), SharingStrategy::kTimeSlicing);
                    const ReplicatedResources& ts = *c.replicated();
                    EXPECT_FALSE(ts.rename_by_default);
                    EXPECT_FALSE(ts.fail_requests_greater_than_one);
                    ASSERT_EQ(ts.resources.size(), 1u);
                    EXPECT_EQ(ts.resources[0].name, "nvidia.com/gpu");
                    EXPECT_EQ(ts.resources[0].replicas, 4);
                    EXPECT_EQ(ts.resources[0].devices, DeviceSelector::All());
                    EXPECT_EQ(ts.resources[0].rename, "");
                    EXPECT_EQ(ts.resources[0].source_line, 5);
                  }},
        ValidCase{"NvidiaRenameByDefaultAndFailRequests",
                  R"(version: v1
sharing:
  timeSlicing:
    renameByDefault: true
    failRequestsGreaterThanOne: true
    resources:
    - name: nvidia.com/gpu
      replicas: 10
)",
                  [](const SharingConfig& c) {
                    const ReplicatedResources& ts = *c.replicated();
                    EXPECT_TRUE(ts.rename_by_default);
                    EXPECT_TRUE(ts.fail_requests_greater_than_one);
                    EXPECT_EQ(ts.resources.at(0).replicas, 10);
                  }},
        ValidCase{"NvidiaMigSingleWithTimeSlicing",
                  R"(version: v1
flags:
  migStrategy: single
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      replicas: 8
)",
                  [](const SharingConfig& c) {
                    EXPECT_EQ(c.flags.mig_strategy, MigStrategy::kSingle);
                    EXPECT_EQ(c.replicated()->resources.at(0).replicas, 8);
                  }},
        ValidCase{"NvidiaMigMixedWithTimeSlicing",
                  R"(version: v1
flags:
  migStrategy: mixed
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      replicas: 2
    - name: nvidia.com/mig-1g.5gb
      replicas: 2
    - name: nvidia.com/mig-3g.20gb
      replicas: 3
)",
                  [](const SharingConfig& c) {
                    EXPECT_EQ(c.flags.mig_strategy, MigStrategy::kMixed);
                    const auto& r = c.replicated()->resources;
                    ASSERT_EQ(r.size(), 3u);
                    EXPECT_EQ(r[1].name, "nvidia.com/mig-1g.5gb");
                    EXPECT_EQ(r[2].replicas, 3);
                    EXPECT_EQ(r[2].source_line, 11);
                  }},
        ValidCase{"NvidiaMps",
                  R"(version: v1
sharing:
  mps:
    resources:
    - name: nvidia.com/gpu
      replicas: 10
)",
                  [](const SharingConfig& c) {
                    ASSERT_EQ(c.sharing_strategy(), SharingStrategy::kMps);
                    EXPECT_FALSE(c.time_slicing.has_value());
                    // NVIDIA's default for MPS: one replica per request.
                    EXPECT_TRUE(c.replicated()->fail_requests_greater_than_one);
                    EXPECT_EQ(c.replicated()->resources.at(0).replicas, 10);
                  }},
        ValidCase{"MpsMayAllowRequestsGreaterThanOne",
                  R"(version: v1
sharing:
  mps:
    failRequestsGreaterThanOne: false
    resources:
    - name: nvidia.com/gpu
      replicas: 2
)",
                  [](const SharingConfig& c) {
                    EXPECT_FALSE(c.replicated()->fail_requests_greater_than_one);
                  }},
        ValidCase{"NvidiaFlagsWithQuotedStrings",
                  R"(version: v1
flags:
  migStrategy: "none"
  failOnInitError: false
  nvidiaDriverRoot: "/run/nvidia/driver"
  plugin:
    passDeviceSpecs: yes
    deviceListStrategy: volume-mounts
    deviceIDStrategy: index
)",
                  [](const SharingConfig& c) {
                    EXPECT_FALSE(c.flags.fail_on_init_error);
                    EXPECT_EQ(c.flags.nvidia_driver_root, "/run/nvidia/driver");
                    EXPECT_TRUE(c.flags.plugin.pass_device_specs);
                    EXPECT_EQ(c.flags.plugin.device_list_strategies,
                              std::vector<DeviceListStrategy>{DeviceListStrategy::kVolumeMounts});
                    EXPECT_EQ(c.flags.plugin.device_id_strategy, DeviceIdStrategy::kIndex);
                  }},
        ValidCase{"DeviceListStrategyAsListKeepsOrderDropsRepeats",
                  R"(version: v1
flags:
  plugin:
    deviceListStrategy: [cdi-cri, envvar, cdi-cri, cdi-annotations]
)",
                  [](const SharingConfig& c) {
                    EXPECT_EQ(c.flags.plugin.device_list_strategies,
                              (std::vector<DeviceListStrategy>{
                                  DeviceListStrategy::kCdiCri, DeviceListStrategy::kEnvvar,
                                  DeviceListStrategy::kCdiAnnotations}));
                  }},
        ValidCase{"NullValuesKeepDefaults",
                  R"(version: v1
flags:
  migStrategy:
  plugin:
gpuslice:
)",
                  [](const SharingConfig& c) { EXPECT_EQ(c, DefaultSharingConfig()); }},
        ValidCase{"NameWithoutPrefixGetsNvidiaPrefix",
                  R"(version: v1
sharing:
  timeSlicing:
    resources:
    - name: gpu
      rename: gpu.small
      replicas: 2
)",
                  [](const SharingConfig& c) {
                    EXPECT_EQ(c.replicated()->resources.at(0).name, "nvidia.com/gpu");
                    EXPECT_EQ(c.replicated()->resources.at(0).rename, "nvidia.com/gpu.small");
                  }},
        ValidCase{
            "PerGpuReplicaCounts",
            R"(version: v1
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      devices: [0, "1", 002]
      replicas: 2
    - name: nvidia.com/gpu
      devices: [3, GPU-b1028956-cfa2-0990-bf4a-5da9abb51763]
      replicas: 4
)",
            [](const SharingConfig& c) {
              const auto& r = c.replicated()->resources;
              ASSERT_EQ(r.size(), 2u);
              EXPECT_EQ(r[0].devices, List({"0", "1", "2"}));  // "002" is GPU 2
              EXPECT_EQ(r[0].replicas, 2);
              EXPECT_EQ(r[1].devices, List({"3", "GPU-b1028956-cfa2-0990-bf4a-5da9abb51763"}));
              EXPECT_EQ(r[1].replicas, 4);
            }},
        ValidCase{"DeviceReferencesOfEveryKind",
                  R"(version: v1
flags:
  migStrategy: single
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      devices:
      - 0
      - "1:0"
      - GPU-b1028956-cfa2-0990-bf4a-5da9abb51763
      - MIG-b1028956-cfa2-0990-bf4a-5da9abb51763
      - MIG-GPU-c1028956-cfa2-0990-bf4a-5da9abb51763/3/0
      replicas: 2
)",
                  [](const SharingConfig& c) {
                    const DeviceSelector& d = c.replicated()->resources.at(0).devices;
                    EXPECT_EQ(d, List({"0", "1:0", "GPU-b1028956-cfa2-0990-bf4a-5da9abb51763",
                                       "MIG-b1028956-cfa2-0990-bf4a-5da9abb51763",
                                       "MIG-GPU-c1028956-cfa2-0990-bf4a-5da9abb51763/3/0"}));
                    EXPECT_TRUE(SelectsMigDevices(d));
                  }},
        ValidCase{"SameNameDisjointMigDevices",
                  R"(version: v1
flags:
  migStrategy: mixed
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/mig-1g.5gb
      devices: ["0:1", "0:2"]
      replicas: 2
    - name: nvidia.com/mig-1g.5gb
      devices: ["1:1"]
      replicas: 3
)",
                  [](const SharingConfig& c) {
                    EXPECT_EQ(c.replicated()->resources.at(1).devices, List({"1:1"}));
                  }},
        ValidCase{"GpusliceFractional",
                  R"(version: v1
gpuslice:
  fractional:
    enabled: true
    devices: 2
    slotsPerGpu: 1024
    compute: mps
)",
                  [](const SharingConfig& c) {
                    EXPECT_TRUE(c.gpuslice.fractional.enabled);
                    EXPECT_EQ(c.gpuslice.fractional.devices, Count(2));
                    EXPECT_EQ(c.gpuslice.fractional.slots_per_gpu, 1024);
                    EXPECT_EQ(c.gpuslice.fractional.compute, FractionalCompute::kMps);
                  }},
        ValidCase{"FractionalDefaultsToAllGpus16SlotsArbiter",
                  "version: v1\ngpuslice:\n  fractional:\n    enabled: true\n",
                  [](const SharingConfig& c) {
                    EXPECT_EQ(c.gpuslice.fractional.devices, DeviceSelector::All());
                    EXPECT_EQ(c.gpuslice.fractional.slots_per_gpu, 16);
                    EXPECT_EQ(c.gpuslice.fractional.compute, FractionalCompute::kArbiter);
                  }},
        ValidCase{"FractionalComputeArbiterSpelledOut",
                  "version: v1\ngpuslice:\n  fractional:\n    compute: arbiter\n",
                  [](const SharingConfig& c) {
                    EXPECT_EQ(c.gpuslice.fractional.compute, FractionalCompute::kArbiter);
                  }},
        ValidCase{"FractionalCountBesideListIsLeftToAdvertise",
                  R"(version: v1
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      devices: [3]
      replicas: 2
gpuslice:
  fractional:
    enabled: true
    devices: 2
)",
                  [](const SharingConfig&) {}},
        ValidCase{"DisabledFractionalMayOverlap",
                  R"(version: v1
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      replicas: 2
gpuslice:
  fractional:
    enabled: false
    devices: all
)",
                  [](const SharingConfig& c) { EXPECT_FALSE(c.gpuslice.fractional.enabled); }},
        ValidCase{
            "JsonIsYaml",
            R"({"version": "v1", "sharing": {"timeSlicing": {"resources": [
                      {"name": "nvidia.com/gpu", "replicas": 3}]}}})",
            [](const SharingConfig& c) { EXPECT_EQ(c.replicated()->resources.at(0).replicas, 3); }},
        ValidCase{"Utf8WithByteOrderMark",
                  "\xef\xbb\xbfversion: v1\nflags:\n  nvidiaDriverRoot: /opt/pil\xc3\xb6te\n",
                  [](const SharingConfig& c) {
                    EXPECT_EQ(c.flags.nvidia_driver_root, "/opt/pil\xc3\xb6te");
                  }},
        ValidCase{"TrailingDocumentMarkerIsIgnored", "version: v1\n---\n",
                  [](const SharingConfig&) {}}),
    [](const testing::TestParamInfo<ValidCase>& p) { return p.param.name; });

// --- Every bundled fixture parses, and survives a round trip through FormatSharingConfig ---

class ConfigFixtureTest : public testing::TestWithParam<std::string> {};

TEST_P(ConfigFixtureTest, ParsesAndRoundTrips) {
  const std::string path = kConfigDir + "/" + GetParam();
  Result<SharingConfig> config = LoadSharingConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const std::string formatted = FormatSharingConfig(*config);
  Result<SharingConfig> again = ParseSharingConfig(formatted, "formatted");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << formatted;
  EXPECT_EQ(WithoutLines(*again), WithoutLines(*config)) << formatted;
  // Formatting is stable.
  EXPECT_EQ(FormatSharingConfig(*again), formatted);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ConfigFixtureTest, testing::ValuesIn(FixtureNames(kConfigDir)),
                         [](const testing::TestParamInfo<std::string>& p) {
                           std::string name = p.param.substr(0, p.param.size() - 5);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(ConfigFixtureContentTest, FixtureFolderHoldsTheDocumentedExamples) {
  const std::vector<std::string> names = FixtureNames(kConfigDir);
  for (const char* expected :
       {"time-slicing-4.yaml", "time-slicing-rename.yaml", "mig-single-time-slicing.yaml",
        "mig-mixed.yaml", "mig-mixed-time-slicing.yaml", "mps-4.yaml", "per-gpu-replicas.yaml",
        "fractional.yaml"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
}

TEST(ConfigFixtureContentTest, PerGpuReplicasFixtureGivesEachGroupItsCount) {
  Result<SharingConfig> config = LoadSharingConfigFile(kConfigDir + "/per-gpu-replicas.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const auto& r = config->replicated()->resources;
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].devices, List({"0", "1", "2", "3"}));
  EXPECT_EQ(r[0].replicas, 2);
  EXPECT_EQ(r[1].devices, List({"4", "5"}));
  EXPECT_EQ(r[1].replicas, 4);
  EXPECT_EQ(r[2].devices, List({"GPU-a1b2c3d4-0000-1111-2222-333344445555"}));
  EXPECT_EQ(r[2].replicas, 8);
}

TEST(ConfigFixtureContentTest, FullFlagsFixtureSetsEveryFlag) {
  Result<SharingConfig> config = LoadSharingConfigFile(kConfigDir + "/full-flags.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const Flags& f = config->flags;
  EXPECT_EQ(f.nvidia_driver_root, "/run/nvidia/driver");
  EXPECT_EQ(f.mps_root, "/run/nvidia/mps");
  EXPECT_TRUE(f.plugin.pass_device_specs);
  EXPECT_EQ(f.plugin.device_list_strategies,
            (std::vector<DeviceListStrategy>{DeviceListStrategy::kEnvvar,
                                             DeviceListStrategy::kCdiAnnotations}));
  EXPECT_EQ(f.plugin.nvidia_ctk_path, "/usr/local/nvidia/toolkit/nvidia-ctk");
  EXPECT_TRUE(f.gfd.no_timestamp);
  EXPECT_EQ(f.gfd.sleep_interval, "30s");
  EXPECT_EQ(config->imex.channel_ids, std::vector<int>{0});
  EXPECT_TRUE(config->imex.required);
}

TEST(ConfigFixtureContentTest, ResourcesRenamedFixtureStoresNamesWithoutPrefix) {
  Result<SharingConfig> config = LoadSharingConfigFile(kConfigDir + "/resources-renamed.yaml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_EQ(config->gpu_resources.size(), 2u);
  EXPECT_EQ(config->gpu_resources[0].pattern, "*A100*");
  EXPECT_EQ(config->gpu_resources[0].name, "a100");
  ASSERT_EQ(config->mig_resources.size(), 2u);
  EXPECT_EQ(config->mig_resources[0].name, "mig-small");
  EXPECT_EQ(config->replicated()->resources.at(1).name, "nvidia.com/mig-small");
}

TEST(SharingConfigTest, DefaultConfigRoundTrips) {
  const SharingConfig config = DefaultSharingConfig();
  Result<SharingConfig> again = ParseSharingConfig(FormatSharingConfig(config));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, config);
}

TEST(SharingConfigTest, NamesMatchTheFileFormat) {
  EXPECT_EQ(MigStrategyName(MigStrategy::kNone), "none");
  EXPECT_EQ(MigStrategyName(MigStrategy::kSingle), "single");
  EXPECT_EQ(MigStrategyName(MigStrategy::kMixed), "mixed");
  EXPECT_EQ(DeviceListStrategyName(DeviceListStrategy::kEnvvar), "envvar");
  EXPECT_EQ(DeviceListStrategyName(DeviceListStrategy::kVolumeMounts), "volume-mounts");
  EXPECT_EQ(DeviceListStrategyName(DeviceListStrategy::kCdiAnnotations), "cdi-annotations");
  EXPECT_EQ(DeviceListStrategyName(DeviceListStrategy::kCdiCri), "cdi-cri");
  EXPECT_EQ(DeviceIdStrategyName(DeviceIdStrategy::kUuid), "uuid");
  EXPECT_EQ(DeviceIdStrategyName(DeviceIdStrategy::kIndex), "index");
  EXPECT_EQ(SharingStrategyName(SharingStrategy::kNone), "none");
  EXPECT_EQ(SharingStrategyName(SharingStrategy::kTimeSlicing), "time-slicing");
  EXPECT_EQ(SharingStrategyName(SharingStrategy::kMps), "mps");
  // Each name parses back to its value.
  for (MigStrategy s : {MigStrategy::kNone, MigStrategy::kSingle, MigStrategy::kMixed}) {
    auto c = ParseSharingConfig(
        "version: v1\nflags:\n  migStrategy: " + std::string(MigStrategyName(s)) + "\n");
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(c->flags.mig_strategy, s);
  }
}

TEST(SharingConfigTest, MissingFileIsUnavailable) {
  Result<SharingConfig> config = LoadSharingConfigFile(kConfigDir + "/no-such-file.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(config.status().message(), testing::HasSubstr("no-such-file.yaml"));
}

// --- Malformed input: each row gives the exact message a user sees ---

// --- Files NVIDIA's plugin loads (sharing nothing where they match nothing): gpuslice loads them
// too; the node agent warns per node (see advertised_resources_test.cc) ---

struct AcceptedCase {
  std::string name;
  std::string yaml;
};

void PrintTo(const AcceptedCase& c, std::ostream* os) { *os << c.name; }

class AcceptedAsNvidiaTest : public testing::TestWithParam<AcceptedCase> {};

TEST_P(AcceptedAsNvidiaTest, Loads) {
  Result<SharingConfig> config = ParseSharingConfig(GetParam().yaml, "x.yaml");
  EXPECT_TRUE(config.ok()) << config.status().ToString();
}

INSTANTIATE_TEST_SUITE_P(
    Table, AcceptedAsNvidiaTest,
    testing::Values(
        AcceptedCase{"NameUnknown",
                     TimeSlicing("    - name: nvidia.com/gpus\n      replicas: 2\n")},
        AcceptedCase{"NameWithoutPrefix", TimeSlicing("    - name: valid\n      replicas: 2\n")},
        AcceptedCase{"NameNotInRenamedResources",
                     "version: v1\nresources:\n  gpus:\n  - pattern: '*A100*'\n    name: a100\n"
                     "sharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n"
                     "      replicas: 2\n"},
        AcceptedCase{"MigResourceWithStrategyNone",
                     TimeSlicing("    - name: nvidia.com/mig-1g.5gb\n      replicas: 2\n")},
        AcceptedCase{"RenameToExistingResource",
                     "version: v1\nflags:\n  migStrategy: mixed\nsharing:\n  timeSlicing:\n"
                     "    resources:\n    - name: nvidia.com/mig-1g.5gb\n      rename: "
                     "nvidia.com/gpu\n      replicas: 2\n"},
        AcceptedCase{"RenameToSharedMigName",
                     "version: v1\nflags:\n  migStrategy: mixed\nsharing:\n  timeSlicing:\n"
                     "    resources:\n    - name: nvidia.com/mig-1g.5gb\n      rename: "
                     "nvidia.com/mig-1g.5gb.shared\n      replicas: 2\n"},
        AcceptedCase{"TwoResourcesRenamedAlike",
                     "version: v1\nflags:\n  migStrategy: mixed\nsharing:\n  timeSlicing:\n"
                     "    resources:\n    - name: nvidia.com/gpu\n      rename: nvidia.com/shared\n"
                     "      replicas: 2\n    - name: nvidia.com/mig-1g.5gb\n      rename: "
                     "nvidia.com/shared\n      replicas: 2\n"},
        AcceptedCase{"MigIndexForFullGpus",
                     TimeSlicing("    - name: nvidia.com/gpu\n      devices: [\"0:1\"]\n"
                                 "      replicas: 2\n")},
        AcceptedCase{"MixedMigAndGpuReferencesUnderNone",
                     TimeSlicing("    - name: nvidia.com/gpu\n      devices: [0, \"0:0\", "
                                 "\"MIG-GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c/0/0\"]\n"
                                 "      replicas: 2\n")},
        AcceptedCase{"MpsOfMigDevice",
                     "version: v1\nsharing:\n  mps:\n    resources:\n    - name: nvidia.com/gpu\n"
                     "      devices: [\"0:0\"]\n      replicas: 2\n"},
        AcceptedCase{"MpsEmptyMeansNoMps", "version: v1\nsharing:\n  mps:\n"},
        AcceptedCase{"SleepIntervalNanoseconds",
                     "version: v1\nflags:\n  gfd:\n    sleepInterval: 60\n"},
        AcceptedCase{"SleepIntervalInfinite",
                     "version: v1\nflags:\n  gfd:\n    sleepInterval: infinite\n"},
        AcceptedCase{
            "SharedDevicesAllocationPolicyPacked",
            "version: v1\nflags:\n  plugin:\n    sharedDevicesAllocationPolicy: packed\n"}),
    [](const testing::TestParamInfo<AcceptedCase>& p) { return p.param.name; });

struct InvalidCase {
  std::string name;
  std::string yaml;
  std::string message;  // full message, source "x.yaml"
};

void PrintTo(const InvalidCase& c, std::ostream* os) { *os << c.name; }

class InvalidConfigTest : public testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidConfigTest, IsRejectedWithMessage) {
  const InvalidCase& c = GetParam();
  Result<SharingConfig> config = ParseSharingConfig(c.yaml, "x.yaml");
  ASSERT_FALSE(config.ok()) << "accepted:\n" << c.yaml;
  EXPECT_EQ(config.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(), c.message);
}

INSTANTIATE_TEST_SUITE_P(
    Table, InvalidConfigTest,
    testing::Values(
        // Document level.
        InvalidCase{"Empty", "",
                    "x.yaml: the configuration is empty; it needs at least \"version: v1\""},
        InvalidCase{"OnlyComments", "# nothing here\n",
                    "x.yaml: the configuration is empty; it needs at least \"version: v1\""},
        InvalidCase{"NotAMap", "just text\n",
                    "x.yaml:1: the configuration must be a map of fields (version, flags, "
                    "resources, sharing, imex, gpuslice), got \"just text\""},
        InvalidCase{"SyntaxError", "version: v1\nflags: [\n",
                    "x.yaml:3: YAML syntax error: end of sequence flow not found"},
        InvalidCase{"BadIndentation", "version: v1\nflags:\n  migStrategy: none\n gfd: {}\n",
                    "x.yaml:4: YAML syntax error: end of map not found"},
        InvalidCase{"TwoDocuments", "version: v1\n---\nversion: v1\n",
                    "x.yaml:2: found 2 YAML documents; a configuration is a single document"},
        // Found by the fuzzer: yaml-cpp carries such bytes into values, which then do not survive
        // being written back.
        InvalidCase{"InvalidUtf8", "version: v1\nflags:\n  mpsRoot: \"/run/\xde\xdf\"\n",
                    "x.yaml:3: the configuration must be UTF-8 text; found invalid sequence "
                    "starting with 0xde at column 18"},
        InvalidCase{"ControlCharacter", std::string("version: v1\0", 12),
                    "x.yaml:1: the configuration must be UTF-8 text; found control character 0x00 "
                    "at column 12"},
        InvalidCase{"Utf16Surrogate", "version: v1\nflags:\n  mpsRoot: \xed\xa0\x80\n",
                    "x.yaml:3: the configuration must be UTF-8 text; found invalid sequence "
                    "starting with 0xed at column 12"},
        // yaml-cpp 0.7's LoadAll loops forever on these (found by the fuzzer).
        InvalidCase{"StrayComma", ",",
                    "x.yaml:1: YAML syntax error: unexpected text after the document, at column 1"},
        InvalidCase{
            "StrayCommaAfterList", "[version, v1],\n",
            "x.yaml:1: YAML syntax error: unexpected text after the document, at column 14"},
        InvalidCase{"StrayCommaInSecondDocument", "version: v1\n---\n,\n",
                    "x.yaml:3: YAML syntax error: unexpected text after the document, at column 1"},
        InvalidCase{"VersionWrong", "version: v2\n",
                    "x.yaml:1: version: unknown value \"v2\"; accepted: v1"},
        InvalidCase{"VersionNotAString", "version: [v1]\n",
                    "x.yaml:1: version: must be one of v1, got a list"},
        InvalidCase{"UnknownTopLevelField", "version: v1\nflagz: {}\n",
                    "x.yaml:2: unknown field \"flagz\"; accepted: version, flags, resources, "
                    "sharing, imex, gpuslice"},
        InvalidCase{"DuplicateKey", "version: v1\nversion: v1\n",
                    "x.yaml:2: field \"version\" appears twice (first on line 1)"},
        InvalidCase{"NonStringKey", "version: v1\n? [a, b]\n: c\n",
                    "x.yaml:2: field names must be strings, got a list"},
        // flags.
        InvalidCase{"FlagsIsAList", "version: v1\nflags: [none]\n",
                    "x.yaml:2: flags: must be a map of fields (migStrategy, failOnInitError, "
                    "restartOnDeviceUnhealthy, nvidiaDriverRoot, nvidiaDevRoot, mpsRoot, "
                    "gdsEnabled, mofedEnabled, gdrcopyEnabled, useNodeFeatureAPI, "
                    "deviceDiscoveryStrategy, plugin, gfd), got a list"},
        InvalidCase{"UnknownFlag", "version: v1\nflags:\n  migstrategy: none\n",
                    "x.yaml:3: flags: unknown field \"migstrategy\"; accepted: migStrategy, "
                    "failOnInitError, restartOnDeviceUnhealthy, nvidiaDriverRoot, nvidiaDevRoot, "
                    "mpsRoot, gdsEnabled, mofedEnabled, gdrcopyEnabled, useNodeFeatureAPI, "
                    "deviceDiscoveryStrategy, plugin, gfd"},
        InvalidCase{"MigStrategyMisspelt", "version: v1\nflags:\n  migStrategy: singel\n",
                    "x.yaml:3: flags.migStrategy: unknown value \"singel\"; accepted: none, "
                    "single, mixed"},
        InvalidCase{"FailOnInitErrorNotBool", "version: v1\nflags:\n  failOnInitError: maybe\n",
                    "x.yaml:3: flags.failOnInitError: must be true or false, got \"maybe\""},
        InvalidCase{"BoolQuoted", "version: v1\nflags:\n  gdsEnabled: \"true\"\n",
                    "x.yaml:3: flags.gdsEnabled: must be true or false, got the quoted string "
                    "\"true\"; remove the quotes"},
        InvalidCase{"DeviceDiscoveryStrategyUnknown",
                    "version: v1\nflags:\n  deviceDiscoveryStrategy: cuda\n",
                    "x.yaml:3: flags.deviceDiscoveryStrategy: unknown value \"cuda\"; accepted: "
                    "auto, nvml, tegra"},
        InvalidCase{"UnknownPluginFlag",
                    "version: v1\nflags:\n  plugin:\n    passDeviceSpec: true\n",
                    "x.yaml:4: flags.plugin: unknown field \"passDeviceSpec\"; accepted: "
                    "passDeviceSpecs, deviceListStrategy, deviceIDStrategy, cdiAnnotationPrefix, "
                    "nvidiaCTKPath, containerDriverRoot, kubeletSocket, cdiFeatureFlags, "
                    "sharedDevicesAllocationPolicy"},
        InvalidCase{"DeviceListStrategyUnknown",
                    "version: v1\nflags:\n  plugin:\n    deviceListStrategy: volume-mount\n",
                    "x.yaml:4: flags.plugin.deviceListStrategy: unknown value \"volume-mount\"; "
                    "accepted: envvar, volume-mounts, cdi-annotations, cdi-cri"},
        InvalidCase{"DeviceListStrategyUnknownInList",
                    "version: v1\nflags:\n  plugin:\n    deviceListStrategy: [envvar, cdi]\n",
                    "x.yaml:4: flags.plugin.deviceListStrategy: unknown value \"cdi\"; accepted: "
                    "envvar, volume-mounts, cdi-annotations, cdi-cri"},
        InvalidCase{"DeviceListStrategyEmptyList",
                    "version: v1\nflags:\n  plugin:\n    deviceListStrategy: []\n",
                    "x.yaml:4: flags.plugin.deviceListStrategy: must name at least one strategy; "
                    "accepted: envvar, volume-mounts, cdi-annotations, cdi-cri"},
        InvalidCase{"DeviceListStrategyMap",
                    "version: v1\nflags:\n  plugin:\n    deviceListStrategy: {envvar: true}\n",
                    "x.yaml:4: flags.plugin.deviceListStrategy: must be a string or a list of "
                    "strings, got a map"},
        InvalidCase{"DeviceIdStrategyUnknown",
                    "version: v1\nflags:\n  plugin:\n    deviceIDStrategy: serial\n",
                    "x.yaml:4: flags.plugin.deviceIDStrategy: unknown value \"serial\"; "
                    "accepted: uuid, index"},
        InvalidCase{"UnknownGfdFlag", "version: v1\nflags:\n  gfd:\n    oneShot: true\n",
                    "x.yaml:4: flags.gfd: unknown field \"oneShot\"; accepted: oneshot, "
                    "noTimestamp, sleepInterval, outputFile, machineTypeFile"},
        InvalidCase{"SleepIntervalNotADuration",
                    "version: v1\nflags:\n  gfd:\n    sleepInterval: sixty\n",
                    "x.yaml:4: flags.gfd.sleepInterval: not a duration: \"sixty\"; write a number "
                    "and a unit (ns, us, ms, s, m, h), e.g. \"60s\" or \"1m30s\", a number of "
                    "nanoseconds, or \"infinite\""},
        InvalidCase{"SharedDevicesAllocationPolicyUnknown",
                    "version: v1\nflags:\n  plugin:\n    sharedDevicesAllocationPolicy: spread\n",
                    "x.yaml:4: flags.plugin.sharedDevicesAllocationPolicy: unknown value "
                    "\"spread\"; accepted: distributed, packed"},
        InvalidCase{"TimeSlicingEmpty", "version: v1\nsharing:\n  timeSlicing:\n",
                    "x.yaml:3: sharing.timeSlicing: is empty; list the resources to share under "
                    "timeSlicing.resources, or remove the key"},
        InvalidCase{
            "DevicesEmpty",
            TimeSlicing("    - name: nvidia.com/gpu\n      devices:\n      replicas: 2\n"),
            "x.yaml:6: sharing.timeSlicing.resources[0].devices: is empty; write \"all\", a "
            "count, or a list of devices, or remove the key (it defaults to all)"},
        // resources.
        InvalidCase{"ResourcePatternMissing", "version: v1\nresources:\n  gpus:\n  - name: a100\n",
                    "x.yaml:4: resources.gpus[0].pattern: missing; every entry needs a pattern "
                    "and a name"},
        InvalidCase{"ResourceNameUppercase",
                    "version: v1\nresources:\n  gpus:\n  - pattern: '*'\n    name: A100\n",
                    "x.yaml:5: resources.gpus[0].name: invalid resource name \"A100\": after "
                    "\"nvidia.com/\" it must be lowercase letters, digits, '-' and '.', starting "
                    "and ending with a letter or digit"},
        InvalidCase{"ResourcesMigAndMigs", "version: v1\nresources:\n  mig: []\n  migs: []\n",
                    "x.yaml:4: resources: set \"mig\" (NVIDIA's name) or \"migs\", not both"},
        // sharing structure.
        InvalidCase{"BothSharingModes",
                    "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: "
                    "nvidia.com/gpu\n      replicas: 2\n  mps:\n    resources:\n    - name: "
                    "nvidia.com/gpu\n      replicas: 2\n",
                    "x.yaml:7: sharing: timeSlicing and mps cannot both be set; choose one "
                    "sharing strategy"},
        InvalidCase{"UnknownSharingMode", "version: v1\nsharing:\n  timeslicing: {}\n",
                    "x.yaml:3: sharing: unknown field \"timeslicing\"; accepted: timeSlicing, mps"},
        InvalidCase{"ResourcesMissing",
                    "version: v1\nsharing:\n  timeSlicing:\n    renameByDefault: true\n",
                    "x.yaml:4: sharing.timeSlicing.resources: missing; list at least one resource "
                    "to share"},
        InvalidCase{"ResourcesEmpty", "version: v1\nsharing:\n  timeSlicing:\n    resources: []\n",
                    "x.yaml:4: sharing.timeSlicing.resources: must be a non-empty list of {name, "
                    "replicas, devices, rename}, got a list"},
        InvalidCase{"UnknownEntryField",
                    TimeSlicing("    - name: nvidia.com/gpu\n      replica: 2\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0]: unknown field \"replica\"; "
                    "accepted: name, rename, devices, replicas"},
        InvalidCase{"NameMissing", TimeSlicing("    - replicas: 2\n"),
                    "x.yaml:5: sharing.timeSlicing.resources[0].name: missing; e.g. "
                    "nvidia.com/gpu or nvidia.com/mig-1g.5gb"},
        // replicas.
        InvalidCase{"ReplicasMissing", TimeSlicing("    - name: nvidia.com/gpu\n"),
                    "x.yaml:5: sharing.timeSlicing.resources[0].replicas: missing; must be an "
                    "integer >= 2"},
        InvalidCase{"ReplicasWord",
                    TimeSlicing("    - name: nvidia.com/gpu\n      replicas: two\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, "
                    "got \"two\""},
        InvalidCase{"ReplicasX", TimeSlicing("    - name: nvidia.com/gpu\n      replicas: \"x\"\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, "
                    "got \"x\""},
        InvalidCase{"ReplicasZero", TimeSlicing("    - name: nvidia.com/gpu\n      replicas: 0\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, "
                    "got \"0\""},
        InvalidCase{"ReplicasOne", TimeSlicing("    - name: nvidia.com/gpu\n      replicas: 1\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, "
                    "got \"1\""},
        InvalidCase{"ReplicasNegative",
                    TimeSlicing("    - name: nvidia.com/gpu\n      replicas: -3\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, "
                    "got \"-3\""},
        InvalidCase{"ReplicasFraction",
                    TimeSlicing("    - name: nvidia.com/gpu\n      replicas: 2.5\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, "
                    "got \"2.5\""},
        InvalidCase{"ReplicasQuoted",
                    TimeSlicing("    - name: nvidia.com/gpu\n      replicas: \"4\"\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, "
                    "got the quoted string \"4\"; remove the quotes"},
        InvalidCase{
            "ReplicasHuge",
            TimeSlicing("    - name: nvidia.com/gpu\n      replicas: 99999999999999999999\n"),
            "x.yaml:6: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, "
            "got \"99999999999999999999\""},
        InvalidCase{"MpsReplicasOne",
                    "version: v1\nsharing:\n  mps:\n    resources:\n    - name: nvidia.com/gpu\n"
                    "      replicas: 1\n",
                    "x.yaml:6: sharing.mps.resources[0].replicas: must be an integer >= 2, got "
                    "\"1\""},
        // Resource names.
        InvalidCase{"NameOtherVendor", TimeSlicing("    - name: amd.com/gpu\n      replicas: 2\n"),
                    "x.yaml:5: sharing.timeSlicing.resources[0].name: resource name "
                    "\"amd.com/gpu\" must start with \"nvidia.com/\" or have no prefix (\"gpu\" "
                    "means \"nvidia.com/gpu\")"},
        InvalidCase{
            "NameTooLong",
            TimeSlicing("    - name: nvidia.com/gpu\n      rename: "
                        "nvidia.com/a-very-long-resource-name-that-goes-on-and-on-and-on-x\n"
                        "      replicas: 2\n"),
            "x.yaml:6: sharing.timeSlicing.resources[0].rename: resource name "
            "\"nvidia.com/a-very-long-resource-name-that-goes-on-and-on-and-on-x\" is longer "
            "than 63 characters"},
        // devices.
        InvalidCase{
            "DevicesUnknownWord",
            TimeSlicing("    - name: nvidia.com/gpu\n      devices: some\n      replicas: 2\n"),
            "x.yaml:6: sharing.timeSlicing.resources[0].devices: unknown value \"some\"; "
            "accepted: \"all\", a count > 0, or a list of GPU indices (0), MIG indices "
            "(\"0:1\"), GPU UUIDs (\"GPU-<uuid>\") or MIG UUIDs (\"MIG-<uuid>\")"},
        InvalidCase{
            "DevicesCountZero",
            TimeSlicing("    - name: nvidia.com/gpu\n      devices: 0\n      replicas: 2\n"),
            "x.yaml:6: sharing.timeSlicing.resources[0].devices: a count of devices must "
            "be > 0, got \"0\""},
        InvalidCase{"DevicesCountTooLarge",
                    TimeSlicing("    - name: nvidia.com/gpu\n      devices: 2147483648\n"
                                "      replicas: 2\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].devices: a count of devices must "
                    "be at most 2147483647, got \"2147483648\""},
        InvalidCase{"ReplicasTwoSigns",
                    TimeSlicing("    - name: nvidia.com/gpu\n      replicas: +-5\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, "
                    "got \"+-5\""},
        InvalidCase{"DevicesBadId",
                    TimeSlicing("    - name: nvidia.com/gpu\n      devices: [0, gpu1]\n"
                                "      replicas: 2\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].devices[1]: not a GPU index, MIG "
                    "index (\"<gpu>:<mig>\"), GPU UUID (\"GPU-<uuid>\") or MIG UUID "
                    "(\"MIG-<uuid>\"): \"gpu1\""},
        InvalidCase{
            "DevicesNegativeIndex",
            TimeSlicing("    - name: nvidia.com/gpu\n      devices: [-1]\n      replicas: 2\n"),
            "x.yaml:6: sharing.timeSlicing.resources[0].devices[0]: not a GPU index, MIG "
            "index (\"<gpu>:<mig>\"), GPU UUID (\"GPU-<uuid>\") or MIG UUID "
            "(\"MIG-<uuid>\"): \"-1\""},
        InvalidCase{"DevicesShortUuid",
                    TimeSlicing("    - name: nvidia.com/gpu\n      devices: [GPU-1234]\n"
                                "      replicas: 2\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].devices[0]: not a GPU index, MIG "
                    "index (\"<gpu>:<mig>\"), GPU UUID (\"GPU-<uuid>\") or MIG UUID "
                    "(\"MIG-<uuid>\"): \"GPU-1234\""},
        InvalidCase{"DevicesRepeated",
                    TimeSlicing("    - name: nvidia.com/gpu\n      devices: [1, \"01\"]\n"
                                "      replicas: 2\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].devices[1]: device \"1\" is "
                    "listed twice"},
        InvalidCase{
            "DevicesEmptyList",
            TimeSlicing("    - name: nvidia.com/gpu\n      devices: []\n      replicas: 2\n"),
            "x.yaml:6: sharing.timeSlicing.resources[0].devices: an empty list selects no "
            "device; accepted: \"all\", a count > 0, or a list of GPU indices (0), MIG "
            "indices (\"0:1\"), GPU UUIDs (\"GPU-<uuid>\") or MIG UUIDs (\"MIG-<uuid>\")"},
        InvalidCase{"DevicesMap",
                    TimeSlicing("    - name: nvidia.com/gpu\n      devices: {gpu: 0}\n"
                                "      replicas: 2\n"),
                    "x.yaml:6: sharing.timeSlicing.resources[0].devices: got a map; accepted: "
                    "\"all\", a count > 0, or a list of GPU indices (0), MIG indices (\"0:1\"), "
                    "GPU UUIDs (\"GPU-<uuid>\") or MIG UUIDs (\"MIG-<uuid>\")"},
        InvalidCase{
            "OverlappingLists",
            TimeSlicing("    - name: nvidia.com/gpu\n      devices: [0, 1]\n      replicas: 2\n"
                        "    - name: nvidia.com/gpu\n      devices: [1, 2]\n      replicas: 4\n"),
            "x.yaml:9: sharing.timeSlicing.resources[1].devices: overlaps "
            "sharing.timeSlicing.resources[0].devices (line 5) for \"nvidia.com/gpu\": "
            "both select \"1\"; entries for one resource must select disjoint devices"},
        InvalidCase{
            "OverlappingAllAndList",
            TimeSlicing("    - name: nvidia.com/gpu\n      replicas: 2\n"
                        "    - name: nvidia.com/gpu\n      devices: [3]\n      replicas: 4\n"),
            "x.yaml:8: sharing.timeSlicing.resources[1].devices: overlaps "
            "sharing.timeSlicing.resources[0].devices (line 5) for \"nvidia.com/gpu\": "
            "\"all\" selects every device; entries for one resource must select disjoint "
            "devices"},
        InvalidCase{"OverlappingGpuAndItsMigDevice",
                    "version: v1\nflags:\n  migStrategy: mixed\nsharing:\n  timeSlicing:\n"
                    "    resources:\n    - name: nvidia.com/mig-1g.5gb\n      devices: [0]\n"
                    "      replicas: 2\n    - name: nvidia.com/mig-1g.5gb\n"
                    "      devices: [\"0:3\"]\n      replicas: 3\n",
                    "x.yaml:11: sharing.timeSlicing.resources[1].devices: overlaps "
                    "sharing.timeSlicing.resources[0].devices (line 7) for "
                    "\"nvidia.com/mig-1g.5gb\": \"0\" includes MIG device \"0:3\"; entries for one "
                    "resource must select disjoint devices"},
        InvalidCase{
            "OverlappingCounts",
            TimeSlicing("    - name: nvidia.com/gpu\n      devices: 2\n      replicas: 2\n"
                        "    - name: nvidia.com/gpu\n      devices: 1\n      replicas: 4\n"),
            "x.yaml:9: sharing.timeSlicing.resources[1].devices: overlaps "
            "sharing.timeSlicing.resources[0].devices (line 5) for \"nvidia.com/gpu\": a "
            "count selects the first devices, which the other entry also selects or may "
            "select; entries for one resource must select disjoint devices"},
        // MPS.
        InvalidCase{"MpsWithMigMixed",
                    "version: v1\nflags:\n  migStrategy: mixed\nsharing:\n  mps:\n    resources:\n"
                    "    - name: nvidia.com/gpu\n      replicas: 2\n",
                    "x.yaml:3: flags.migStrategy: \"mixed\" is not supported with MPS "
                    "(sharing.mps); accepted with MPS: none, single"},
        // gpuslice section.
        InvalidCase{"UnknownGpusliceField", "version: v1\ngpuslice:\n  fractionl: {}\n",
                    "x.yaml:3: gpuslice: unknown field \"fractionl\"; accepted: fractional"},
        InvalidCase{"UnknownFractionalField",
                    "version: v1\ngpuslice:\n  fractional:\n    slots: 4\n",
                    "x.yaml:4: gpuslice.fractional: unknown field \"slots\"; accepted: enabled, "
                    "devices, slotsPerGpu, compute"},
        InvalidCase{"FractionalComputeUnknown",
                    "version: v1\ngpuslice:\n  fractional:\n    compute: mig\n",
                    "x.yaml:4: gpuslice.fractional.compute: unknown value \"mig\"; accepted: "
                    "arbiter, mps"},
        InvalidCase{
            "SlotsPerGpuZero",
            "version: v1\ngpuslice:\n  fractional:\n    enabled: true\n    slotsPerGpu: 0\n",
            "x.yaml:5: gpuslice.fractional.slotsPerGpu: must be an integer from 1 to 1024, "
            "got \"0\""},
        InvalidCase{"SlotsPerGpuTooMany",
                    "version: v1\ngpuslice:\n  fractional:\n    slotsPerGpu: 1025\n",
                    "x.yaml:4: gpuslice.fractional.slotsPerGpu: must be an integer from 1 to 1024, "
                    "got \"1025\""},
        InvalidCase{"FractionalEnabledNotBool",
                    "version: v1\ngpuslice:\n  fractional:\n    enabled: sometimes\n",
                    "x.yaml:4: gpuslice.fractional.enabled: must be true or false, got "
                    "\"sometimes\""},
        InvalidCase{
            "FractionalMigDevice",
            "version: v1\ngpuslice:\n  fractional:\n    enabled: true\n"
            "    devices: [0, \"1:2\"]\n",
            "x.yaml:5: gpuslice.fractional.devices[1]: fractional sharing takes whole GPUs; "
            "\"1:2\" is a MIG device"},
        InvalidCase{"FractionalAndTimeSlicingBothAll",
                    TimeSlicing("    - name: nvidia.com/gpu\n      replicas: 2\n") +
                        "gpuslice:\n  fractional:\n    enabled: true\n    devices: all\n",
                    "x.yaml:10: gpuslice.fractional.devices: overlaps "
                    "sharing.timeSlicing.resources[0].devices (line 5): both select all GPUs; a "
                    "GPU is either fractional or time-sliced"},
        InvalidCase{"FractionalAndMpsShareAGpu",
                    "version: v1\nsharing:\n  mps:\n    resources:\n    - name: nvidia.com/gpu\n"
                    "      devices: [1, 2]\n      replicas: 2\ngpuslice:\n  fractional:\n"
                    "    enabled: true\n    devices: [2, 3]\n",
                    "x.yaml:11: gpuslice.fractional.devices: overlaps "
                    "sharing.mps.resources[0].devices (line 5): both select GPU \"2\"; a GPU is "
                    "either fractional or MPS-shared"},
        // imex.
        InvalidCase{"ImexChannelNotZero", "version: v1\nimex:\n  channelIDs: [1]\n",
                    "x.yaml:3: imex.channelIDs: must be [] or [0] (the only channel NVIDIA's "
                    "plugin injects)"}),
    [](const testing::TestParamInfo<InvalidCase>& p) { return p.param.name; });

// --- The malformed fixtures under fixtures/configs/invalid ---

struct InvalidFixture {
  std::string file;
  std::string message;  // after "invalid/<file>"
};

void PrintTo(const InvalidFixture& c, std::ostream* os) { *os << c.file; }

class InvalidFixtureTest : public testing::TestWithParam<InvalidFixture> {};

TEST_P(InvalidFixtureTest, IsRejectedWithMessage) {
  const InvalidFixture& c = GetParam();
  const std::string source = "invalid/" + c.file;
  Result<SharingConfig> config = ParseSharingConfig(ReadFile(kConfigDir + "/" + source), source);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), source + c.message);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, InvalidFixtureTest,
    testing::Values(
        InvalidFixture{"bad-device-list-strategy.yaml",
                       ":4: flags.plugin.deviceListStrategy: unknown value \"cdi\"; accepted: "
                       "envvar, volume-mounts, cdi-annotations, cdi-cri"},
        InvalidFixture{"bad-mig-strategy.yaml",
                       ":3: flags.migStrategy: unknown value \"singel\"; accepted: none, single, "
                       "mixed"},
        InvalidFixture{"both-sharing-modes.yaml",
                       ":7: sharing: timeSlicing and mps cannot both be set; choose one sharing "
                       "strategy"},
        InvalidFixture{"duplicate-key.yaml",
                       ":4: flags: field \"migStrategy\" appears twice (first on line 3)"},
        InvalidFixture{"empty.yaml",
                       ": the configuration is empty; it needs at least \"version: v1\""},
        InvalidFixture{"empty-time-slicing.yaml",
                       ":4: sharing.timeSlicing: is empty; list the resources to share under "
                       "timeSlicing.resources, or remove the key"},
        InvalidFixture{"fractional-overlaps-time-slicing.yaml",
                       ":10: gpuslice.fractional.devices: overlaps "
                       "sharing.timeSlicing.resources[0].devices (line 5): both select all GPUs; "
                       "a GPU is either fractional or time-sliced"},
        InvalidFixture{"not-a-map.yaml",
                       ":1: the configuration must be a map of fields (version, flags, resources, "
                       "sharing, imex, gpuslice), got a list"},
        InvalidFixture{"overlapping-devices.yaml",
                       ":9: sharing.timeSlicing.resources[1].devices: overlaps "
                       "sharing.timeSlicing.resources[0].devices (line 5) for \"nvidia.com/gpu\": "
                       "both select \"2\"; entries for one resource must select disjoint devices"},
        InvalidFixture{"replicas-not-a-number.yaml",
                       ":6: sharing.timeSlicing.resources[0].replicas: must be an integer >= 2, "
                       "got \"two\""},
        InvalidFixture{"unknown-top-field.yaml",
                       ":2: unknown field \"flagz\"; accepted: version, flags, resources, sharing, "
                       "imex, gpuslice"},
        InvalidFixture{"wrong-version.yaml", ":1: version: unknown value \"v2\"; accepted: v1"},
        InvalidFixture{"yaml-syntax-error.yaml",
                       ":6: YAML syntax error: end of sequence flow not found"}),
    [](const testing::TestParamInfo<InvalidFixture>& p) {
      std::string name = p.param.file.substr(0, p.param.file.size() - 5);
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

TEST(InvalidFixtureListTest, EveryInvalidFixtureIsInTheTable) {
  // A new file under fixtures/configs/invalid must get a row above with its message.
  EXPECT_EQ(FixtureNames(kConfigDir + "/invalid").size(), 13u);
}

// --- Hostile input never throws or crashes ---

TEST(SharingConfigTest, HostileInputIsAnErrorNotACrash) {
  const std::vector<std::string> inputs = {
      std::string("version: v1\0flags: {}", 21),
      std::string(5000, '['),
      "version: v1\nsharing: &a\n  timeSlicing: *a\n",
      "version: &v [*v]\n",
      "version: v1\nflags: !!binary AAAA\n",
      "\xff\xfe\x00v",
      "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n"
      "      replicas: 2\n      devices: 2147483648\n",
      "%YAML 9.9\n---\nversion: v1\n",
      "version: v1\n<<: {flags: {}}\n",
  };
  for (const std::string& input : inputs) {
    Result<SharingConfig> config = ParseSharingConfig(input, "x.yaml");
    EXPECT_FALSE(config.ok()) << input.substr(0, 80);
    if (!config.ok()) {
      EXPECT_EQ(config.status().code(), ErrorCode::kInvalidArgument);
      EXPECT_THAT(config.status().message(), testing::StartsWith("x.yaml"));
    }
  }
}

TEST(SharingConfigTest, OversizedInputIsRejectedBeforeParsing) {
  const std::string big = "version: v1\n" + std::string(std::size_t{1} << 20, '#');
  Result<SharingConfig> config = ParseSharingConfig(big, "x.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), testing::HasSubstr("the limit is 1 MiB"));
}

}  // namespace
}  // namespace gpuslice
