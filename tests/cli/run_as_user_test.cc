// `gpuslice run --user` against a hostile tenant (issue 11 part 2): the supervisor runs as root,
// the command as uid 65534, and the command attacks the limit the only ways left to it: the
// limits file, the run directory, the shim's choice of file, the accounting region and the
// supervisor itself. Each attack must fail and the 1 GiB limit hold; next to them, the
// legitimate run. Needs root (the supervisor becomes another user): skipped otherwise.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "../shim/probe_process.h"
#include "../shim/shim_test_env.h"

namespace gpuslice::shim::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTenant = "65534:65534";
const std::string kTwoGiB = std::to_string(2 * kGiB);

class RunAsUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: the supervisor becomes another user";
    if (ManagedNode()) GTEST_SKIP() << kDefaultLimitsPath << " exists: this is a managed node";
    char pattern[] = "/tmp/gpuslice-run-user-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    state_dir_ = pattern;
    ::chmod(state_dir_.c_str(), 0755);   // root's, searchable by the tenant
    scratch_ = state_dir_ + "/scratch";  // where the tenant may write (its own files)
    fs::create_directories(scratch_);
    ::chmod(scratch_.c_str(), 01777);
  }
  void TearDown() override {
    std::error_code ignored;
    if (!state_dir_.empty()) fs::remove_all(state_dir_, ignored);
  }

  // `gpuslice run --user USER --memory MEMORY --watchdog off -- COMMAND`, with the fakes.
  ProbeProcess Run(const std::vector<std::string>& command, const std::string& memory = "1Gi",
                   const std::string& user = kTenant) {
    std::vector<std::string> args = {GPUSLICE_CLI_PATH, "run", "--state-dir", state_dir_,
                                     "--user",          user,  "--memory",    memory};
    args.insert(args.end(), watchdog_flags_.begin(), watchdog_flags_.end());
    args.push_back("--");
    args.insert(args.end(), command.begin(), command.end());
    return ProbeProcess(args, Env());
  }
  // The same, the command being a shell script (stderr into stdout, so the shim's complaints
  // are seen).
  ProbeProcess Shell(const std::string& script, const std::string& memory = "1Gi",
                     const std::string& user = kTenant) {
    return Run({"/bin/sh", "-c", "exec 2>&1; " + script}, memory, user);
  }
  std::vector<std::string> Env() const {
    return {std::string("LD_LIBRARY_PATH=") + GPUSLICE_FAKE_CUDA_DIR + ":" + GPUSLICE_FAKE_NVML_DIR,
            std::string("GPUSLICE_TEST_FAKE_CUDA=") + GPUSLICE_FAKE_CUDA_PATH,
            "GPUSLICE_FAKE_GPUS=count=1,memory=16Gi", "PATH=/usr/bin:/bin",
            "ASAN_OPTIONS=verify_asan_link_order=0", "SCRATCH=" + scratch_,
            std::string("PROBE=") + GPUSLICE_PROBE_DIRECT_PATH,
            // The fake driver publishes each process's usage here for the fake NVML.
            "GPUSLICE_FAKE_DRIVER_DIR=" + scratch_};
  }

  // The attacks on the shim are tested with the watchdog off, so that the shim alone holds.
  std::vector<std::string> watchdog_flags_ = {"--watchdog", "off"};

  std::string state_dir_;
  std::string scratch_;
};

// A copy of the run's limits file with an 8 GiB limit, made by the tenant in $SCRATCH.
constexpr const char* kForgeBiggerLimits =
    "F=$GPUSLICE_LIMITS_FILE; T=$SCRATCH/forged.$$; "
    "sed 's/memory-bytes=[0-9]*/memory-bytes=8589934592/' \"$F\" > \"$T\" || echo forge_failed; ";

// The legitimate run: the command is the user, with no_new_privs, and works within its limit;
// past the limit it is refused; its exit status comes back.
TEST_F(RunAsUserTest, TheCommandRunsAsTheUserWithinItsLimit) {
  ProbeProcess run = Shell(
      "echo uid=$(id -u) gid=$(id -g); grep NoNewPrivs /proc/self/status | tr -d '\\t ' | "
      "sed 's/:/=/'; \"$PROBE\" alloc 536870912; exit 7");
  EXPECT_EQ(run.Finish(), 7) << run.output();
  EXPECT_EQ(run.Value("uid"), "65534") << run.output();
  EXPECT_EQ(run.Value("gid"), "65534");
  EXPECT_EQ(run.Value("NoNewPrivs"), "1");
  EXPECT_EQ(run.Value("result"), "0") << "512 MiB of its 1 GiB\n" << run.output();
  ProbeProcess over = Run({GPUSLICE_PROBE_DIRECT_PATH, "alloc", kTwoGiB});
  ASSERT_EQ(over.Finish(), 0) << over.output();
  EXPECT_EQ(over.Value("result"), "2") << "2 GiB is over the limit";
  EXPECT_EQ(over.Value("fake"), "0");
}

TEST_F(RunAsUserTest, TheRunDirectoryIsRootsAndTheRegionTheUsers) {
  ProbeProcess run = Shell(
      "F=$GPUSLICE_LIMITS_FILE; R=$(sed -n 's/^region //p' \"$F\"); "
      "echo dir=$(stat -c %u:%a \"$(dirname \"$F\")\") limits=$(stat -c %u:%a \"$F\") "
      "region=$(stat -c %u:%a \"$R\")");
  ASSERT_EQ(run.Finish(), 0) << run.output();
  EXPECT_EQ(run.Value("dir"), "0:711") << run.output();
  EXPECT_EQ(run.Value("limits"), "0:444");
  EXPECT_EQ(run.Value("region"), "65534:600");
}

// (a) Write a bigger limit into the file.
TEST_F(RunAsUserTest, TheUserCannotWriteItsLimitsFile) {
  ProbeProcess run = Shell(std::string(kForgeBiggerLimits) +
                           "if cat \"$T\" > \"$F\"; then echo wrote=1; else echo wrote=0; fi; "
                           "if chmod 0666 \"$F\"; then echo chmod=1; else echo chmod=0; fi; "
                           "exec \"$PROBE\" alloc " +
                           kTwoGiB);
  run.Finish();
  EXPECT_EQ(run.Value("wrote"), "0") << run.output();
  EXPECT_EQ(run.Value("chmod"), "0");
  EXPECT_EQ(run.Value("result"), "2") << "the 1 GiB limit held\n" << run.output();
}

// (b) Replace the file in its directory: create another beside it, remove it, rename the forged
// one over it.
TEST_F(RunAsUserTest, TheUserCannotReplaceItsLimitsFile) {
  ProbeProcess run = Shell(std::string(kForgeBiggerLimits) +
                           "if cp \"$T\" \"$F.new\"; then echo created=1; else echo created=0; fi; "
                           "if rm -f \"$F\"; then echo removed=1; else echo removed=0; fi; "
                           "if mv -f \"$T\" \"$F\"; then echo renamed=1; else echo renamed=0; fi; "
                           "exec \"$PROBE\" alloc " +
                           kTwoGiB);
  run.Finish();
  EXPECT_EQ(run.Value("renamed"), "0") << run.output();
  EXPECT_EQ(run.Value("removed"), "0");
  EXPECT_EQ(run.Value("created"), "0");
  EXPECT_EQ(run.Value("result"), "2") << "the 1 GiB limit held\n" << run.output();
}

// (c) Point the shim at a limits file (and region) of its own with 8 GiB.
TEST_F(RunAsUserTest, TheShimRefusesALimitsFileOfTheUsersOwn) {
  TestContainer own(8 * kGiB);
  fs::permissions(own.dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  for (const std::string& path : {own.dir.string(), own.limits_path, own.region_path}) {
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0) << path;  // the tenant's files
  }
  ProbeProcess run =
      Shell("GPUSLICE_LIMITS_FILE=" + own.limits_path + " exec \"$PROBE\" alloc " + kTwoGiB);
  EXPECT_NE(run.Finish(), 0);
  EXPECT_NE(run.Value("result"), "0") << "the shim took the tenant's 8 GiB\n" << run.output();
  EXPECT_NE(run.output().find("refusing GPUSLICE_LIMITS_FILE"), std::string::npos) << run.output();
  EXPECT_NE(run.output().find("owned by uid 65534"), std::string::npos) << run.output();
}

// (c') Point the shim at another run's limits file (root's, so trusted, with 8 GiB): its region
// belongs to the other run's user, so this shim cannot open it and fails closed.
TEST_F(RunAsUserTest, AnotherRunsLimitsFileIsUselessWithoutItsRegion) {
  ProbeProcess other =
      Shell("echo file=$GPUSLICE_LIMITS_FILE; echo ready; exec cat", "8Gi", "65533:65533");
  ASSERT_TRUE(other.WaitForLine("ready")) << other.output();
  const std::string other_file = other.Value("file");
  ASSERT_FALSE(other_file.empty());
  ProbeProcess run =
      Shell("GPUSLICE_LIMITS_FILE=" + other_file + " exec \"$PROBE\" alloc " + kTwoGiB);
  EXPECT_NE(run.Finish(), 0);
  EXPECT_NE(run.Value("result"), "0") << "the other run's 8 GiB was taken\n" << run.output();
  EXPECT_NE(run.output().find("cannot open the accounting region"), std::string::npos)
      << run.output();
  other.CloseStdin();
  EXPECT_EQ(other.Finish(), 0) << other.output();
}

// (d) Re-initialise the region while memory is held: rename a fresh copy over it (so the
// holder's 768 MiB is forgotten and 512 MiB more fits), or remove it. Zeroing its header is
// refused by every opener (shim_test ZeroingTheRegionsMagicDoesNotResetIt).
TEST_F(RunAsUserTest, TheUserCannotReinitialiseTheRegion) {
  ProbeProcess run = Shell(
      "R=$(sed -n 's/^region //p' \"$GPUSLICE_LIMITS_FILE\"); cp \"$R\" \"$SCRATCH/fresh\"; "
      "mkfifo \"$SCRATCH/in\"; "
      "\"$PROBE\" hold 805306368 < \"$SCRATCH/in\" > \"$SCRATCH/hold\" & exec 3> \"$SCRATCH/in\"; "
      "i=0; while ! grep -q -e ready -e error= \"$SCRATCH/hold\" && [ $i -lt 500 ]; do "
      "sleep 0.02; i=$((i+1)); done; "
      "sed -n 's/^result=/held=/p' \"$SCRATCH/hold\"; "
      "if mv -f \"$SCRATCH/fresh\" \"$R\"; then echo renamed=1; else echo renamed=0; fi; "
      "\"$PROBE\" alloc 536870912; "
      "if rm -f \"$R\"; then echo removed=1; else echo removed=0; fi; "
      "exec 3>&-; wait");
  EXPECT_EQ(run.Finish(), 0) << run.output();
  EXPECT_EQ(run.Value("held"), "0") << run.output();
  EXPECT_EQ(run.Value("renamed"), "0");
  EXPECT_EQ(run.Value("result"), "2") << "768 MiB held + 512 MiB is over 1 GiB\n" << run.output();
  EXPECT_EQ(run.Value("removed"), "0");
}

// (d') What the user can do: rewrite the region's contents (it must be able to write them) with
// an empty copy while 768 MiB are held, so the shim forgets them and allows 512 MiB more. The
// shim cannot see that; the supervisor's watchdog, reading the driver's per-process usage, kills
// the largest process.
TEST_F(RunAsUserTest, AUserWhoRewritesItsRegionIsCaughtByTheWatchdog) {
  const std::string watchdog_mode = "kill";
  watchdog_flags_ = {"--watchdog", watchdog_mode,         "--watchdog-interval-ms",
                     "100",        "--watchdog-grace-ms", "0"};
  const std::string wait_ready =
      "i=0; while ! grep -q -e ready -e error= \"$SCRATCH/$1\" && [ $i -lt 500 ]; do "
      "sleep 0.02; i=$((i+1)); done; ";
  ProbeProcess run =
      Shell("ready() { " + wait_ready +
            "}; "
            "R=$(sed -n 's/^region //p' \"$GPUSLICE_LIMITS_FILE\"); cp \"$R\" \"$SCRATCH/fresh\"; "
            "mkfifo \"$SCRATCH/in1\" \"$SCRATCH/in2\"; "
            "\"$PROBE\" hold 805306368 < \"$SCRATCH/in1\" > \"$SCRATCH/h1\" & H1=$!; "
            "exec 3> \"$SCRATCH/in1\"; ready h1; sed -n 's/^result=/first=/p' \"$SCRATCH/h1\"; "
            "if cat \"$SCRATCH/fresh\" > \"$R\"; then echo rewrote=1; else echo rewrote=0; fi; "
            "\"$PROBE\" hold 536870912 < \"$SCRATCH/in2\" > \"$SCRATCH/h2\" & H2=$!; "
            "exec 4> \"$SCRATCH/in2\"; ready h2; sed -n 's/^result=/second=/p' \"$SCRATCH/h2\"; "
            "wait $H1; echo first_status=$?; exec 4>&-; wait $H2; echo second_status=$?");
  std::atomic<bool> exited{false};
  std::thread guard([&] {  // on failure: end the run instead of hanging
    for (int i = 0; i < 300 && !exited; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!exited) run.Kill(SIGTERM);
  });
  const int status = run.WaitForExit();
  exited = true;
  guard.join();
  EXPECT_EQ(status, 0) << run.output();
  EXPECT_EQ(run.Value("first"), "0") << run.output();
  EXPECT_EQ(run.Value("rewrote"), "1") << "the user owns its region's contents";
  EXPECT_EQ(run.Value("second"), "0") << "the shim, its count wiped, allowed 512 MiB more";
  EXPECT_EQ(run.Value("first_status"), std::to_string(128 + SIGKILL))
      << "the watchdog killed the largest process\n"
      << run.output();
  EXPECT_EQ(run.Value("second_status"), "0") << "and only until the rest fit";
}

// (e) Signal, trace or write the supervisor (the command's parent).
TEST_F(RunAsUserTest, TheUserCannotSignalOrTraceTheSupervisor) {
  ProbeProcess run = Shell(std::string("\"") + GPUSLICE_TENANT_ATTACKER_PATH +
                           "\" $PPID; exec \"$PROBE\" alloc " + kTwoGiB);
  EXPECT_EQ(run.Finish(), 0) << "the supervisor survived and returned the command's status\n"
                             << run.output();
  EXPECT_EQ(run.Value("stop"), "EPERM") << run.output();
  EXPECT_EQ(run.Value("ptrace"), "EPERM");
  EXPECT_EQ(run.Value("mem"), "EACCES");
  EXPECT_EQ(run.Value("kill"), "EPERM");
  EXPECT_EQ(run.Value("result"), "2");
}

TEST_F(RunAsUserTest, BadUsersAndStateDirectoriesAreClearErrors) {
  struct Row {
    const char* name;
    std::vector<std::string> args;
    std::string message;
  };
  const std::string home_like = state_dir_ + "/private";
  fs::create_directories(home_like);
  ::chmod(home_like.c_str(), 0700);
  const std::string tenants = state_dir_ + "/tenant-owned";
  fs::create_directories(tenants);
  ASSERT_EQ(::chown(tenants.c_str(), 65534, 65534), 0);
  const std::string private_shims = state_dir_ + "/private-shims";  // root's, 0700
  fs::create_directories(private_shims);
  ::chmod(private_shims.c_str(), 0700);
  fs::copy_file(GPUSLICE_CUDA_SHIM_PATH, private_shims + "/libgpuslice-cuda.so");
  fs::copy_file(GPUSLICE_NVML_SHIM_PATH, private_shims + "/libgpuslice-nvml.so");
  const Row rows[] = {
      {"unknown user", {"--user", "no-such-user-gpuslice"}, "no user 'no-such-user-gpuslice'"},
      {"root", {"--user", "0:0"}, "unprivileged user"},
      {"root's group", {"--user", "65534:0"}, "unprivileged user and group"},
      {"an id out of range", {"--user", "4294967295:1"}, "no user '4294967295'"},
      {"uid without passwd or group", {"--user", "65533"}, "give its group too"},
      {"state dir not searchable",
       {"--user", kTenant, "--state-dir", home_like},
       "is not searchable by uid 65534"},
      {"state dir of the tenant's",
       {"--user", kTenant, "--state-dir", tenants},
       "owned by uid 65534"},
      {"shims the user cannot read (the dynamic linker would skip them)",
       {"--user", kTenant, "--shim-dir", private_shims},
       "the shim would not load: " + private_shims + " (mode 0700) is not searchable"},
  };
  for (const Row& row : rows) {
    std::vector<std::string> args = {GPUSLICE_CLI_PATH, "run", "--memory", "1Gi"};
    args.insert(args.end(), row.args.begin(), row.args.end());
    if (std::find(row.args.begin(), row.args.end(), "--state-dir") == row.args.end()) {
      args.insert(args.end(), {"--state-dir", state_dir_});
    }
    args.insert(args.end(), {"--", "/bin/true"});
    std::vector<std::string> shell = {"/bin/sh", "-c", "exec \"$@\" 2>&1", "sh"};
    shell.insert(shell.end(), args.begin(), args.end());
    ProbeProcess failing(shell, Env());
    EXPECT_EQ(failing.Finish(), 2) << row.name << "\n" << failing.output();
    EXPECT_NE(failing.output().find(row.message), std::string::npos) << row.name << "\n"
                                                                     << failing.output();
  }
}

// A supervisor that is not root (setpriv drops it to uid 65534): --user is refused; and without
// --user but with no_new_privs set on the supervisor itself, the limits it would write (its
// user's) are ones its command's shim must refuse — said before the command starts, not as
// failing allocations.
TEST_F(RunAsUserTest, NonRootSupervisorsAreClearErrors) {
  if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "no setpriv to drop root";
  struct Row {
    const char* name;
    std::vector<std::string> setpriv_flags;
    std::vector<std::string> run_flags;
    std::vector<std::string> messages;
  };
  const Row rows[] = {
      {"--user without root", {}, {"--user", kTenant}, {"--user needs root"}},
      {"no_new_privs without --user",
       {"--no-new-privs"},
       {"--watchdog", "off"},
       {"the command's shim would refuse this run's limits file", "no_new_privs"}},
  };
  for (const Row& row : rows) {
    std::vector<std::string> args = {"/usr/bin/setpriv", "--reuid", "65534",
                                     "--regid",          "65534",   "--clear-groups"};
    args.insert(args.end(), row.setpriv_flags.begin(), row.setpriv_flags.end());
    args.insert(args.end(), {"/bin/sh", "-c", "exec \"$@\" 2>&1", "sh", GPUSLICE_CLI_PATH, "run",
                             "--state-dir", scratch_, "--memory", "1Gi"});
    args.insert(args.end(), row.run_flags.begin(), row.run_flags.end());
    args.insert(args.end(), {"--", "/bin/true"});
    ProbeProcess run(args, Env());
    EXPECT_EQ(run.Finish(), 2) << row.name << "\n" << run.output();
    for (const std::string& message : row.messages) {
      EXPECT_NE(run.output().find(message), std::string::npos) << row.name << "\n" << run.output();
    }
  }
}

}  // namespace
}  // namespace gpuslice::shim::testing
