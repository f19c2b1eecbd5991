// Charges that survive a restart of the control plane (ArbiterReferee's charges file): a referee
// started over the file an earlier one wrote gives each container its virtual time and charge
// back, whether the earlier one stopped (written at shutdown) or died (written at most a second
// after the last change, while it ran).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "contending_tenant.h"
#include "shim/arbiter_referee.h"
#include "shim/arbiter_region.h"

namespace gpuslice::shim {
namespace {

using Clock = std::chrono::steady_clock;

class ArbiterCharges : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/gpuslice-charges-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    grant_ = (dir_ / "grant").string();
    charges_ = (dir_ / "charges").string();
    requests_a_ = (dir_ / "requests-a").string();
    requests_b_ = (dir_ / "requests-b").string();
    ASSERT_EQ(ArbiterRegion::CreateRequests(requests_a_.c_str()), 0);
    ASSERT_EQ(ArbiterRegion::CreateRequests(requests_b_.c_str()), 0);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::unique_ptr<ArbiterReferee> Referee(const std::string& charges) {
    auto referee = ArbiterReferee::Start(grant_, {}, charges);
    EXPECT_TRUE(referee.ok()) << referee.status().message();
    return referee.ok() ? *std::move(referee) : nullptr;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  static std::string Line(const std::string& key, std::uint64_t vtime, std::uint64_t charged) {
    return key + " vtime=" + std::to_string(vtime) + " charged_ns=" + std::to_string(charged) +
           "\n";
  }

  std::filesystem::path dir_;
  std::string grant_;
  std::string charges_;
  std::string requests_a_;
  std::string requests_b_;
};

TEST_F(ArbiterCharges, ARestartedRefereeGivesEachContainerItsVirtualTimeAndChargeBack) {
  auto first = Referee(charges_);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->AddTenant("a", requests_a_, 30, 0).ok());
  ASSERT_TRUE(first->AddTenant("b", requests_b_, 70, 0).ok());
  {
    gpuslice::testing::ContendingTenant a;
    gpuslice::testing::ContendingTenant b;
    ASSERT_EQ(a.Start(grant_, requests_a_), "");
    ASSERT_EQ(b.Start(grant_, requests_b_), "");
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while ((a.grants() < 3 || b.grants() < 3) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_GE(a.grants(), 3u);
    ASSERT_GE(b.grants(), 3u);
  }  // both stop wanting the GPU: the charges stop changing at the referee's next look
  std::uint64_t charged_a = 0;
  std::uint64_t charged_b = 0;
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < until) {
    const std::uint64_t a = first->ChargedNs("a");
    const std::uint64_t b = first->ChargedNs("b");
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    if (a == first->ChargedNs("a") && b == first->ChargedNs("b")) break;
  }
  charged_a = first->ChargedNs("a");
  charged_b = first->ChargedNs("b");
  const std::uint64_t vtime_a = first->VirtualTime("a");
  const std::uint64_t vtime_b = first->VirtualTime("b");
  ASSERT_GT(charged_a, 0u);
  ASSERT_GT(charged_b, 0u);
  ASSERT_GT(vtime_a, 0u);

  // While it runs, the referee writes them within about a second: what a crash leaves.
  const std::string expected = Line("a", vtime_a, charged_a) + Line("b", vtime_b, charged_b);
  const auto written_by = Clock::now() + std::chrono::seconds(5);
  while (Read(charges_).find(expected) == std::string::npos && Clock::now() < written_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(Read(charges_).find(expected), std::string::npos) << Read(charges_);
  EXPECT_EQ(std::filesystem::status(charges_).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const std::string crashed = (dir_ / "charges-at-crash").string();
  std::filesystem::copy_file(charges_, crashed);

  first.reset();  // stops: writes them again
  auto second = Referee(charges_);
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(second->AddTenant("b", requests_b_, 70, 0).ok());
  ASSERT_TRUE(second->AddTenant("a", requests_a_, 30, 0).ok());
  EXPECT_EQ(second->ChargedNs("a"), charged_a);
  EXPECT_EQ(second->VirtualTime("a"), vtime_a);
  EXPECT_EQ(second->ChargedNs("b"), charged_b);
  EXPECT_EQ(second->VirtualTime("b"), vtime_b);
  second.reset();

  auto after_crash = Referee(crashed);
  ASSERT_NE(after_crash, nullptr);
  ASSERT_TRUE(after_crash->AddTenant("b", requests_b_, 70, 0).ok());
  EXPECT_EQ(after_crash->ChargedNs("b"), charged_b);
  EXPECT_EQ(after_crash->VirtualTime("b"), vtime_b);
  // "a" was not re-registered before the caller said it is done recovering: a container added
  // under that key later is a new one.
  after_crash->ForgetUnclaimedCharges();
  ASSERT_TRUE(after_crash->AddTenant("a", requests_a_, 30, 0).ok());
  EXPECT_EQ(after_crash->ChargedNs("a"), 0u);
  EXPECT_EQ(after_crash->VirtualTime("a"), 0u);
}

TEST_F(ArbiterCharges, ALineThatIsNotAChargeIsSkippedAndTheOthersAreRestored) {
  {
    std::ofstream out(charges_);
    out << "# comment\n"
        << Line("a", 500, 700) << "b vtime=x charged_ns=1\n"
        << "c vtime=1\n"
        << "d vtime=1 charged_ns=2 more\n";
  }
  auto referee = Referee(charges_);
  ASSERT_NE(referee, nullptr);
  for (const char* key : {"a", "b", "c", "d"}) {
    ASSERT_TRUE(referee->AddTenant(key, requests_a_, 50, 0).ok());
    EXPECT_EQ(referee->ChargedNs(key), std::string(key) == "a" ? 700u : 0u) << key;
    EXPECT_EQ(referee->VirtualTime(key), std::string(key) == "a" ? 500u : 0u) << key;
    referee->RemoveTenant(key);
  }
}

TEST_F(ArbiterCharges, WithoutAChargesFileARefereeWritesNone) {
  auto referee = Referee("");
  ASSERT_NE(referee, nullptr);
  ASSERT_TRUE(referee->AddTenant("a", requests_a_, 50, 0).ok());
  referee.reset();
  EXPECT_FALSE(std::filesystem::exists(charges_));
}

}  // namespace
}  // namespace gpuslice::shim
