// DaemonRecord: a daemon the node agent starts detached (own session, not its child, so it keeps
// running when the agent exits or is killed, like NVIDIA's separate MPS control daemon), and the
// on-disk record a restarted agent uses to find it again.
//
// A pid alone is no identity: after the daemon dies its pid can be reused by any process. A
// record names the process by pid, its start time (/proc/<pid>/stat, clock ticks since boot), the
// boot it started in (/proc/sys/kernel/random/boot_id) and the exact command line it was started
// with; only a live (not zombie) process matching all four is the recorded daemon, and only such
// a process is ever signalled.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace gpuslice {

struct DaemonRecord {
  pid_t pid = -1;
  std::uint64_t start_time_ticks = 0;  // field 22 of /proc/<pid>/stat
  std::string boot_id;
  std::vector<std::string> argv;  // as started; compared with /proc/<pid>/cmdline
  std::string pipe_directory;     // MPS: CUDA_MPS_PIPE_DIRECTORY of the daemon
  std::string server;             // MPS v3: the server it runs
  bool operator==(const DaemonRecord&) const = default;
};

// Starts `argv` (PATH lookup) detached: double fork, setsid, an empty signal mask and default
// signal dispositions, stdin from /dev/null, stdout and stderr appended to `output_file`, no other
// descriptor of the caller inherited. `env` is its whole environment ("K=V"). Returns once the
// program was executed (an exec failure is an error), with the record of the running process;
// pipe_directory and server are left to the caller.
Result<DaemonRecord> LaunchDetachedDaemon(const std::vector<std::string>& argv,
                                          const std::vector<std::string>& env,
                                          const std::string& output_file);

// True when `record` names a live, non-zombie process with the recorded start time, boot and
// command line. Reaps it first if it is the caller's exited child.
bool IsRecordedDaemonAlive(const DaemonRecord& record);

// Stops the recorded daemon: SIGTERM, then SIGKILL after `grace`; waits until it is gone (or a
// zombie of another parent). OK when it is not running; a process that does not match the record
// is never signalled.
Status StopRecordedDaemon(const DaemonRecord& record, std::chrono::milliseconds grace);

// The record as JSON ({"pid","startTimeTicks","bootId","argv","pipeDirectory","server"}) and
// back; a malformed file is InvalidArgument naming `where`.
std::string DaemonRecordJson(const DaemonRecord& record);
Result<DaemonRecord> ParseDaemonRecord(const std::string& text, const std::string& where);
// Reads a record file; NotFound when there is none.
Result<DaemonRecord> ReadDaemonRecord(const std::string& path);
// Writes it atomically (temporary file + rename).
Status WriteDaemonRecord(const std::string& path, const DaemonRecord& record);

// /proc/sys/kernel/random/boot_id ("" when unreadable).
std::string CurrentBootId();

}  // namespace gpuslice
