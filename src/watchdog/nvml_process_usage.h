// GpuProcessUsageSource over NVML, loaded with dlopen so the binary runs (and the watchdog
// reports "unavailable") on machines without the driver.
#pragma once

#include <memory>
#include <string>

#include "watchdog/gpu_process_usage.h"

namespace gpuslice::watchdog {

class NvmlProcessUsage final : public GpuProcessUsageSource {
 public:
  // Loads NVML from `library` (an absolute path or a soname) and initialises it.
  static Result<std::unique_ptr<NvmlProcessUsage>> Open(const std::string& library);
  ~NvmlProcessUsage() override;

  // nvmlDeviceGetComputeRunningProcesses_v3 and nvmlDeviceGetGraphicsRunningProcesses_v3 on
  // every GPU (the _v2 variants where _v3 is missing); a process in both lists counts once
  // (the larger figure). Processes whose usage NVML cannot see are skipped.
  Result<std::vector<GpuProcessUsage>> ReadProcessUsage() override;

 private:
  struct Api;
  explicit NvmlProcessUsage(std::unique_ptr<Api> api);
  std::unique_ptr<Api> api_;
};

}  // namespace gpuslice::watchdog
