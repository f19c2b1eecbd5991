// NvmlMemoryLimits through real dlopen/dlsym calls into the fake NVML, which follows the
// documented nvmlDeviceSetMemoryLimits_v1 semantics over a cgroup tree on disk.
#include "backends/nvml_memory_limits.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "backends/nvml_backend.h"

namespace gpuslice {
namespace {

class NvmlMemoryLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpuslice-nvml-limits-XXXXXX";
    root_ = mkdtemp(tmpl);
    std::filesystem::create_directories(root_ + "/kubepods/ctr1");
    std::ofstream(root_ + "/cgroup.controllers") << "memory dmem\n";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void UseNode(const std::string& yaml) {
    std::ofstream(root_ + "/node.yaml") << yaml;
    ASSERT_EQ(setenv("GPUSLICE_FAKE_NVML_NODE", (root_ + "/node.yaml").c_str(), 1), 0);
  }
  std::string root_;
};

constexpr char kR615[] =
    "node:\n  name: limits\n  driverVersion: \"615.20.03\"\ngpus:\n  - model: A100-SXM4-40GB\n"
    "  - model: A100-SXM4-40GB\n    mig:\n      enabled: true\n      devices:\n"
    "        - profile: 3g.20gb\n";

TEST_F(NvmlMemoryLimitsTest, SetGetClearOnAWholeGpu) {
  UseNode(kR615);
  auto backend = NvmlBackend::Create(GPUSLICE_FAKE_NVML_PATH);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  auto gpus = (*backend)->ListGpus();
  ASSERT_TRUE(gpus.ok());
  auto limits = NvmlMemoryLimits::Create(GPUSLICE_FAKE_NVML_PATH, root_);
  ASSERT_TRUE(limits.ok()) << limits.status().ToString();
  const std::string whole = (*gpus)[0].uuid;
  const std::string cgroup = root_ + "/kubepods/ctr1";
  EXPECT_TRUE((*limits)->Supported(whole));
  EXPECT_FALSE((*limits)->Supported((*gpus)[1].mig_devices.at(0).uuid));
  ASSERT_TRUE((*limits)->SetMemoryLimits(whole, cgroup, 1ULL << 30, 4ULL << 30).ok());
  auto got = (*limits)->GetMemoryLimits(whole, cgroup);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->soft_limit_bytes, 1ULL << 30);
  EXPECT_EQ(got->hard_limit_bytes, 4ULL << 30);
  ASSERT_TRUE((*limits)->ClearMemoryLimits(whole, cgroup).ok());
  EXPECT_FALSE((*limits)->GetMemoryLimits(whole, cgroup)->set());
  EXPECT_EQ((*limits)->SetMemoryLimits(whole, root_ + "/nope", 0, 1).code(), ErrorCode::kNotFound);
  EXPECT_EQ((*limits)->SetMemoryLimits("GPU-unknown", cgroup, 0, 1).code(), ErrorCode::kNotFound);
}

TEST_F(NvmlMemoryLimitsTest, OldDriverIsNotSupported) {
  UseNode("node:\n  name: old\n  driverVersion: \"550.54.15\"\ngpus:\n  - model: A100-SXM4-40GB\n");
  auto backend = NvmlBackend::Create(GPUSLICE_FAKE_NVML_PATH);
  ASSERT_TRUE(backend.ok());
  auto limits = NvmlMemoryLimits::Create(GPUSLICE_FAKE_NVML_PATH, root_);
  ASSERT_TRUE(limits.ok());
  EXPECT_FALSE((*limits)->Supported((*(*backend)->ListGpus())[0].uuid));
}

TEST_F(NvmlMemoryLimitsTest, LibraryWithoutTheCallsIsUnavailable) {
  auto limits = NvmlMemoryLimits::Create("libc.so.6", root_);
  ASSERT_FALSE(limits.ok());
  EXPECT_EQ(limits.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(limits.status().message().find("r615"), std::string::npos);
}

}  // namespace
}  // namespace gpuslice
