#include "cli/run_as_user.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace gpuslice::cli {
namespace {

namespace fs = std::filesystem;

// A numeric uid or gid: digits only, below 4294967295 (which means "no id" to the kernel).
bool IsNumericId(const std::string& text) {
  return !text.empty() && text.size() <= 10 &&
         text.find_first_not_of("0123456789") == std::string::npos &&
         std::stoull(text) < 4294967295ULL;
}

Result<gid_t> ParseGroup(const std::string& text) {
  if (IsNumericId(text)) return static_cast<gid_t>(std::stoul(text));
  if (const group* g = ::getgrnam(text.c_str()); g != nullptr) return g->gr_gid;
  return InvalidArgument("--user: no group '" + text + "' (give a group name or a numeric GID)");
}

// Whether `user` has `permission` (r 4, w 2, x 1) on `st`, as the kernel decides for a process
// without capabilities: the owner's bits, else the first matching group's, else the others'.
bool Permits(const struct stat& st, const TargetUser& user, unsigned permission) {
  unsigned bits = st.st_mode & 07;
  if (st.st_uid == user.uid) {
    bits = (st.st_mode >> 6) & 07;
  } else {
    for (gid_t g : user.groups) {
      if (st.st_gid == g) {
        bits = (st.st_mode >> 3) & 07;
        break;
      }
    }
  }
  return (bits & permission) == permission;
}

// PATH lookup as execvp does it, made in the parent (the child may only make async-signal-safe
// calls): the first regular file with an execute bit, or `name` itself when it has a slash.
std::string FindExecutable(const std::string& name, const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) return name;
  std::string path_list = "/bin:/usr/bin";
  for (const std::string& e : env) {
    if (e.rfind("PATH=", 0) == 0) path_list = e.substr(5);
  }
  std::stringstream in(path_list);
  std::string dir;
  while (std::getline(in, dir, ':')) {
    const std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0) {
      return candidate;
    }
  }
  return name;  // execve fails with ENOENT, reported as such
}

// In the forked child: drop to `user` for good and exec. Only async-signal-safe calls (the
// parent may have threads). On failure, writes {step, errno} to `error_fd` and exits 127.
[[noreturn]] void ExecAsUser(const char* path, char* const argv[], char* const envp[],
                             const TargetUser& user, int error_fd) {
  int step = 0;
  if (::setgroups(user.groups.size(), user.groups.data()) != 0) {
    step = 1;
  } else if (::setresgid(user.gid, user.gid, user.gid) != 0) {
    step = 2;
  } else if (::setresuid(user.uid, user.uid, user.uid) != 0) {
    step = 3;
  } else if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    step = 4;  // no setuid binary can take the command back to root
  } else {
    // Root's descriptors (NVML, the run directory) do not leak into the user's command.
    if (::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) != 0) {
      for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    ::execve(path, argv, envp);
    step = 5;
  }
  const int report[2] = {step, errno};
  [[maybe_unused]] const ssize_t n = ::write(error_fd, report, sizeof(report));
  ::_exit(127);
}

}  // namespace

Result<TargetUser> ResolveTargetUser(const std::string& spec) {
  const std::size_t colon = spec.find(':');
  const std::string user_part = spec.substr(0, colon);
  TargetUser user;
  const passwd* pw = IsNumericId(user_part) ? ::getpwuid(static_cast<uid_t>(std::stoul(user_part)))
                                            : ::getpwnam(user_part.c_str());
  if (pw == nullptr && !IsNumericId(user_part)) {
    return InvalidArgument("--user: no user '" + user_part +
                           "' (accepted: a user name or a numeric UID, optionally :GID)");
  }
  user.uid = pw != nullptr ? pw->pw_uid : static_cast<uid_t>(std::stoul(user_part));
  if (pw != nullptr) {
    user.gid = pw->pw_gid;
    user.name = pw->pw_name;
    user.home = pw->pw_dir;
  }
  if (colon != std::string::npos) {
    GPUSLICE_ASSIGN_OR_RETURN(user.gid, ParseGroup(spec.substr(colon + 1)));
  } else if (pw == nullptr) {
    return InvalidArgument("--user: uid " + user_part +
                           " has no passwd entry; give its group too, as " + user_part + ":GID");
  }
  if (user.uid == 0 || user.gid == 0) {
    return InvalidArgument(
        "--user: give an unprivileged user and group; the command must not be root (uid or gid "
        "0)");
  }
  user.groups = {user.gid};
  if (!user.name.empty()) {
    int count = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    if (::getgrouplist(user.name.c_str(), user.gid, groups.data(), &count) < 0) {
      groups.resize(static_cast<std::size_t>(count));
      ::getgrouplist(user.name.c_str(), user.gid, groups.data(), &count);
    }
    groups.resize(static_cast<std::size_t>(count));
    user.groups = groups;
  }
  return user;
}

// `what` (a file the command needs) must be readable by `user`, through directories it can
// search: otherwise the command would fail, or, for a shim, the dynamic linker would quietly
// skip it and the command would run without the shim's limit.
Status CheckReadableBy(const fs::path& file, const TargetUser& user, const std::string& what) {
  struct stat st {};
  for (fs::path path = file;; path = path.parent_path()) {
    const bool is_file = path == file;
    if (::stat(path.c_str(), &st) == 0 && !Permits(st, user, is_file ? 4 : 1)) {
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return FailedPrecondition(what + ": " + path.string() + " (mode " + mode + ") is not " +
                                (is_file ? "readable" : "searchable") + " by uid " +
                                std::to_string(user.uid));
    }
    if (path == path.root_path() || path.empty()) break;
  }
  return Status::Ok();
}

// Starts the command: as this process's user with posix_spawnp, or as `user` with fork, the
// privilege drop and execve. Returns the child's pid.
Result<pid_t> StartCommand(const std::vector<std::string>& command, char* const argv[],
                           char* const envp[], const std::vector<std::string>& env,
                           const TargetUser* user) {
  pid_t child = 0;
  if (user == nullptr) {
    const int rc = ::posix_spawnp(&child, argv[0], nullptr, nullptr, argv, envp);
    if (rc != 0) return NotFound("cannot run '" + command[0] + "': " + std::strerror(rc));
    return child;
  }
  const std::string path = FindExecutable(command[0], env);
  int report_pipe[2];
  if (::pipe2(report_pipe, O_CLOEXEC) != 0) {
    return Unavailable(std::string("pipe: ") + std::strerror(errno));
  }
  child = ::fork();
  if (child == 0) ExecAsUser(path.c_str(), argv, envp, *user, report_pipe[1]);
  ::close(report_pipe[1]);
  if (child < 0) {
    ::close(report_pipe[0]);
    return Unavailable(std::string("fork: ") + std::strerror(errno));
  }
  int report[2] = {};
  ssize_t n = 0;
  do {
    n = ::read(report_pipe[0], report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  ::close(report_pipe[0]);
  if (n != static_cast<ssize_t>(sizeof(report))) return child;  // exec'd: the pipe closed
  ::waitpid(child, nullptr, 0);
  static const char* const kSteps[] = {"", "setgroups", "setgid", "setuid", "no_new_privs", "exec"};
  const std::string as = "uid " + std::to_string(user->uid);
  if (report[0] == 5) {
    return NotFound("cannot run '" + command[0] + "' as " + as + ": " + std::strerror(report[1]));
  }
  return Unavailable("cannot become " + as + " (" + kSteps[report[0] % 6] +
                     "): " + std::strerror(report[1]));
}

}  // namespace gpuslice::cli
