// FileMemoryLimits: the simulated driver's per-cgroup memory limits over a cgroup tree on disk
// (a real /sys/fs/cgroup-like directory tree in tests; format in sim_dmem_tree.h). It follows
// nvmlDeviceSetMemoryLimits_v1's documented semantics: the cgroup must exist, MIG and unknown
// devices are refused, soft 0 + hard kNoHardLimit clears, and a removed cgroup has no limits.
#pragma once

#include <set>
#include <string>

#include "backends/memory_limits.h"

namespace gpuslice {

class FileMemoryLimits final : public MemoryLimitDriver {
 public:
  // `supported_uuids`: the whole GPUs that accept limits.
  explicit FileMemoryLimits(std::set<std::string> supported_uuids);

  bool Supported(const std::string& gpu_uuid) override;
  Status SetMemoryLimits(const std::string& gpu_uuid, const std::string& cgroup_path,
                         std::uint64_t soft_limit_bytes, std::uint64_t hard_limit_bytes) override;
  Result<MemoryLimits> GetMemoryLimits(const std::string& gpu_uuid,
                                       const std::string& cgroup_path) override;

 private:
  Status Check(const std::string& gpu_uuid, const std::string& cgroup_path) const;
  const std::set<std::string> supported_;
};

}  // namespace gpuslice
