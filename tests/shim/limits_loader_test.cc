// The shim's side of the node agent's hand-off: a container given the managed directory never
// runs unlimited. It waits (bounded) for the limits file, fails closed when none comes or when
// the agent refused the container, and enforces the file once it appears.
#include "shim/limits_loader.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace gpuslice::shim {
namespace {

namespace fs = std::filesystem;

constexpr char kLimits[] =
    "gpuslice-limits 1\nregion /run/gpuslice/accounting\n"
    "device index=1 uuid=GPU-1 memory-bytes=8589934592 compute-percent=30\n";

class LimitsLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "gpuslice-loader-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    managed_ = root_ + "/etc-gpuslice";
    unsetenv("GPUSLICE_LIMITS_FILE");
    unsetenv("GPUSLICE_MEMORY_LIMIT");
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const std::string& path, const std::string& text) {
    std::ofstream(path + ".tmp") << text;
    fs::rename(path + ".tmp", path);
  }
  std::string root_;
  std::string managed_;
};

TEST_F(LimitsLoaderTest, NoManagedDirectoryAndNoFileMeansNotManaged) {
  LoadedLimits loaded;
  LoadLimitsFrom(managed_.c_str(), 50, &loaded);
  EXPECT_FALSE(loaded.enforcing);
  EXPECT_FALSE(loaded.broken);
}

TEST_F(LimitsLoaderTest, LimitsFileInTheManagedDirectoryIsEnforced) {
  fs::create_directories(managed_);
  Write(managed_ + "/limits", kLimits);
  LoadedLimits loaded;
  LoadLimitsFrom(managed_.c_str(), 50, &loaded);
  EXPECT_TRUE(loaded.enforcing);
  EXPECT_FALSE(loaded.broken);
  ASSERT_EQ(loaded.limits.device_count, 1u);
  EXPECT_EQ(loaded.limit_bytes[0], 8589934592ULL);
}

TEST_F(LimitsLoaderTest, ManagedDirectoryWithoutLimitsFailsClosedAfterTheWait) {
  fs::create_directories(managed_);
  // Even a file of the tenant's own choosing is not taken instead.
  Write(root_ + "/mine", "gpuslice-limits 1\nregion /tmp/r\n");
  setenv("GPUSLICE_LIMITS_FILE", (root_ + "/mine").c_str(), 1);
  LoadedLimits loaded;
  const auto start = std::chrono::steady_clock::now();
  LoadLimitsFrom(managed_.c_str(), 100, &loaded);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  EXPECT_TRUE(loaded.enforcing);
  EXPECT_TRUE(loaded.broken);
}

TEST_F(LimitsLoaderTest, RefusedContainerFailsClosedAtOnce) {
  fs::create_directories(managed_);
  Write(managed_ + "/refused", "pod default/stray has no gpuslice.io/assignment annotation\n");
  LoadedLimits loaded;
  const auto start = std::chrono::steady_clock::now();
  testing::internal::CaptureStderr();
  LoadLimitsFrom(managed_.c_str(), 5000, &loaded);
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(loaded.enforcing);
  EXPECT_TRUE(loaded.broken);
  EXPECT_NE(said.find("refused"), std::string::npos) << said;
  EXPECT_NE(said.find("has no gpuslice.io/assignment annotation"), std::string::npos) << said;
}

TEST_F(LimitsLoaderTest, LimitsWrittenDuringTheWaitAreEnforced) {
  fs::create_directories(managed_);
  std::thread agent([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the agent's reconcile lag
    Write(managed_ + "/limits", kLimits);
  });
  LoadedLimits loaded;
  LoadLimitsFrom(managed_.c_str(), 5000, &loaded);
  agent.join();
  EXPECT_TRUE(loaded.enforcing);
  EXPECT_FALSE(loaded.broken);
  EXPECT_EQ(loaded.limit_bytes[0], 8589934592ULL);
}

}  // namespace
}  // namespace gpuslice::shim
