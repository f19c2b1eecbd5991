// In-memory stand-ins for the memory watchdog's inputs and outputs (src/watchdog), shared by its
// unit tests and its benchmark: the driver's per-process usage, the process table, the killer
// and the event sink. Deterministic; thread-safe where the watchdog's own thread calls them.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "watchdog/memory_watchdog.h"

namespace gpuslice::watchdog::testing {

// The driver's per-process usage: `rows`, or `error` when it is not ok.
class FakeGpuProcessUsage : public GpuProcessUsageSource {
 public:
  Result<std::vector<GpuProcessUsage>> ReadProcessUsage() override {
    if (!error.ok()) return error;
    return rows;
  }
  std::vector<GpuProcessUsage> rows;
  Status error;
};

// A process tree: each pid's cgroup and parent; a pid not listed has neither.
class FakeProcessTable : public ProcessTable {
 public:
  std::optional<std::string> CgroupOf(std::int32_t pid) override {
    auto it = cgroups.find(pid);
    return it == cgroups.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  std::optional<std::int32_t> ParentOf(std::int32_t pid) override {
    auto it = parents.find(pid);
    return it == parents.end() ? std::nullopt : std::optional<std::int32_t>(it->second);
  }
  std::map<std::int32_t, std::string> cgroups;
  std::map<std::int32_t, std::int32_t> parents;
};

// Records the pids it is asked to kill; kills nothing.
class RecordingKiller : public ProcessKiller {
 public:
  void Kill(std::int32_t pid) override {
    std::lock_guard<std::mutex> lock(mutex_);
    killed.push_back(pid);
  }
  std::vector<std::int32_t> killed;  // read directly only when the watchdog is not running

 private:
  std::mutex mutex_;
};

// Records every event.
class RecordingSink : public WatchdogEventSink {
 public:
  void OnEvent(const WatchdogEvent& event) override {
    std::lock_guard<std::mutex> lock(mutex_);
    events.push_back(event);
  }
  std::size_t Count(WatchdogEventKind kind) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::size_t n = 0;
    for (const WatchdogEvent& e : events) n += e.kind == kind ? 1 : 0;
    return n;
  }
  std::vector<WatchdogEvent> events;  // read directly only when the watchdog is not running

 private:
  std::mutex mutex_;
};

}  // namespace gpuslice::watchdog::testing
