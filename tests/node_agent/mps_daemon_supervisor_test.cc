#include "node_agent/mps_daemon_supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "temp_dir.h"

namespace gpuslice {
namespace {

using testing::TempDir;

bool WaitFor(const std::function<bool()>& pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// Records calls; daemons "die" when told to.
class RecordingMpsControl final : public MpsControl {
 public:
  Status Start(const MpsDaemonSpec& spec) override {
    starts.push_back(spec);
    running.insert(spec.device_uuid);
    return Status::Ok();
  }
  Status Stop(const std::string& uuid) override {
    stops.push_back(uuid);
    running.erase(uuid);
    return Status::Ok();
  }
  bool IsRunning(const std::string& uuid) override { return running.count(uuid) > 0; }

  std::vector<MpsDaemonSpec> starts;
  std::vector<std::string> stops;
  std::set<std::string> running;
};

TEST(MpsDaemonSupervisorTest, ReconcileStartsAndStopsPerDevice) {
  RecordingMpsControl control;
  MpsDaemonSupervisor supervisor(control, "/run/mps");
  EXPECT_TRUE(supervisor.Reconcile({"GPU-a", "GPU-b"}).empty());
  ASSERT_EQ(control.starts.size(), 2u);
  EXPECT_EQ(control.starts[0].pipe_directory, "/run/mps/GPU-a/pipe");
  EXPECT_EQ(control.starts[0].log_directory, "/run/mps/GPU-a/log");
  EXPECT_TRUE(supervisor.Reconcile({"GPU-b", "GPU-c"}).empty());
  EXPECT_EQ(control.stops, std::vector<std::string>{"GPU-a"});
  EXPECT_EQ(control.starts.size(), 3u);  // only GPU-c is new
  control.running.erase("GPU-c");        // the daemon died
  EXPECT_EQ(supervisor.RestartDead(), std::vector<std::string>{"GPU-c"});
  EXPECT_TRUE(supervisor.RestartDead().empty());
  supervisor.StopAll();
  EXPECT_TRUE(control.running.empty());
}

TEST(MpsDaemonSupervisorTest, FirstReconcileStopsWhatAPreviousAgentLeftForOtherDevices) {
  // MPS v3 daemons outlive the agent: the first reconcile after a restart asks the control to
  // stop the daemons of devices no longer shared under MPS (their directories under the root).
  TempDir dir;
  for (const char* uuid : {"GPU-old", "GPU-kept"}) {
    std::filesystem::create_directories(MpsDaemonSupervisor::PipeDirectory(dir.path(), uuid));
  }
  RecordingMpsControl control;
  MpsDaemonSupervisor supervisor(control, dir.path());
  EXPECT_TRUE(supervisor.Reconcile({"GPU-kept"}).empty());
  EXPECT_EQ(control.stops, std::vector<std::string>{"GPU-old"});
  EXPECT_TRUE(supervisor.Reconcile({"GPU-kept"}).empty());
  EXPECT_EQ(control.stops.size(), 1u);  // only at the first reconcile
}

TEST(ProcessMpsControlTest, SupervisesARealChildProcess) {
  TempDir dir;
  ProcessMpsControl control({GPUSLICE_FAKE_MPS_CONTROL});
  MpsDaemonSupervisor supervisor(control, dir.path());
  ASSERT_TRUE(supervisor.Reconcile({"GPU-x"}).empty());
  const std::string control_file =
      MpsDaemonSupervisor::PipeDirectory(dir.path(), "GPU-x") + "/control";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(control_file); }));
  EXPECT_TRUE(control.IsRunning("GPU-x"));
  EXPECT_FALSE(control.Start({"GPU-x", dir / "p", dir / "l"}).ok());  // already running

  const pid_t first = control.ChildPid("GPU-x");
  ASSERT_GT(first, 0);
  kill(first, SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return !control.IsRunning("GPU-x"); }));
  std::filesystem::remove(control_file);  // a killed daemon leaves its pipe behind
  EXPECT_EQ(supervisor.RestartDead(), std::vector<std::string>{"GPU-x"});
  EXPECT_NE(control.ChildPid("GPU-x"), first);
  EXPECT_TRUE(control.IsRunning("GPU-x"));
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(control_file); }));

  supervisor.StopAll();
  EXPECT_FALSE(control.IsRunning("GPU-x"));
  EXPECT_TRUE(WaitFor([&] { return !std::filesystem::exists(control_file); }));
}

TEST(ProcessMpsControlTest, MissingCommandIsAnError) {
  TempDir dir;
  ProcessMpsControl control({"/nonexistent/nvidia-cuda-mps-control"});
  Status s = control.Start({"GPU-x", dir / "p", dir / "l"});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot start MPS control daemon"), std::string::npos);
}

}  // namespace
}  // namespace gpuslice
