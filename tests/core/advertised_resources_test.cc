#include "core/advertised_resources.h"

#include <gtest/gtest.h>

#include <ostream>

#include "device_selectors.h"

namespace gpuslice {
namespace {

constexpr std::uint64_t kGiB = 1024ULL * 1024ULL * 1024ULL;

GpuInfo Gpu(int index, std::string product = "NVIDIA H100 80GB HBM3") {
  GpuInfo g;
  g.index = index;
  g.uuid = "GPU-" + std::to_string(index);
  g.product_name = std::move(product);
  g.memory_bytes = 80 * kGiB;
  g.compute_major = 9;
  g.numa_node = index / 4;
  g.mig_capable = true;
  return g;
}

GpuInfo MigGpu(int index, std::vector<std::string> profiles) {
  GpuInfo g = Gpu(index, "NVIDIA A100-SXM4-40GB");
  g.compute_major = 8;
  g.mig_enabled = true;
  for (std::size_t m = 0; m < profiles.size(); ++m) {
    MigDeviceInfo mig;
    mig.uuid = "MIG-" + std::to_string(index) + "-" + std::to_string(m);
    mig.profile_name = profiles[m];
    mig.memory_bytes = 5 * kGiB;
    g.mig_devices.push_back(mig);
  }
  return g;
}

std::vector<GpuInfo> Gpus(int n) {
  std::vector<GpuInfo> gpus;
  for (int i = 0; i < n; ++i) gpus.push_back(Gpu(i));
  return gpus;
}

SharingConfig TimeSlicing(std::vector<ReplicatedResource> resources, bool rename_by_default = false) {
  SharingConfig c = DefaultSharingConfig();
  c.time_slicing = ReplicatedResources{rename_by_default, false, std::move(resources)};
  return c;
}

ReplicatedResource Entry(std::string name, int replicas, DeviceSelector devices = {},
                         std::string rename = "") {
  ReplicatedResource r;
  r.name = std::move(name);
  r.replicas = replicas;
  r.devices = std::move(devices);
  r.rename = std::move(rename);
  return r;
}

using test_support::Count;
using test_support::List;

NodeAdvertisement MustAdvertise(const std::vector<GpuInfo>& gpus, const SharingConfig& config) {
  Result<NodeAdvertisement> ad = AdvertiseNode(gpus, config);
  EXPECT_TRUE(ad.ok()) << ad.status().ToString();
  return ad.ok() ? *ad : NodeAdvertisement{};
}

std::size_t CountOf(const NodeAdvertisement& ad, std::string_view name) {
  const AdvertisedResource* r = ad.Find(name);
  return r == nullptr ? 0 : r->devices.size();
}

TEST(AdvertiseTest, WholeGpusUseTheirUuids) {
  NodeAdvertisement ad = MustAdvertise(Gpus(2), DefaultSharingConfig());
  ASSERT_EQ(ad.resources.size(), 1u);
  const AdvertisedResource& r = ad.resources[0];
  EXPECT_EQ(r.name, "nvidia.com/gpu");
  ASSERT_EQ(r.devices.size(), 2u);
  EXPECT_EQ(r.devices[0].id, "GPU-0");
  EXPECT_EQ(r.devices[1].id, "GPU-1");
  EXPECT_EQ(r.devices[1].replica, -1);
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.product"), "NVIDIA-H100-80GB-HBM3");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.count"), "2");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.replicas"), "1");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.memory"), "81920");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.family"), "hopper");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.sharing-strategy"), "none");
  EXPECT_EQ(ad.labels.count("nvidia.com/mig.strategy"), 0u);
}

TEST(AdvertiseTest, ReplicasGetNumberedIdsAndTheSharedProduct) {
  NodeAdvertisement ad = MustAdvertise(Gpus(2), TimeSlicing({Entry("nvidia.com/gpu", 3)}));
  const AdvertisedResource* r = ad.Find("nvidia.com/gpu");
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->devices.size(), 6u);
  EXPECT_EQ(r->devices[0].id, "GPU-0::0");
  EXPECT_EQ(r->devices[2].id, "GPU-0::2");
  EXPECT_EQ(r->devices[3].id, "GPU-1::0");
  EXPECT_EQ(r->devices[3].device_uuid, "GPU-1");
  EXPECT_EQ(r->sharing, SharingStrategy::kTimeSlicing);
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.product"), "NVIDIA-H100-80GB-HBM3-SHARED");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.replicas"), "3");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.count"), "2");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.sharing-strategy"), "time-slicing");
}

TEST(AdvertiseTest, RenamedReplicasAreNotMarkedShared) {
  NodeAdvertisement ad = MustAdvertise(Gpus(2), TimeSlicing({Entry("nvidia.com/gpu", 2)}, true));
  EXPECT_EQ(CountOf(ad, "nvidia.com/gpu"), 0u);
  EXPECT_EQ(CountOf(ad, "nvidia.com/gpu.shared"), 4u);
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.product"), "NVIDIA-H100-80GB-HBM3");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.replicas"), "2");

  NodeAdvertisement explicit_rename = MustAdvertise(
      Gpus(2), TimeSlicing({Entry("nvidia.com/gpu", 2, {}, "nvidia.com/gpu.small")}));
  EXPECT_EQ(CountOf(explicit_rename, "nvidia.com/gpu.small"), 4u);
  EXPECT_EQ(explicit_rename.labels.at("nvidia.com/gpu.product"), "NVIDIA-H100-80GB-HBM3");
}

TEST(AdvertiseTest, PerGpuReplicaCountsFromDeviceSelectors) {
  NodeAdvertisement ad = MustAdvertise(
      Gpus(8), TimeSlicing({Entry("nvidia.com/gpu", 2, List({"0", "1", "2", "3"})),
                            Entry("nvidia.com/gpu", 4, List({"4", "GPU-5"}))}));
  const AdvertisedResource* r = ad.Find("nvidia.com/gpu");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->devices.size(), 4u * 2 + 2u * 4 + 2u);  // GPUs 6 and 7 stay whole
  int whole = 0;
  for (const AdvertisedDevice& d : r->devices) {
    if (d.replica == -1) {
      ++whole;
      EXPECT_TRUE(d.id == "GPU-6" || d.id == "GPU-7") << d.id;
    }
  }
  EXPECT_EQ(whole, 2);
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.replicas"), "4");  // the largest configured
}

TEST(AdvertiseTest, CountSelectorTakesTheFirstDevices) {
  NodeAdvertisement ad =
      MustAdvertise(Gpus(4), TimeSlicing({Entry("nvidia.com/gpu", 2, Count(1), "nvidia.com/x")}));
  EXPECT_EQ(CountOf(ad, "nvidia.com/x"), 2u);
  EXPECT_EQ(ad.Find("nvidia.com/x")->devices[0].device_uuid, "GPU-0");
  EXPECT_EQ(CountOf(ad, "nvidia.com/gpu"), 3u);
}

TEST(AdvertiseTest, OverlappingEntriesAreAnError) {
  Result<NodeAdvertisement> ad =
      AdvertiseNode(Gpus(4), TimeSlicing({Entry("nvidia.com/gpu", 2, List({"0", "1"})),
                                          Entry("nvidia.com/gpu", 4, List({"1"}))}));
  ASSERT_FALSE(ad.ok());
  EXPECT_EQ(ad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(ad.status().message().find("resources[0]"), std::string::npos);
  EXPECT_NE(ad.status().message().find("resources[1]"), std::string::npos);
  EXPECT_NE(ad.status().message().find("GPU 1 (GPU-1)"), std::string::npos)
      << ad.status().message();
}

TEST(AdvertiseTest, StaleSelectorsAndUnmatchedEntriesWarn) {
  NodeAdvertisement ad = MustAdvertise(
      Gpus(2), TimeSlicing({Entry("nvidia.com/gpu", 2, List({"0", "9"})),
                            Entry("nvidia.com/mig-1g.5gb", 2)}));
  ASSERT_EQ(ad.warnings.size(), 2u);
  EXPECT_NE(ad.warnings[0].find("\"9\" matches no device"), std::string::npos) << ad.warnings[0];
  EXPECT_NE(ad.warnings[1].find("nvidia.com/mig-1g.5gb matches no device"), std::string::npos)
      << ad.warnings[1];
}

TEST(AdvertiseTest, MixedStrategySplitsMigProfilesIntoResources) {
  SharingConfig c = DefaultSharingConfig();
  c.flags.mig_strategy = MigStrategy::kMixed;
  std::vector<GpuInfo> gpus = {Gpu(0, "NVIDIA A100-SXM4-40GB"),
                               MigGpu(1, {"3g.20gb", "1g.5gb", "1g.5gb"})};
  gpus[0].compute_major = 8;
  NodeAdvertisement ad = MustAdvertise(gpus, c);
  EXPECT_EQ(CountOf(ad, "nvidia.com/gpu"), 1u);
  EXPECT_EQ(CountOf(ad, "nvidia.com/mig-3g.20gb"), 1u);
  ASSERT_EQ(CountOf(ad, "nvidia.com/mig-1g.5gb"), 2u);
  const AdvertisedDevice& d = ad.Find("nvidia.com/mig-1g.5gb")->devices[1];
  EXPECT_EQ(d.id, "MIG-1-2");
  EXPECT_EQ(d.gpu_uuid, "GPU-1");
  EXPECT_EQ(d.mig_index, 2);
  EXPECT_EQ(ad.labels.at("nvidia.com/mig.strategy"), "mixed");
  EXPECT_EQ(ad.labels.at("nvidia.com/mig-1g.5gb.count"), "2");
  EXPECT_EQ(ad.labels.at("nvidia.com/mig-1g.5gb.product"), "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb");
  EXPECT_EQ(ad.labels.at("nvidia.com/mig-1g.5gb.memory"), "5120");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.count"), "2");
}

TEST(AdvertiseTest, MixedStrategyReplicatesOneProfileByMigIndex) {
  SharingConfig c = TimeSlicing({Entry("nvidia.com/mig-1g.5gb", 4, List({"1:2"}))});
  c.flags.mig_strategy = MigStrategy::kMixed;
  NodeAdvertisement ad = MustAdvertise({MigGpu(1, {"3g.20gb", "1g.5gb", "1g.5gb"})}, c);
  const AdvertisedResource* r = ad.Find("nvidia.com/mig-1g.5gb");
  ASSERT_NE(r, nullptr);
  ASSERT_EQ(r->devices.size(), 1u + 4u);
  EXPECT_EQ(r->devices[0].id, "MIG-1-1");
  EXPECT_EQ(r->devices[1].id, "MIG-1-2::0");
  EXPECT_EQ(ad.labels.at("nvidia.com/mig-1g.5gb.product"),
            "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb-SHARED");
  EXPECT_EQ(ad.labels.at("nvidia.com/mig-1g.5gb.replicas"), "4");
  EXPECT_EQ(ad.labels.at("nvidia.com/mig-3g.20gb.replicas"), "1");
}

TEST(AdvertiseTest, SingleStrategyAdvertisesUniformMigDevicesAsGpus) {
  SharingConfig c = TimeSlicing({Entry("nvidia.com/gpu", 2)});
  c.flags.mig_strategy = MigStrategy::kSingle;
  NodeAdvertisement ad =
      MustAdvertise({MigGpu(0, {"1g.5gb", "1g.5gb"}), MigGpu(1, {"1g.5gb", "1g.5gb"})}, c);
  EXPECT_EQ(CountOf(ad, "nvidia.com/gpu"), 8u);
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.product"), "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb-SHARED");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.count"), "4");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.memory"), "5120");
  EXPECT_EQ(ad.labels.at("nvidia.com/mig.strategy"), "single");
}

struct InvalidSingleCase {
  std::string name;
  std::vector<GpuInfo> gpus;
  std::string reason;
  // CTest shows the row name rather than the struct's bytes.
  friend void PrintTo(const InvalidSingleCase& c, std::ostream* os) { *os << c.name; }
};

class InvalidSingleTest : public testing::TestWithParam<InvalidSingleCase> {};

TEST_P(InvalidSingleTest, LabelsTheProductMigInvalid) {
  SharingConfig c = DefaultSharingConfig();
  c.flags.mig_strategy = MigStrategy::kSingle;
  NodeAdvertisement ad = MustAdvertise(GetParam().gpus, c);
  EXPECT_EQ(CountOf(ad, "nvidia.com/gpu"), 0u);
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.product"), "NVIDIA-A100-SXM4-40GB-MIG-INVALID");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.count"), "0");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.replicas"), "0");
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.memory"), "0");
  ASSERT_FALSE(ad.warnings.empty());
  EXPECT_NE(ad.warnings[0].find(GetParam().reason), std::string::npos) << ad.warnings[0];
}

INSTANTIATE_TEST_SUITE_P(
    Cases, InvalidSingleTest,
    testing::Values(
        InvalidSingleCase{"TwoProfiles", {MigGpu(0, {"1g.5gb", "2g.10gb"})}, "more than one MIG"},
        InvalidSingleCase{"EnabledAndDisabled",
                          {MigGpu(0, {"1g.5gb"}), Gpu(1, "NVIDIA A100-SXM4-40GB")},
                          "MIG enabled and MIG disabled"},
        InvalidSingleCase{"EmptyMigGpu", {MigGpu(0, {})}, "has no MIG devices"}),
    [](const testing::TestParamInfo<InvalidSingleCase>& p) { return p.param.name; });

TEST(AdvertiseTest, NoneStrategyWarnsAboutMigEnabledGpus) {
  NodeAdvertisement ad = MustAdvertise({MigGpu(0, {"1g.5gb"})}, DefaultSharingConfig());
  EXPECT_EQ(CountOf(ad, "nvidia.com/gpu"), 1u);
  ASSERT_EQ(ad.warnings.size(), 1u);
  EXPECT_NE(ad.warnings[0].find("MIG enabled but migStrategy is none"), std::string::npos);
  EXPECT_EQ(ad.labels.at("nvidia.com/gpu.replicas"), "0");  // GFD: no sharing on MIG GPUs
}

TEST(AdvertiseTest, FractionalGpusLeaveNvidiaGpu) {
  SharingConfig c = TimeSlicing({Entry("nvidia.com/gpu", 2)});
  c.gpuslice.fractional.enabled = true;
  c.gpuslice.fractional.devices = List({"0", "1"});
  c.gpuslice.fractional.slots_per_gpu = 8;
  NodeAdvertisement ad = MustAdvertise(Gpus(4), c);
  const AdvertisedResource* frac = ad.Find("gpuslice.io/gpu");
  ASSERT_NE(frac, nullptr);
  EXPECT_TRUE(frac->fractional);
  ASSERT_EQ(frac->devices.size(), 16u);
  EXPECT_EQ(frac->devices[0].id, "GPU-0::0");
  EXPECT_EQ(frac->devices[15].id, "GPU-1::7");
  EXPECT_EQ(CountOf(ad, "nvidia.com/gpu"), 4u);  // GPUs 2 and 3, two replicas each
  EXPECT_EQ(ad.labels.at("gpuslice.io/gpu.count"), "2");
  EXPECT_EQ(ad.labels.at("gpuslice.io/gpu.slots"), "8");
  EXPECT_FALSE(frac->fractional_mps);  // compute: arbiter, the default
  c.gpuslice.fractional.compute = FractionalCompute::kMps;
  NodeAdvertisement mps = MustAdvertise(Gpus(4), c);
  ASSERT_NE(mps.Find("gpuslice.io/gpu"), nullptr);
  EXPECT_TRUE(mps.Find("gpuslice.io/gpu")->fractional_mps);
  EXPECT_EQ(mps.Find("gpuslice.io/gpu")->sharing, SharingStrategy::kNone);
}

TEST(AdvertiseTest, AGpuCannotBeBothFractionalAndTimeSliced) {
  SharingConfig c = TimeSlicing({Entry("nvidia.com/gpu", 2, List({"1"}))});
  c.gpuslice.fractional.enabled = true;
  c.gpuslice.fractional.devices = List({"1"});
  Result<NodeAdvertisement> ad = AdvertiseNode(Gpus(2), c);
  ASSERT_FALSE(ad.ok());
  EXPECT_NE(ad.status().message().find("GPU 1 is selected both for time-slicing and for gpuslice "
                                       "fractional sharing"),
            std::string::npos)
      << ad.status().message();
}

TEST(AdvertiseTest, ResourcePatternsRenameAndFilterByProduct) {
  SharingConfig c = DefaultSharingConfig();
  c.gpu_resources = {{"*H100*", "h100"}, {"Tesla T4", "t4"}};
  std::vector<GpuInfo> gpus = {Gpu(0), Gpu(1, "Tesla T4"), Gpu(2, "NVIDIA L4")};
  NodeAdvertisement ad = MustAdvertise(gpus, c);
  EXPECT_EQ(CountOf(ad, "nvidia.com/h100"), 1u);
  EXPECT_EQ(CountOf(ad, "nvidia.com/t4"), 1u);
  EXPECT_EQ(CountOf(ad, "nvidia.com/gpu"), 0u);
  ASSERT_FALSE(ad.warnings.empty());
  EXPECT_NE(ad.warnings[0].find("GPU 2 (NVIDIA L4) matches no resources.gpus pattern"),
            std::string::npos);
}

TEST(AdvertiseTest, UnhealthyDevicesAndTheirReplicasAreMarked) {
  std::vector<GpuInfo> gpus = Gpus(2);
  gpus[1].healthy = false;
  NodeAdvertisement ad = MustAdvertise(gpus, TimeSlicing({Entry("nvidia.com/gpu", 2)}));
  for (const AdvertisedDevice& d : ad.Find("nvidia.com/gpu")->devices) {
    EXPECT_EQ(d.healthy, d.gpu_index == 0) << d.id;
  }
}

TEST(AdvertiseTest, DriverLabels) {
  DriverInfo driver{"550.54.15", 12040};
  Result<NodeAdvertisement> ad = AdvertiseNode(Gpus(1), DefaultSharingConfig(), driver);
  ASSERT_TRUE(ad.ok());
  EXPECT_EQ(ad->labels.at("nvidia.com/cuda.driver.major"), "550");
  EXPECT_EQ(ad->labels.at("nvidia.com/cuda.driver.minor"), "54");
  EXPECT_EQ(ad->labels.at("nvidia.com/cuda.driver.rev"), "15");
  EXPECT_EQ(ad->labels.at("nvidia.com/cuda.driver-version.full"), "550.54.15");
  EXPECT_EQ(ad->labels.at("nvidia.com/cuda.runtime.major"), "12");
  EXPECT_EQ(ad->labels.at("nvidia.com/cuda.runtime.minor"), "4");
  EXPECT_EQ(ad->labels.at("nvidia.com/cuda.runtime-version.full"), "12.4");
}

TEST(AdvertiseTest, NoGpusNoResources) {
  NodeAdvertisement ad = MustAdvertise({}, DefaultSharingConfig());
  EXPECT_TRUE(ad.resources.empty());
  EXPECT_EQ(ad.labels.count("nvidia.com/gpu.count"), 0u);
}

// A rename that puts two resources under one name loads (as in NVIDIA's plugin) and is refused
// only on a node where both resources have devices.
TEST(AdvertiseTest, RenameCollisionIsRefusedOnlyWhereBothResourcesExist) {
  SharingConfig config = TimeSlicing({Entry("nvidia.com/mig-1g.5gb", 2, {}, "nvidia.com/gpu")});
  config.flags.mig_strategy = MigStrategy::kMixed;
  Result<NodeAdvertisement> both = AdvertiseNode({Gpu(0), MigGpu(1, {"1g.5gb"})}, config);
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("devices of nvidia.com/gpu and nvidia.com/mig-1g.5gb "
                                         "would both be advertised as nvidia.com/gpu"),
            std::string::npos)
      << both.status().message();
  // Every GPU in MIG mode: nothing else is nvidia.com/gpu, so the rename is what the user wants.
  NodeAdvertisement only_mig = MustAdvertise({MigGpu(0, {"1g.5gb", "1g.5gb"})}, config);
  ASSERT_NE(only_mig.Find("nvidia.com/gpu"), nullptr);
  EXPECT_EQ(only_mig.Find("nvidia.com/gpu")->devices.size(), 4u);
}

// NVIDIA names "+me" profiles with a dot: resource names and label keys cannot hold '+'.
TEST(AdvertiseTest, MediaExtensionProfilesAreNamedAsNvidiaNamesThem) {
  SharingConfig config = DefaultSharingConfig();
  config.flags.mig_strategy = MigStrategy::kMixed;
  NodeAdvertisement ad = MustAdvertise({MigGpu(0, {"1g.5gb+me", "1g.5gb"})}, config);
  ASSERT_NE(ad.Find("nvidia.com/mig-1g.5gb.me"), nullptr);
  EXPECT_EQ(ad.labels.at("nvidia.com/mig-1g.5gb.me.count"), "1");
  EXPECT_EQ(ad.labels.at("nvidia.com/mig-1g.5gb.me.product"),
            "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb.me");
  for (const auto& [key, value] : ad.labels) {
    EXPECT_EQ(key.find('+'), std::string::npos) << key;
    EXPECT_EQ(value.find('+'), std::string::npos) << key << "=" << value;
  }
  for (const AdvertisedResource& r : ad.resources) {
    EXPECT_EQ(r.name.find('+'), std::string::npos) << r.name;
  }
  // resources.mig patterns match the profile as nvidia-smi writes it.
  config.mig_resources = {{"1g.5gb+me", "mig-media"}};
  ad = MustAdvertise({MigGpu(0, {"1g.5gb+me", "1g.5gb"})}, config);
  EXPECT_NE(ad.Find("nvidia.com/mig-media"), nullptr);
}

// NVIDIA accepts MIG references in `devices` under migStrategy none; they match nothing.
TEST(AdvertiseTest, MigReferencesUnderNoneWarnAndShareOnlyTheGpus) {
  NodeAdvertisement ad =
      MustAdvertise({Gpu(0), MigGpu(1, {"1g.5gb"})},
                    TimeSlicing({Entry("nvidia.com/gpu", 2, List({"0", "1:0"}))}));
  ASSERT_NE(ad.Find("nvidia.com/gpu"), nullptr);
  int replicas = 0;
  for (const AdvertisedDevice& d : ad.Find("nvidia.com/gpu")->devices) replicas += d.replica >= 0;
  EXPECT_EQ(replicas, 2);  // GPU 0 x 2
  bool warned = false;
  for (const std::string& w : ad.warnings)
    warned = warned || w.find("\"1:0\" is not a device of") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST(AdvertiseTest, MachineModeAndTimestampLabels) {
  NodeFacts facts;
  facts.machine_type = "DGX A100 (rev 2)";
  facts.timestamp_unix = 1764590400;
  std::vector<GpuInfo> gpus = Gpus(2);
  for (GpuInfo& g : gpus) g.pci_class = kPciClass3dController;
  Result<NodeAdvertisement> ad = AdvertiseNode(gpus, DefaultSharingConfig(), {}, facts);
  ASSERT_TRUE(ad.ok());
  EXPECT_EQ(ad->labels.at("nvidia.com/gpu.machine"), "DGX-A100-rev-2");
  EXPECT_EQ(ad->labels.at("nvidia.com/gfd.timestamp"), "1764590400");
  EXPECT_EQ(ad->labels.at("nvidia.com/gpu.mode"), "compute");
  ad = AdvertiseNode(Gpus(1), DefaultSharingConfig());  // no facts: unknown, no timestamp
  ASSERT_TRUE(ad.ok());
  EXPECT_EQ(ad->labels.at("nvidia.com/gpu.machine"), "unknown");
  EXPECT_EQ(ad->labels.at("nvidia.com/gpu.mode"), "unknown");
  EXPECT_EQ(ad->labels.count("nvidia.com/gfd.timestamp"), 0u);
}

TEST(StripReplicaSuffixTest, Cases) {
  EXPECT_EQ(StripReplicaSuffix("GPU-abc::3"), "GPU-abc");
  EXPECT_EQ(StripReplicaSuffix("MIG-x::10"), "MIG-x");
  EXPECT_EQ(StripReplicaSuffix("GPU-abc"), "GPU-abc");
}

}  // namespace
}  // namespace gpuslice
