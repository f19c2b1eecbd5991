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

#include "fakes/watchdog_fakes.h"
#include "watchdog/memory_watchdog.h"

namespace {

using gpuslice::watchdog::GpuProcessUsage;

// Nothing is killed and no event fires in the steady state measured here.
using FixedUsage = gpuslice::watchdog::testing::FakeGpuProcessUsage;
using MapProcessTable = gpuslice::watchdog::testing::FakeProcessTable;
using NoKill = gpuslice::watchdog::testing::RecordingKiller;
using NoEvents = gpuslice::watchdog::testing::RecordingSink;

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
