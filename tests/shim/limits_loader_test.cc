// The shim's side of the node agent's hand-off: a container given the managed directory never
// runs unlimited. It waits (bounded) for the limits file, fails closed when none comes or when
// the agent refused the container, and enforces the file once it appears.
#include "shim/limits_loader.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

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

// Where the shim refuses: at the limit on a shim-tier GPU; nowhere (the driver does) on one the
// agent's file marks enforcer=driver, unless the tenant lowered its own limit.
TEST_F(LimitsLoaderTest, TheFileAloneSaysWhoRefusesAndTheEnvironmentCanOnlyLower) {
  struct Row {
    const char* name;
    const char* enforcer;      // appended to the device line
    const char* memory_limit;  // GPUSLICE_MEMORY_LIMIT, "" = unset
    std::uint64_t reported_bytes;
    std::uint64_t refuse_above_bytes;
  };
  const Row rows[] = {
      {"ShimTier", "", "", 8ULL << 30, 8ULL << 30},
      {"ShimTierExplicit", " enforcer=shim", "", 8ULL << 30, 8ULL << 30},
      {"ShimTierEnvironmentCannotRaise", "", "16Gi", 8ULL << 30, 8ULL << 30},
      {"DriverTierReportOnly", " enforcer=driver", "", 8ULL << 30, UINT64_MAX},
      {"DriverTierEnvironmentCannotRaise", " enforcer=driver", "16Gi", 8ULL << 30, UINT64_MAX},
      {"DriverTierOwnLowerLimitIsEnforced", " enforcer=driver", "2Gi", 2ULL << 30, 2ULL << 30},
  };
  fs::create_directories(managed_);
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    Write(managed_ + "/limits", std::string("gpuslice-limits 2\nregion /r\n"
                                            "device index=0 memory-bytes=8589934592") +
                                    row.enforcer + "\n");
    if (row.memory_limit[0] != '\0') {
      setenv("GPUSLICE_MEMORY_LIMIT", row.memory_limit, 1);
    } else {
      unsetenv("GPUSLICE_MEMORY_LIMIT");
    }
    LoadedLimits loaded;
    LoadLimitsFrom(managed_.c_str(), 50, &loaded);
    EXPECT_TRUE(loaded.enforcing);
    EXPECT_FALSE(loaded.broken);
    EXPECT_EQ(loaded.limit_bytes[0], row.reported_bytes);
    EXPECT_EQ(loaded.refuse_above_bytes[0], row.refuse_above_bytes);
  }
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

// GPUSLICE_LIMITS_FILE's trust rule (issue 11: a limit from a file the tenant cannot write or
// choose). Rows that need other owners than this process's run only as root.
TEST_F(LimitsLoaderTest, OnlyALimitsFileNobodyElseCanWriteIsTrusted) {
  constexpr uid_t kTenant = 65534;
  const bool root = ::geteuid() == 0;
  struct Row {
    const char* name;
    mode_t dir_mode;
    uid_t dir_owner;  // kTenant needs root
    mode_t file_mode;
    uid_t file_owner;
    LimitsFileOwners owners;
    uid_t self;
    const char* refusal;  // nullptr: trusted
  };
  const uid_t me = ::geteuid();
  const Row rows[] = {
      {"root's or mine, owner-writable only", 0755, me, 0444, me, LimitsFileOwners::kRootOrSelf, me,
       nullptr},
      {"group-writable file", 0755, me, 0664, me, LimitsFileOwners::kRootOrSelf, me,
       "writable by group or others (mode 0664)"},
      {"other-writable directory", 0777, me, 0444, me, LimitsFileOwners::kRootOrSelf, me,
       "writable by group or others (mode 0777)"},
      {"sticky other-writable directory (like /tmp)", 01777, me, 0444, me,
       LimitsFileOwners::kRootOrSelf, me, nullptr},
      {"the tenant's own file, same-user rule", 0755, kTenant, 0444, kTenant,
       LimitsFileOwners::kRootOrSelf, kTenant, nullptr},
      {"the tenant's own file, no_new_privs rule", 0755, 0, 0444, kTenant,
       LimitsFileOwners::kRootOnly, kTenant,
       "is owned by uid 65534; this process runs with "
       "no_new_privs"},
      {"root's file in the tenant's directory", 0755, kTenant, 0444, 0, LimitsFileOwners::kRootOnly,
       kTenant, "owned by uid 65534"},
      {"root's file in root's directories", 0711, 0, 0444, 0, LimitsFileOwners::kRootOnly, kTenant,
       nullptr},
      {"another user's file", 0755, 0, 0444, kTenant, LimitsFileOwners::kRootOrSelf, 4242,
       "owned by uid 65534"},
  };
  for (const Row& row : rows) {
    if (!root && (row.dir_owner != me || row.file_owner != me)) continue;
    SCOPED_TRACE(row.name);
    const std::string dir = root_ + "/d";
    fs::remove_all(dir);
    fs::create_directories(dir);
    Write(dir + "/limits", kLimits);
    ASSERT_EQ(::chmod((dir + "/limits").c_str(), row.file_mode), 0);
    ASSERT_EQ(::chown((dir + "/limits").c_str(), row.file_owner, 0), 0);
    ASSERT_EQ(::chmod(dir.c_str(), row.dir_mode), 0);
    ASSERT_EQ(::chown(dir.c_str(), row.dir_owner, 0), 0);
    ::chmod(root_.c_str(), 0755);
    char why[512] = {};
    const int fd =
        OpenTrustedLimitsFile((dir + "/limits").c_str(), row.owners, row.self, why, sizeof(why));
    if (row.refusal == nullptr) {
      EXPECT_GE(fd, 0) << why;
    } else {
      EXPECT_LT(fd, 0);
      EXPECT_NE(std::string(why).find(row.refusal), std::string::npos) << why;
    }
    if (fd >= 0) ::close(fd);
  }
}

TEST_F(LimitsLoaderTest, TrustIsJudgedOnTheResolvedPathAndARegularFile) {
  fs::create_directories(root_ + "/real");
  Write(root_ + "/real/limits", kLimits);
  fs::create_symlink(root_ + "/real/limits", root_ + "/link");
  char why[512] = {};
  int fd = OpenTrustedLimitsFile((root_ + "/link").c_str(), LimitsFileOwners::kRootOrSelf,
                                 ::geteuid(), why, sizeof(why));
  EXPECT_GE(fd, 0) << why;
  if (fd >= 0) ::close(fd);
  fd = OpenTrustedLimitsFile((root_ + "/real").c_str(), LimitsFileOwners::kRootOrSelf, ::geteuid(),
                             why, sizeof(why));
  EXPECT_LT(fd, 0);
  EXPECT_NE(std::string(why).find("not a regular file"), std::string::npos) << why;
  fd = OpenTrustedLimitsFile((root_ + "/missing").c_str(), LimitsFileOwners::kRootOrSelf,
                             ::geteuid(), why, sizeof(why));
  EXPECT_LT(fd, 0);
  EXPECT_NE(std::string(why).find("No such file"), std::string::npos) << why;
}

// Through the loader: a refused GPUSLICE_LIMITS_FILE fails closed with the reason.
TEST_F(LimitsLoaderTest, AnUntrustedLimitsFileFailsClosed) {
  Write(root_ + "/limits", kLimits);
  ::chmod((root_ + "/limits").c_str(), 0666);
  setenv("GPUSLICE_LIMITS_FILE", (root_ + "/limits").c_str(), 1);
  LoadedLimits loaded;
  testing::internal::CaptureStderr();
  LoadLimitsFrom(managed_.c_str(), 50, &loaded);
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(loaded.enforcing);
  EXPECT_TRUE(loaded.broken);
  EXPECT_NE(said.find("refusing GPUSLICE_LIMITS_FILE"), std::string::npos) << said;
  ::chmod((root_ + "/limits").c_str(), 0444);
  LoadedLimits trusted;
  LoadLimitsFrom(managed_.c_str(), 50, &trusted);
  EXPECT_FALSE(trusted.broken);
  EXPECT_EQ(trusted.limit_bytes[0], 8589934592ULL);
}

}  // namespace
}  // namespace gpuslice::shim
