// DaemonRecord: a daemon started detached from the caller, found again by its record, and never
// confused with another process that has its pid.
#include "isolation/daemon_record.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "detached_daemons.h"
#include "fake_cgroup_tree.h"

namespace gpuslice {
namespace {

using namespace std::chrono_literals;

std::string ProcStatus(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return line.substr(key.size() + 1);
  }
  return "";
}

class DaemonRecordTest : public ::testing::Test {
 protected:
  DaemonRecordTest() { testing::BecomeSubreaper(); }
  ~DaemonRecordTest() override {
    if (record_.pid > 0) (void)StopRecordedDaemon(record_, 1s);
  }
  testing::FakeCgroupTree tree_;  // a temporary directory
  DaemonRecord record_;
};

TEST_F(DaemonRecordTest, LaunchedDaemonIsDetachedUnblockedAndInheritsNoDescriptor) {
  // The agent blocks SIGTERM (its signal thread waits for it) and holds sockets and files.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  const int leaked = open("/dev/null", O_RDONLY);  // no O_CLOEXEC
  const std::string output = tree_.root() + "/out.log";
  Result<DaemonRecord> launched = LaunchDetachedDaemon(
      {"sh", "-c", "echo started; exec sleep 1000"}, {"PATH=/bin:/usr/bin"}, output);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  close(leaked);
  ASSERT_TRUE(launched.ok()) << launched.status().ToString();
  record_ = *launched;
  EXPECT_EQ(record_.boot_id, CurrentBootId());
  EXPECT_FALSE(record_.boot_id.empty());
  EXPECT_NE(getsid(record_.pid), getsid(0));  // another session
  EXPECT_NE(getpgid(record_.pid), getpgid(0));
  EXPECT_EQ(ProcStatus(record_.pid, "SigBlk"), "\t0000000000000000");
  for (int i = 0; i < 500 && std::filesystem::is_empty(output); ++i) usleep(2000);
  std::ifstream out(output);
  std::string line;
  std::getline(out, line);
  EXPECT_EQ(line, "started");
  // Once it has exec'd `sleep`, the record (argv "sh -c ...") no longer matches its command line:
  // a process that is not what was started is not the recorded daemon.
  for (int i = 0; i < 500 && IsRecordedDaemonAlive(record_); ++i) usleep(2000);
  EXPECT_FALSE(IsRecordedDaemonAlive(record_));
  record_.argv = {"sleep", "1000"};
  for (int i = 0; i < 500 && !IsRecordedDaemonAlive(record_); ++i) usleep(2000);
  ASSERT_TRUE(IsRecordedDaemonAlive(record_));
  // The new program's loader opens files for a moment (ld.so.cache, libc) just after exec, so a
  // descriptor may show briefly; a leaked one stays for good.
  const std::set<std::string> standard{"0", "1", "2"};
  std::set<std::string> fds;
  for (int i = 0; i < 500; ++i, usleep(2000)) {
    fds.clear();
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(record_.pid) + "/fd")) {
      fds.insert(e.path().filename().string());
    }
    if (fds == standard) break;
  }
  EXPECT_EQ(fds, standard);
  // SIGTERM reaches it (not blocked), and Stop waits until it is gone.
  ASSERT_TRUE(StopRecordedDaemon(record_, 5s).ok());
  EXPECT_FALSE(IsRecordedDaemonAlive(record_));
}

TEST_F(DaemonRecordTest, AProgramThatCannotRunIsAnError) {
  Result<DaemonRecord> launched =
      LaunchDetachedDaemon({tree_.root() + "/no-such-daemon"}, {}, tree_.root() + "/out.log");
  ASSERT_FALSE(launched.ok());
  EXPECT_NE(launched.status().message().find("no-such-daemon"), std::string::npos);
  EXPECT_NE(launched.status().message().find("No such file"), std::string::npos)
      << launched.status().message();
}

TEST_F(DaemonRecordTest, RecordRoundTripsThroughItsFile) {
  DaemonRecord record{4242, 987654, "b00t", {"nvidia-cuda-mps-control", "-f"}, "/p", "gpu-1"};
  const std::string path = tree_.root() + "/rec.json";
  ASSERT_TRUE(WriteDaemonRecord(path, record).ok());
  Result<DaemonRecord> read = ReadDaemonRecord(path);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, record);
  EXPECT_EQ(ReadDaemonRecord(tree_.root() + "/none.json").status().code(), ErrorCode::kNotFound);
  // A record of a process that is not running is not alive, and stopping it is a no-op.
  EXPECT_FALSE(IsRecordedDaemonAlive(record));
  EXPECT_TRUE(StopRecordedDaemon(record, 10ms).ok());
}

struct BadRecord {
  const char* name;
  const char* text;
  const char* message;
};

TEST(DaemonRecordParseTest, MalformedRecordsAreRefusedWithWhereAndWhat) {
  const BadRecord rows[] = {
      {"not_json", "{pid", "not a JSON object"},
      {"array", "[1]", "not a JSON object"},
      {"no_pid", R"({"startTimeTicks":1,"bootId":"b","argv":["x"]})", "pid"},
      {"pid_is_a_string", R"({"pid":"7","startTimeTicks":1,"bootId":"b","argv":["x"]})", "pid"},
      {"pid_of_init", R"({"pid":1,"startTimeTicks":1,"bootId":"b","argv":["x"]})",
       "pid 1 is not a daemon's"},
      {"negative_pid", R"({"pid":-5,"startTimeTicks":1,"bootId":"b","argv":["x"]})", "pid -5"},
      {"empty_argv", R"({"pid":7,"startTimeTicks":1,"bootId":"b","argv":[]})", "argv is empty"},
      {"no_start_time", R"({"pid":7,"bootId":"b","argv":["x"]})", "startTimeTicks"},
      // Floats are refused, not converted (1e20 does not fit a pid_t: undefined behaviour).
      {"pid_is_a_float", R"({"pid":1e20,"startTimeTicks":1,"bootId":"b","argv":["x"]})", "pid"},
      {"pid_above_int", R"({"pid":4294967298,"startTimeTicks":1,"bootId":"b","argv":["x"]})",
       "pid 4294967298"},
      {"start_time_is_a_float", R"({"pid":7,"startTimeTicks":2.5,"bootId":"b","argv":["x"]})",
       "startTimeTicks"},
      {"negative_start_time", R"({"pid":7,"startTimeTicks":-1e30,"bootId":"b","argv":["x"]})",
       "startTimeTicks"},
  };
  for (const BadRecord& row : rows) {
    Result<DaemonRecord> parsed = ParseDaemonRecord(row.text, "/run/x/mps-v3-daemon.json");
    ASSERT_FALSE(parsed.ok()) << row.name;
    EXPECT_EQ(parsed.status().code(), ErrorCode::kInvalidArgument) << row.name;
    EXPECT_NE(parsed.status().message().find("/run/x/mps-v3-daemon.json: "), std::string::npos)
        << row.name;
    EXPECT_NE(parsed.status().message().find(row.message), std::string::npos)
        << row.name << ": " << parsed.status().message();
  }
}

}  // namespace
}  // namespace gpuslice
