#include "isolation/mps_v3_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

extern char** environ;

namespace gpuslice {
namespace {

struct Output {
  int exit_status = -1;  // -1: killed (timeout) or not started
  std::string out, err;
};

void ReadInto(int fd, std::string& into) {
  char buf[4096];
  const ssize_t n = read(fd, buf, sizeof(buf));
  if (n > 0) into.append(buf, static_cast<std::size_t>(n));
}

// Runs argv with CUDA_MPS_PIPE_DIRECTORY=`pipe`, collecting stdout and stderr until it exits or
// `timeout` passes (then it is killed).
Result<Output> RunCaptured(std::vector<std::string> argv, const std::string& pipe,
                           std::chrono::milliseconds timeout) {
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).starts_with("CUDA_MPS_PIPE_DIRECTORY=")) continue;
    env_storage.emplace_back(*e);
  }
  env_storage.push_back("CUDA_MPS_PIPE_DIRECTORY=" + pipe);
  std::vector<char*> envp, args;
  for (std::string& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (std::string& s : argv) args.push_back(s.data());
  args.push_back(nullptr);
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Unavailable("pipe: " + std::string(strerror(errno)));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return Unavailable("pipe: " + std::string(strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  Output output;
  if (rc == 0) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
      if (poll(fds, 2, 50) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        const std::size_t before = (i == 0 ? output.out : output.err).size();
        ReadInto(fds[i].fd, i == 0 ? output.out : output.err);
        if ((i == 0 ? output.out : output.err).size() == before) {  // EOF
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
    if (open_fds > 0) kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (open_fds == 0 && WIFEXITED(status)) output.exit_status = WEXITSTATUS(status);
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  if (rc != 0) {
    return Unavailable("cannot run MPS control command \"" + argv[0] + "\": " + strerror(rc));
  }
  return output;
}

bool IsSocket(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_socket(path, ec);
}

}  // namespace

ProcessMpsV3::ProcessMpsV3(std::vector<std::string> command, MpsControl& v2,
                           PipeDirectoryOf pipe_directory_of)
    : command_(std::move(command)), v2_(v2), pipe_directory_of_(std::move(pipe_directory_of)) {}

ProcessMpsV3::~ProcessMpsV3() = default;

std::string ProcessMpsV3::ConfigPath(const MpsDaemonSpec& spec) {
  return (std::filesystem::path(spec.pipe_directory).parent_path() / "mps-v3.toml").string();
}

std::string ProcessMpsV3::RecordPath(const MpsDaemonSpec& spec) {
  return RecordPath(spec.pipe_directory);
}

std::string ProcessMpsV3::RecordPath(const std::string& pipe_directory) {
  return (std::filesystem::path(pipe_directory).parent_path() / "mps-v3-daemon.json").string();
}

void ProcessMpsV3::UseV3For(const std::set<std::string>& gpu_uuids) {
  std::lock_guard lock(mu_);
  v3_devices_ = gpu_uuids;
}

void ProcessMpsV3::SetNamespaceSource(NamespaceSource source) {
  std::lock_guard lock(mu_);
  source_ = std::move(source);
}

void ProcessMpsV3::LeaveDaemonsRunning() {
  std::lock_guard lock(mu_);
  leave_running_ = true;
}

bool ProcessMpsV3::IsV3(const std::string& device_uuid) {
  std::lock_guard lock(mu_);
  return v3_devices_.count(device_uuid) > 0 || daemons_.count(device_uuid) > 0;
}

std::vector<std::string> ProcessMpsV3::DaemonArgv(const MpsDaemonSpec& spec) const {
  std::vector<std::string> argv = command_;
  argv.insert(argv.end(), {"-f", "-p", "3", "-a", ConfigPath(spec)});
  return argv;
}

Status ProcessMpsV3::Start(const MpsDaemonSpec& spec) {
  if (!IsV3(spec.device_uuid)) {
    // The GPU was shared under MPS v3 before (this agent's predecessor recorded a daemon) and is
    // not any more: that daemon goes before NVIDIA's v2 one takes the pipe directory.
    if (Status s = StopRecorded(spec.pipe_directory); !s.ok()) return s;
    return v2_.Start(spec);
  }
  if (command_.empty()) return InvalidArgument("MPS v3 control command is empty");
  const std::string server = DefaultMpsV3ServerName(spec.device_uuid);
  if (Adopt(spec, server)) return Status::Ok();
  return Launch(spec, server);
}

bool ProcessMpsV3::Adopt(const MpsDaemonSpec& spec, const std::string& server) {
  const std::string path = RecordPath(spec);
  Result<DaemonRecord> record = ReadDaemonRecord(path);
  std::error_code ec;
  if (!record.ok()) {
    if (record.status().code() != ErrorCode::kNotFound) {
      spdlog::warn("ignoring the MPS v3 daemon record: {}", record.status().message());
      std::filesystem::remove(path, ec);
    }
    return false;
  }
  if (!IsRecordedDaemonAlive(*record)) {
    // Dead, or the pid now belongs to another process: never signalled, just forgotten.
    spdlog::info("MPS v3 daemon record {} names no running daemon (pid {}); starting a new one",
                 path, record->pid);
    std::filesystem::remove(path, ec);
    return false;
  }
  if (record->argv != DaemonArgv(spec) || record->server != server ||
      record->pipe_directory != spec.pipe_directory) {
    spdlog::info("MPS v3 daemon pid {} for {} was started with another command; replacing it",
                 record->pid, spec.device_uuid);
    (void)StopRecordedDaemon(*record, timeout_);
    std::filesystem::remove(path, ec);
    return false;
  }
  {
    std::lock_guard lock(mu_);
    daemons_[spec.device_uuid] = Daemon{spec, server, *record};
  }
  if (Result<std::vector<MpsV3Namespace>> listed = ListNamespaces(server); !listed.ok()) {
    spdlog::warn("MPS v3 daemon pid {} for {} does not answer ({}); replacing it", record->pid,
                 spec.device_uuid, listed.status().message());
    {
      std::lock_guard lock(mu_);
      daemons_.erase(spec.device_uuid);
    }
    (void)StopRecordedDaemon(*record, timeout_);
    std::filesystem::remove(path, ec);
    return false;
  }
  spdlog::info("adopted the running MPS v3 control daemon for {} (pid {}, pipes in {})",
               spec.device_uuid, record->pid, spec.pipe_directory);
  return true;
}

Status ProcessMpsV3::Launch(const MpsDaemonSpec& spec, const std::string& server) {
  NamespaceSource source;
  {
    std::lock_guard lock(mu_);
    source = source_;
  }
  std::error_code ec;
  for (const std::string& dir : {spec.pipe_directory, spec.log_directory}) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Unavailable("cannot create MPS directory " + dir + ": " + ec.message());
  }
  const std::string config = ConfigPath(spec);
  {
    std::ofstream out(config, std::ios::trunc);
    out << RenderMpsV3Toml({{server, spec.device_uuid}},
                           source ? source(server) : std::vector<MpsV3Namespace>{});
    if (!out) return Unavailable("cannot write the MPS v3 configuration " + config);
  }
  // A socket left by a daemon that was killed would look like a ready daemon.
  std::filesystem::remove(spec.pipe_directory + "/control", ec);
  const std::vector<std::string> env = MpsDaemonEnvironment(spec);
  const std::string output = spec.log_directory + "/gpuslice-daemon-output.log";
  Result<DaemonRecord> launched = LaunchDetachedDaemon(DaemonArgv(spec), env, output);
  if (!launched.ok()) {
    return launched.status().WithContext("MPS v3 control daemon for " + spec.device_uuid);
  }
  DaemonRecord record = std::move(launched).value();
  record.pipe_directory = spec.pipe_directory;
  record.server = server;
  // Recorded before it is ready, so that an agent killed meanwhile leaves no unknown daemon.
  if (Status s = WriteDaemonRecord(RecordPath(spec), record); !s.ok()) {
    (void)StopRecordedDaemon(record, timeout_);
    return s;
  }
  if (Status ready = WaitUntilAnswering(spec, server, record); !ready.ok()) {
    (void)StopRecordedDaemon(record, timeout_);
    std::filesystem::remove(RecordPath(spec), ec);
    return ready.WithContext("MPS v3 control daemon for " + spec.device_uuid + " (output in " +
                             output + ", log in " + spec.log_directory + ", configuration " +
                             config + ")");
  }
  std::lock_guard lock(mu_);
  daemons_[spec.device_uuid] = Daemon{spec, server, record};
  return Status::Ok();
}

Status ProcessMpsV3::WaitUntilAnswering(const MpsDaemonSpec& spec, const std::string& server,
                                        const DaemonRecord& record) {
  // The control socket's file exists from the daemon's bind() on, but a command sent before its
  // listen() is refused: ready means it answers a documented command, the same one Adopt asks.
  std::vector<std::string> probe = command_;
  for (std::string& arg : MpsV3ListArgs(server)) probe.push_back(std::move(arg));
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  std::string last = "no control socket " + spec.pipe_directory + "/control";
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    // A configuration error makes the daemon exit instead.
    if (!IsRecordedDaemonAlive(record)) return Unavailable("exited at start");
    if (IsSocket(spec.pipe_directory + "/control")) {
      GPUSLICE_ASSIGN_OR_RETURN(Output answer, RunCaptured(probe, spec.pipe_directory, timeout_));
      if (answer.exit_status == 0) return Status::Ok();
      last = "`namespace list` " +
             (answer.exit_status < 0 ? std::string("timed out")
                                     : "exited " + std::to_string(answer.exit_status)) +
             ": " + answer.err + answer.out;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Unavailable("did not answer within " + std::to_string(timeout_.count()) +
                         " ms; last: " + last);
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

Status ProcessMpsV3::StopRecorded(const std::string& pipe_directory) {
  const std::string path = RecordPath(pipe_directory);
  Result<DaemonRecord> record = ReadDaemonRecord(path);
  if (!record.ok()) return Status::Ok();
  const bool running = IsRecordedDaemonAlive(*record);
  GPUSLICE_RETURN_IF_ERROR(StopRecordedDaemon(*record, std::chrono::milliseconds(10000)));
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (running) {
    spdlog::info("stopped the MPS v3 control daemon (pid {}) a previous agent left in {}",
                 record->pid, pipe_directory);
  }
  return Status::Ok();
}

Status ProcessMpsV3::Stop(const std::string& device_uuid) {
  Daemon daemon;
  {
    std::lock_guard lock(mu_);
    auto it = daemons_.find(device_uuid);
    if (it == daemons_.end()) {
      if (pipe_directory_of_ && !leave_running_) {
        GPUSLICE_RETURN_IF_ERROR(StopRecorded(pipe_directory_of_(device_uuid)));
      }
      return v2_.Stop(device_uuid);
    }
    daemon = std::move(it->second);
    daemons_.erase(it);
    if (leave_running_) return Status::Ok();  // the next agent adopts it
  }
  GPUSLICE_RETURN_IF_ERROR(StopRecordedDaemon(daemon.record, timeout_));
  std::error_code ec;
  std::filesystem::remove(RecordPath(daemon.spec), ec);
  return Status::Ok();
}

bool ProcessMpsV3::IsRunning(const std::string& device_uuid) {
  DaemonRecord record;
  {
    std::lock_guard lock(mu_);
    auto it = daemons_.find(device_uuid);
    if (it == daemons_.end())
      return v3_devices_.count(device_uuid) == 0 && v2_.IsRunning(device_uuid);
    record = it->second.record;
  }
  return IsRecordedDaemonAlive(record);
}

pid_t ProcessMpsV3::DaemonPid(const std::string& device_uuid) {
  std::lock_guard lock(mu_);
  auto it = daemons_.find(device_uuid);
  return it == daemons_.end() ? -1 : it->second.record.pid;
}

Result<std::string> ProcessMpsV3::Run(const std::string& server,
                                      const std::vector<std::string>& args) {
  std::string pipe, adoptable;
  {
    std::lock_guard lock(mu_);
    for (const auto& [uuid, daemon] : daemons_) {
      if (daemon.server == server) pipe = daemon.spec.pipe_directory;
    }
    for (const std::string& uuid : v3_devices_) {
      if (pipe.empty() && pipe_directory_of_ && DefaultMpsV3ServerName(uuid) == server) {
        adoptable = uuid;
      }
    }
  }
  if (pipe.empty() && !adoptable.empty()) {
    // A restarted agent restores its containers' namespaces before its supervisor gets to the
    // daemons: the running daemon a previous agent recorded is adopted now.
    const std::string dir = pipe_directory_of_(adoptable);
    const MpsDaemonSpec spec{adoptable, dir,
                             (std::filesystem::path(dir).parent_path() / "log").string()};
    if (Adopt(spec, server)) pipe = dir;
  }
  if (pipe.empty()) return Unavailable("no MPS v3 server named " + server + " is running");
  std::vector<std::string> argv = command_;
  argv.insert(argv.end(), args.begin(), args.end());
  GPUSLICE_ASSIGN_OR_RETURN(Output output, RunCaptured(argv, pipe, timeout_));
  if (output.exit_status != 0) {
    std::string line;
    for (const std::string& a : args) line += " " + a;
    return Unavailable("`" + command_[0] + line + "` failed (" +
                       (output.exit_status < 0 ? std::string("timed out")
                                               : "exit " + std::to_string(output.exit_status)) +
                       "): " + output.err + output.out);
  }
  return output.out;
}

Status ProcessMpsV3::CreateNamespace(const MpsV3Namespace& ns) {
  GPUSLICE_RETURN_IF_ERROR(ValidateMpsV3Name(ns.name));
  return Run(ns.server, MpsV3CreateArgs(ns)).status();
}

Status ProcessMpsV3::DeleteNamespace(const std::string& server, const std::string& name) {
  GPUSLICE_ASSIGN_OR_RETURN(auto existing, ListNamespaces(server));
  for (const MpsV3Namespace& ns : existing) {
    if (ns.name == name) return Run(server, MpsV3DeleteArgs(server, name)).status();
  }
  return Status::Ok();
}

Result<std::vector<MpsV3Namespace>> ProcessMpsV3::ListNamespaces(const std::string& server) {
  GPUSLICE_ASSIGN_OR_RETURN(std::string text, Run(server, MpsV3ListArgs(server)));
  return ParseMpsV3NamespaceList(server, text);
}

}  // namespace gpuslice
