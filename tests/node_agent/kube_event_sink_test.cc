// The memory watchdog's events become core/v1 Events on the pod (issue 11): a real
// MemoryWatchdog over faked driver usage, KubeEventSink, KubeClient over HTTP to the fake API
// server, and the Events read back from the server.
#include "node_agent/kube_event_sink.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "core/clock.h"
#include "fake_apiserver/fake_apiserver.h"
#include "kube/kube_client.h"
#include "kube/kube_config.h"
#include "temp_dir.h"

namespace gpuslice::testing {
namespace {

using std::chrono::milliseconds;
using watchdog::WatchdogEventKind;
constexpr std::uint64_t kGiB = 1ULL << 30;

class FakeUsage : public watchdog::GpuProcessUsageSource {
 public:
  Result<std::vector<watchdog::GpuProcessUsage>> ReadProcessUsage() override { return rows; }
  std::vector<watchdog::GpuProcessUsage> rows;
};

class FakeProcessTable : public watchdog::ProcessTable {
 public:
  std::optional<std::string> CgroupOf(std::int32_t pid) override {
    auto it = cgroups.find(pid);
    return it == cgroups.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  std::optional<std::int32_t> ParentOf(std::int32_t) override { return 1; }
  std::map<std::int32_t, std::string> cgroups;
};

class RecordingKiller : public watchdog::ProcessKiller {
 public:
  void Kill(std::int32_t pid) override { killed.push_back(pid); }
  std::vector<std::int32_t> killed;
};

class KubeEventSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok());
    const std::string kubeconfig = dir_ / "kubeconfig";
    std::ofstream(kubeconfig) << server_.Kubeconfig();
    Result<kube::KubeConfig> config = kube::LoadKubeconfigFile(kubeconfig);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    config->request_timeout = milliseconds(5000);
    Result<std::unique_ptr<kube::KubeClient>> client = kube::KubeClient::Create(*config);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    api_ = std::move(*client);
    for (const char* name : {"team-a"}) {
      ASSERT_TRUE(api_->Create({"v1", "namespaces", "", "", ""}, {{"apiVersion", "v1"},
                                                                  {"kind", "Namespace"},
                                                                  {"metadata", {{"name", name}}}})
                      .ok());
    }
    sink_ =
        std::make_unique<KubeEventSink>(*api_, "node-1", milliseconds(2000), true,
                                        [this](const std::string& line) { lines_ += line + "\n"; });
    // pid 10 runs without the shim in the pod's cgroup; pid 20 belongs to no watched container.
    table_.cgroups = {{10, "/kubepods/pod-uid-a/c1"}, {20, "/user.slice"}};
    watchdog_ = std::make_unique<watchdog::MemoryWatchdog>(
        watchdog::WatchdogOptions{milliseconds(500), milliseconds(2000), true}, usage_, table_,
        killer_, *sink_, clock_);
    watchdog_->Watch({"team-a/train/main", "/kubepods/pod-uid-a", 0, {{0, 1 * kGiB}}});
    sink_->SetPod("team-a/train/main", {"team-a", "train", "pod-uid-a", "main"});
  }

  std::vector<kube::Json> Events(const std::string& namespace_name) {
    EXPECT_TRUE(sink_->Flush(milliseconds(10000)));
    Result<kube::Json> list = api_->List({"v1", "events", namespace_name, "", ""}, {});
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    if (!list.ok()) return {};
    return (*list)["items"].get<std::vector<kube::Json>>();
  }

  TempDir dir_;
  fake::FakeApiServer server_;
  std::unique_ptr<kube::KubeClient> api_;
  std::string lines_;
  std::unique_ptr<KubeEventSink> sink_;
  FakeUsage usage_;
  FakeProcessTable table_;
  RecordingKiller killer_;
  ManualClock clock_;
  std::unique_ptr<watchdog::MemoryWatchdog> watchdog_;
};

TEST_F(KubeEventSinkTest, OverLimitProcessGivesAWarningEventOnItsPodThenAKillEvent) {
  usage_.rows = {{10, 0, 3 * kGiB}, {20, 0, 8 * kGiB}};
  ASSERT_TRUE(watchdog_->CheckOnce().ok());
  std::vector<kube::Json> events = Events("team-a");
  ASSERT_EQ(events.size(), 1u) << lines_;
  const kube::Json& over = events[0];
  EXPECT_EQ(over["reason"], kReasonGpuMemoryLimitExceeded);
  EXPECT_EQ(over["type"], "Warning");
  EXPECT_EQ(over["involvedObject"]["kind"], "Pod");
  EXPECT_EQ(over["involvedObject"]["namespace"], "team-a");
  EXPECT_EQ(over["involvedObject"]["name"], "train");
  EXPECT_EQ(over["involvedObject"]["uid"], "pod-uid-a");
  EXPECT_EQ(over["involvedObject"]["fieldPath"], "spec.containers{main}");
  const std::string message = over["message"];
  EXPECT_NE(message.find(std::to_string(3 * kGiB) + " bytes"), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(1 * kGiB) + " bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("will be killed in 2s"), std::string::npos) << message;
  EXPECT_NE(lines_.find("over its limit"), std::string::npos) << "the log line is kept";

  clock_.Advance(milliseconds(2000));
  ASSERT_TRUE(watchdog_->CheckOnce().ok());
  ASSERT_EQ(killer_.killed, std::vector<std::int32_t>{10});
  events = Events("team-a");
  ASSERT_EQ(events.size(), 2u);
  const kube::Json& killed =
      events[0]["reason"] == kReasonGpuMemoryProcessKilled ? events[0] : events[1];
  EXPECT_EQ(killed["reason"], kReasonGpuMemoryProcessKilled);
  EXPECT_EQ(killed["type"], "Warning");
  EXPECT_EQ(killed["involvedObject"]["name"], "train");
  EXPECT_NE(killed["message"].get<std::string>().find("killed pid 10"), std::string::npos)
      << killed["message"];
  EXPECT_TRUE(Events("default").empty()) << "pid 20 is in no watched container";
}

TEST_F(KubeEventSinkTest, ContainerWithoutAPodIsLoggedOnlyAndForgottenPodsGetNoEvent) {
  sink_->ForgetPod("team-a/train/main");
  usage_.rows = {{10, 0, 3 * kGiB}};
  ASSERT_TRUE(watchdog_->CheckOnce().ok());
  EXPECT_TRUE(Events("team-a").empty());
  EXPECT_NE(lines_.find("team-a/train/main"), std::string::npos) << lines_;
}

TEST_F(KubeEventSinkTest, ReportOnlyWatchdogSaysItDoesNotKill) {
  sink_->SetKillPolicy(milliseconds(2000), false);
  usage_.rows = {{10, 0, 3 * kGiB}};
  ASSERT_TRUE(watchdog_->CheckOnce().ok());
  std::vector<kube::Json> events = Events("team-a");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0]["message"].get<std::string>().find("does not kill"), std::string::npos);
}

TEST_F(KubeEventSinkTest, UnreachableApiServerIsLoggedAndNeverBlocksTheWatchdog) {
  server_.Stop();
  usage_.rows = {{10, 0, 3 * kGiB}};
  ASSERT_TRUE(watchdog_->CheckOnce().ok());
  EXPECT_TRUE(sink_->Flush(milliseconds(15000)));
  EXPECT_EQ(sink_->posted(), 0u);
  EXPECT_NE(lines_.find("cannot post the Kubernetes Event"), std::string::npos) << lines_;
}

}  // namespace
}  // namespace gpuslice::testing
