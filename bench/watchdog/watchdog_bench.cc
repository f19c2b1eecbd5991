// The memory watchdog's cost per check (MemoryWatchdog::CheckOnce): attributing N GPU processes
// to containers and comparing with the limits. Two process tables: an in-memory one (the
// watchdog's own work) and the real /proc (what a check costs on a node: two small file reads
// per process and ancestry step). The driver's usage comes from an in-memory source, so the
// NVML query itself (a driver call per GPU) is not included. Results: docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "watchdog/memory_watchdog.h"

namespace {

using gpuslice::watchdog::GpuProcessUsage;

class FixedUsage : public gpuslice::watchdog::GpuProcessUsageSource {
 public:
  gpuslice::Result<std::vector<GpuProcessUsage>> ReadProcessUsage() override { return rows; }
  std::vector<GpuProcessUsage> rows;
};

class MapProcessTable : public gpuslice::watchdog::ProcessTable {
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

class NoKill : public gpuslice::watchdog::ProcessKiller {
 public:
  void Kill(std::int32_t) override {}
};
class NoEvents : public gpuslice::watchdog::WatchdogEventSink {
 public:
  void OnEvent(const gpuslice::watchdog::WatchdogEvent&) override {}
};

// `processes` GPU processes spread over 8 GPUs and `processes / 4` containers matched by cgroup;
// every container within its limit (the steady state).
void CheckInMemory(benchmark::State& state) {
  const int processes = static_cast<int>(state.range(0));
  FixedUsage usage;
  MapProcessTable table;
  NoKill killer;
  NoEvents events;
  gpuslice::ManualClock clock;
  gpuslice::watchdog::MemoryWatchdog watchdog({}, usage, table, killer, events, clock);
  for (int i = 0; i < processes; ++i) {
    const std::int32_t pid = 1000 + i;
    const std::string cgroup = "/kubepods/pod" + std::to_string(i / 4) + "/c";
    table.cgroups[pid] = cgroup;
    table.parents[pid] = 1;
    usage.rows.push_back({pid, static_cast<std::uint32_t>(i % 8), 256ULL << 20});
  }
  for (int c = 0; c <= processes / 4; ++c) {
    gpuslice::watchdog::WatchedContainer container;
    container.name = "pod" + std::to_string(c);
    container.cgroup = "/kubepods/pod" + std::to_string(c);
    for (std::uint32_t gpu = 0; gpu < 8; ++gpu) container.limit_bytes[gpu] = 8ULL << 30;
    watchdog.Watch(container);
  }
  for (auto _ : state) benchmark::DoNotOptimize(watchdog.CheckOnce());
  state.SetItemsProcessed(state.iterations() * processes);
}

// The same check reading the real /proc: every process row is this benchmark's own pid, and the
// container matches by ancestry from init (the worst case: the whole parent chain is read).
void CheckProcfs(benchmark::State& state) {
  const int processes = static_cast<int>(state.range(0));
  FixedUsage usage;
  gpuslice::watchdog::ProcfsProcessTable table;
  NoKill killer;
  NoEvents events;
  gpuslice::ManualClock clock;
  gpuslice::watchdog::MemoryWatchdog watchdog({}, usage, table, killer, events, clock);
  for (int i = 0; i < processes; ++i) {
    usage.rows.push_back({static_cast<std::int32_t>(::getpid()), 0, 1 << 20});
  }
  gpuslice::watchdog::WatchedContainer container;
  container.name = "run";
  container.cgroup = "/no-such-cgroup";  // forces the cgroup read, then the ancestry walk
  container.root_pid = static_cast<std::int32_t>(::getppid());
  container.limit_bytes[0] = 1ULL << 40;
  watchdog.Watch(container);
  for (auto _ : state) benchmark::DoNotOptimize(watchdog.CheckOnce());
  state.SetItemsProcessed(state.iterations() * processes);
}

BENCHMARK(CheckInMemory)->Arg(16)->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);
BENCHMARK(CheckProcfs)->Arg(16)->Arg(64)->Arg(256)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
