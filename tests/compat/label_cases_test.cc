// NVIDIA's GFD labeler tables (internal/lm/*_test.go, v0.20.0) on simulated nodes: every case
// runs AdvertiseNode, the function the node agent and `gpuslice inventory` label with.
//
// NVIDIA's mock GPU ("MOCKMODEL", 300 MiB, compute 8.0) is an A100-SXM4-40GB here, its mock MIG
// devices are A100 profiles (1g.5gb, 3g.20gb); expected values follow from those GPUs.
#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "compat/harness.h"
#include "core/gpu_model.h"

namespace gpuslice::compat {
namespace {

using Labels = std::map<std::string, std::string>;

constexpr std::uint64_t kMiB = 1024ULL * 1024ULL;
constexpr char kProduct[] = "NVIDIA-A100-SXM4-40GB";

const MigProfile& A100Profile(const std::string& name) {
  return *FindGpuModel("A100-SXM4-40GB")->FindProfile(name);
}

// GFD's labels for whole GPUs of the node's model.
Labels FullGpu(int count, int replicas, const std::string& sharing, const std::string& suffix = "",
               const std::string& prefix = "nvidia.com/gpu.") {
  return {
      {prefix + "count", std::to_string(count)}, {prefix + "replicas", std::to_string(replicas)},
      {prefix + "sharing-strategy", sharing},    {prefix + "memory", "40960"},
      {prefix + "product", kProduct + suffix},   {prefix + "family", "ampere"},
      {prefix + "compute.major", "8"},           {prefix + "compute.minor", "0"}};
}

// GFD's labels for MIG devices of one A100 profile under resource `prefix`.
Labels MigDevices(const std::string& prefix, const std::string& profile, int count, int replicas,
                  const std::string& sharing, const std::string& suffix = "") {
  const MigProfile& p = A100Profile(profile);
  return {{prefix + "count", std::to_string(count)},
          {prefix + "replicas", std::to_string(replicas)},
          {prefix + "sharing-strategy", sharing},
          {prefix + "memory", std::to_string(p.memory_bytes / kMiB)},
          {prefix + "product", std::string(kProduct) + "-MIG-" + profile + suffix},
          {prefix + "multiprocessors", std::to_string(p.multiprocessor_count)},
          {prefix + "slices.gi", std::to_string(p.compute_slices)},
          {prefix + "slices.ci", std::to_string(p.compute_slices)},
          {prefix + "engines.copy", std::to_string(p.copy_engines)},
          {prefix + "engines.decoder", std::to_string(p.decoders)},
          {prefix + "engines.encoder", std::to_string(p.encoders)},
          {prefix + "engines.jpeg", std::to_string(p.jpeg_engines)},
          {prefix + "engines.ofa", std::to_string(p.ofa_engines)}};
}

Labels Merge(Labels a, const Labels& b) {
  for (const auto& [k, v] : b) a[k] = v;
  return a;
}

// The compute-capability labels of a MIG-enabled GPU. NVIDIA's tables leave them out because its
// mock MIG-enabled device answers no compute capability (and TestMigResourceLabeler looks at the
// MIG labeler alone); on a real node GFD's full-GPU labeler writes them for the parent GPU, and so
// does gpuslice.
Labels ArchitectureOfParent() {
  return {{"nvidia.com/gpu.family", "ampere"},
          {"nvidia.com/gpu.compute.major", "8"},
          {"nvidia.com/gpu.compute.minor", "0"}};
}

// Nodes.
constexpr char kNoGpu[] = "gpus: []\n";
constexpr char kOneGpu[] = "gpus:\n  - model: A100-SXM4-40GB\n";
constexpr char kTwoGpus[] = "gpus:\n  - model: A100-SXM4-40GB\n    count: 2\n";
constexpr char kOneMigEnabledEmpty[] =
    "gpus:\n  - model: A100-SXM4-40GB\n    mig: {enabled: true}\n";
constexpr char kTwoMigEnabledEmpty[] =
    "gpus:\n  - model: A100-SXM4-40GB\n    count: 2\n    mig: {enabled: true}\n";
constexpr char kMigEnabledEmptyAndFull[] =
    "gpus:\n  - model: A100-SXM4-40GB\n    mig: {enabled: true}\n  - model: A100-SXM4-40GB\n";
constexpr char kOneMig1g[] =
    "gpus:\n  - model: A100-SXM4-40GB\n    mig: {enabled: true, devices: [{profile: 1g.5gb}]}\n";
constexpr char kTwoMig1g[] =
    "gpus:\n  - model: A100-SXM4-40GB\n    count: 2\n"
    "    mig: {enabled: true, devices: [{profile: 1g.5gb}]}\n";
constexpr char kMigTwoProfiles[] =
    "gpus:\n  - model: A100-SXM4-40GB\n"
    "    mig: {enabled: true, devices: [{profile: 1g.5gb}, {profile: 3g.20gb}]}\n";
constexpr char kMig1gAndFull[] =
    "gpus:\n  - model: A100-SXM4-40GB\n    mig: {enabled: true, devices: [{profile: 1g.5gb}]}\n"
    "  - model: A100-SXM4-40GB\n";
constexpr char kMig1gFullAndEmpty[] =
    "gpus:\n  - model: A100-SXM4-40GB\n    mig: {enabled: true, devices: [{profile: 1g.5gb}]}\n"
    "  - model: A100-SXM4-40GB\n  - model: A100-SXM4-40GB\n    mig: {enabled: true}\n";

// Configs.
constexpr char kNone[] = "version: v1\n";
constexpr char kSingle[] = "version: v1\nflags: {migStrategy: single}\n";
constexpr char kMixed[] = "version: v1\nflags: {migStrategy: mixed}\n";
std::string With(const std::string& flags, const std::string& sharing) {
  return flags + "sharing:\n" + sharing;
}
constexpr char kTsGpu2[] = "  timeSlicing:\n    resources: [{name: nvidia.com/gpu, replicas: 2}]\n";
constexpr char kTsNotGpu[] =
    "  timeSlicing:\n    resources: [{name: nvidia.com/not-gpu, replicas: 2}]\n";
constexpr char kTsGpuRenamed[] =
    "  timeSlicing:\n    resources: [{name: nvidia.com/gpu, rename: nvidia.com/gpu.shared, "
    "replicas: 2}]\n";
constexpr char kMpsGpu2[] = "  mps:\n    resources: [{name: nvidia.com/gpu, replicas: 2}]\n";
constexpr char kMpsNotGpu[] = "  mps:\n    resources: [{name: nvidia.com/not-gpu, replicas: 2}]\n";
constexpr char kMpsGpuRenamed[] =
    "  mps:\n    resources: [{name: nvidia.com/gpu, rename: nvidia.com/gpu.shared, "
    "replicas: 2}]\n";
constexpr char kTsMixedMig[] =
    "  timeSlicing:\n    resources:\n      - {name: nvidia.com/gpu, rename: nvidia.com/gpu.shared, "
    "replicas: 2}\n      - {name: nvidia.com/mig-1g.5gb, replicas: 2}\n";
constexpr char kTsMixedMigRenamed[] =
    "  timeSlicing:\n    resources:\n      - {name: nvidia.com/mig-1g.5gb, rename: "
    "nvidia.com/mig-1g.5gb.shared, replicas: 2}\n";

struct LabelCase {
  const char* nvidia_case;
  std::string node;
  std::string config;
  Labels expected;
  std::string only_prefix;  // compare only keys with this prefix ("" = every resource label)
};

void PrintTo(const LabelCase& c, std::ostream* os) { *os << c.nvidia_case; }

class ResourceLabelers : public ::testing::TestWithParam<LabelCase> {};

TEST_P(ResourceLabelers, LabelAsNvidiaDoes) {
  const LabelCase& c = GetParam();
  Result<NodeAdvertisement> ad = AdvertiseNode(Node(c.node), Config(c.config));
  ASSERT_TRUE(ad.ok()) << c.nvidia_case << ": " << ad.status().ToString();
  Labels got = ResourceLabels(ad->labels);
  if (!c.only_prefix.empty())
    std::erase_if(got, [&](const auto& kv) { return !kv.first.starts_with(c.only_prefix); });
  EXPECT_EQ(got, c.expected) << c.nvidia_case;
}

const Labels kSingleStrategy = {{"nvidia.com/mig.strategy", "single"}};
const Labels kInvalidSingle = {{"nvidia.com/gpu.count", "0"},
                               {"nvidia.com/gpu.replicas", "0"},
                               {"nvidia.com/gpu.sharing-strategy", ""},
                               {"nvidia.com/gpu.memory", "0"},
                               {"nvidia.com/gpu.product", std::string(kProduct) + "-MIG-INVALID"},
                               {"nvidia.com/mig.strategy", "single"}};
// A MIG-enabled GPU under `none`: a whole GPU with sharing not applied.
Labels MigEnabledUnderNone(int count) {
  return Merge({{"nvidia.com/gpu.count", std::to_string(count)},
                {"nvidia.com/gpu.replicas", "0"},
                {"nvidia.com/gpu.sharing-strategy", "none"},
                {"nvidia.com/gpu.memory", "40960"},
                {"nvidia.com/gpu.product", kProduct}},
               ArchitectureOfParent());
}

INSTANTIATE_TEST_SUITE_P(
    CompatMigStrategyNone, ResourceLabelers,
    ::testing::Values(
        LabelCase{"mig-strategy_test.go TestMigStrategyNoneLabels/no devices returns empty labels",
                  kNoGpu,
                  kNone,
                  {},
                  ""},
        LabelCase{"mig-strategy_test.go TestMigStrategyNoneLabels/single non-mig device returns "
                  "non-mig (none) labels",
                  kOneGpu, kNone, FullGpu(1, 1, "none"), ""},
        LabelCase{"mig-strategy_test.go TestMigStrategyNoneLabels/sharing is applied to single "
                  "device",
                  kOneGpu, With(kNone, kTsGpu2), FullGpu(1, 2, "time-slicing", "-SHARED"), ""},
        LabelCase{"mig-strategy_test.go TestMigStrategyNoneLabels/sharing is applied to multiple "
                  "devices",
                  kTwoGpus, With(kNone, kTsGpu2), FullGpu(2, 2, "time-slicing", "-SHARED"), ""},
        LabelCase{"mig-strategy_test.go TestMigStrategyNoneLabels/sharing is not applied to single "
                  "MIG device; replicas is zero",
                  kOneMigEnabledEmpty, With(kNone, kTsGpu2), MigEnabledUnderNone(1), ""},
        LabelCase{"mig-strategy_test.go TestMigStrategyNoneLabels/sharing is not applied to "
                  "multiple MIG device; replicas is zero",
                  kTwoMigEnabledEmpty, With(kNone, kTsGpu2), MigEnabledUnderNone(2), ""},
        LabelCase{"mig-strategy_test.go TestMigStrategyNoneLabels/sharing is applied to MIG device "
                  "and non-MIG device",
                  kMigEnabledEmptyAndFull, With(kNone, kTsGpu2),
                  FullGpu(2, 2, "time-slicing", "-SHARED"), ""}));

INSTANTIATE_TEST_SUITE_P(
    CompatMigStrategySingle, ResourceLabelers,
    ::testing::Values(
        LabelCase{"mig-strategy_test.go TestMigStrategySingleLabels/no devices returns empty "
                  "labels",
                  kNoGpu,
                  kSingle,
                  {},
                  ""},
        LabelCase{"mig-strategy_test.go TestMigStrategySingleLabels/single non-mig device returns "
                  "non-mig (none) labels",
                  kOneGpu, kSingle, Merge(FullGpu(1, 1, "none"), kSingleStrategy), ""},
        LabelCase{"mig-strategy_test.go TestMigStrategySingleLabels/multiple non-mig device "
                  "returns non-mig (none) labels",
                  kTwoGpus, kSingle, Merge(FullGpu(2, 1, "none"), kSingleStrategy), ""},
        LabelCase{
            "mig-strategy_test.go TestMigStrategySingleLabels/single mig-enabled device "
            "returns mig labels",
            kOneMig1g, kSingle,
            Merge(Merge(MigDevices("nvidia.com/gpu.", "1g.5gb", 1, 1, "none"), kSingleStrategy),
                  ArchitectureOfParent()),
            ""},
        LabelCase{
            "mig-strategy_test.go TestMigStrategySingleLabels/multiple mig-enabled devices "
            "returns mig labels",
            kTwoMig1g, kSingle,
            Merge(Merge(MigDevices("nvidia.com/gpu.", "1g.5gb", 2, 1, "none"), kSingleStrategy),
                  ArchitectureOfParent()),
            ""},
        LabelCase{"mig-strategy_test.go TestMigStrategySingleLabels/empty mig devices returns MIG "
                  "invalid label",
                  kOneMigEnabledEmpty, kSingle, Merge(kInvalidSingle, ArchitectureOfParent()), ""},
        LabelCase{"mig-strategy_test.go TestMigStrategySingleLabels/mixed mig config returns MIG "
                  "invalid label",
                  kMigTwoProfiles, kSingle, Merge(kInvalidSingle, ArchitectureOfParent()), ""},
        LabelCase{"mig-strategy_test.go TestMigStrategySingleLabels/mixed mig enabled and "
                  "disabled returns invalid config",
                  kMig1gAndFull, kSingle, Merge(kInvalidSingle, ArchitectureOfParent()), ""},
        LabelCase{"mig-strategy_test.go TestMigStrategySingleLabels/enabled, disabled, and empty "
                  "returns invalid config",
                  kMig1gFullAndEmpty, kSingle, Merge(kInvalidSingle, ArchitectureOfParent()), ""}));

INSTANTIATE_TEST_SUITE_P(
    CompatGpuResourceLabeler, ResourceLabelers,
    ::testing::Values(
        LabelCase{"resource_test.go TestGPUResourceLabeler/zero count returns empty",
                  kNoGpu,
                  kNone,
                  {},
                  ""},
        LabelCase{"resource_test.go TestGPUResourceLabeler/no sharing", kOneGpu, kNone,
                  FullGpu(1, 1, "none"), ""},
        LabelCase{"resource_test.go TestGPUResourceLabeler/time-slicing ignores non-matching "
                  "resource",
                  kOneGpu, With(kNone, kTsNotGpu), FullGpu(1, 1, "none"), ""},
        LabelCase{"resource_test.go TestGPUResourceLabeler/time-slicing appends suffix and "
                  "doubles count",
                  kOneGpu, With(kNone, kTsGpu2), FullGpu(1, 2, "time-slicing", "-SHARED"), ""},
        LabelCase{"resource_test.go TestGPUResourceLabeler/time-slicing renamed does not append "
                  "suffix and doubles count",
                  kOneGpu, With(kNone, kTsGpuRenamed), FullGpu(1, 2, "time-slicing"), ""},
        LabelCase{"resource_test.go TestGPUResourceLabeler/mps ignores non-matching resource",
                  kOneGpu, With(kNone, kMpsNotGpu), FullGpu(1, 1, "none"), ""},
        LabelCase{"resource_test.go TestGPUResourceLabeler/mps appends suffix and doubles count",
                  kOneGpu, With(kNone, kMpsGpu2), FullGpu(1, 2, "mps", "-SHARED"), ""},
        LabelCase{"resource_test.go TestGPUResourceLabeler/mps renamed does not append suffix "
                  "and doubles count",
                  kOneGpu, With(kNone, kMpsGpuRenamed), FullGpu(1, 2, "mps"), ""}));

INSTANTIATE_TEST_SUITE_P(
    CompatMigResourceLabeler, ResourceLabelers,
    ::testing::Values(
        LabelCase{"resource_test.go TestMigResourceLabeler/zero count returns empty",
                  kNoGpu,
                  kSingle,
                  {},
                  ""},
        LabelCase{
            "resource_test.go TestMigResourceLabeler/no sharing", kOneMig1g, kSingle,
            Merge(MigDevices("nvidia.com/gpu.", "1g.5gb", 1, 1, "none"), ArchitectureOfParent()),
            "nvidia.com/gpu."},
        LabelCase{"resource_test.go TestMigResourceLabeler/shared appends suffix and doubles "
                  "count",
                  kOneMig1g, With(kSingle, kTsGpu2),
                  Merge(MigDevices("nvidia.com/gpu.", "1g.5gb", 1, 2, "time-slicing", "-SHARED"),
                        ArchitectureOfParent()),
                  "nvidia.com/gpu."},
        LabelCase{"resource_test.go TestMigResourceLabeler/renamed does not append suffix and "
                  "doubles count",
                  kOneMig1g, With(kSingle, kTsGpuRenamed),
                  Merge(MigDevices("nvidia.com/gpu.", "1g.5gb", 1, 2, "time-slicing"),
                        ArchitectureOfParent()),
                  "nvidia.com/gpu."},
        LabelCase{"resource_test.go TestMigResourceLabeler/mig mixed appends shared", kOneMig1g,
                  With(kMixed, kTsMixedMig),
                  MigDevices("nvidia.com/mig-1g.5gb.", "1g.5gb", 1, 2, "time-slicing", "-SHARED"),
                  "nvidia.com/mig-"},
        LabelCase{"resource_test.go TestMigResourceLabeler/mig mixed rename does not append",
                  kOneMig1g, With(kMixed, kTsMixedMigRenamed),
                  MigDevices("nvidia.com/mig-1g.5gb.", "1g.5gb", 1, 2, "time-slicing"),
                  "nvidia.com/mig-"}));

// --- nvml_test.go TestMigCapabilityLabeler ---

struct CapabilityCase {
  const char* nvidia_case;
  std::string node;
  const char* mig_capable;  // nullptr = no label
};

void PrintTo(const CapabilityCase& c, std::ostream* os) { *os << c.nvidia_case; }

class MigCapabilityLabeler : public ::testing::TestWithParam<CapabilityCase> {};

TEST_P(MigCapabilityLabeler, LabelsAsNvidiaDoes) {
  const CapabilityCase& c = GetParam();
  Result<NodeAdvertisement> ad = AdvertiseNode(Node(c.node), DefaultSharingConfig());
  ASSERT_TRUE(ad.ok()) << ad.status().ToString();
  auto it = ad->labels.find("nvidia.com/mig.capable");
  if (c.mig_capable == nullptr) {
    EXPECT_EQ(it, ad->labels.end()) << c.nvidia_case;
  } else {
    ASSERT_NE(it, ad->labels.end()) << c.nvidia_case;
    EXPECT_EQ(it->second, c.mig_capable) << c.nvidia_case;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Compat, MigCapabilityLabeler,
    ::testing::Values(
        CapabilityCase{"nvml_test.go TestMigCapabilityLabeler/no devices returns empty labels",
                       kNoGpu, nullptr},
        CapabilityCase{"nvml_test.go TestMigCapabilityLabeler/single non-mig capable device "
                       "returns mig.capable as false",
                       "gpus: [{model: T4}]\n", "false"},
        CapabilityCase{"nvml_test.go TestMigCapabilityLabeler/multiple non-mig capable devices "
                       "returns mig.capable as false",
                       "gpus: [{model: T4, count: 2}]\n", "false"},
        CapabilityCase{"nvml_test.go TestMigCapabilityLabeler/single mig capable device returns "
                       "mig.capable as true",
                       kOneGpu, "true"},
        CapabilityCase{"nvml_test.go TestMigCapabilityLabeler/one mig capable device among "
                       "multiple returns mig.capable as true",
                       "gpus: [{model: T4}, {model: A100-SXM4-40GB}]\n", "true"}));

// --- nvml_test.go TestSharingLabeler ---

struct SharingCase {
  const char* nvidia_case;
  std::string node;
  SharingConfig config;
  const char* mps_capable;  // nullptr = AdvertiseNode refuses the node
};

void PrintTo(const SharingCase& c, std::ostream* os) { *os << c.nvidia_case; }

SharingConfig Replicated(bool mps, int replicas) {
  SharingConfig config = DefaultSharingConfig();
  ReplicatedResources r;
  r.resources.push_back({"nvidia.com/gpu", "", DeviceSelector::All(), replicas, 0});
  (mps ? config.mps : config.time_slicing) = r;
  return config;
}

class SharingLabeler : public ::testing::TestWithParam<SharingCase> {};

TEST_P(SharingLabeler, LabelsAsNvidiaDoes) {
  const SharingCase& c = GetParam();
  Result<NodeAdvertisement> ad = AdvertiseNode(Node(c.node), c.config);
  if (c.mps_capable == nullptr) {
    ASSERT_FALSE(ad.ok()) << c.nvidia_case;
    EXPECT_NE(ad.status().message().find("MPS is not supported for MIG devices"), std::string::npos)
        << ad.status().message();
    return;
  }
  ASSERT_TRUE(ad.ok()) << c.nvidia_case << ": " << ad.status().ToString();
  EXPECT_EQ(ad->labels.at("nvidia.com/mps.capable"), c.mps_capable) << c.nvidia_case;
}

INSTANTIATE_TEST_SUITE_P(
    Compat, SharingLabeler,
    ::testing::Values(
        SharingCase{"nvml_test.go TestSharingLabeler/nil config", kOneGpu, DefaultSharingConfig(),
                    "false"},
        SharingCase{"nvml_test.go TestSharingLabeler/empty config", kOneGpu,
                    Config("version: v1\n"), "false"},
        SharingCase{"nvml_test.go TestSharingLabeler/config with timeslicing replicas", kOneGpu,
                    Replicated(false, 2), "false"},
        SharingCase{"nvml_test.go TestSharingLabeler/config with no mps replicas", kOneGpu,
                    Replicated(true, 1), "false"},
        SharingCase{"nvml_test.go TestSharingLabeler/config with mps replicas no-mig-devices",
                    kOneGpu, Replicated(true, 2), "true"},
        SharingCase{"nvml_test.go TestSharingLabeler/config with mps replicas mig-devices",
                    kOneMig1g, Replicated(true, 2), nullptr}));

// MPS on MIG-enabled GPUs is refused under every MIG strategy, from a config file as NVIDIA's
// README writes it (issue cause 9).
TEST(CompatSharing, MpsOnMigEnabledNodeIsRefusedUnderEveryStrategy) {
  // nvml_test.go TestSharingLabeler/config with mps replicas mig-devices, with each strategy
  for (const char* flags : {kNone, kSingle}) {
    Result<NodeAdvertisement> ad = AdvertiseNode(Node(kOneMig1g), Config(With(flags, kMpsGpu2)));
    EXPECT_FALSE(ad.ok()) << flags;
  }
  EXPECT_FALSE(ParseSharingConfig(With(kMixed, kMpsGpu2)).ok()) << "mixed + MPS refused at load";
}

// --- nvml_test.go TestGPUModeLabeler (PCI class of the GPUs) ---

struct ModeCase {
  const char* nvidia_case;
  std::vector<std::uint32_t> classes;
  const char* mode;
};

void PrintTo(const ModeCase& c, std::ostream* os) { *os << c.nvidia_case; }

class GpuModeLabeler : public ::testing::TestWithParam<ModeCase> {};

TEST_P(GpuModeLabeler, LabelsAsNvidiaDoes) {
  const ModeCase& c = GetParam();
  std::vector<GpuInfo> gpus;
  for (std::uint32_t pci_class : c.classes) {
    GpuInfo gpu = Node(kOneGpu).at(0);
    gpu.index = static_cast<int>(gpus.size());
    gpu.uuid += std::to_string(gpu.index);
    gpu.pci_class = pci_class;
    gpus.push_back(gpu);
  }
  Result<NodeAdvertisement> ad = AdvertiseNode(gpus, DefaultSharingConfig());
  ASSERT_TRUE(ad.ok()) << ad.status().ToString();
  EXPECT_EQ(ad->labels.at("nvidia.com/gpu.mode"), c.mode) << c.nvidia_case;
}

// (NVIDIA's case names have compute and graphics the other way round from their classes.)
INSTANTIATE_TEST_SUITE_P(
    Compat, GpuModeLabeler,
    ::testing::Values(
        ModeCase{"nvml_test.go TestGPUModeLabeler/single device with compute PCI class",
                 {0x030000},
                 "graphics"},
        ModeCase{"nvml_test.go TestGPUModeLabeler/single device with graphics PCI class",
                 {0x030200},
                 "compute"},
        ModeCase{"nvml_test.go TestGPUModeLabeler/single device with switch PCI class",
                 {0x068000},
                 "unknown"},
        ModeCase{"nvml_test.go TestGPUModeLabeler/multiple device have same graphics PCI class",
                 {0x030200, 0x030200},
                 "compute"},
        ModeCase{"nvml_test.go TestGPUModeLabeler/multiple device have same compute PCI class",
                 {0x030000, 0x030000},
                 "graphics"},
        ModeCase{"nvml_test.go TestGPUModeLabeler/multiple device with some with graphics and "
                 "others with compute PCI class",
                 {0x030200, 0x030000},
                 "unknown"}));

// The simulated node's `mode:` field feeds the same label.
TEST(CompatGpuMode, SimulatedNodeModeIsLabelled) {
  Result<NodeAdvertisement> ad =
      AdvertiseNode(Node("gpus: [{model: L4, mode: graphics}]\n"), DefaultSharingConfig());
  ASSERT_TRUE(ad.ok());
  EXPECT_EQ(ad->labels.at("nvidia.com/gpu.mode"), "graphics");
  ad = AdvertiseNode(Node(kOneGpu), DefaultSharingConfig());
  ASSERT_TRUE(ad.ok());
  EXPECT_EQ(ad->labels.at("nvidia.com/gpu.mode"), "compute");
}

}  // namespace
}  // namespace gpuslice::compat
