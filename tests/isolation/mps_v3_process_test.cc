// MPS v3 through real processes: the process-backed control (ProcessMpsV3) against the fake v3
// control daemon (tests/fakes/fake_mps_v3_control), the TOML file, routing of clients by the
// socket directory they connect to, and the isolation manager's namespaces through the hook path
// with the daemon and the manager restarting.
#include "isolation/mps_v3_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "backends/simulated_memory_limits.h"
#include "core/resource_names.h"
#include "detached_daemons.h"
#include "fake_cgroup_tree.h"
#include "hook_path.h"
#include "isolation/isolation_manager.h"
#include "isolation/oci_hook.h"
#include "mps_v3_client.h"

namespace gpuslice {
namespace {

using testing::FakeCgroupTree;

constexpr std::uint64_t kGi = 1ULL << 30;
const std::string kGpu0 = "GPU-11111111-2222-3333-4444-555555555555";
const std::string kGpu1 = "GPU-66666666-7777-8888-9999-000000000000";
const std::string kServer0 = "gpu-11111111";

// The v2 daemons' control: never used for GPUs given to UseV3For.
class NoV2 final : public MpsControl {
 public:
  Status Start(const MpsDaemonSpec&) override { return Unavailable("v2 used"); }
  Status Stop(const std::string&) override { return Status::Ok(); }
  bool IsRunning(const std::string&) override { return false; }
};

struct FakeRun {
  int exit_status = -1;
  std::string output;  // stdout and stderr
};

// Runs the fake binary with CUDA_MPS_PIPE_DIRECTORY=`pipe` and `args`.
FakeRun Fake(const std::string& pipe, const std::string& args) {
  const std::string command = "CUDA_MPS_PIPE_DIRECTORY='" + pipe + "' '" +
                              GPUSLICE_FAKE_MPS_V3_CONTROL + "' " + args + " 2>&1";
  FakeRun run;
  FILE* out = popen(command.c_str(), "r");
  char buf[512];
  while (out != nullptr && fgets(buf, sizeof(buf), out) != nullptr) run.output += buf;
  const int status = out != nullptr ? pclose(out) : -1;
  run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// ASSERT_TRUE(IsOk(call)): a failure prints the Status, so that a CI log keeps the reason.
::testing::AssertionResult IsOk(const Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << s.ToString();
}
template <typename T>
::testing::AssertionResult IsOk(const Result<T>& r) {
  return IsOk(r.status());
}

using Client = testing::MpsV3Client;

// Waits until `done()` holds: another process gets there in its own time (a loaded CI node can
// take seconds). The deadline only bounds a failure.
template <typename Condition>
bool Eventually(Condition done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

class MpsV3ProcessTest : public ::testing::Test {
 protected:
  MpsV3ProcessTest() { testing::BecomeSubreaper(); }
  // The v3 daemons outlive every ProcessMpsV3 by design; none may outlive the test.
  ~MpsV3ProcessTest() override { testing::KillRecordedDaemons(tree_.root()); }
  MpsDaemonSpec Spec(const std::string& uuid) const {
    return {uuid, tree_.root() + "/mps/" + uuid + "/pipe", tree_.root() + "/mps/" + uuid + "/log"};
  }
  std::string Pipe(const std::string& uuid = kGpu0) const { return Spec(uuid).pipe_directory; }

  FakeCgroupTree tree_;
  NoV2 v2_;
};

TEST_F(MpsV3ProcessTest, NamespaceCreatedListedRoutedAndDeletedThroughTheControlBinary) {
  ProcessMpsV3 v3({GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_);
  v3.UseV3For({kGpu0});
  ASSERT_TRUE(IsOk(v3.Start(Spec(kGpu0))));
  EXPECT_TRUE(v3.IsRunning(kGpu0));
  const MpsV3Namespace ns{kServer0, "ns-a", 6 * kGi, 25, 1};
  ASSERT_TRUE(IsOk(v3.CreateNamespace(ns)));
  auto listed = v3.ListNamespaces(kServer0);
  ASSERT_TRUE(IsOk(listed));
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front(), ns);
  // A client whose pipe directory is the namespace's directory lands in that namespace.
  const std::string dir = MpsV3NamespaceDirectory(Pipe(), ns);
  Client client(dir);
  EXPECT_EQ(client.routed,
            "server=gpu-11111111 namespace=ns-a pinned_memory_limit=6G "
            "active_thread_percentage=25 client_priority=1");
  // One on the server's own socket gets the default namespace.
  Client other(Pipe() + "/" + kServer0);
  EXPECT_NE(other.routed.find("namespace=default"), std::string::npos) << other.routed;
  EXPECT_FALSE(v3.CreateNamespace(ns).ok());  // names are unique per server
  EXPECT_FALSE(v3.CreateNamespace({kServer0, "default", kGi, 10, 0}).ok());
  ASSERT_TRUE(IsOk(v3.DeleteNamespace(kServer0, "ns-a")));
  EXPECT_FALSE(std::filesystem::exists(dir + "/control"));
  EXPECT_TRUE(v3.ListNamespaces(kServer0)->empty());
  EXPECT_TRUE(IsOk(v3.DeleteNamespace(kServer0, "ns-a")));  // absent: OK
  EXPECT_FALSE(v3.ListNamespaces("gpu-nosuch").ok());
  ASSERT_TRUE(IsOk(v3.Stop(kGpu0)));
  EXPECT_FALSE(std::filesystem::exists(Pipe() + "/control"));
}

TEST_F(MpsV3ProcessTest, DaemonStartsFromTheGeneratedTomlWithTheLiveNamespaces) {
  ProcessMpsV3 v3({GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_);
  v3.UseV3For({kGpu0});
  v3.SetNamespaceSource([](const std::string& server) {
    return std::vector<MpsV3Namespace>{{server, "ns-live", 512ULL << 20, 40, 0}};
  });
  ASSERT_TRUE(IsOk(v3.Start(Spec(kGpu0))));
  const std::string toml = ProcessMpsV3::ConfigPath(Spec(kGpu0));
  std::ifstream in(toml);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(text.find("[servers.gpu-11111111.namespaces.ns-live]"), std::string::npos) << text;
  auto listed = v3.ListNamespaces(kServer0);
  ASSERT_TRUE(IsOk(listed));
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front(), (MpsV3Namespace{kServer0, "ns-live", 512ULL << 20, 40, 0}));
  // A daemon that dies is restarted from the same file and has the namespace again.
  kill(v3.DaemonPid(kGpu0), SIGKILL);
  ASSERT_TRUE(Eventually([&] { return !v3.IsRunning(kGpu0); }));
  ASSERT_TRUE(IsOk(v3.Start(Spec(kGpu0))));
  EXPECT_EQ(v3.ListNamespaces(kServer0)->size(), 1u);
}

// The control socket's file exists from the daemon's bind() on, but a command sent before its
// listen() is refused; a loaded node hits that window. The fake holds its daemon there while the
// pipe directory has the FIFO gpuslice-fake-listen-gate and marks a command it refused meanwhile
// (gpuslice-fake-refused): Start must not return before the daemon answers.
TEST_F(MpsV3ProcessTest, StartWaitsUntilTheDaemonAnswersNotUntilItsSocketFileExists) {
  ProcessMpsV3 v3({GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_);
  v3.UseV3For({kGpu0});
  std::filesystem::create_directories(Pipe());
  const std::string gate = Pipe() + "/gpuslice-fake-listen-gate";
  ASSERT_EQ(mkfifo(gate.c_str(), 0600), 0);
  std::atomic<bool> returned{false};
  Status started;
  std::thread start([&] {
    started = v3.Start(Spec(kGpu0));
    returned = true;
  });
  // Whichever comes first: Start returns (wrong) or asks the bound, not listening, daemon (right).
  EXPECT_TRUE(Eventually(
      [&] { return returned || std::filesystem::exists(Pipe() + "/gpuslice-fake-refused"); }));
  EXPECT_FALSE(returned) << "Start returned before the daemon listened: " << started.ToString();
  // Let it listen (a writer's open returns once the daemon waits in its open for reading).
  EXPECT_TRUE(Eventually([&] {
    const int fd = open(gate.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) close(fd);
    return fd >= 0;
  }));
  start.join();
  ASSERT_TRUE(IsOk(started));
  EXPECT_TRUE(IsOk(v3.ListNamespaces(kServer0)));
}

TEST_F(MpsV3ProcessTest, GpusNotGivenToV3KeepTheV2Daemon) {
  ProcessMpsV3 v3({GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_);
  v3.UseV3For({kGpu0});
  Status s = v3.Start(Spec(kGpu1));
  EXPECT_EQ(s.message(), "v2 used");
}

// ---- the daemons outlive the agent -----------------------------------------------------------

using testing::ProcessRuns;

TEST_F(MpsV3ProcessTest, DaemonOutlivesItsControlAndTheNextOneAdoptsItWithItsNamespaces) {
  const MpsV3Namespace ns{kServer0, "ns-live", 3 * kGi, 30, 1};
  pid_t pid = -1;
  {
    ProcessMpsV3 first({GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_);
    first.UseV3For({kGpu0});
    ASSERT_TRUE(IsOk(first.Start(Spec(kGpu0))));
    ASSERT_TRUE(IsOk(first.CreateNamespace(ns)));
    pid = first.DaemonPid(kGpu0);
  }
  ASSERT_TRUE(ProcessRuns(pid));
  // Not the agent's child, not in its session: a signal to the agent's group does not reach it.
  EXPECT_NE(getsid(pid), getsid(0));
  const std::string dir = MpsV3NamespaceDirectory(Pipe(), ns);
  Client before(dir);
  EXPECT_NE(before.routed.find("namespace=ns-live"), std::string::npos) << before.routed;

  ProcessMpsV3 next({GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_);
  next.UseV3For({kGpu0});
  ASSERT_TRUE(IsOk(next.Start(Spec(kGpu0))));
  EXPECT_EQ(next.DaemonPid(kGpu0), pid);  // adopted, not restarted
  EXPECT_TRUE(next.IsRunning(kGpu0));
  auto listed = next.ListNamespaces(kServer0);
  ASSERT_TRUE(IsOk(listed));
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front(), ns);  // a runtime namespace survives only in the same daemon
  Client after(dir);
  EXPECT_EQ(after.routed, before.routed);
  // A clean shutdown leaves it running too; only a real Stop (config change) ends it.
  next.LeaveDaemonsRunning();
  ASSERT_TRUE(IsOk(next.Stop(kGpu0)));
  EXPECT_TRUE(ProcessRuns(pid));
  ProcessMpsV3 last({GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_);
  last.UseV3For({kGpu0});
  ASSERT_TRUE(IsOk(last.Start(Spec(kGpu0))));
  EXPECT_EQ(last.DaemonPid(kGpu0), pid);
  ASSERT_TRUE(IsOk(last.Stop(kGpu0)));
  EXPECT_FALSE(ProcessRuns(pid));
  EXPECT_FALSE(std::filesystem::exists(ProcessMpsV3::RecordPath(Spec(kGpu0))));
}

TEST_F(MpsV3ProcessTest, RecordNamingAnotherProcessIsNeitherAdoptedNorSignalled) {
  // Some process now has the recorded pid: one that is no MPS daemon (its command line differs),
  // and one recorded with the right command line but another start time (the pid was reused).
  const pid_t unrelated = fork();
  if (unrelated == 0) {
    pause();
    _exit(0);
  }
  const std::uint64_t start_ticks = testing::StartTimeTicks(unrelated);
  ASSERT_GT(start_ticks, 0u);
  struct Row {
    const char* name;
    std::uint64_t start_ticks;
    bool same_command;
  };
  for (const Row& row :
       {Row{"other_command", start_ticks, false}, Row{"pid_reused", start_ticks + 1, true},
        Row{"other_boot", start_ticks, true}}) {
    DaemonRecord record;
    record.pid = unrelated;
    record.start_time_ticks = row.start_ticks;
    record.boot_id = std::string(row.name) == "other_boot" ? "another-boot" : CurrentBootId();
    record.argv =
        row.same_command
            ? std::vector<std::string>{GPUSLICE_FAKE_MPS_V3_CONTROL,         "-f", "-p", "3", "-a",
                                       ProcessMpsV3::ConfigPath(Spec(kGpu0))}
            : std::vector<std::string>{"/bin/sleep", "1000"};
    record.pipe_directory = Pipe();
    record.server = kServer0;
    std::filesystem::create_directories(Pipe());
    ASSERT_TRUE(IsOk(WriteDaemonRecord(ProcessMpsV3::RecordPath(Spec(kGpu0)), record)));
    ProcessMpsV3 v3({GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_,
                    [&](const std::string&) { return Pipe(); });
    v3.UseV3For({kGpu0});
    ASSERT_TRUE(IsOk(v3.Start(Spec(kGpu0)))) << row.name;
    EXPECT_NE(v3.DaemonPid(kGpu0), unrelated) << row.name;
    EXPECT_GT(v3.DaemonPid(kGpu0), 0) << row.name;
    EXPECT_TRUE(IsOk(v3.ListNamespaces(kServer0))) << row.name;
    ASSERT_TRUE(IsOk(v3.Stop(kGpu0))) << row.name;
    // And stopping "the recorded daemon of a previous agent" spares it as well.
    ASSERT_TRUE(IsOk(WriteDaemonRecord(ProcessMpsV3::RecordPath(Spec(kGpu0)), record)));
    ASSERT_TRUE(IsOk(v3.Stop(kGpu0))) << row.name;
    EXPECT_TRUE(ProcessRuns(unrelated)) << row.name;
    EXPECT_EQ(waitpid(unrelated, nullptr, WNOHANG), 0) << row.name;
  }
  kill(unrelated, SIGKILL);
  waitpid(unrelated, nullptr, 0);
}

TEST_F(MpsV3ProcessTest, APreviousAgentsDaemonStopsWhenItsGpuIsNoLongerSharedUnderMpsV3) {
  pid_t pid = -1;
  {
    ProcessMpsV3 first({GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_);
    first.UseV3For({kGpu0, kGpu1});
    ASSERT_TRUE(IsOk(first.Start(Spec(kGpu0))));
    ASSERT_TRUE(IsOk(first.Start(Spec(kGpu1))));
    pid = first.DaemonPid(kGpu0);
  }
  ProcessMpsV3 next({GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_,
                    [&](const std::string& uuid) { return Pipe(uuid); });
  // GPU 0 is now on the v2 daemon (no v3 any more): the v3 daemon goes before v2 starts.
  next.UseV3For({kGpu1});
  EXPECT_EQ(next.Start(Spec(kGpu0)).message(), "v2 used");
  EXPECT_FALSE(ProcessRuns(pid));
  EXPECT_FALSE(std::filesystem::exists(ProcessMpsV3::RecordPath(Spec(kGpu0))));
  // GPU 1 is not shared under MPS at all any more (the supervisor's Stop at its first reconcile).
  Result<DaemonRecord> record = ReadDaemonRecord(ProcessMpsV3::RecordPath(Spec(kGpu1)));
  ASSERT_TRUE(IsOk(record));
  ASSERT_TRUE(ProcessRuns(record->pid));
  ASSERT_TRUE(IsOk(next.Stop(kGpu1)));
  EXPECT_FALSE(ProcessRuns(record->pid));
}

struct BadToml {
  const char* name;
  const char* text;
  const char* message;
};

TEST_F(MpsV3ProcessTest, FakeDaemonRefusesWhatNvidiaDocumentsAsConfigurationErrors) {
  const BadToml rows[] = {
      {"no_schema_version", "[servers.s]\n", "schema_version"},
      {"unknown_server_key", "schema_version = \"1.0\"\n[servers.s]\ncolour = \"red\"\n",
       ":3: [servers.s]: unknown key 'colour'"},
      {"uid_in_a_namespace",
       "schema_version = \"1.0\"\n[servers.s]\n[servers.s.namespaces.n]\nuid = 1000\n",
       ":4: [servers.s.namespaces.n]: unknown key 'uid'"},
      {"locality_domains_not_boolean",
       "schema_version = \"1.0\"\n[servers.s]\nlocality_domains = \"yes\"\n", ":3: locality"},
      {"thread_percentage_over_100",
       "schema_version = \"1.0\"\n[servers.s]\nactive_thread_percentage = \"101\"\n",
       "outside 1..100"},
      {"bad_memory_unit", "schema_version = \"1.0\"\n[servers.s]\npinned_memory_limit = \"4X\"\n",
       "pinned_memory_limit '4X'"},
  };
  for (const BadToml& row : rows) {
    const std::string file = tree_.root() + "/" + row.name + ".toml";
    std::ofstream(file) << row.text;
    FakeRun run = Fake(tree_.root() + "/pipe-bad", "-f -p 3 -a '" + file + "'");
    EXPECT_EQ(run.exit_status, 1) << row.name;
    EXPECT_NE(run.output.find(row.message), std::string::npos) << row.name << ": " << run.output;
  }
  // The documented example (servers, a namespace, SM partitions, features) is accepted.
  const std::string good = tree_.root() + "/good.toml";
  std::ofstream(good) << "schema_version = \"1.0\"\n[servers.training]\n"
                         "allowed_devices = \"GPU-abcd\"\npinned_memory_limit = \"10G\"\n"
                         "uid = 1000\nlocality_domains = false\n"
                         "[servers.training.namespaces.high_priority]\n"
                         "pinned_memory_limit = \"5G\"\nactive_thread_percentage = \"25\"\n"
                         "[[servers.training.devices]]\nuuid = \"GPU-74d4\"\n"
                         "  [[servers.training.devices.sm_partitions]]\n  name = \"large\"\n"
                         "[features.memacct]\nenabled = true\n";
  ASSERT_EQ(Fake(tree_.root() + "/pipe-good", "-d -p 3 -a '" + good + "'").exit_status, 0);
  FakeRun list = Fake(tree_.root() + "/pipe-good", "namespace list --server=training");
  EXPECT_EQ(list.output,
            "name=high_priority pinned_memory_limit=5G active_thread_percentage=25 "
            "client_priority=0\n");
  FakeRun bad = Fake(tree_.root() + "/pipe-good",
                     "namespace create --server=training --name=x "
                     "--client-priority=7");
  EXPECT_EQ(bad.exit_status, 2);
  EXPECT_EQ(Fake(tree_.root() + "/pipe-good", "-q").exit_status, 0);
}

// ---- the manager with the process-backed control ---------------------------------------------

class MpsV3ManagerTest : public MpsV3ProcessTest {
 protected:
  MpsV3ManagerTest() { v3_.UseV3For({kGpu0, kGpu1}); }
  IsolationManagerOptions Options() const {
    IsolationManagerOptions o = testing::ManagerOptionsFor(tree_);
    o.mps_pipe_directory_of = [this](const std::string& uuid) { return Pipe(uuid); };
    return o;
  }
  Status StartContainer(IsolationManager& manager, const std::string& id, const std::string& path,
                        long pid, const std::string& token,
                        const std::map<std::string, std::string>& annotations = {}) {
    return testing::StartContainerThroughHook(tree_, manager, id, path, pid, token, annotations);
  }
  std::string Dir(const IsolationManager& manager, const std::string& token) {
    auto p = manager.PartitionFor(token);
    return p.ok() ? MpsV3NamespaceDirectory(Pipe(), {kServer0, p->mps_namespace}) : "";
  }

  FileMemoryLimits driver_{{kGpu0, kGpu1}};
  ProcessMpsV3 v3_{{GPUSLICE_FAKE_MPS_V3_CONTROL}, v2_};
  testing::Sleeper sleeper_a_, sleeper_b_, sleeper_c_;
  const pid_t a_ = sleeper_a_.pid, b_ = sleeper_b_.pid, c_ = sleeper_c_.pid;
};

TEST_F(MpsV3ManagerTest, TwoContainersGetTheirOwnNamespaceAndTwoProcessesOfOneShareIt) {
  ASSERT_TRUE(IsOk(v3_.Start(Spec(kGpu0))));
  IsolationManager manager(Options(), &driver_, &v3_);
  auto t1 = manager.RegisterPartition({kGpu0, 10 * kGi, 10 * kGi, true, 25, 0});
  auto t2 = manager.RegisterPartition({kGpu0, 20 * kGi, 20 * kGi, true, 50, 1});
  ASSERT_TRUE(t1.ok() && t2.ok());
  const std::string dir1 = Dir(manager, *t1), dir2 = Dir(manager, *t2);
  ASSERT_TRUE(IsOk(StartContainer(manager, "ctr1", "/kubepods/p1/ctr1", a_, *t1)));
  ASSERT_TRUE(IsOk(StartContainer(manager, "ctr2", "/kubepods/p2/ctr2", b_, *t2)));
  auto listed = v3_.ListNamespaces(kServer0);
  ASSERT_TRUE(IsOk(listed));
  ASSERT_EQ(listed->size(), 2u);
  // Two processes of container 1 (both see its directory at /tmp/nvidia-mps) and one of
  // container 2.
  Client p1(dir1), p2(dir1), q1(dir2);
  EXPECT_NE(p1.routed, q1.routed);
  EXPECT_NE(p1.routed.find("pinned_memory_limit=10G active_thread_percentage=25 "
                           "client_priority=0"),
            std::string::npos)
      << p1.routed;
  EXPECT_EQ(p1.routed, p2.routed);
  EXPECT_NE(q1.routed.find("pinned_memory_limit=20G active_thread_percentage=50 "
                           "client_priority=1"),
            std::string::npos)
      << q1.routed;
  FakeRun clients = Fake(Pipe(), "client list --server=" + kServer0);
  const std::string n1 = "namespace=" + std::filesystem::path(dir1).filename().string();
  EXPECT_NE(clients.output.find("pid=" + std::to_string(p1.pid) + " server=" + kServer0 + " " + n1),
            std::string::npos)
      << clients.output;
  EXPECT_NE(clients.output.find("pid=" + std::to_string(p2.pid) + " server=" + kServer0 + " " + n1),
            std::string::npos)
      << clients.output;
  // Container 1 ends: its namespace (and socket) goes, container 2's stays.
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/p1/ctr1", {});
  EXPECT_EQ(manager.ReapEnded(), 1);
  EXPECT_FALSE(std::filesystem::exists(dir1 + "/control"));
  EXPECT_TRUE(std::filesystem::exists(dir2 + "/control"));
  ASSERT_EQ(v3_.ListNamespaces(kServer0)->size(), 1u);
  EXPECT_EQ(v3_.ListNamespaces(kServer0)->front().active_thread_percentage, 50);
}

TEST_F(MpsV3ManagerTest, AgentAndDaemonRestartKeepLiveNamespacesAndDropEndedOnes) {
  std::string dir1, dir2, dir3, t3;
  {
    ASSERT_TRUE(IsOk(v3_.Start(Spec(kGpu0))));
    IsolationManager manager(Options(), &driver_, &v3_);
    auto t1 = manager.RegisterPartition({kGpu0, 4 * kGi, 4 * kGi, true, 30, 0});
    auto t2 = manager.RegisterPartition({kGpu0, 8 * kGi, 8 * kGi, true, 60, 0});
    auto pending = manager.RegisterPartition({kGpu0, 2 * kGi, 2 * kGi, true, 10, 0});
    ASSERT_TRUE(t1.ok() && t2.ok() && pending.ok());
    t3 = *pending;
    dir1 = Dir(manager, *t1);
    dir2 = Dir(manager, *t2);
    dir3 = Dir(manager, t3);
    ASSERT_TRUE(IsOk(StartContainer(manager, "ctr1", "/kubepods/p1/ctr1", a_, *t1)));
    ASSERT_TRUE(IsOk(StartContainer(manager, "ctr2", "/kubepods/p2/ctr2", b_, *t2)));
  }
  // The agent stops, and with it the daemons it supervises (MPS v3 keeps no runtime state).
  ASSERT_TRUE(IsOk(v3_.Stop(kGpu0)));
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/p2/ctr2", {});  // ctr2 ended
  IsolationManager restarted(Options(), &driver_, &v3_);
  // The agent restores first (the daemon is not up yet: the namespace cannot be applied, the
  // binding is kept), then starts the daemon with the live containers' namespaces in its TOML.
  Status restored = restarted.Restore();
  EXPECT_EQ(restored.code(), ErrorCode::kUnavailable) << restored.ToString();
  v3_.SetNamespaceSource([&](const std::string& s) { return restarted.Namespaces(s); });
  ASSERT_TRUE(IsOk(v3_.Start(Spec(kGpu0))));
  auto listed = v3_.ListNamespaces(kServer0);
  ASSERT_TRUE(IsOk(listed));
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().active_thread_percentage, 30);
  EXPECT_TRUE(std::filesystem::exists(dir1 + "/control"));
  EXPECT_FALSE(std::filesystem::exists(dir2 + "/control"));
  EXPECT_EQ(restarted.ReconcileNamespaces({kServer0}), 0);
  // Someone deletes the live namespace and leaves an orphan of gpuslice's: the loop repairs both.
  ASSERT_TRUE(IsOk(v3_.DeleteNamespace(kServer0, listed->front().name)));
  ASSERT_TRUE(IsOk(v3_.CreateNamespace({kServer0, "ns-orphan", kGi, 5, 0})));
  ASSERT_TRUE(IsOk(v3_.CreateNamespace({kServer0, "someone-elses", kGi, 5, 0})));
  EXPECT_EQ(restarted.ReconcileNamespaces({kServer0}), 2);
  listed = v3_.ListNamespaces(kServer0);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].name, std::filesystem::path(dir1).filename().string());
  EXPECT_EQ((*listed)[1].name, "someone-elses");
  // A container allocated before the restart and created after it gets its namespace.
  ASSERT_TRUE(IsOk(StartContainer(restarted, "ctr3", "/kubepods/p3/ctr3", c_, t3)));
  Client client(dir3);
  EXPECT_NE(client.routed.find("active_thread_percentage=10"), std::string::npos) << client.routed;
}

TEST_F(MpsV3ManagerTest, PodAnnotationSetsTheNamespacesClientPriorityAndABadOneIsRefused) {
  ASSERT_TRUE(IsOk(v3_.Start(Spec(kGpu0))));
  IsolationManager manager(Options(), &driver_, &v3_);
  auto t1 = manager.RegisterPartition({kGpu0, 10 * kGi, 10 * kGi, true, 25, 0});
  auto t2 = manager.RegisterPartition({kGpu0, 10 * kGi, 10 * kGi, true, 25, 0});
  ASSERT_TRUE(t1.ok() && t2.ok());
  const std::string key(names::kAnnotationPodMpsClientPriority);
  ASSERT_TRUE(IsOk(StartContainer(manager, "low", "/kubepods/p1/low", a_, *t1, {{key, "1"}})));
  Client client(Dir(manager, *t1));
  EXPECT_NE(client.routed.find("active_thread_percentage=25 client_priority=1"), std::string::npos)
      << client.routed;
  // Kept across an agent restart (the state file holds the binding's priority).
  IsolationManager restarted(Options(), &driver_, &v3_);
  ASSERT_TRUE(IsOk(restarted.Restore()));
  EXPECT_EQ(restarted.Namespaces(kServer0).front().client_priority, 1);
  // A request that reaches the agent with a value NVIDIA does not document (the hook checks
  // first; this one was written by hand) is refused, with the reason in the reply.
  tree_.AddCgroup("/kubepods/p2/bad", {b_});
  HookRequest request{"bad", b_, tree_.cgroup_mount() + "/kubepods/p2/bad", *t2, "3"};
  std::filesystem::create_directories(tree_.spool() + "/requests");
  std::ofstream(SpoolRequestPath(tree_.spool(), "bad")) << HookRequestToJson(request);
  EXPECT_EQ(restarted.ProcessRequests(), 1);
  std::ifstream reply(SpoolReplyPath(tree_.spool(), "bad"));
  const std::string text((std::istreambuf_iterator<char>(reply)), {});
  EXPECT_NE(text.find("\"ok\":false"), std::string::npos) << text;
  EXPECT_NE(text.find("'3' is not an MPS client priority"), std::string::npos) << text;
  EXPECT_EQ(restarted.Bindings().size(), 1u);
  EXPECT_FALSE(restarted.Bind("bad", b_, request.cgroup_path, *t2, 2).ok());
}

TEST_F(MpsV3ManagerTest, ContainerRestartedInItsPodBindsItsTokenAgainAnotherPodCannot) {
  // The kubelet restarts a crashed container with the same Allocate response: same token, same
  // namespace directory mounted, a new container id and cgroup in the same pod cgroup.
  ASSERT_TRUE(IsOk(v3_.Start(Spec(kGpu0))));
  IsolationManager manager(Options(), &driver_, &v3_);
  auto t1 = manager.RegisterPartition({kGpu0, 6 * kGi, 6 * kGi, true, 40, 0});
  ASSERT_TRUE(IsOk(t1));
  const std::string dir = Dir(manager, *t1);
  ASSERT_TRUE(std::filesystem::create_directories(dir));  // what Allocate does
  ASSERT_TRUE(IsOk(StartContainer(manager, "c1", "/kubepods/p1/c1", a_, *t1)));
  const std::string routed = Client(dir).routed;
  ASSERT_NE(routed.find("pinned_memory_limit=6G active_thread_percentage=40"), std::string::npos);
  // It crashes and comes back before the loop reaped it.
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/p1/c1", {});
  ASSERT_TRUE(IsOk(StartContainer(manager, "c1-restart", "/kubepods/p1/c1-restart", b_, *t1)));
  EXPECT_EQ(Client(dir).routed, routed);
  EXPECT_EQ(driver_.GetMemoryLimits(kGpu0, tree_.cgroup_mount() + "/kubepods/p1/c1-restart")
                ->hard_limit_bytes,
            6 * kGi);
  ASSERT_EQ(manager.Bindings().size(), 1u);
  // It crashes again and the loop reaps it first: the namespace goes, its directory stays for
  // the next restart, and the token is pending for this pod only.
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/p1/c1-restart", {});
  EXPECT_EQ(manager.ReapEnded(), 1);
  EXPECT_TRUE(v3_.ListNamespaces(kServer0)->empty());
  EXPECT_TRUE(std::filesystem::is_directory(dir));
  EXPECT_EQ(manager.PendingTokens(), 1u);
  Status stolen = StartContainer(manager, "thief", "/kubepods/p2/thief", c_, *t1);
  EXPECT_EQ(stolen.code(), ErrorCode::kFailedPrecondition) << stolen.ToString();
  EXPECT_NE(stolen.message().find("from outside that pod"), std::string::npos) << stolen.message();
  // Kept across an agent restart too.
  IsolationManager restarted(Options(), &driver_, &v3_);
  ASSERT_TRUE(IsOk(restarted.Restore()));
  ASSERT_TRUE(IsOk(StartContainer(restarted, "c1-again", "/kubepods/p1/c1-again", b_, *t1)));
  EXPECT_EQ(Client(dir).routed, routed);
  // The pod ends (its cgroup is removed): the token is not pending again, the directory goes.
  std::filesystem::remove_all(tree_.cgroup_mount() + "/kubepods/p1");
  EXPECT_EQ(restarted.ReapEnded(), 1);
  EXPECT_EQ(restarted.PendingTokens(), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir));
  // Same when the pod ends after its container was reaped: the pending token is dropped.
  auto t2 = restarted.RegisterPartition({kGpu0, kGi, kGi, true, 10, 0});
  ASSERT_TRUE(IsOk(t2));
  const std::string dir2 = Dir(restarted, *t2);
  ASSERT_TRUE(std::filesystem::create_directories(dir2));
  ASSERT_TRUE(IsOk(StartContainer(restarted, "d1", "/kubepods/p3/d1", c_, *t2)));
  FakeCgroupTree::SetProcs(tree_.cgroup_mount() + "/kubepods/p3/d1", {});
  EXPECT_EQ(restarted.ReapEnded(), 1);
  EXPECT_EQ(restarted.PendingTokens(), 1u);
  EXPECT_TRUE(std::filesystem::is_directory(dir2));
  std::filesystem::remove_all(tree_.cgroup_mount() + "/kubepods/p3");
  EXPECT_EQ(restarted.ReapEnded(), 1);
  EXPECT_EQ(restarted.PendingTokens(), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir2));
}

// ---- the list format and the memory strings --------------------------------------------------

TEST(MpsV3FormatTest, NamespaceListParses) {
  auto ok = ParseMpsV3NamespaceList(
      "s",
      "name=a pinned_memory_limit=4G active_thread_percentage=50 client_priority=1\n\n"
      "name=default pinned_memory_limit=0 active_thread_percentage=100\n"
      "name=b active_thread_percentage=7 extra=ignored\n");
  ASSERT_TRUE(IsOk(ok)) << ok.status().ToString();
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[0], (MpsV3Namespace{"s", "a", 4 * kGi, 50, 1}));
  EXPECT_EQ((*ok)[1], (MpsV3Namespace{"s", "b", 0, 7, 0}));
  for (const char* bad : {"name=A\n", "pinned_memory_limit=4G\n", "name=a client_priority=2\n",
                          "name=a active_thread_percentage=0\n", "name=a pinned_memory_limit=4Q\n",
                          "name=a pinned_memory_limit=99999999999T\n"}) {
    EXPECT_FALSE(ParseMpsV3NamespaceList("s", bad).ok()) << bad;
  }
  const MpsV3Namespace ns{"s", "n", 3 * kGi, 33, 0};
  EXPECT_EQ(ParseMpsV3NamespaceList("s", FormatMpsV3Namespace(ns))->front(), ns);
}

TEST(MpsV3FormatTest, MemoryAndCommandArguments) {
  EXPECT_EQ(*ParseMpsV3Memory("512M"), 512ULL << 20);
  EXPECT_EQ(*ParseMpsV3Memory("12345"), 12345u);
  EXPECT_FALSE(ParseMpsV3Memory("").ok());
  EXPECT_FALSE(ParseMpsV3Memory("G").ok());
  EXPECT_EQ(MpsV3CreateArgs({"gpu-1", "ns-x", 2 * kGi, 50, 1}),
            (std::vector<std::string>{"namespace", "create", "--server=gpu-1", "--name=ns-x",
                                      "--pinned-memory-limit=2G", "--active-thread-percentage=50",
                                      "--client-priority=1"}));
  EXPECT_EQ(DefaultMpsV3ServerName(kGpu1), "gpu-66666666");
}

}  // namespace
}  // namespace gpuslice
