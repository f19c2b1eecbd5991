// Every bundled simulated node x several sharing configurations: the resources and labels a
// node would advertise. Expected values are worked out by hand from the fixtures' contents.
#include <gtest/gtest.h>

#include <ostream>

#include <map>
#include <set>

#include "backends/simulated_backend.h"
#include "core/advertised_resources.h"
#include "core/sharing_config.h"

namespace gpuslice {
namespace {

const std::map<std::string, std::string>& Configs() {
  static const std::map<std::string, std::string> configs = {
      {"none", "version: v1\n"},
      {"ts4",
       "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n"
       "      replicas: 4\n"},
      {"ts4-rename",
       "version: v1\nsharing:\n  timeSlicing:\n    renameByDefault: true\n    resources:\n"
       "    - name: nvidia.com/gpu\n      replicas: 4\n"},
      {"mixed", "version: v1\nflags:\n  migStrategy: mixed\n"},
      {"single", "version: v1\nflags:\n  migStrategy: single\n"},
      {"single-ts2",
       "version: v1\nflags:\n  migStrategy: single\nsharing:\n  timeSlicing:\n    resources:\n"
       "    - name: nvidia.com/gpu\n      replicas: 2\n"},
      {"mixed-ts",
       "version: v1\nflags:\n  migStrategy: mixed\nsharing:\n  timeSlicing:\n    resources:\n"
       "    - name: nvidia.com/gpu\n      replicas: 2\n    - name: nvidia.com/mig-1g.5gb\n"
       "      replicas: 3\n"},
      {"per-gpu",
       "version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - name: nvidia.com/gpu\n"
       "      devices: [0, 1, 2, 3]\n      replicas: 2\n    - name: nvidia.com/gpu\n"
       "      devices: [4, 5]\n      replicas: 4\n"},
      {"fractional",
       "version: v1\ngpuslice:\n  fractional:\n    enabled: true\n    devices: all\n"
       "    slotsPerGpu: 16\n"},
      {"mps2",
       "version: v1\nsharing:\n  mps:\n    resources:\n    - name: nvidia.com/gpu\n"
       "      replicas: 2\n"},
  };
  return configs;
}

struct Case {
  std::string name;
  std::string fixture;
  std::string config;
  std::map<std::string, std::size_t> resources;  // every advertised resource -> device count
  std::map<std::string, std::string> labels;     // a subset of the labels
  // CTest shows the row name rather than the struct's bytes.
  friend void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
};

class FixtureAdvertisementTest : public testing::TestWithParam<Case> {};

TEST_P(FixtureAdvertisementTest, AdvertisesTheExpectedResourcesAndLabels) {
  const Case& c = GetParam();
  auto node = LoadSimulatedNodeFile(std::string(GPUSLICE_SOURCE_DIR) + "/fixtures/nodes/" +
                                    c.fixture + ".yaml");
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  auto config = ParseSharingConfig(Configs().at(c.config), c.config);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto ad = AdvertiseNode(node->gpus, *config, node->driver);
  ASSERT_TRUE(ad.ok()) << ad.status().ToString();

  std::map<std::string, std::size_t> got;
  for (const AdvertisedResource& r : ad->resources) got[r.name] = r.devices.size();
  EXPECT_EQ(got, c.resources);
  for (const auto& [key, value] : c.labels) {
    auto it = ad->labels.find(key);
    if (value.empty()) {
      EXPECT_EQ(it, ad->labels.end()) << key << " should not be set";
      continue;
    }
    ASSERT_NE(it, ad->labels.end()) << key << " missing";
    EXPECT_EQ(it->second, value) << key;
  }
  // Device IDs are unique within a resource.
  for (const AdvertisedResource& r : ad->resources) {
    std::set<std::string> ids;
    for (const AdvertisedDevice& d : r.devices) EXPECT_TRUE(ids.insert(d.id).second) << d.id;
  }
}

const std::string kA100 = "NVIDIA-A100-SXM4-40GB";
const std::string kH100 = "NVIDIA-H100-80GB-HBM3";

INSTANTIATE_TEST_SUITE_P(
    Table, FixtureAdvertisementTest,
    testing::Values(
        // 8x A100-40GB: GPUs 0-6 whole, GPU 7 MIG {3g.20gb, 2g.10gb, 1g.5gb, 1g.5gb}.
        Case{"A100None", "a100-40gb-8x", "none", {{"nvidia.com/gpu", 8}},
             {{"nvidia.com/gpu.product", kA100}, {"nvidia.com/gpu.count", "8"},
              {"nvidia.com/gpu.replicas", "1"}, {"nvidia.com/gpu.memory", "40960"},
              {"nvidia.com/gpu.family", "ampere"}, {"nvidia.com/gpu.compute.major", "8"},
              {"nvidia.com/gpu.compute.minor", "0"}, {"nvidia.com/mig.capable", "true"},
              {"nvidia.com/gpu.sharing-strategy", "none"}, {"nvidia.com/mig.strategy", ""}}},
        Case{"A100TimeSlicing4", "a100-40gb-8x", "ts4", {{"nvidia.com/gpu", 32}},
             {{"nvidia.com/gpu.product", kA100 + "-SHARED"}, {"nvidia.com/gpu.replicas", "4"},
              {"nvidia.com/gpu.count", "8"}, {"nvidia.com/gpu.sharing-strategy", "time-slicing"}}},
        Case{"A100TimeSlicing4Renamed", "a100-40gb-8x", "ts4-rename",
             {{"nvidia.com/gpu.shared", 32}},
             {{"nvidia.com/gpu.product", kA100}, {"nvidia.com/gpu.replicas", "4"}}},
        Case{"A100Mixed", "a100-40gb-8x", "mixed",
             {{"nvidia.com/gpu", 7}, {"nvidia.com/mig-3g.20gb", 1}, {"nvidia.com/mig-2g.10gb", 1},
              {"nvidia.com/mig-1g.5gb", 2}},
             {{"nvidia.com/mig.strategy", "mixed"}, {"nvidia.com/mig-1g.5gb.count", "2"},
              {"nvidia.com/mig-1g.5gb.product", kA100 + "-MIG-1g.5gb"},
              {"nvidia.com/mig-1g.5gb.replicas", "1"}, {"nvidia.com/mig-3g.20gb.count", "1"},
              {"nvidia.com/mig-1g.5gb.slices.gi", "1"}, {"nvidia.com/mig-3g.20gb.slices.ci", "3"},
              {"nvidia.com/gpu.count", "8"}, {"nvidia.com/gpu.product", kA100}}},
        Case{"A100MixedTimeSlicing", "a100-40gb-8x", "mixed-ts",
             {{"nvidia.com/gpu", 14}, {"nvidia.com/mig-3g.20gb", 1}, {"nvidia.com/mig-2g.10gb", 1},
              {"nvidia.com/mig-1g.5gb", 6}},
             {{"nvidia.com/mig-1g.5gb.product", kA100 + "-MIG-1g.5gb-SHARED"},
              {"nvidia.com/mig-1g.5gb.replicas", "3"}, {"nvidia.com/gpu.replicas", "2"},
              {"nvidia.com/gpu.product", kA100 + "-SHARED"}}},
        Case{"A100SingleIsInvalid", "a100-40gb-8x", "single", {},
             {{"nvidia.com/gpu.product", kA100 + "-MIG-INVALID"}, {"nvidia.com/gpu.count", "0"},
              {"nvidia.com/mig.strategy", "single"}}},
        Case{"A100Fractional", "a100-40gb-8x", "fractional",
             {{"gpuslice.io/gpu", 7 * 16}, {"nvidia.com/gpu", 1}},
             {{"gpuslice.io/gpu.count", "7"}, {"gpuslice.io/gpu.slots", "16"}}},
        // 8x H100-80GB, all whole.
        Case{"H100None", "h100-80gb-8x", "none", {{"nvidia.com/gpu", 8}},
             {{"nvidia.com/gpu.product", kH100}, {"nvidia.com/gpu.family", "hopper"},
              {"nvidia.com/gpu.compute.major", "9"}, {"nvidia.com/mig.capable", "true"},
              {"nvidia.com/cuda.driver.major", "550"}, {"nvidia.com/cuda.runtime.major", "12"}}},
        Case{"H100TimeSlicing4", "h100-80gb-8x", "ts4", {{"nvidia.com/gpu", 32}},
             {{"nvidia.com/gpu.product", kH100 + "-SHARED"}}},
        Case{"H100PerGpuReplicas", "h100-80gb-8x", "per-gpu", {{"nvidia.com/gpu", 4 * 2 + 2 * 4 + 2}},
             {{"nvidia.com/gpu.replicas", "4"}, {"nvidia.com/gpu.product", kH100 + "-SHARED"}}},
        Case{"H100SingleWithoutMigIsWholeGpus", "h100-80gb-8x", "single", {{"nvidia.com/gpu", 8}},
             {{"nvidia.com/gpu.product", kH100}}},
        Case{"H100Fractional", "h100-80gb-8x", "fractional", {{"gpuslice.io/gpu", 8 * 16}},
             {{"gpuslice.io/gpu.count", "8"}, {"nvidia.com/gpu.count", "8"}}},
        Case{"H100Mps", "h100-80gb-8x", "mps2", {{"nvidia.com/gpu", 16}},
             {{"nvidia.com/gpu.sharing-strategy", "mps"}, {"nvidia.com/mps.capable", "true"},
              {"nvidia.com/gpu.replicas", "2"}, {"nvidia.com/gpu.product", kH100 + "-SHARED"}}},
        // 4x A30, each 4x 1g.6gb.
        Case{"A30Single", "a30-4x", "single", {{"nvidia.com/gpu", 16}},
             {{"nvidia.com/gpu.product", "NVIDIA-A30-MIG-1g.6gb"}, {"nvidia.com/gpu.count", "16"},
              {"nvidia.com/gpu.replicas", "1"}, {"nvidia.com/gpu.slices.gi", "1"}}},
        Case{"A30SingleTimeSlicing2", "a30-4x", "single-ts2", {{"nvidia.com/gpu", 32}},
             {{"nvidia.com/gpu.product", "NVIDIA-A30-MIG-1g.6gb-SHARED"},
              {"nvidia.com/gpu.replicas", "2"}}},
        Case{"A30Mixed", "a30-4x", "mixed", {{"nvidia.com/mig-1g.6gb", 16}},
             {{"nvidia.com/mig-1g.6gb.count", "16"}, {"nvidia.com/gpu.count", "4"},
              {"nvidia.com/gpu.replicas", "0"}, {"nvidia.com/gpu.product", "NVIDIA-A30"}}},
        Case{"A30NoneAdvertisesWholeGpus", "a30-4x", "none", {{"nvidia.com/gpu", 4}},
             {{"nvidia.com/gpu.replicas", "0"}}},
        // 8x H200.
        Case{"H200None", "h200-8x", "none", {{"nvidia.com/gpu", 8}},
             {{"nvidia.com/gpu.product", "NVIDIA-H200"}, {"nvidia.com/gpu.count", "8"},
              {"nvidia.com/cuda.runtime.minor", "6"}}},
        Case{"H200TimeSlicing4", "h200-8x", "ts4", {{"nvidia.com/gpu", 32}},
             {{"nvidia.com/gpu.product", "NVIDIA-H200-SHARED"}}},
        // Mixed node: A100-80GB whole, A100-80GB MIG {4g.40gb, 2g.20gb, 1g.10gb}, 2x L4, T4.
        Case{"MixedNodeNone", "mixed", "none", {{"nvidia.com/gpu", 5}},
             {{"nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB"}, {"nvidia.com/gpu.count", "2"}}},
        Case{"MixedNodeMixed", "mixed", "mixed",
             {{"nvidia.com/gpu", 4}, {"nvidia.com/mig-4g.40gb", 1}, {"nvidia.com/mig-2g.20gb", 1},
              {"nvidia.com/mig-1g.10gb", 1}},
             {{"nvidia.com/mig-4g.40gb.product", "NVIDIA-A100-SXM4-80GB-MIG-4g.40gb"}}},
        Case{"MixedNodeTimeSlicing4", "mixed", "ts4", {{"nvidia.com/gpu", 20}}, {}},
        Case{"MixedNodeFractional", "mixed", "fractional",
             {{"gpuslice.io/gpu", 4 * 16}, {"nvidia.com/gpu", 1}},
             {{"gpuslice.io/gpu.count", "4"}}}),
    [](const testing::TestParamInfo<Case>& p) { return p.param.name; });

}  // namespace
}  // namespace gpuslice
