// `gpuslice inventory` shows the isolation tier (docs/isolation.md) per GPU and the two labels
// the node agent adds, and keeps the GFD `labels` object unchanged.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace gpuslice {
namespace {

using testing_support::RunCli;

class InventoryIsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpuslice-inv-iso-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::filesystem::create_directories(dir_ + "/cgroup");
    std::ofstream(dir_ + "/cgroup/cgroup.controllers") << "memory dmem\n";
    std::filesystem::create_directories(dir_ + "/no-cgroup2");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  nlohmann::json Inventory(const std::string& driver, const std::string& cgroup, bool mig = false) {
    std::ofstream(dir_ + "/node.yaml")
        << "node:\n  name: inv\n  driverVersion: \"" << driver
        << "\"\ngpus:\n  - model: A100-SXM4-40GB\n"
        << (mig ? "  - model: A100-SXM4-40GB\n    mig:\n      enabled: true\n      devices:\n"
                  "        - profile: 3g.20gb\n"
                : "");
    auto r = RunCli({"inventory", "--backend", "sim:" + dir_ + "/node.yaml", "--cgroup-mount",
                     dir_ + "/" + cgroup, "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
  }
  std::string dir_;
};

TEST_F(InventoryIsolationTest, R615WithCgroupV2IsDriverTier) {
  const auto report = Inventory("615.20.03", "cgroup");
  EXPECT_EQ(report["isolation"]["memoryIsolation"], "driver");
  EXPECT_EQ(report["isolation"]["labels"]["gpuslice.io/memory-isolation"], "driver");
  EXPECT_EQ(report["isolation"]["labels"]["gpuslice.io/mps"], "none");
  EXPECT_EQ(report["isolation"]["driverMajor"], 615);
  EXPECT_FALSE(report["labels"].contains("gpuslice.io/memory-isolation"));
}

TEST_F(InventoryIsolationTest, OldDriverIsShimWithAReason) {
  const auto report = Inventory("550.54.15", "cgroup");
  EXPECT_EQ(report["isolation"]["memoryIsolation"], "shim");
  EXPECT_NE(report["isolation"]["gpus"][0]["reason"].get<std::string>().find("older than r615"),
            std::string::npos);
}

TEST_F(InventoryIsolationTest, NoCgroupV2IsShim) {
  const auto report = Inventory("615.20.03", "no-cgroup2");
  EXPECT_EQ(report["isolation"]["memoryIsolation"], "shim");
  EXPECT_EQ(report["isolation"]["cgroupV2"], false);
}

TEST_F(InventoryIsolationTest, MigGpuIsLeftOutOfTheTier) {
  const auto report = Inventory("615.20.03", "cgroup", /*mig=*/true);
  EXPECT_EQ(report["isolation"]["gpus"].size(), 1u);
  EXPECT_EQ(report["isolation"]["memoryIsolation"], "driver");
}

TEST_F(InventoryIsolationTest, TableShowsTheTier) {
  std::ofstream(dir_ + "/node.yaml")
      << "node:\n  name: inv\n  driverVersion: \"615.20.03\"\ngpus:\n  - model: A100-SXM4-40GB\n";
  auto r = RunCli(
      {"inventory", "--backend", "sim:" + dir_ + "/node.yaml", "--cgroup-mount", dir_ + "/cgroup"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Isolation: memory driver, MPS v2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("label gpuslice.io/memory-isolation=driver"), std::string::npos);
}

}  // namespace
}  // namespace gpuslice
