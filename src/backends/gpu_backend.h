// GpuBackend: the one small interface between gpuslice and the GPU driver.
//
// Two implementations: NvmlBackend (libnvidia-ml.so.1 loaded with dlopen, real hardware) and
// SimulatedBackend (a node described by a YAML file). Nothing above this interface knows which
// one is in use.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/gpu.h"
#include "core/status.h"

namespace gpuslice {

// A change in a device's health, as the driver reports it (NVML event set) or the simulated
// node injects it.
struct HealthEvent {
  enum class Kind {
    kXid,        // an Xid error on the device
    kRecovered,  // the device's condition cleared
  };
  Kind kind = Kind::kXid;
  std::string device_uuid;  // GPU UUID, or MIG UUID when the event is for one MIG device
  std::uint64_t xid = 0;    // kXid only
  std::string detail;       // human-readable, for logs and events
};

class GpuBackend {
 public:
  virtual ~GpuBackend() = default;

  // "nvml" or "sim:<path>", for messages.
  virtual std::string Name() const = 0;

  virtual Result<DriverInfo> GetDriverInfo() = 0;

  // Every GPU on the node, by NVML index, with MIG devices filled in when MIG is enabled.
  virtual Result<std::vector<GpuInfo>> ListGpus() = 0;

  // Waits up to `timeout` for health events and returns those that arrived (possibly none).
  virtual Result<std::vector<HealthEvent>> WaitForHealthEvents(
      std::chrono::milliseconds timeout) = 0;
};

// Builds a backend from a spec: "nvml" or "sim:<path to node YAML>".
Result<std::unique_ptr<GpuBackend>> CreateGpuBackend(const std::string& spec);

}  // namespace gpuslice
