// NVIDIA's config tables (api/config/v1/*_test.go, v0.20.0) as gpuslice config files:
// every input goes through ParseSharingConfig / LoadSharingConfigFile / FormatSharingConfig.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "compat/harness.h"
#include "core/sharing_config.h"
#include "core/sharing_config_yaml.h"

namespace gpuslice::compat {
namespace {

namespace internal = sharing_config_internal;

// --- api/config/v1/replicas_test.go TestReplicatedDeviceRef ---

struct DeviceRefCase {
  const char* nvidia_case;
  const char* ref;
  const char* kind;  // "gpuIndex", "migIndex", "uuid"
};

void PrintTo(const DeviceRefCase& c, std::ostream* os) { *os << c.nvidia_case; }

class ReplicatedDeviceRef : public ::testing::TestWithParam<DeviceRefCase> {};

TEST_P(ReplicatedDeviceRef, ClassifiesAsNvidiaDoes) {
  const DeviceRefCase& c = GetParam();
  const std::string kind = c.kind;
  EXPECT_EQ(internal::IsGpuIndex(c.ref), kind == "gpuIndex") << c.nvidia_case;
  EXPECT_EQ(internal::IsMigIndex(c.ref), kind == "migIndex") << c.nvidia_case;
  EXPECT_EQ(internal::IsGpuUuid(c.ref) || internal::IsMigUuid(c.ref), kind == "uuid")
      << c.nvidia_case;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, ReplicatedDeviceRef,
    ::testing::Values(
        DeviceRefCase{"replicas_test.go TestReplicatedDeviceRef/test case 0", "0", "gpuIndex"},
        DeviceRefCase{"replicas_test.go TestReplicatedDeviceRef/test case 1", "0:0", "migIndex"},
        DeviceRefCase{"replicas_test.go TestReplicatedDeviceRef/test case 2",
                      "GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c", "uuid"},
        DeviceRefCase{"replicas_test.go TestReplicatedDeviceRef/test case 3",
                      "MIG-3eb87630-93d5-b2b6-b8ff-9b359caf4ee2", "uuid"},
        DeviceRefCase{"replicas_test.go TestReplicatedDeviceRef/test case 4",
                      "MIG-GPU-662077db-fa3f-0d8f-9502-21ab0ef058a2/10/0", "uuid"}));

// --- replicas_test.go TestUnmarshalReplicatedDevices: `devices:` of a time-slicing entry ---

struct DevicesCase {
  const char* nvidia_case;
  const char* devices_yaml;  // what follows "devices:"
  bool error;
  DeviceSelector expected;
};

void PrintTo(const DevicesCase& c, std::ostream* os) { *os << c.nvidia_case; }

DeviceSelector Count(int n) {
  DeviceSelector s;
  s.kind = DeviceSelector::Kind::kCount;
  s.count = n;
  return s;
}
DeviceSelector List(std::vector<std::string> ids) {
  DeviceSelector s;
  s.kind = DeviceSelector::Kind::kList;
  s.ids = std::move(ids);
  return s;
}

std::string TimeSlicingWithDevices(const std::string& devices_yaml) {
  return "version: v1\nsharing:\n  timeSlicing:\n    resources:\n      - name: nvidia.com/gpu\n"
         "        replicas: 2\n        devices: " +
         devices_yaml + "\n";
}

class UnmarshalReplicatedDevices : public ::testing::TestWithParam<DevicesCase> {};

TEST_P(UnmarshalReplicatedDevices, LoadsAsNvidiaDoes) {
  const DevicesCase& c = GetParam();
  Result<SharingConfig> config = ParseSharingConfig(TimeSlicingWithDevices(c.devices_yaml));
  if (c.error) {
    EXPECT_FALSE(config.ok()) << c.nvidia_case << ": NVIDIA refuses " << c.devices_yaml;
    return;
  }
  ASSERT_TRUE(config.ok()) << c.nvidia_case << ": " << config.status().ToString();
  EXPECT_EQ(config->time_slicing->resources.at(0).devices, c.expected) << c.nvidia_case;
}

constexpr char kUuid[] = "4cf8db2d-06c0-7d70-1a51-e59b25b2c16c";

INSTANTIATE_TEST_SUITE_P(
    Compat, UnmarshalReplicatedDevices,
    ::testing::Values(
        DevicesCase{
            "replicas_test.go TestUnmarshalReplicatedDevices/test case 0 (empty)", "", true, {}},
        DevicesCase{
            "replicas_test.go TestUnmarshalReplicatedDevices/test case 1", "\"not-all\"", true, {}},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 2", "-2", true, {}},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 3", "2.0", true, {}},
        DevicesCase{
            "replicas_test.go TestUnmarshalReplicatedDevices/test case 4", "[-1]", true, {}},
        DevicesCase{
            "replicas_test.go TestUnmarshalReplicatedDevices/test case 5", "[\"-1\"]", true, {}},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 6",
                    "[\"invalid-UUID\"]",
                    true,
                    {}},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 7",
                    "[\"GPU-UUID\"]",
                    true,
                    {}},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 8",
                    "[\"MIG-UUID\"]",
                    true,
                    {}},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 9",
                    "[\"MIG-GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c\"]",
                    true,
                    {}},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 10", "\"all\"",
                    false, DeviceSelector::All()},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 11", "2", false,
                    Count(2)},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 12", "[0]", false,
                    List({"0"})},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 13", "[\"0\"]",
                    false, List({"0"})},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 14", "[\"0:0\"]",
                    false, List({"0:0"})},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 15",
                    "[\"GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c\"]", false,
                    List({std::string("GPU-") + kUuid})},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 16",
                    "[\"MIG-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c\"]", false,
                    List({std::string("MIG-") + kUuid})},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 17",
                    "[\"MIG-GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c/0/0\"]", false,
                    List({std::string("MIG-GPU-") + kUuid + "/0/0"})},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 18",
                    "[0, \"0:0\", \"GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c\"]", false,
                    List({"0", "0:0", std::string("GPU-") + kUuid})},
        DevicesCase{"replicas_test.go TestUnmarshalReplicatedDevices/test case 19",
                    "[\"0\", \"0:0\", \"GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c\"]", false,
                    List({"0", "0:0", std::string("GPU-") + kUuid})}));

// --- replicas_test.go TestMarshalReplicatedDevices: FormatSharingConfig, read back ---

struct MarshalDevicesCase {
  const char* nvidia_case;
  DeviceSelector input;
  bool error;  // NVIDIA: marshalling fails; gpuslice: the written file does not load
};

void PrintTo(const MarshalDevicesCase& c, std::ostream* os) { *os << c.nvidia_case; }

class MarshalReplicatedDevices : public ::testing::TestWithParam<MarshalDevicesCase> {};

TEST_P(MarshalReplicatedDevices, RoundTripsAsNvidiaDoes) {
  const MarshalDevicesCase& c = GetParam();
  SharingConfig config = DefaultSharingConfig();
  config.time_slicing = ReplicatedResources{};
  config.time_slicing->resources.push_back({"nvidia.com/gpu", "", c.input, 2, 0});
  Result<SharingConfig> back = ParseSharingConfig(FormatSharingConfig(config));
  if (c.error) {
    EXPECT_FALSE(back.ok()) << c.nvidia_case;
    return;
  }
  ASSERT_TRUE(back.ok()) << c.nvidia_case << ": " << back.status().ToString();
  EXPECT_EQ(back->time_slicing->resources.at(0).devices, c.input) << c.nvidia_case;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, MarshalReplicatedDevices,
    ::testing::Values(
        MarshalDevicesCase{"replicas_test.go TestMarshalReplicatedDevices/test case 0 (empty)",
                           List({}), true},
        MarshalDevicesCase{"replicas_test.go TestMarshalReplicatedDevices/test case 1",
                           DeviceSelector::All(), false},
        MarshalDevicesCase{"replicas_test.go TestMarshalReplicatedDevices/test case 2", Count(2),
                           false},
        MarshalDevicesCase{"replicas_test.go TestMarshalReplicatedDevices/test case 3",
                           List({"0", "0:0", std::string("GPU-") + kUuid}), false}));

// --- replicas_test.go TestUnmarshalReplicatedResource: one entry of timeSlicing.resources ---

struct ResourceCase {
  const char* nvidia_case;
  const char* entry_yaml;  // a flow map (or nothing) as the only list item
  bool error;
  const char* name;
  const char* rename;
};

void PrintTo(const ResourceCase& c, std::ostream* os) { *os << c.nvidia_case; }

class UnmarshalReplicatedResource : public ::testing::TestWithParam<ResourceCase> {};

TEST_P(UnmarshalReplicatedResource, LoadsAsNvidiaDoes) {
  const ResourceCase& c = GetParam();
  const std::string yaml =
      std::string("version: v1\nsharing:\n  timeSlicing:\n    resources:\n      - ") +
      c.entry_yaml + "\n";
  Result<SharingConfig> config = ParseSharingConfig(yaml);
  if (c.error) {
    EXPECT_FALSE(config.ok()) << c.nvidia_case << ": NVIDIA refuses " << c.entry_yaml;
    return;
  }
  ASSERT_TRUE(config.ok()) << c.nvidia_case << ": " << config.status().ToString();
  const ReplicatedResource& r = config->time_slicing->resources.at(0);
  EXPECT_EQ(r.name, c.name) << c.nvidia_case;
  EXPECT_EQ(r.rename, c.rename) << c.nvidia_case;
  EXPECT_EQ(r.devices, DeviceSelector::All()) << c.nvidia_case;
  EXPECT_EQ(r.replicas, 2) << c.nvidia_case;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, UnmarshalReplicatedResource,
    ::testing::Values(
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 0 (empty)", "",
                     true, "", ""},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 1", "{}", true, "",
                     ""},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 2",
                     "{name: valid}", true, "", ""},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 3",
                     "{name: valid, devices: all}", true, "", ""},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 4",
                     "{name: valid, devices: all, rename: valid-shared}", true, "", ""},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 5",
                     "{name: valid, devices: all, replicas: 2}", false, "nvidia.com/valid", ""},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 6",
                     "{name: valid, devices: all, replicas: 2, rename: valid-shared}", false,
                     "nvidia.com/valid", "nvidia.com/valid-shared"},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 7",
                     "{name: valid, replicas: -1}", true, "", ""},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 8",
                     "{name: valid, replicas: 0}", true, "", ""},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 9",
                     "{name: valid, replicas: 2}", false, "nvidia.com/valid", ""},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 10",
                     "{name: valid, replicas: 2, rename: valid-shared}", false, "nvidia.com/valid",
                     "nvidia.com/valid-shared"},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 11",
                     "{name: $invalid$, replicas: 2, rename: valid-shared}", true, "", ""},
        ResourceCase{"replicas_test.go TestUnmarshalReplicatedResource/test case 12",
                     "{name: valid, replicas: 2, rename: $invalid$}", true, "", ""}));

// --- replicas_test.go TestUnmarshalReplicatedResources: the timeSlicing section ---

struct ResourcesCase {
  const char* nvidia_case;
  const char* section_yaml;  // what follows "timeSlicing:"
  bool error;
  std::vector<std::string> names;
};

void PrintTo(const ResourcesCase& c, std::ostream* os) { *os << c.nvidia_case; }

class UnmarshalReplicatedResources : public ::testing::TestWithParam<ResourcesCase> {};

TEST_P(UnmarshalReplicatedResources, LoadsAsNvidiaDoes) {
  const ResourcesCase& c = GetParam();
  const std::string yaml =
      std::string("version: v1\nsharing:\n  timeSlicing: ") + c.section_yaml + "\n";
  Result<SharingConfig> config = ParseSharingConfig(yaml);
  if (c.error) {
    EXPECT_FALSE(config.ok()) << c.nvidia_case << ": NVIDIA refuses " << c.section_yaml;
    return;
  }
  ASSERT_TRUE(config.ok()) << c.nvidia_case << ": " << config.status().ToString();
  std::vector<std::string> names;
  for (const ReplicatedResource& r : config->time_slicing->resources) {
    EXPECT_EQ(r.replicas, 2);
    EXPECT_EQ(r.devices, DeviceSelector::All());
    names.push_back(r.name);
  }
  EXPECT_EQ(names, c.names) << c.nvidia_case;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, UnmarshalReplicatedResources,
    ::testing::Values(
        ResourcesCase{
            "replicas_test.go TestUnmarshalReplicatedResources/test case 0 (empty)", "", true, {}},
        ResourcesCase{
            "replicas_test.go TestUnmarshalReplicatedResources/test case 1", "{}", true, {}},
        ResourcesCase{"replicas_test.go TestUnmarshalReplicatedResources/test case 2",
                      "{resources: []}",
                      true,
                      {}},
        ResourcesCase{"replicas_test.go TestUnmarshalReplicatedResources/test case 3",
                      "{resources: [{name: valid, replicas: 2}]}",
                      false,
                      {"nvidia.com/valid"}},
        ResourcesCase{"replicas_test.go TestUnmarshalReplicatedResources/test case 4",
                      "{resources: [{name: valid1, replicas: 2}, {name: valid2, replicas: 2}]}",
                      false,
                      {"nvidia.com/valid1", "nvidia.com/valid2"}},
        ResourcesCase{"replicas_test.go TestUnmarshalReplicatedResources/test case 5",
                      "{resources: [{name: $invalid$, replicas: 2}]}",
                      true,
                      {}}));

// --- config_test.go: MPS failRequestsGreaterThanOne defaulting, through a file ---

Result<SharingConfig> LoadText(const std::string& text) {
  // Per process: CTest runs each case as its own process, in parallel.
  const std::string path =
      ::testing::TempDir() + "compat-config-" + std::to_string(getpid()) + ".yaml";
  std::ofstream(path) << text;
  Result<SharingConfig> config = LoadSharingConfigFile(path);
  std::filesystem::remove(path);
  return config;
}

TEST(CompatConfig, NewConfigDefaultsMPSFailRequestsGreaterThanOne) {
  // config_test.go TestNewConfigDefaultsMPSFailRequestsGreaterThanOne
  Result<SharingConfig> config = LoadText(
      "version: v1\nsharing:\n  mps:\n    resources:\n      - name: nvidia.com/gpu\n"
      "        replicas: 2\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_TRUE(config->mps.has_value());
  EXPECT_TRUE(config->mps->fail_requests_greater_than_one);
}

TEST(CompatConfig, NewConfigHonorsExplicitMPSFailRequestsGreaterThanOneFalse) {
  // config_test.go TestNewConfigHonorsExplicitMPSFailRequestsGreaterThanOneFalse
  Result<SharingConfig> config = LoadText(
      "version: v1\nsharing:\n  mps:\n    failRequestsGreaterThanOne: false\n    resources:\n"
      "      - name: nvidia.com/gpu\n        replicas: 2\n");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_TRUE(config->mps.has_value());
  EXPECT_FALSE(config->mps->fail_requests_greater_than_one);
}

// --- flags_test.go TestUnmarshalFlags: the `flags:` map ---

struct FlagsCase {
  const char* nvidia_case;
  const char* flags_json;  // NVIDIA's JSON input, which is YAML too; nullptr = empty document
  bool error;
  const char* sleep_interval;            // expected gfd.sleepInterval
  std::vector<DeviceListStrategy> list;  // expected deviceListStrategy
};

void PrintTo(const FlagsCase& c, std::ostream* os) { *os << c.nvidia_case; }

class UnmarshalFlags : public ::testing::TestWithParam<FlagsCase> {};

TEST_P(UnmarshalFlags, LoadsAsNvidiaDoes) {
  const FlagsCase& c = GetParam();
  const std::string yaml =
      c.flags_json == nullptr ? std::string() : std::string("flags: ") + c.flags_json + "\n";
  Result<SharingConfig> config = ParseSharingConfig(yaml);
  if (c.error) {
    EXPECT_FALSE(config.ok()) << c.nvidia_case;
    return;
  }
  ASSERT_TRUE(config.ok()) << c.nvidia_case << ": " << config.status().ToString();
  EXPECT_EQ(config->flags.gfd.sleep_interval, c.sleep_interval) << c.nvidia_case;
  EXPECT_EQ(config->flags.plugin.device_list_strategies, c.list) << c.nvidia_case;
  // NVIDIA's Flags marshal back to the same JSON; ours to YAML that loads back equal.
  Result<SharingConfig> back = ParseSharingConfig(FormatSharingConfig(*config));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->flags, config->flags) << c.nvidia_case;
}

using L = DeviceListStrategy;
INSTANTIATE_TEST_SUITE_P(
    Compat, UnmarshalFlags,
    ::testing::Values(
        FlagsCase{"flags_test.go TestUnmarshalFlags/test case 0 (empty)", nullptr, true, "", {}},
        FlagsCase{"flags_test.go TestUnmarshalFlags/test case 1", "{}", false, "60s", {L::kEnvvar}},
        FlagsCase{"flags_test.go TestUnmarshalFlags/test case 2",
                  "{\"gfd\": {}}",
                  false,
                  "60s",
                  {L::kEnvvar}},
        FlagsCase{"flags_test.go TestUnmarshalFlags/test case 3",
                  "{\"gfd\": {\"sleepInterval\": 0}}",
                  false,
                  "0s",
                  {L::kEnvvar}},
        FlagsCase{"flags_test.go TestUnmarshalFlags/test case 4",
                  "{\"gfd\": {\"sleepInterval\": \"0s\"}}",
                  false,
                  "0s",
                  {L::kEnvvar}},
        FlagsCase{"flags_test.go TestUnmarshalFlags/test case 5",
                  "{\"gfd\": {\"sleepInterval\": 5}}",
                  false,
                  "5ns",
                  {L::kEnvvar}},
        FlagsCase{"flags_test.go TestUnmarshalFlags/test case 6",
                  "{\"gfd\": {\"sleepInterval\": \"5s\"}}",
                  false,
                  "5s",
                  {L::kEnvvar}},
        FlagsCase{"flags_test.go TestUnmarshalFlags/test case 7",
                  "{\"gfd\": {\"sleepInterval\": \"infinite\"}}",
                  false,
                  "infinite",
                  {L::kEnvvar}},
        FlagsCase{"flags_test.go TestUnmarshalFlags/test case 8",
                  "{\"plugin\": {\"deviceListStrategy\": \"envvar\"}}",
                  false,
                  "60s",
                  {L::kEnvvar}},
        FlagsCase{"flags_test.go TestUnmarshalFlags/test case 9",
                  "{\"plugin\": {\"deviceListStrategy\": [\"envvar\", \"cdi-annotations\"]}}",
                  false,
                  "60s",
                  {L::kEnvvar, L::kCdiAnnotations}}));

// --- flags_test.go TestMarshalFlags: what FormatSharingConfig (and --show-config) writes ---

struct MarshalFlagsCase {
  const char* nvidia_case;
  const char* sleep_interval_in;   // set in the config; nullptr = left at its default
  const char* sleep_interval_out;  // as written
};

void PrintTo(const MarshalFlagsCase& c, std::ostream* os) { *os << c.nvidia_case; }

class MarshalFlags : public ::testing::TestWithParam<MarshalFlagsCase> {};

TEST_P(MarshalFlags, WritesEveryFlagAndTheIntervalAsNvidiaDoes) {
  const MarshalFlagsCase& c = GetParam();
  SharingConfig config = DefaultSharingConfig();
  if (c.sleep_interval_in != nullptr) config.flags.gfd.sleep_interval = c.sleep_interval_in;
  const std::string text = FormatSharingConfig(config);
  // NVIDIA writes these keys even when unset (as null); gpuslice writes the effective value.
  for (const char* key :
       {"migStrategy:", "failOnInitError:", "gdrcopyEnabled:", "gdsEnabled:", "mofedEnabled:",
        "useNodeFeatureAPI:", "deviceDiscoveryStrategy:", "oneshot:", "noTimestamp:", "outputFile:",
        "machineTypeFile:", "sharedDevicesAllocationPolicy:"}) {
    EXPECT_NE(text.find(key), std::string::npos) << c.nvidia_case << ": " << key << "\n" << text;
  }
  EXPECT_NE(text.find(std::string("sleepInterval: ") + c.sleep_interval_out), std::string::npos)
      << c.nvidia_case << "\n"
      << text;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, MarshalFlags,
    ::testing::Values(
        MarshalFlagsCase{"flags_test.go TestMarshalFlags/test case 0 (defaults)", nullptr, "60s"},
        MarshalFlagsCase{"flags_test.go TestMarshalFlags/test case 1", "0s", "0s"},
        MarshalFlagsCase{"flags_test.go TestMarshalFlags/test case 2", "5ns", "5ns"},
        MarshalFlagsCase{"flags_test.go TestMarshalFlags/test case 3", "infinite", "infinite"}));

// Go's Duration.String(), which NVIDIA writes for a number of nanoseconds.
TEST(CompatConfig, SleepIntervalNumbersAreWrittenAsGoWritesDurations) {
  // flags_test.go TestMarshalFlags: Duration(0) -> "0s", Duration(5) -> "5ns"
  EXPECT_EQ(internal::GoDurationString(0), "0s");
  EXPECT_EQ(internal::GoDurationString(5), "5ns");
  EXPECT_EQ(internal::GoDurationString(5'000'000'000), "5s");
  EXPECT_EQ(internal::GoDurationString(90'000'000'000), "1m30s");
  EXPECT_EQ(internal::GoDurationString(1'500'000), "1.5ms");
  EXPECT_EQ(internal::GoDurationString(3'600'000'000'000), "1h0m0s");
}

// --- v0.20.0's new flag: flags.plugin.sharedDevicesAllocationPolicy ---

struct PolicyCase {
  const char* nvidia_case;
  const char* yaml_value;  // nullptr = not set
  bool error;
  const char* expected;
};

void PrintTo(const PolicyCase& c, std::ostream* os) { *os << c.nvidia_case; }

class SharedDevicesAllocationPolicy : public ::testing::TestWithParam<PolicyCase> {};

TEST_P(SharedDevicesAllocationPolicy, LoadsAsNvidiaDoes) {
  const PolicyCase& c = GetParam();
  std::string yaml = "version: v1\nflags:\n  plugin:\n    passDeviceSpecs: false\n";
  if (c.yaml_value != nullptr) {
    yaml += std::string("    sharedDevicesAllocationPolicy: ") + c.yaml_value + "\n";
  }
  Result<SharingConfig> config = ParseSharingConfig(yaml);
  if (c.error) {
    EXPECT_FALSE(config.ok()) << c.nvidia_case;
    return;
  }
  ASSERT_TRUE(config.ok()) << c.nvidia_case << ": " << config.status().ToString();
  EXPECT_EQ(config->flags.plugin.shared_devices_allocation_policy, c.expected) << c.nvidia_case;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, SharedDevicesAllocationPolicy,
    ::testing::Values(
        PolicyCase{"allocate_test.go TestComparatorForPolicy/distributed prefers GPU with fewer "
                   "allocated replicas",
                   "distributed", false, "distributed"},
        PolicyCase{"allocate_test.go TestComparatorForPolicy/packed prefers GPU with more "
                   "allocated replicas",
                   "packed", false, "packed"},
        PolicyCase{"allocate_test.go TestComparatorForPolicy/empty policy falls back to "
                   "distributed",
                   nullptr, false, "distributed"},
        // comparatorForPolicy falls back for an unknown name, but the plugin never gets there:
        // cmd/nvidia-device-plugin validateFlags refuses the value at start.
        PolicyCase{"allocate_test.go TestComparatorForPolicy/unknown policy falls back to "
                   "distributed (refused at start by validateFlags)",
                   "no-such-policy", true, ""}));

// --- imex_test.go TestImexUnmarshal ---

struct ImexCase {
  const char* nvidia_case;
  const char* imex_yaml;
  bool error;
  std::vector<int> channel_ids;
};

void PrintTo(const ImexCase& c, std::ostream* os) { *os << c.nvidia_case; }

class ImexUnmarshal : public ::testing::TestWithParam<ImexCase> {};

TEST_P(ImexUnmarshal, LoadsAsNvidiaDoes) {
  const ImexCase& c = GetParam();
  Result<SharingConfig> config =
      ParseSharingConfig(std::string("version: v1\nimex: ") + c.imex_yaml + "\n");
  if (c.error) {
    EXPECT_FALSE(config.ok()) << c.nvidia_case;
    return;
  }
  ASSERT_TRUE(config.ok()) << c.nvidia_case << ": " << config.status().ToString();
  EXPECT_EQ(config->imex.channel_ids, c.channel_ids) << c.nvidia_case;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, ImexUnmarshal,
    ::testing::Values(
        ImexCase{"imex_test.go TestImexUnmarshal/empty json", "{}", false, {}},
        ImexCase{"imex_test.go TestImexUnmarshal/null channel ID is valid",
                 "{channelIDs: null}",
                 false,
                 {}},
        ImexCase{"imex_test.go TestImexUnmarshal/empty channel ID is valid",
                 "{channelIDs: []}",
                 false,
                 {}},
        ImexCase{"imex_test.go TestImexUnmarshal/single 0 channel ID is valid",
                 "{\"channelIDs\": [0]}",
                 false,
                 {0}},
        ImexCase{"imex_test.go TestImexUnmarshal/single 0 channel ID as int is valid",
                 "{channelIDs: [0]}",
                 false,
                 {0}},
        ImexCase{"imex_test.go TestImexUnmarshal/invalid cases", "{channelIDs: [2]}", true, {}}));

// --- resources_test.go TestResourcePatternMatches ---

struct PatternCase {
  const char* description;
  const char* pattern;
  const char* input;
  bool matches;
};

void PrintTo(const PatternCase& c, std::ostream* os) { *os << c.description; }

class ResourcePatternMatchesTest : public ::testing::TestWithParam<PatternCase> {};

TEST_P(ResourcePatternMatchesTest, MatchesAsNvidiaDoes) {
  const PatternCase& c = GetParam();
  EXPECT_EQ(ResourcePatternMatches(c.pattern, c.input), c.matches)
      << "resources_test.go TestResourcePatternMatches/" << c.description;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, ResourcePatternMatchesTest,
    ::testing::Values(
        PatternCase{"exact match", "1g.24gb", "1g.24gb", true},
        PatternCase{"no match on different string", "1g.24gb", "2g.48gb", false},
        PatternCase{"does not substring match with suffix", "1g.24gb", "1g.24gb-me", false},
        PatternCase{"does not substring match with plus suffix", "1g.24gb", "1g.24gb+me.all",
                    false},
        PatternCase{"does not substring match with prefix", "1g.24gb", "x1g.24gb", false},
        PatternCase{"dash-me suffix matches its own pattern", "1g.24gb-me", "1g.24gb-me", true},
        PatternCase{"plus-me.all suffix matches its own pattern", "1g.24gb+me.all",
                    "1g.24gb+me.all", true},
        PatternCase{"wildcard matches everything", "*", "1g.24gb-me", true},
        PatternCase{"wildcard prefix match", "1g.*", "1g.24gb", true},
        PatternCase{"wildcard prefix does not match different prefix", "1g.*", "2g.48gb", false},
        PatternCase{"gfx suffix matches its own pattern", "1g.24gb+gfx", "1g.24gb+gfx", true},
        PatternCase{"base pattern does not match +gfx suffix", "1g.24gb", "1g.24gb+gfx", false},
        PatternCase{"gfx pattern does not match base", "1g.24gb+gfx", "1g.24gb", false},
        PatternCase{"gfx pattern does not match -me suffix", "1g.24gb+gfx", "1g.24gb-me", false},
        PatternCase{"2g gfx suffix matches its own pattern", "2g.48gb+gfx", "2g.48gb+gfx", true},
        PatternCase{"2g base does not match +gfx suffix", "2g.48gb", "2g.48gb+gfx", false},
        PatternCase{"wildcard suffix match", "*gb", "1g.24gb", true},
        PatternCase{"wildcard suffix does not match -me suffix", "*gb", "1g.24gb-me", false}));

// --- internal/lm/resource_test.go TestSanitise ---

struct SanitiseCase {
  const char* input;
  const char* expected;
};

void PrintTo(const SanitiseCase& c, std::ostream* os) { *os << c.input; }

class Sanitise : public ::testing::TestWithParam<SanitiseCase> {};

TEST_P(Sanitise, SanitisesAsNvidiaDoes) {
  EXPECT_EQ(SanitiseLabelValue(GetParam().input), GetParam().expected)
      << "resource_test.go TestSanitise/" << GetParam().input;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, Sanitise,
    ::testing::Values(SanitiseCase{"a space separated string", "a-space-separated-string"},
                      SanitiseCase{"some(thing)else", "somethingelse"},
                      SanitiseCase{"some ( thing )else", "some-thing-else"},
                      SanitiseCase{"NVIDIA-TITAN-X-(Pascal)", "NVIDIA-TITAN-X-Pascal"},
                      SanitiseCase{" input  with multiple   spaces   ",
                                   "input-with-multiple-spaces"},
                      SanitiseCase{"some [ / thing / ]else", "some-thing-else"},
                      SanitiseCase{"some / thing /else", "some-thing-else"},
                      SanitiseCase{"some-thing.else_new", "some-thing.else_new"}));

}  // namespace
}  // namespace gpuslice::compat
