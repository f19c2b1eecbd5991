#include "shim/accounting_region.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

namespace gpuslice::shim {
namespace {

// Liveness decided by the test: processes in `dead` are gone.
class FakeLiveness : public ProcessLiveness {
 public:
  bool IsAlive(const ProcessIdentity& id) noexcept override { return dead.count(id.pid) == 0; }
  std::set<std::int32_t> dead;
};

class AccountingRegionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("gpuslice-region-test-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    std::filesystem::remove(path_);
    ASSERT_EQ(region_.Open(path_.c_str(), true), 0);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::string path_;
  AccountingRegion region_;
  FakeLiveness liveness_;
};

TEST_F(AccountingRegionTest, ReservesUpToTheLimitAcrossProcesses) {
  const int a = region_.ClaimSlot({100, 1}, liveness_);
  const int b = region_.ClaimSlot({200, 1}, liveness_);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_NE(a, b);
  EXPECT_TRUE(region_.Reserve(a, 0, 600, 1000, liveness_));
  EXPECT_FALSE(region_.Reserve(b, 0, 401, 1000, liveness_));
  EXPECT_TRUE(region_.Reserve(b, 0, 400, 1000, liveness_));
  EXPECT_TRUE(region_.Reserve(b, 1, 1000, 1000, liveness_)) << "devices are separate";
  EXPECT_EQ(region_.Usage(0), 1000u);
  region_.Release(a, 0, 600);
  EXPECT_EQ(region_.Usage(0), 400u);
  region_.Release(a, 0, 600);
  EXPECT_EQ(region_.SlotUsage(a, 0), 0u) << "release saturates at zero";
}

TEST_F(AccountingRegionTest, RejectsAReservationLargerThanTheLimitWithoutOverflow) {
  const int a = region_.ClaimSlot({100, 1}, liveness_);
  EXPECT_FALSE(region_.Reserve(a, 0, UINT64_MAX, 1000, liveness_));
  EXPECT_TRUE(region_.Reserve(a, 0, 1000, 1000, liveness_));
  EXPECT_FALSE(region_.Reserve(a, 0, UINT64_MAX, UINT64_MAX, liveness_));
}

TEST_F(AccountingRegionTest, ReclaimsTheUsageOfDeadProcessesWhenTheLimitIsReached) {
  const int a = region_.ClaimSlot({100, 1}, liveness_);
  const int b = region_.ClaimSlot({200, 1}, liveness_);
  ASSERT_TRUE(region_.Reserve(a, 0, 900, 1000, liveness_));
  EXPECT_FALSE(region_.Reserve(b, 0, 500, 1000, liveness_));
  liveness_.dead.insert(100);
  EXPECT_TRUE(region_.Reserve(b, 0, 500, 1000, liveness_));
  EXPECT_EQ(region_.Usage(0), 500u);
}

TEST_F(AccountingRegionTest, AProcessThatExecsGetsItsOwnSlotBackEmpty) {
  const int first = region_.ClaimSlot({100, 7}, liveness_);
  ASSERT_TRUE(region_.Reserve(first, 0, 900, 1000, liveness_));
  const int again = region_.ClaimSlot({100, 7}, liveness_);
  EXPECT_EQ(again, first);
  EXPECT_EQ(region_.Usage(0), 0u);
}

TEST_F(AccountingRegionTest, SlotsOfDeadProcessesAreReusedWhenAllAreTaken) {
  for (std::int32_t pid = 1; pid <= static_cast<std::int32_t>(kRegionSlots); ++pid) {
    ASSERT_GE(region_.ClaimSlot({pid, 1}, liveness_), 0) << pid;
  }
  EXPECT_EQ(region_.ClaimSlot({5000, 1}, liveness_), -1);
  liveness_.dead.insert(17);
  EXPECT_GE(region_.ClaimSlot({5000, 1}, liveness_), 0);
}

TEST_F(AccountingRegionTest, SecondMappingSeesTheSameUsage) {
  const int a = region_.ClaimSlot({100, 1}, liveness_);
  ASSERT_TRUE(region_.Reserve(a, 2, 123, 1000, liveness_));
  AccountingRegion other;
  ASSERT_EQ(other.Open(path_.c_str(), false), 0);
  EXPECT_EQ(other.Usage(2), 123u);
}

TEST_F(AccountingRegionTest, RefusesAFileWithAnotherMagicOrAMissingFile) {
  AccountingRegion other;
  EXPECT_EQ(other.Open((path_ + ".absent").c_str(), false), ENOENT);
  {
    FILE* f = std::fopen(path_.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    const std::uint32_t bad = 0xdeadbeef;
    std::fwrite(&bad, sizeof(bad), 1, f);
    std::fclose(f);
  }
  EXPECT_EQ(other.Open(path_.c_str(), false), EPROTO);
}

TEST(ProcfsLivenessTest, KnowsThisProcessAndRejectsAReusedPid) {
  ProcfsLiveness liveness;
  const ProcessIdentity self = CurrentProcessIdentity();
  ASSERT_GT(self.start_ticks, 0u);
  EXPECT_TRUE(liveness.IsAlive(self));
  EXPECT_FALSE(liveness.IsAlive({self.pid, self.start_ticks + 1}));
  EXPECT_FALSE(liveness.IsAlive({0, 0}));
}

}  // namespace
}  // namespace gpuslice::shim
