#include "node_agent/health_tracker.h"

#include <gtest/gtest.h>

namespace gpuslice {
namespace {

AdvertisedDevice Device(std::string device_uuid, std::string gpu_uuid) {
  AdvertisedDevice d;
  d.id = device_uuid;
  d.device_uuid = std::move(device_uuid);
  d.gpu_uuid = std::move(gpu_uuid);
  return d;
}

HealthEvent Xid(std::string uuid, std::uint64_t xid) {
  return {HealthEvent::Kind::kXid, std::move(uuid), xid, ""};
}
HealthEvent Recovered(std::string uuid) {
  return {HealthEvent::Kind::kRecovered, std::move(uuid), 0, ""};
}

TEST(HealthTrackerTest, DefaultIgnoredXidsAreTheApplicationOnes) {
  EXPECT_EQ(HealthTracker::DefaultIgnoredXids(),
            (std::set<std::uint64_t>{13, 31, 43, 45, 68, 109}));
}

TEST(HealthTrackerTest, XidOnGpuMarksGpuAndItsMigDevicesAndRecovers) {
  HealthTracker tracker;
  const AdvertisedDevice gpu = Device("GPU-a", "GPU-a");
  const AdvertisedDevice mig = Device("MIG-a1", "GPU-a");
  const AdvertisedDevice other = Device("GPU-b", "GPU-b");
  EXPECT_TRUE(tracker.Apply(Xid("GPU-a", 79)));
  EXPECT_FALSE(tracker.IsHealthy(gpu));
  EXPECT_FALSE(tracker.IsHealthy(mig));
  EXPECT_TRUE(tracker.IsHealthy(other));
  EXPECT_NE(tracker.Reason(gpu).find("Xid 79"), std::string::npos);
  EXPECT_TRUE(tracker.Apply(Recovered("GPU-a")));
  EXPECT_TRUE(tracker.IsHealthy(gpu));
  EXPECT_TRUE(tracker.IsHealthy(mig));
}

TEST(HealthTrackerTest, XidOnMigDeviceMarksOnlyThatDevice) {
  HealthTracker tracker;
  EXPECT_TRUE(tracker.Apply(Xid("MIG-a1", 48)));
  EXPECT_FALSE(tracker.IsHealthy(Device("MIG-a1", "GPU-a")));
  EXPECT_TRUE(tracker.IsHealthy(Device("MIG-a2", "GPU-a")));
  EXPECT_TRUE(tracker.IsHealthy(Device("GPU-a", "GPU-a")));
}

TEST(HealthTrackerTest, IgnoredXidsChangeNothing) {
  for (std::uint64_t xid : std::vector<std::uint64_t>{13, 31, 43, 45, 68, 109}) {
    HealthTracker tracker;
    EXPECT_FALSE(tracker.Apply(Xid("GPU-a", xid))) << xid;
    EXPECT_TRUE(tracker.IsHealthy(Device("GPU-a", "GPU-a"))) << xid;
  }
}

TEST(HealthTrackerTest, ConfiguredIgnoredXids) {
  HealthTracker tracker({79});
  EXPECT_FALSE(tracker.Apply(Xid("GPU-a", 79)));
  EXPECT_TRUE(tracker.Apply(Xid("GPU-a", 13)));  // no longer ignored
}

TEST(HealthTrackerTest, RepeatedXidAndRecoveryOfHealthyDeviceAreNoChange) {
  HealthTracker tracker;
  EXPECT_TRUE(tracker.Apply(Xid("GPU-a", 79)));
  EXPECT_FALSE(tracker.Apply(Xid("GPU-a", 48)));
  EXPECT_FALSE(tracker.Apply(Recovered("GPU-b")));
}

TEST(HealthTrackerTest, ParseXidList) {
  struct Case {
    std::string text;
    bool ok;
    std::set<std::uint64_t> want;
  };
  const std::vector<Case> cases = {
      {"13,31,43", true, {13, 31, 43}},
      {" 13 , 79 ", true, {13, 79}},
      {"", true, {}},
      {"13,x", false, {}},
      {"-1", false, {}},
  };
  for (const Case& c : cases) {
    auto got = HealthTracker::ParseXidList(c.text);
    EXPECT_EQ(got.ok(), c.ok) << c.text;
    if (got.ok() && c.ok) {
      EXPECT_EQ(*got, c.want) << c.text;
    }
    if (!got.ok()) {
      EXPECT_NE(got.status().message().find("not a number"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace gpuslice
