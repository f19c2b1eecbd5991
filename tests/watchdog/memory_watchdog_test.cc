#include "watchdog/memory_watchdog.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "fakes/watchdog_fakes.h"

namespace gpuslice::watchdog {
namespace {

using std::chrono::milliseconds;
constexpr std::uint64_t kGiB = 1ULL << 30;

using testing::FakeProcessTable;
using testing::RecordingKiller;
using testing::RecordingSink;
using FakeUsage = testing::FakeGpuProcessUsage;

class MemoryWatchdogTest : public ::testing::Test {
 protected:
  MemoryWatchdogTest() {
    table_.cgroups = {{10, "/kubepods/pod-a/c1"}, {11, "/kubepods/pod-a/c1/sub"},
                      {20, "/kubepods/pod-b/c1"}, {30, "/user.slice"},
                      {31, "/user.slice"},        {32, "/user.slice"}};
    table_.parents = {{10, 1}, {11, 10}, {20, 1}, {30, 1}, {31, 30}, {32, 31}};
  }
  MemoryWatchdog& Make(WatchdogOptions options) {
    watchdog_ = std::make_unique<MemoryWatchdog>(options, usage_, table_, killer_, sink_, clock_);
    watchdog_->Watch({"pod-a", "/kubepods/pod-a", 0, {{0, 1 * kGiB}}});
    watchdog_->Watch({"run", "", 31, {{0, 1 * kGiB}, {1, 1 * kGiB}}});
    return *watchdog_;
  }

  FakeUsage usage_;
  FakeProcessTable table_;
  RecordingKiller killer_;
  RecordingSink sink_;
  ManualClock clock_;
  std::unique_ptr<MemoryWatchdog> watchdog_;
};

TEST_F(MemoryWatchdogTest, OverTheLimitIsReportedAtOnceAndKilledAfterTheGracePeriod) {
  MemoryWatchdog& w = Make({milliseconds(500), milliseconds(2000), true});
  usage_.rows = {{10, 0, 700 << 20}, {11, 0, 600 << 20}, {20, 0, 8 * kGiB}};
  ASSERT_TRUE(w.CheckOnce().ok());
  ASSERT_EQ(sink_.Count(WatchdogEventKind::kOverLimit), 1u);
  EXPECT_EQ(sink_.events[0].container, "pod-a");
  EXPECT_EQ(sink_.events[0].used_bytes, 1300ULL << 20);
  EXPECT_TRUE(killer_.killed.empty()) << "within the grace period";

  clock_.Advance(milliseconds(1999));
  ASSERT_TRUE(w.CheckOnce().ok());
  EXPECT_TRUE(killer_.killed.empty());
  EXPECT_EQ(sink_.Count(WatchdogEventKind::kOverLimit), 1u) << "reported once, not every check";

  clock_.Advance(milliseconds(1));
  ASSERT_TRUE(w.CheckOnce().ok());
  EXPECT_EQ(killer_.killed, std::vector<std::int32_t>{10}) << "the largest, and only until it fits";
  EXPECT_EQ(sink_.Count(WatchdogEventKind::kKilled), 1u);
  // pid 20 is in no watched container: never touched.

  usage_.rows = {{11, 0, 600 << 20}};
  ASSERT_TRUE(w.CheckOnce().ok());
  EXPECT_EQ(sink_.Count(WatchdogEventKind::kBackUnderLimit), 1u);
  const std::vector<ContainerGpuUsage> usage = w.LastUsage();
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0].used_bytes, 600ULL << 20);
  EXPECT_FALSE(usage[0].over_limit);
}

TEST_F(MemoryWatchdogTest, DescendantsOfTheFirstProcessBelongToTheContainer) {
  MemoryWatchdog& w = Make({milliseconds(500), milliseconds(0), true});
  // 32 is a grandchild of 30 via 31 (the run's first process); 30 itself is outside.
  usage_.rows = {{30, 0, 4 * kGiB}, {32, 0, 2 * kGiB}};
  ASSERT_TRUE(w.CheckOnce().ok());
  EXPECT_EQ(killer_.killed, std::vector<std::int32_t>{32});
}

TEST_F(MemoryWatchdogTest, AGpuTheContainerWasNotGivenHasNoMemory) {
  MemoryWatchdog& w = Make({milliseconds(500), milliseconds(0), true});
  usage_.rows = {{10, 3, 1 << 20}};
  ASSERT_TRUE(w.CheckOnce().ok());
  EXPECT_EQ(killer_.killed, std::vector<std::int32_t>{10});
}

TEST_F(MemoryWatchdogTest, ReportOnlyModeNeverKills) {
  MemoryWatchdog& w = Make({milliseconds(500), milliseconds(0), false});
  usage_.rows = {{10, 0, 2 * kGiB}};
  ASSERT_TRUE(w.CheckOnce().ok());
  clock_.Advance(std::chrono::hours(1));
  ASSERT_TRUE(w.CheckOnce().ok());
  EXPECT_TRUE(killer_.killed.empty());
  EXPECT_EQ(sink_.Count(WatchdogEventKind::kOverLimit), 1u);
}

TEST_F(MemoryWatchdogTest, AnUnreadableDriverIsAnErrorAndKillsNothing) {
  MemoryWatchdog& w = Make({milliseconds(500), milliseconds(0), true});
  usage_.error = Unavailable("NVML gone");
  const Status status = w.CheckOnce();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("NVML gone"), std::string::npos);
  EXPECT_TRUE(killer_.killed.empty());
}

TEST_F(MemoryWatchdogTest, UnwatchedContainersAreLeftAlone) {
  MemoryWatchdog& w = Make({milliseconds(500), milliseconds(0), true});
  w.Unwatch("pod-a");
  usage_.rows = {{10, 0, 8 * kGiB}};
  ASSERT_TRUE(w.CheckOnce().ok());
  EXPECT_TRUE(killer_.killed.empty());
}

TEST(WatchdogOptionsTest, ValidatesTheIntervalAndGrace) {
  struct Row {
    const char* name;
    WatchdogOptions options;
    bool ok;
  };
  const Row rows[] = {
      {"default", {}, true},
      {"one second", {milliseconds(1000), milliseconds(0), true}, true},
      {"slower than a second", {milliseconds(1001), milliseconds(0), true}, false},
      {"zero interval", {milliseconds(0), milliseconds(0), true}, false},
      {"negative grace", {milliseconds(100), milliseconds(-1), true}, false},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(row.options.Validate().ok(), row.ok) << row.options.Validate().message();
  }
}

TEST(WatchdogEventTest, FormatsALineThatSaysWhatAndWhere) {
  const std::string line =
      FormatWatchdogEvent({WatchdogEventKind::kKilled, "pod-a", 1, 3 * kGiB, kGiB, 77, 2 * kGiB});
  EXPECT_NE(line.find("pod-a"), std::string::npos) << line;
  EXPECT_NE(line.find("killed process 77"), std::string::npos) << line;
  EXPECT_NE(line.find("GPU 1"), std::string::npos) << line;
}

}  // namespace
}  // namespace gpuslice::watchdog
