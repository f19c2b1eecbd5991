// `gpuslice run --user`: who the command runs as, and starting it as that user (fork, then
// only async-signal-safe calls: setgroups, setresgid, setresuid, no_new_privs, execve).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"

namespace gpuslice::cli {

// The user a `--user` command runs as.
struct TargetUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, the primary one included
  std::string name;           // empty when the uid has no passwd entry
  std::string home;
};

// --user NAME|UID[:GID]: a passwd name or uid; the group defaults to the passwd entry's, and the
// supplementary groups are the user's (getgrouplist) or, without a passwd entry, the group alone.
// Root (uid or gid 0) is refused.
Result<TargetUser> ResolveTargetUser(const std::string& spec);

// `file` must be readable by `user`, through directories it can search (as the kernel decides
// for a process without capabilities); otherwise an error naming `what` and the path.
Status CheckReadableBy(const std::filesystem::path& file, const TargetUser& user,
                       const std::string& what);

// Starts `command` (`argv`/`envp` its C form, `env` the same environment as strings): as this
// process's user with posix_spawnp when `user` is null, else with fork and the privilege drop
// to `user` for good. Returns the child's pid; a failure in the child before exec is reported.
Result<pid_t> StartCommand(const std::vector<std::string>& command, char* const argv[],
                           char* const envp[], const std::vector<std::string>& env,
                           const TargetUser* user);

}  // namespace gpuslice::cli
