#include "isolation/daemon_record.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace gpuslice {
namespace {

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

struct ProcStat {
  char state = '?';
  std::uint64_t start_time_ticks = 0;
};

// /proc/<pid>/stat: the state (field 3) and start time (field 22); the command name (field 2)
// may hold spaces and parentheses, so the fields are counted from the last ')'.
Result<ProcStat> ReadProcStat(pid_t pid) {
  const std::string text = ReadWhole("/proc/" + std::to_string(pid) + "/stat");
  const std::size_t paren = text.rfind(')');
  if (paren == std::string::npos) return NotFound("no process " + std::to_string(pid));
  std::istringstream fields(text.substr(paren + 1));
  ProcStat stat;
  std::string word;
  for (int field = 3; field <= 22 && fields >> word; ++field) {
    if (field == 3) stat.state = word.empty() ? '?' : word[0];
    if (field == 22) stat.start_time_ticks = std::strtoull(word.c_str(), nullptr, 10);
  }
  if (stat.start_time_ticks == 0) return NotFound("no start time for " + std::to_string(pid));
  return stat;
}

std::vector<std::string> ReadCmdline(pid_t pid) {
  const std::string text = ReadWhole("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> argv;
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t end = text.find('\0', begin);
    argv.push_back(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return argv;
}

// True when the record names a running process (not gone, not a zombie, not another process
// that took the pid since).
bool MatchesRecord(const DaemonRecord& record, bool* zombie) {
  *zombie = false;
  if (record.pid <= 1 || record.start_time_ticks == 0) return false;
  if (!record.boot_id.empty() && record.boot_id != CurrentBootId()) return false;
  Result<ProcStat> stat = ReadProcStat(record.pid);
  if (!stat.ok() || stat->start_time_ticks != record.start_time_ticks) return false;
  if (stat->state == 'Z' || stat->state == 'X') {
    *zombie = true;
    return false;
  }
  return ReadCmdline(record.pid) == record.argv;
}

// Opens a pidfd for the recorded process after checking its identity, so that a signal sent
// through it cannot reach a process that took the pid since; -1 when it is not running. Where
// the kernel has no pidfd_open (before 5.3) `*no_pidfd` is set and the caller uses kill().
int OpenVerifiedPidfd(const DaemonRecord& record, bool* no_pidfd) {
  *no_pidfd = false;
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, record.pid, 0));
  if (fd < 0 && errno == ENOSYS) *no_pidfd = true;
  if (!IsRecordedDaemonAlive(record)) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

// The recorded process still exists and is not a zombie (whatever its command line: an exiting
// process loses its command line before it becomes a zombie). Reaps it if it is our zombie.
bool StillExists(const DaemonRecord& record) {
  Result<ProcStat> stat = ReadProcStat(record.pid);
  if (!stat.ok() || stat->start_time_ticks != record.start_time_ticks) return false;
  if (stat->state == 'Z' || stat->state == 'X') {
    waitpid(record.pid, nullptr, WNOHANG);
    return false;
  }
  return true;
}

bool WaitUntilGone(const DaemonRecord& record, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (StillExists(record)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// PATH lookup done before fork (nothing after fork may allocate).
std::string ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

void CloseFrom(int first, int last) {
  if (first > last) return;
  if (syscall(SYS_close_range, static_cast<unsigned>(first), static_cast<unsigned>(last), 0) == 0)
    return;
  for (int fd = first; fd <= last; ++fd) close(fd);
}

}  // namespace

std::string CurrentBootId() {
  std::string id = ReadWhole("/proc/sys/kernel/random/boot_id");
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

Result<DaemonRecord> LaunchDetachedDaemon(const std::vector<std::string>& argv,
                                          const std::vector<std::string>& env,
                                          const std::string& output_file) {
  if (argv.empty()) return InvalidArgument("daemon command is empty");
  // Everything the children need is prepared here: after fork only async-signal-safe calls.
  const std::string program = ResolveProgram(argv[0]);
  std::vector<std::string> arg_storage = argv, env_storage = env;
  std::vector<char*> args, envp;
  for (std::string& a : arg_storage) args.push_back(a.data());
  args.push_back(nullptr);
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  rlimit files{};
  const int max_fd = getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                         ? static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20)) - 1
                         : 65535;
  const int out = open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return Unavailable("cannot open " + output_file + ": " + std::strerror(errno));
  const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int pid_pipe[2] = {-1, -1}, exec_pipe[2] = {-1, -1};
  if (null < 0 || pipe2(pid_pipe, O_CLOEXEC) != 0 || pipe2(exec_pipe, O_CLOEXEC) != 0) {
    const int error = errno;
    for (int fd : {out, null, pid_pipe[0], pid_pipe[1], exec_pipe[0], exec_pipe[1]})
      if (fd >= 0) close(fd);
    return Unavailable(std::string("cannot prepare the daemon's start: ") + std::strerror(error));
  }
  const pid_t child = fork();
  if (child == 0) {
    setsid();  // no controlling terminal, not in the agent's process group
    const pid_t daemon = fork();
    if (daemon != 0) {  // the intermediate exits at once: the daemon is nobody's child of ours
      (void)!write(pid_pipe[1], &daemon, sizeof(daemon));
      _exit(0);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the agent blocks SIGTERM for its signal thread
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &default_action, nullptr);
    dup2(null, 0);
    dup2(out, 1);
    dup2(out, 2);
    // No descriptor of the agent (listening sockets, files) may live on in the daemon.
    CloseFrom(3, exec_pipe[1] - 1);
    CloseFrom(exec_pipe[1] + 1, max_fd);
    execve(program.c_str(), args.data(), envp.data());
    const int error = errno;
    (void)!write(exec_pipe[1], &error, sizeof(error));
    _exit(127);
  }
  const int fork_error = errno;
  close(out);
  close(null);
  close(pid_pipe[1]);
  close(exec_pipe[1]);
  pid_t daemon = -1;
  int exec_error = 0;
  if (child > 0) {
    waitpid(child, nullptr, 0);
    if (read(pid_pipe[0], &daemon, sizeof(daemon)) != sizeof(daemon)) daemon = -1;
    // EOF (the write end closed by a successful exec) or the exec's errno.
    if (daemon > 0 && read(exec_pipe[0], &exec_error, sizeof(exec_error)) != sizeof(exec_error))
      exec_error = 0;
  }
  close(pid_pipe[0]);
  close(exec_pipe[0]);
  if (child < 0) return Unavailable(std::string("fork: ") + std::strerror(fork_error));
  if (daemon <= 0) return Unavailable("cannot start \"" + argv[0] + "\": fork failed");
  if (exec_error != 0) {
    return Unavailable("cannot run \"" + argv[0] + "\": " + std::strerror(exec_error));
  }
  DaemonRecord record;
  record.pid = daemon;
  record.boot_id = CurrentBootId();
  record.argv = argv;
  Result<ProcStat> stat = ReadProcStat(daemon);
  if (!stat.ok()) {
    return Unavailable("\"" + argv[0] + "\" exited at once; see " + output_file);
  }
  record.start_time_ticks = stat->start_time_ticks;
  return record;
}

bool IsRecordedDaemonAlive(const DaemonRecord& record) {
  bool zombie = false;
  if (MatchesRecord(record, &zombie)) return true;
  if (zombie) waitpid(record.pid, nullptr, WNOHANG);  // ours (a subreaper's) to reap, if anyone's
  return false;
}

Status StopRecordedDaemon(const DaemonRecord& record, std::chrono::milliseconds grace) {
  for (const int sig : {SIGTERM, SIGKILL}) {
    bool no_pidfd = false;
    const int pidfd = OpenVerifiedPidfd(record, &no_pidfd);
    if (pidfd < 0 && !no_pidfd) return Status::Ok();  // not running (or never ours)
    if (pidfd >= 0) {
      syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
      close(pidfd);
    } else if (IsRecordedDaemonAlive(record)) {
      kill(record.pid, sig);
    } else {
      return Status::Ok();
    }
    if (WaitUntilGone(record, sig == SIGTERM ? grace : std::chrono::milliseconds(5000))) {
      return Status::Ok();
    }
  }
  return Unavailable("daemon " + std::to_string(record.pid) + " (" + record.argv[0] +
                     ") did not exit after SIGKILL");
}

std::string DaemonRecordJson(const DaemonRecord& record) {
  nlohmann::json j = {{"pid", record.pid},
                      {"startTimeTicks", record.start_time_ticks},
                      {"bootId", record.boot_id},
                      {"argv", record.argv},
                      {"pipeDirectory", record.pipe_directory},
                      {"server", record.server}};
  // Invalid UTF-8 in a command line is replaced, not thrown on (such a record then matches no
  // process, and the daemon is started anew rather than adopted).
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Result<DaemonRecord> ParseDaemonRecord(const std::string& text, const std::string& where) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  const auto bad = [&](const std::string& what) {
    return InvalidArgument(where + ": " + what +
                           "; expected {\"pid\",\"startTimeTicks\",\"bootId\",\"argv\","
                           "\"pipeDirectory\",\"server\"}");
  };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  // Numbers must be JSON integers in range: nlohmann converts a float such as 1e20 to an
  // integer type without a check (undefined behaviour), and a negative start time would wrap.
  const auto pid = j.find("pid");
  if (pid == j.end() || !pid->is_number_integer())
    return bad("field \"pid\" is missing or not an integer");
  if (pid->get<std::int64_t>() <= 1 || pid->get<std::int64_t>() > INT32_MAX) {
    return bad("pid " + pid->dump() + " is not a daemon's");
  }
  const auto ticks = j.find("startTimeTicks");
  if (ticks == j.end() || !ticks->is_number_unsigned()) {
    return bad("field \"startTimeTicks\" is missing or not a non-negative integer");
  }
  DaemonRecord record;
  record.pid = static_cast<pid_t>(pid->get<std::int64_t>());
  record.start_time_ticks = ticks->get<std::uint64_t>();
  const char* field = "";
  try {
    field = "bootId";
    record.boot_id = j.at(field).get<std::string>();
    field = "argv";
    record.argv = j.at(field).get<std::vector<std::string>>();
    field = "pipeDirectory";
    record.pipe_directory = j.value(field, std::string());
    field = "server";
    record.server = j.value(field, std::string());
  } catch (const nlohmann::json::exception& e) {
    return bad("field \"" + std::string(field) + "\" is missing or of the wrong type (" + e.what() +
               ")");
  }
  if (record.argv.empty()) return bad("argv is empty");
  return record;
}

Result<DaemonRecord> ReadDaemonRecord(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return NotFound("no daemon record " + path);
  return ParseDaemonRecord(ReadWhole(path), path);
}

Status WriteDaemonRecord(const std::string& path, const DaemonRecord& record) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << DaemonRecordJson(record);
    out.flush();
    if (!out) return Unavailable("cannot write " + tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Unavailable("cannot rename " + tmp + " to " + path + ": " + ec.message());
  return Status::Ok();
}

}  // namespace gpuslice
