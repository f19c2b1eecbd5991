// The fake CUDA driver's side of driver r615's per-cgroup device-memory limits
// (docs/isolation.md): with GPUSLICE_FAKE_CGROUP_ROOT (a cgroup tree in the sim_dmem_tree.h
// format) and GPUSLICE_FAKE_GPU_UUIDS (comma-separated, by device ordinal) set, an allocation that
// would take the calling process's cgroup over the hard limit set with
// nvmlDeviceSetMemoryLimits_v1 fails with CUDA_ERROR_OUT_OF_MEMORY, whichever allocation path it
// takes; every change of the process's use is published so the cgroup's use is the sum over its
// live processes. The process's cgroup is the one whose cgroup.procs lists its pid. The check
// charges in the same step, under the cgroup's lock (simdmem::SetUseIfFits), as the real driver
// charges atomically: two processes of a cgroup allocating at the same instant cannot both take
// what only one of them fits.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/sim_dmem_tree.h"

namespace fake_dmem {

struct Config {
  std::string root;
  std::vector<std::string> uuids;
};

inline const Config& Get() {
  static const Config config = [] {
    Config c;
    const char* root = std::getenv("GPUSLICE_FAKE_CGROUP_ROOT");
    const char* uuids = std::getenv("GPUSLICE_FAKE_GPU_UUIDS");
    if (root == nullptr || uuids == nullptr) return c;
    c.root = root;
    std::string list = uuids;
    std::size_t pos = 0;
    while (pos <= list.size()) {
      std::size_t end = list.find(',', pos);
      if (end == std::string::npos) end = list.size();
      c.uuids.push_back(list.substr(pos, end - pos));
      pos = end + 1;
    }
    return c;
  }();
  return config;
}

// True when raising this process's use of `device` to `process_total_bytes` would take its
// cgroup over the hard limit; otherwise that use is charged now (the caller then allocates, or
// publishes its actual use if it gives up).
inline bool Refuses(int device, std::uint64_t process_total_bytes) {
  const Config& c = Get();
  if (c.root.empty() || device < 0 || static_cast<std::size_t>(device) >= c.uuids.size()) {
    return false;
  }
  const std::string cgroup = gpuslice::simdmem::CgroupOfPid(c.root, getpid());
  if (cgroup.empty()) return false;
  return !gpuslice::simdmem::SetUseIfFits(cgroup, c.uuids[static_cast<std::size_t>(device)],
                                          getpid(), process_total_bytes);
}

inline void Publish(const std::uint64_t* used, int device_count) {
  const Config& c = Get();
  if (c.root.empty()) return;
  const std::string cgroup = gpuslice::simdmem::CgroupOfPid(c.root, getpid());
  if (cgroup.empty()) return;
  const gpuslice::simdmem::CgroupLock lock(cgroup);
  for (int i = 0; i < device_count && static_cast<std::size_t>(i) < c.uuids.size(); ++i) {
    gpuslice::simdmem::SetUse(cgroup, c.uuids[static_cast<std::size_t>(i)], getpid(), used[i]);
  }
}

}  // namespace fake_dmem
