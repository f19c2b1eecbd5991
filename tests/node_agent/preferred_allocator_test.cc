#include "node_agent/preferred_allocator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "test_nodes.h"

namespace gpuslice {
namespace {

using testing::GpusOf;
using ::testing::HasSubstr;
using testing::kMps;
using testing::kTimeSliced;
using testing::ResourceOf;

std::vector<std::string> AllIds(const AdvertisedResource& r) {
  std::vector<std::string> out;
  for (const AdvertisedDevice& d : r.devices) out.push_back(d.id);
  return out;
}

std::set<std::string> GpusOfIds(const std::vector<std::string>& ids) {
  std::set<std::string> out;
  for (const std::string& id : ids) out.insert(StripReplicaSuffix(id));
  return out;
}

class PreferredAllocatorTest : public ::testing::Test {
 protected:
  std::vector<GpuInfo> gpus_ = GpusOf(testing::kFourA100);
};

TEST_F(PreferredAllocatorTest, WholeGpusStayOnOneNumaNode) {
  const AdvertisedResource r = ResourceOf(gpus_, "version: v1\n", "nvidia.com/gpu");
  ASSERT_EQ(gpus_[0].numa_node, gpus_[1].numa_node);
  ASSERT_NE(gpus_[1].numa_node, gpus_[2].numa_node);
  PreferredAllocator p(r, ReplicaPolicy::kDistributed);
  // Available: 0, 2, 3. Two GPUs fit on NUMA node of 2 and 3.
  auto got = p.Choose({gpus_[0].uuid, gpus_[2].uuid, gpus_[3].uuid}, {}, 2);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, (std::vector<std::string>{gpus_[2].uuid, gpus_[3].uuid}));
  // Must-include GPU 0 pulls the rest to its NUMA node.
  got = p.Choose(AllIds(r), {gpus_[0].uuid}, 2);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, (std::vector<std::string>{gpus_[0].uuid, gpus_[1].uuid}));
  // One GPU: the best-fitting NUMA node (the one with a single free GPU).
  got = p.Choose({gpus_[0].uuid, gpus_[1].uuid, gpus_[3].uuid}, {}, 1);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, (std::vector<std::string>{gpus_[3].uuid}));
}

TEST_F(PreferredAllocatorTest, DistributedSpreadsReplicasOverGpus) {
  const AdvertisedResource r = ResourceOf(gpus_, kTimeSliced, "nvidia.com/gpu");
  PreferredAllocator p(r, ReplicaPolicy::kDistributed);
  for (int size : {2, 3, 4}) {
    auto got = p.Choose(AllIds(r), {}, size);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->size(), static_cast<std::size_t>(size));
    EXPECT_EQ(GpusOfIds(*got).size(), static_cast<std::size_t>(size)) << "size " << size;
  }
  auto got = p.Choose(AllIds(r), {}, 8);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(GpusOfIds(*got).size(), 4u);
}

TEST_F(PreferredAllocatorTest, DistributedPrefersLeastUsedGpus) {
  const AdvertisedResource r = ResourceOf(gpus_, kTimeSliced, "nvidia.com/gpu");
  // GPU 0 has three replicas in use, GPU 1 one, GPUs 2 and 3 none.
  std::vector<std::string> available;
  for (const AdvertisedDevice& d : r.devices) {
    if (d.gpu_index == 0 && d.replica < 3) continue;
    if (d.gpu_index == 1 && d.replica < 1) continue;
    available.push_back(d.id);
  }
  PreferredAllocator p(r, ReplicaPolicy::kDistributed);
  auto got = p.Choose(available, {}, 2);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(GpusOfIds(*got), (std::set<std::string>{gpus_[2].uuid, gpus_[3].uuid}));
}

TEST_F(PreferredAllocatorTest, PackedFillsTheMostUsedGpu) {
  const AdvertisedResource r = ResourceOf(gpus_, kTimeSliced, "nvidia.com/gpu");
  std::vector<std::string> available;
  for (const AdvertisedDevice& d : r.devices) {
    if (d.gpu_index == 2 && d.replica < 2) continue;  // GPU 2 half used
    available.push_back(d.id);
  }
  PreferredAllocator p(r, ReplicaPolicy::kPacked);
  auto got = p.Choose(available, {}, 2);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(GpusOfIds(*got), (std::set<std::string>{gpus_[2].uuid}));
  got = p.Choose(AllIds(r), {}, 3);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(GpusOfIds(*got).size(), 1u);
}

TEST_F(PreferredAllocatorTest, MpsRequestsStayOnOneDevice) {
  const AdvertisedResource r = ResourceOf(gpus_, kMps, "nvidia.com/gpu");
  PreferredAllocator p(r, ReplicaPolicy::kDistributed);
  std::vector<std::string> available;
  for (const AdvertisedDevice& d : r.devices) {
    if (d.gpu_index == 0 && d.replica < 2) continue;  // GPU 0 has only 2 replicas left
    available.push_back(d.id);
  }
  auto got = p.Choose(available, {}, 3);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(GpusOfIds(*got).size(), 1u);
  EXPECT_NE(*GpusOfIds(*got).begin(), gpus_[0].uuid);
}

TEST_F(PreferredAllocatorTest, MigDevicesAreSpreadOverGpus) {
  const std::vector<GpuInfo> gpus = GpusOf(R"(node:
  name: two-mig
gpus:
  - model: A100-SXM4-40GB
    count: 2
    mig:
      enabled: true
      devices:
        - profile: 1g.5gb
        - profile: 1g.5gb
        - profile: 1g.5gb
)");
  const AdvertisedResource r =
      ResourceOf(gpus, "version: v1\nflags:\n  migStrategy: mixed\n", "nvidia.com/mig-1g.5gb");
  PreferredAllocator p(r, ReplicaPolicy::kDistributed);
  auto got = p.Choose(AllIds(r), {}, 2);
  ASSERT_TRUE(got.ok());
  std::set<int> gpu_indices;
  for (const AdvertisedDevice& d : r.devices) {
    if (std::find(got->begin(), got->end(), d.id) != got->end()) gpu_indices.insert(d.gpu_index);
  }
  EXPECT_EQ(gpu_indices.size(), 2u);
}

TEST_F(PreferredAllocatorTest, MustIncludeIsKeptAndErrorsAreClear) {
  const AdvertisedResource r = ResourceOf(gpus_, kTimeSliced, "nvidia.com/gpu");
  PreferredAllocator p(r, ReplicaPolicy::kDistributed);
  const std::string must = gpus_[3].uuid + "::2";
  auto got = p.Choose(AllIds(r), {must}, 2);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->front(), must);
  EXPECT_NE(StripReplicaSuffix((*got)[1]), gpus_[3].uuid);

  auto too_big = p.Choose({gpus_[0].uuid + "::0"}, {}, 2);
  ASSERT_FALSE(too_big.ok());
  EXPECT_THAT(too_big.status().message(), HasSubstr("exceeds the 1 available"));
  auto unknown = p.Choose({"GPU-x::0"}, {}, 1);
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown device ID"));
}

TEST(ReplicaPolicyTest, Parse) {
  EXPECT_EQ(*ParseReplicaPolicy("packed"), ReplicaPolicy::kPacked);
  EXPECT_EQ(*ParseReplicaPolicy("distributed"), ReplicaPolicy::kDistributed);
  EXPECT_FALSE(ParseReplicaPolicy("spread").ok());
}

}  // namespace
}  // namespace gpuslice
