// NvmlBackend: the real GPU driver, through libnvidia-ml.so.1 loaded with dlopen at run time.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/gpu_backend.h"
#include "backends/nvml_api.h"

namespace gpuslice {

class NvmlBackend final : public GpuBackend {
 public:
  // Loads NVML from `library` (a soname searched on the library path, or an absolute path) and
  // initialises it. Fails with Unavailable and a plain explanation when NVML is absent.
  static Result<std::unique_ptr<NvmlBackend>> Create(
      const std::string& library = "libnvidia-ml.so.1");
  ~NvmlBackend() override;
  NvmlBackend(const NvmlBackend&) = delete;
  NvmlBackend& operator=(const NvmlBackend&) = delete;

  std::string Name() const override { return "nvml"; }
  Result<DriverInfo> GetDriverInfo() override;
  Result<std::vector<GpuInfo>> ListGpus() override;
  Result<std::vector<HealthEvent>> WaitForHealthEvents(std::chrono::milliseconds timeout) override;

  // The resolved NVML entry points, one member per GPUSLICE_NVML_FUNCTIONS entry.
  struct Api {
// NOLINTNEXTLINE(bugprone-macro-parentheses): `ret` and `params` form a function pointer type.
#define GPUSLICE_NVML_MEMBER(name, ret, params) ret(*name) params = nullptr;
    GPUSLICE_NVML_FUNCTIONS(GPUSLICE_NVML_MEMBER)
#undef GPUSLICE_NVML_MEMBER
  };

 private:
  NvmlBackend(void* handle, Api api) : handle_(handle), api_(api) {}
  Status Check(nvmlReturn_t rc, const std::string& what) const;
  Status RegisterHealthEventsLocked();

  void* handle_;
  Api api_;
  std::mutex events_mu_;
  nvmlEventSet_t event_set_ = nullptr;
  // Event handles -> UUIDs, filled when events are registered.
  std::vector<std::pair<nvmlDevice_t, std::string>> device_uuids_;
};

// Names of every symbol in GPUSLICE_NVML_FUNCTIONS, for tests.
std::vector<std::string> NvmlFunctionNames();

}  // namespace gpuslice
