#include "node_agent/container_allocator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "node_agent/mps_daemon_supervisor.h"
#include "test_nodes.h"

namespace gpuslice {
namespace {

using testing::GpusOf;
using ::testing::HasSubstr;
using testing::kMps;
using testing::kTimeSliced;
using testing::ResourceOf;
using ::testing::UnorderedElementsAre;

constexpr char kWhole[] = "version: v1\n";
constexpr char kTimeSlicedStrict[] = R"(version: v1
sharing:
  timeSlicing:
    failRequestsGreaterThanOne: true
    resources:
      - name: nvidia.com/gpu
        replicas: 4
)";
constexpr char kMixed[] = R"(version: v1
flags:
  migStrategy: mixed
)";

AllocationSettings Settings(std::vector<DeviceListStrategy> strategies,
                            DeviceIdStrategy ids = DeviceIdStrategy::kUuid,
                            bool pass_specs = false) {
  AllocationSettings s;
  s.plugin.device_list_strategies = std::move(strategies);
  s.plugin.device_id_strategy = ids;
  s.plugin.pass_device_specs = pass_specs;
  s.mps_root = "/run/mps";
  return s;
}

std::vector<std::string> MountTargets(const v1beta1::ContainerAllocateResponse& r) {
  std::vector<std::string> out;
  for (const auto& m : r.mounts()) out.push_back(m.container_path());
  return out;
}

std::vector<std::string> DeviceNodes(const v1beta1::ContainerAllocateResponse& r) {
  std::vector<std::string> out;
  for (const auto& d : r.devices()) out.push_back(d.host_path());
  return out;
}

class ContainerAllocatorTest : public ::testing::Test {
 protected:
  std::vector<GpuInfo> gpus_ = GpusOf(testing::kFourA100);
  std::vector<GpuInfo> mig_gpus_ = GpusOf(testing::kA100WithMig);
};

TEST_F(ContainerAllocatorTest, EnvvarListsUuidsOrIndices) {
  const AdvertisedResource r = ResourceOf(gpus_, kWhole, "nvidia.com/gpu");
  ContainerAllocator by_uuid(r, gpus_, Settings({DeviceListStrategy::kEnvvar}));
  auto got = by_uuid.Allocate({gpus_[1].uuid, gpus_[3].uuid});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->envs().at("NVIDIA_VISIBLE_DEVICES"), gpus_[1].uuid + "," + gpus_[3].uuid);

  ContainerAllocator by_index(r, gpus_,
                              Settings({DeviceListStrategy::kEnvvar}, DeviceIdStrategy::kIndex));
  got = by_index.Allocate({gpus_[1].uuid, gpus_[3].uuid});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->envs().at("NVIDIA_VISIBLE_DEVICES"), "1,3");
}

TEST_F(ContainerAllocatorTest, ReplicasAreStrippedAndDeduplicated) {
  const AdvertisedResource r = ResourceOf(gpus_, kTimeSliced, "nvidia.com/gpu");
  ContainerAllocator a(r, gpus_, Settings({DeviceListStrategy::kEnvvar}));
  auto got = a.Allocate({gpus_[2].uuid + "::0", gpus_[2].uuid + "::3", gpus_[0].uuid + "::1"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->envs().at("NVIDIA_VISIBLE_DEVICES"), gpus_[2].uuid + "," + gpus_[0].uuid);
}

TEST_F(ContainerAllocatorTest, EachDeviceListStrategy) {
  const AdvertisedResource r = ResourceOf(gpus_, kWhole, "nvidia.com/gpu");
  const std::string id = gpus_[0].uuid;
  struct Case {
    std::string name;
    std::vector<DeviceListStrategy> strategies;
    std::string visible_env;  // "" = not set
    std::vector<std::string> mounts;
    std::string annotation;  // value of the CDI annotation, "" = none
    std::vector<std::string> cdi_devices;
  };
  const std::string cdi = "nvidia.com/gpu=" + id;
  const std::vector<Case> cases = {
      {"envvar", {DeviceListStrategy::kEnvvar}, id, {}, "", {}},
      {"volume-mounts",
       {DeviceListStrategy::kVolumeMounts},
       "/var/run/nvidia-container-devices",
       {"/var/run/nvidia-container-devices/" + id},
       "",
       {}},
      {"envvar+volume-mounts",
       {DeviceListStrategy::kEnvvar, DeviceListStrategy::kVolumeMounts},
       id,
       {"/var/run/nvidia-container-devices/" + id},
       "",
       {}},
      {"cdi-annotations", {DeviceListStrategy::kCdiAnnotations}, "", {}, cdi, {}},
      {"cdi-cri", {DeviceListStrategy::kCdiCri}, "", {}, "", {cdi}},
  };
  for (const Case& c : cases) {
    ContainerAllocator a(r, gpus_, Settings(c.strategies));
    auto got = a.Allocate({id});
    ASSERT_TRUE(got.ok()) << c.name << ": " << got.status().ToString();
    if (c.visible_env.empty()) {
      EXPECT_EQ(got->envs().count("NVIDIA_VISIBLE_DEVICES"), 0u) << c.name;
    } else {
      EXPECT_EQ(got->envs().at("NVIDIA_VISIBLE_DEVICES"), c.visible_env) << c.name;
    }
    EXPECT_EQ(MountTargets(*got), c.mounts) << c.name;
    if (c.annotation.empty()) {
      EXPECT_TRUE(got->annotations().empty()) << c.name;
    } else {
      EXPECT_EQ(got->annotations().at("cdi.k8s.io/gpuslice-node-agent_nvidia.com_gpu"),
                c.annotation)
          << c.name;
    }
    std::vector<std::string> names;
    for (const auto& d : got->cdi_devices()) names.push_back(d.name());
    EXPECT_EQ(names, c.cdi_devices) << c.name;
  }
}

TEST_F(ContainerAllocatorTest, PassDeviceSpecsForGpus) {
  const AdvertisedResource r = ResourceOf(gpus_, kWhole, "nvidia.com/gpu");
  ContainerAllocator a(r, gpus_,
                       Settings({DeviceListStrategy::kEnvvar}, DeviceIdStrategy::kUuid, true));
  auto got = a.Allocate({gpus_[2].uuid});
  ASSERT_TRUE(got.ok());
  EXPECT_THAT(DeviceNodes(*got),
              UnorderedElementsAre("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                                   "/dev/nvidia" + std::to_string(gpus_[2].minor_number)));
}

TEST_F(ContainerAllocatorTest, PassDeviceSpecsForMigAddsCapabilityNodes) {
  const GpuInfo& gpu = mig_gpus_[2];
  const MigDeviceInfo& mig = gpu.mig_devices[2];
  const AdvertisedResource r = ResourceOf(mig_gpus_, kMixed, "nvidia.com/mig-1g.5gb");
  AllocationSettings s = Settings({DeviceListStrategy::kEnvvar}, DeviceIdStrategy::kIndex, true);
  const std::string gi =
      "gpu" + std::to_string(gpu.minor_number) + "/gi" + std::to_string(mig.gpu_instance_id);
  s.mig_cap_minors = ParseMigMinors("config 1\nmonitor 2\n" + gi + "/access 30\n" + gi + "/ci" +
                                    std::to_string(mig.compute_instance_id) + "/access 31\n");
  ContainerAllocator a(r, mig_gpus_, s);
  auto got = a.Allocate({mig.uuid});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->envs().at("NVIDIA_VISIBLE_DEVICES"), "2:2");
  EXPECT_THAT(
      DeviceNodes(*got),
      UnorderedElementsAre("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                           "/dev/nvidia" + std::to_string(gpu.minor_number),
                           "/dev/nvidia-caps/nvidia-cap30", "/dev/nvidia-caps/nvidia-cap31"));
}

TEST_F(ContainerAllocatorTest, FailRequestsGreaterThanOne) {
  const AdvertisedResource r = ResourceOf(gpus_, kTimeSlicedStrict, "nvidia.com/gpu");
  ContainerAllocator a(r, gpus_, Settings({DeviceListStrategy::kEnvvar}));
  EXPECT_TRUE(a.Allocate({gpus_[0].uuid + "::0"}).ok());
  auto got = a.Allocate({gpus_[0].uuid + "::0", gpus_[1].uuid + "::0"});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(got.status().message(),
              HasSubstr("request for 'nvidia.com/gpu: 2' too large: maximum request size for "
                        "shared resources is 1"));
}

TEST_F(ContainerAllocatorTest, UnknownIdIsRejected) {
  const AdvertisedResource r = ResourceOf(gpus_, kWhole, "nvidia.com/gpu");
  ContainerAllocator a(r, gpus_, Settings({DeviceListStrategy::kEnvvar}));
  auto got = a.Allocate({"GPU-nope"});
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("unknown device ID \"GPU-nope\""));
  EXPECT_FALSE(a.Allocate({}).ok());
}

TEST_F(ContainerAllocatorTest, MpsLimitsFollowTheRequest) {
  const AdvertisedResource r = ResourceOf(gpus_, kMps, "nvidia.com/gpu");
  ContainerAllocator a(r, gpus_, Settings({DeviceListStrategy::kEnvvar}));
  const std::uint64_t gpu_mib = gpus_[1].memory_bytes / (1024 * 1024);
  struct Case {
    int replicas;
    std::string percent;
    std::uint64_t memory_mib;
  };
  for (const Case& c :
       std::vector<Case>{{1, "25", gpu_mib / 4}, {2, "50", gpu_mib / 2}, {4, "100", gpu_mib}}) {
    std::vector<std::string> ids;
    for (int i = 0; i < c.replicas; ++i) ids.push_back(gpus_[1].uuid + "::" + std::to_string(i));
    auto got = a.Allocate(ids);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->envs().at("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), c.percent);
    EXPECT_EQ(got->envs().at("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"),
              "0=" + std::to_string(c.memory_mib) + "M");
    EXPECT_EQ(got->envs().at("CUDA_MPS_PIPE_DIRECTORY"), "/tmp/nvidia-mps");
    ASSERT_EQ(got->mounts_size(), 1);
    EXPECT_EQ(got->mounts(0).host_path(),
              MpsDaemonSupervisor::PipeDirectory("/run/mps", gpus_[1].uuid));
    EXPECT_EQ(got->envs().at("NVIDIA_VISIBLE_DEVICES"), gpus_[1].uuid);
  }
}

TEST_F(ContainerAllocatorTest, MpsAcrossTwoGpusIsRejected) {
  const AdvertisedResource r = ResourceOf(gpus_, kMps, "nvidia.com/gpu");
  ContainerAllocator a(r, gpus_, Settings({DeviceListStrategy::kEnvvar}));
  auto got = a.Allocate({gpus_[0].uuid + "::0", gpus_[1].uuid + "::0"});
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("MPS replicas of one device"));
}

}  // namespace
}  // namespace gpuslice
