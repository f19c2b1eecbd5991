#include "backends/nvml_backend.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "backends/simulated_backend.h"

namespace gpuslice {
namespace {

const std::string kFixtures = std::string(GPUSLICE_SOURCE_DIR) + "/fixtures/nodes/";

// NvmlBackend over the fake NVML must see exactly what the simulated node describes.
class NvmlOverFakeTest : public testing::TestWithParam<std::string> {};

TEST_P(NvmlOverFakeTest, ListsTheSameGpusAsTheSimulatedNode) {
  const std::string path = kFixtures + GetParam();
  ASSERT_EQ(setenv("GPUSLICE_FAKE_NVML_NODE", path.c_str(), 1), 0);
  auto nvml = NvmlBackend::Create(GPUSLICE_FAKE_NVML_PATH);
  ASSERT_TRUE(nvml.ok()) << nvml.status().ToString();
  auto expected = LoadSimulatedNodeFile(path);
  ASSERT_TRUE(expected.ok());

  auto driver = (*nvml)->GetDriverInfo();
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  EXPECT_EQ(driver->driver_version, expected->driver.driver_version);
  EXPECT_EQ(driver->cuda_driver_version, expected->driver.cuda_driver_version);

  auto gpus = (*nvml)->ListGpus();
  ASSERT_TRUE(gpus.ok()) << gpus.status().ToString();
  ASSERT_EQ(gpus->size(), expected->gpus.size());
  for (std::size_t i = 0; i < gpus->size(); ++i) {
    const GpuInfo& got = (*gpus)[i];
    const GpuInfo& want = expected->gpus[i];
    SCOPED_TRACE("GPU " + std::to_string(i));
    EXPECT_EQ(got.index, want.index);
    EXPECT_EQ(got.uuid, want.uuid);
    EXPECT_EQ(got.product_name, want.product_name);
    EXPECT_EQ(got.model, want.model);
    EXPECT_EQ(got.pci_bus_id, want.pci_bus_id);
    EXPECT_EQ(got.memory_bytes, want.memory_bytes);
    EXPECT_EQ(got.multiprocessor_count, want.multiprocessor_count);
    EXPECT_EQ(got.compute_major, want.compute_major);
    EXPECT_EQ(got.compute_minor, want.compute_minor);
    EXPECT_EQ(got.minor_number, want.minor_number);
    EXPECT_EQ(got.mig_capable, want.mig_capable);
    EXPECT_EQ(got.mig_enabled, want.mig_enabled);
    ASSERT_EQ(got.mig_devices.size(), want.mig_devices.size());
    for (std::size_t m = 0; m < got.mig_devices.size(); ++m) {
      EXPECT_EQ(got.mig_devices[m].uuid, want.mig_devices[m].uuid);
      EXPECT_EQ(got.mig_devices[m].profile_name, want.mig_devices[m].profile_name);
      EXPECT_EQ(got.mig_devices[m].profile_id, want.mig_devices[m].profile_id);
      EXPECT_EQ(got.mig_devices[m].gpu_instance_id, want.mig_devices[m].gpu_instance_id);
      EXPECT_EQ(got.mig_devices[m].start_slot, want.mig_devices[m].start_slot);
      EXPECT_EQ(got.mig_devices[m].size_slots, want.mig_devices[m].size_slots);
      EXPECT_EQ(got.mig_devices[m].memory_bytes / (1024 * 1024),
                want.mig_devices[m].memory_bytes / (1024 * 1024));
      EXPECT_EQ(got.mig_devices[m].multiprocessor_count, want.mig_devices[m].multiprocessor_count);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, NvmlOverFakeTest,
                         testing::Values("a100-40gb-8x.yaml", "h100-80gb-8x.yaml", "a30-4x.yaml",
                                         "h200-8x.yaml", "mixed.yaml"),
                         [](const testing::TestParamInfo<std::string>& p) {
                           std::string name = p.param.substr(0, p.param.find('.'));
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(NvmlBackendTest, ReportsXidEventsForGpusAndMigDevices) {
  const std::string path = kFixtures + "mixed.yaml";
  ASSERT_EQ(setenv("GPUSLICE_FAKE_NVML_NODE", path.c_str(), 1), 0);
  auto nvml = NvmlBackend::Create(GPUSLICE_FAKE_NVML_PATH);
  ASSERT_TRUE(nvml.ok()) << nvml.status().ToString();
  auto node = LoadSimulatedNodeFile(path);
  ASSERT_TRUE(node.ok());
  // mixed.yaml schedules Xid 79 on GPU 3 at 100 ms and Xid 13 on MIG 1:2 at 200 ms.
  std::vector<HealthEvent> seen;
  for (int i = 0; i < 100 && seen.size() < 2; ++i) {
    auto events = (*nvml)->WaitForHealthEvents(std::chrono::milliseconds(100));
    ASSERT_TRUE(events.ok()) << events.status().ToString();
    seen.insert(seen.end(), events->begin(), events->end());
  }
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].device_uuid, node->gpus[3].uuid);
  EXPECT_EQ(seen[0].xid, 79u);
  EXPECT_EQ(seen[1].device_uuid, node->gpus[1].mig_devices[2].uuid);
  EXPECT_EQ(seen[1].xid, 13u);
}

TEST(NvmlBackendTest, DriverNotLoadedIsUnavailable) {
  ASSERT_EQ(unsetenv("GPUSLICE_FAKE_NVML_NODE"), 0);
  auto nvml = NvmlBackend::Create(GPUSLICE_FAKE_NVML_PATH);
  ASSERT_FALSE(nvml.ok());
  EXPECT_EQ(nvml.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(nvml.status().message().find("kernel driver is not loaded"), std::string::npos);
}

TEST(NvmlBackendTest, TheFakeExportsEveryDeclaredSymbol) {
  void* handle = dlopen(GPUSLICE_FAKE_NVML_PATH, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << dlerror();
  for (const std::string& name : NvmlFunctionNames()) {
    EXPECT_NE(dlsym(handle, name.c_str()), nullptr) << name;
  }
  dlclose(handle);
}

}  // namespace
}  // namespace gpuslice
