// NvmlMemoryLimits: MemoryLimitDriver over NVML's nvmlDeviceSetMemoryLimits_v1 /
// nvmlDeviceGetMemoryLimits_v1 (driver r615+), loaded as optional symbols: a library without them
// gives Unavailable from Create, and the node stays on the shim tier.
#pragma once

#include <memory>
#include <string>

#include "backends/memory_limits.h"
#include "backends/nvml_api.h"

extern "C" {
// Layouts as NVIDIA's structure pages list their public members (nameSpace, softLimit,
// hardLimit[, currentUsed]). ASSUMED: no leading version field (docs/isolation.md).
struct nvmlSetMemoryLimits_v1_t {
  const char* nameSpace;
  unsigned long long softLimit;
  unsigned long long hardLimit;
};
struct nvmlGetMemoryLimits_v1_t {
  const char* nameSpace;
  unsigned long long softLimit;
  unsigned long long hardLimit;
  unsigned long long currentUsed;
};
}

namespace gpuslice {

class NvmlMemoryLimits final : public MemoryLimitDriver {
 public:
  // Loads `library` (already initialised by NvmlBackend in the same process, or initialised
  // here) and resolves the memory-limit calls. `cgroup_mount` is probed by Supported().
  static Result<std::unique_ptr<NvmlMemoryLimits>> Create(
      const std::string& library = "libnvidia-ml.so.1",
      const std::string& cgroup_mount = "/sys/fs/cgroup");
  ~NvmlMemoryLimits() override;
  NvmlMemoryLimits(const NvmlMemoryLimits&) = delete;
  NvmlMemoryLimits& operator=(const NvmlMemoryLimits&) = delete;

  bool Supported(const std::string& gpu_uuid) override;
  Status SetMemoryLimits(const std::string& gpu_uuid, const std::string& cgroup_path,
                         std::uint64_t soft_limit_bytes, std::uint64_t hard_limit_bytes) override;
  Result<MemoryLimits> GetMemoryLimits(const std::string& gpu_uuid,
                                       const std::string& cgroup_path) override;

 private:
  struct Api {
    nvmlReturn_t (*init)(void) = nullptr;
    nvmlReturn_t (*shutdown)(void) = nullptr;
    const char* (*error_string)(nvmlReturn_t) = nullptr;
    nvmlReturn_t (*handle_by_uuid)(const char*, nvmlDevice_t*) = nullptr;
    nvmlReturn_t (*set_limits)(nvmlDevice_t, nvmlSetMemoryLimits_v1_t*) = nullptr;
    nvmlReturn_t (*get_limits)(nvmlDevice_t, nvmlGetMemoryLimits_v1_t*) = nullptr;
  };
  NvmlMemoryLimits(void* handle, Api api, std::string cgroup_mount)
      : handle_(handle), api_(api), cgroup_mount_(std::move(cgroup_mount)) {}
  Result<nvmlDevice_t> Device(const std::string& gpu_uuid);
  Status Check(nvmlReturn_t rc, const std::string& what) const;

  void* handle_;
  Api api_;
  std::string cgroup_mount_;
};

}  // namespace gpuslice
