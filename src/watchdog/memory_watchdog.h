// MemoryWatchdog: holds containers to their GPU-memory limits from outside their processes.
//
// Every check reads the driver's per-process usage (GpuProcessUsageSource: NVML), maps each
// process to a watched container (by cgroup, or as a descendant of the container's first
// process), sums per container and GPU, and compares with the limit. Over the limit: an event
// (log line; the node agent turns it into a Kubernetes Event later) and, once the container has
// stayed over the limit for the grace period, SIGKILL of its largest processes on that GPU until
// the rest fit. This catches what the in-process shim cannot: processes without the shim (no
// preload, static binaries, dlopen of the driver by path) and a tenant that edits its
// accounting region. Time comes from a Clock, so grace periods are tested in simulated time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "watchdog/gpu_process_usage.h"
#include "watchdog/process_table.h"

namespace gpuslice::watchdog {

struct WatchedContainer {
  std::string name;  // shown in events and metrics: "<namespace>/<pod>/<container>", "run-…"
  // Processes in this cgroup or below it belong to the container (empty: not used).
  std::string cgroup;
  // Processes descended from this pid (inclusive) belong to the container (0: not used).
  std::int32_t root_pid = 0;
  // NVML index -> limit. A GPU not listed gets no memory, as in the shim.
  std::map<std::uint32_t, std::uint64_t> limit_bytes;
};

struct WatchdogOptions {
  std::chrono::milliseconds check_interval{500};  // 1 ms - 1 s
  std::chrono::milliseconds kill_grace{2000};     // over the limit this long -> SIGKILL
  bool kill = true;                               // false: report only
  static constexpr std::chrono::milliseconds kMaxCheckInterval{1000};
  // Rejects an interval outside 1 ms - 1 s or a negative grace, saying what is accepted.
  Status Validate() const;
};

enum class WatchdogEventKind { kOverLimit, kKilled, kBackUnderLimit };

struct WatchdogEvent {
  WatchdogEventKind kind;
  std::string container;
  std::uint32_t gpu_index = 0;
  std::uint64_t used_bytes = 0;  // the container's usage on that GPU at the check
  std::uint64_t limit_bytes = 0;
  std::int32_t pid = 0;         // kKilled: the process killed
  std::uint64_t pid_bytes = 0;  // kKilled: what it held
};

// One human-readable line per event ("container X uses N bytes of GPU 0, over its limit ...").
std::string FormatWatchdogEvent(const WatchdogEvent& event);

// Where events go: a log line today, a Kubernetes Event later.
class WatchdogEventSink {
 public:
  virtual ~WatchdogEventSink() = default;
  virtual void OnEvent(const WatchdogEvent& event) = 0;
};

// Writes FormatWatchdogEvent lines to a callback (spdlog in the agent, stderr in `gpuslice run`).
class LogLineEventSink final : public WatchdogEventSink {
 public:
  explicit LogLineEventSink(std::function<void(const std::string&)> write)
      : write_(std::move(write)) {}
  void OnEvent(const WatchdogEvent& event) override { write_(FormatWatchdogEvent(event)); }

 private:
  std::function<void(const std::string&)> write_;
};

// Sends SIGKILL. Behind an interface so tests can record instead of killing.
class ProcessKiller {
 public:
  virtual ~ProcessKiller() = default;
  virtual void Kill(std::int32_t pid) = 0;
};

class SigkillProcessKiller final : public ProcessKiller {
 public:
  void Kill(std::int32_t pid) override;
};

// A container's real usage of one GPU at the last check (for the metrics exporter).
struct ContainerGpuUsage {
  std::string container;
  std::uint32_t gpu_index = 0;
  std::uint64_t used_bytes = 0;
  std::uint64_t limit_bytes = 0;
  bool over_limit = false;
};

class MemoryWatchdog {
 public:
  // Everything is borrowed and must outlive the watchdog.
  MemoryWatchdog(WatchdogOptions options, GpuProcessUsageSource& usage, ProcessTable& processes,
                 ProcessKiller& killer, WatchdogEventSink& events, const Clock& clock);
  ~MemoryWatchdog();
  MemoryWatchdog(const MemoryWatchdog&) = delete;
  MemoryWatchdog& operator=(const MemoryWatchdog&) = delete;

  // Adds or replaces (by name) a container to watch; thread-safe.
  void Watch(WatchedContainer container);
  void Unwatch(const std::string& name);

  // One check: read, attribute, compare, report, kill. An unreadable driver is an error (and
  // nothing is killed on stale data).
  Status CheckOnce();

  // Runs CheckOnce every check_interval on a thread until Stop() (or destruction). Failures
  // go to `on_error` (once per distinct message in a row).
  void Start(std::function<void(const Status&)> on_error = nullptr);
  void Stop();

  std::vector<ContainerGpuUsage> LastUsage() const;
  const WatchdogOptions& options() const { return options_; }

 private:
  struct Key {
    std::string container;
    std::uint32_t gpu_index;
    bool operator<(const Key& o) const {
      return container != o.container ? container < o.container : gpu_index < o.gpu_index;
    }
  };
  struct ProcessBytes {
    std::int32_t pid;
    std::uint64_t bytes;
  };
  const WatchedContainer* ContainerOf(std::int32_t pid);
  void Enforce(const Key& key, std::uint64_t used, std::uint64_t limit,
               std::vector<ProcessBytes> processes, Clock::TimePoint now);

  WatchdogOptions options_;
  GpuProcessUsageSource& usage_;
  ProcessTable& processes_;
  ProcessKiller& killer_;
  WatchdogEventSink& events_;
  const Clock& clock_;

  mutable std::mutex mutex_;  // guards everything below
  std::map<std::string, WatchedContainer> containers_;
  std::map<Key, Clock::TimePoint> over_since_;
  std::vector<ContainerGpuUsage> last_usage_;

  std::mutex run_mutex_;
  std::condition_variable run_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace gpuslice::watchdog
