#include "shim/accounting_region.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace gpuslice::shim {
namespace {

// Each AccountingRegion opened on the file is its own open file description, i.e. behaves as
// another process for the slot locks; closing it is that process dying.
class AccountingRegionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("gpuslice-region-test-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    std::filesystem::remove(path_);
    ASSERT_EQ(AccountingRegion::Create(path_.c_str()), 0);
    ASSERT_EQ(region_.Open(path_.c_str()), 0);
  }
  void TearDown() override { std::filesystem::remove(path_); }

  std::unique_ptr<AccountingRegion> Process() {
    auto region = std::make_unique<AccountingRegion>();
    EXPECT_EQ(region->Open(path_.c_str()), 0);
    return region;
  }

  std::string path_;
  AccountingRegion region_;
};

TEST_F(AccountingRegionTest, ReservesUpToTheLimitAcrossProcesses) {
  auto pa = Process();
  auto pb = Process();
  const int a = pa->ClaimSlot({100, 1});
  const int b = pb->ClaimSlot({200, 1});
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_NE(a, b);
  EXPECT_TRUE(pa->Reserve(a, 0, 600, 1000));
  EXPECT_FALSE(pb->Reserve(b, 0, 401, 1000));
  EXPECT_TRUE(pb->Reserve(b, 0, 400, 1000));
  EXPECT_TRUE(pb->Reserve(b, 1, 1000, 1000)) << "devices are separate";
  EXPECT_EQ(region_.Usage(0), 1000u);
  pa->Release(a, 0, 600);
  EXPECT_EQ(region_.Usage(0), 400u);
  pa->Release(a, 0, 600);
  EXPECT_EQ(region_.SlotUsage(a, 0), 0u) << "release saturates at zero";
}

TEST_F(AccountingRegionTest, RejectsAReservationLargerThanTheLimitWithoutOverflow) {
  const int a = region_.ClaimSlot({100, 1});
  EXPECT_FALSE(region_.Reserve(a, 0, UINT64_MAX, 1000));
  EXPECT_TRUE(region_.Reserve(a, 0, 1000, 1000));
  EXPECT_FALSE(region_.Reserve(a, 0, UINT64_MAX, UINT64_MAX));
}

TEST_F(AccountingRegionTest, ReclaimsTheUsageOfDeadProcessesWhenTheLimitIsReached) {
  auto pa = Process();
  const int a = pa->ClaimSlot({100, 1});
  const int b = region_.ClaimSlot({200, 1});
  ASSERT_TRUE(pa->Reserve(a, 0, 900, 1000));
  EXPECT_FALSE(region_.Reserve(b, 0, 500, 1000));
  pa.reset();  // the process dies: the kernel drops its slot lock
  EXPECT_TRUE(region_.Reserve(b, 0, 500, 1000));
  EXPECT_EQ(region_.Usage(0), 500u);
}

TEST_F(AccountingRegionTest, ALiveProcessIsNeverReclaimedWhateverItsPidSays) {
  // The recorded pid is meaningless to others (another pid namespace may show no such pid):
  // only the lock counts.
  auto pa = Process();
  const int a = pa->ClaimSlot({999999, 0});
  ASSERT_TRUE(pa->Reserve(a, 0, 900, 1000));
  EXPECT_EQ(region_.ReclaimDead(), 0);
  const int b = region_.ClaimSlot({1, 1});
  EXPECT_FALSE(region_.Reserve(b, 0, 500, 1000));
  EXPECT_TRUE(region_.SlotHeldElsewhere(a));
}

TEST_F(AccountingRegionTest, SlotsOfDeadProcessesAreReusedWhenAllAreTaken) {
  std::vector<std::unique_ptr<AccountingRegion>> processes;
  for (std::int32_t pid = 1; pid <= static_cast<std::int32_t>(kRegionSlots); ++pid) {
    processes.push_back(Process());
    ASSERT_GE(processes.back()->ClaimSlot({pid, 1}), 0) << pid;
  }
  EXPECT_EQ(region_.ClaimSlot({5000, 1}), -1);
  processes[16].reset();
  EXPECT_GE(region_.ClaimSlot({5000, 1}), 0);
}

TEST_F(AccountingRegionTest, AForkedChildKeepsItsParentsSlotAliveUntilItLetsGo) {
  auto parent = Process();
  const int slot = parent->ClaimSlot({100, 1});
  ASSERT_TRUE(parent->Reserve(slot, 0, 900, 1000));
  int ready[2];
  int release[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(release), 0);
  const pid_t child = ::fork();
  if (child == 0) {  // shares the parent's descriptor, as after a raw fork
    char c = 'r';
    (void)!::write(ready[1], &c, 1);
    (void)!::read(release[0], &c, 1);
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_EQ(region_.ReclaimDead(), 0) << "the parent still holds it";
  parent->DropInheritedDescriptor();  // now only the child holds the description
  EXPECT_EQ(region_.ReclaimDead(), 0) << "conservative: the child may still hold memory";
  (void)!::write(release[1], &c, 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(region_.ReclaimDead(), 1);
  for (int fd : {ready[0], ready[1], release[0], release[1]}) ::close(fd);
}

TEST_F(AccountingRegionTest, SecondMappingSeesTheSameUsage) {
  const int a = region_.ClaimSlot({100, 1});
  ASSERT_TRUE(region_.Reserve(a, 2, 123, 1000));
  AccountingRegion other;
  ASSERT_EQ(other.Open(path_.c_str()), 0);
  EXPECT_EQ(other.Usage(2), 123u);
}

TEST_F(AccountingRegionTest, AnOpenerNeverInitialisesOrRepairsARegion) {
  struct Row {
    const char* name;
    std::uint32_t magic;
    int expected;
  };
  const Row rows[] = {
      {"zeroed magic (dd of four zero bytes)", 0, EPROTO},
      {"another magic", 0xdeadbeef, EPROTO},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    ASSERT_EQ(AccountingRegion::Create(path_.c_str()), 0);
    FILE* f = std::fopen(path_.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fwrite(&row.magic, sizeof(row.magic), 1, f);
    std::fclose(f);
    AccountingRegion other;
    EXPECT_EQ(other.Open(path_.c_str()), row.expected);
    std::uint32_t after = 1;
    f = std::fopen(path_.c_str(), "rb");
    ASSERT_EQ(std::fread(&after, sizeof(after), 1, f), 1u);
    std::fclose(f);
    EXPECT_EQ(after, row.magic) << "the opener wrote nothing";
  }
  AccountingRegion other;
  EXPECT_EQ(other.Open((path_ + ".absent").c_str()), ENOENT);
  std::filesystem::resize_file(path_, 64);
  EXPECT_EQ(other.Open(path_.c_str()), EPROTO) << "truncated";
}

TEST(ProcessIdentityTest, KnowsThisProcess) {
  const ProcessIdentity self = CurrentProcessIdentity();
  EXPECT_EQ(self.pid, ::getpid());
  EXPECT_GT(self.start_ticks, 0u);
}

}  // namespace
}  // namespace gpuslice::shim
