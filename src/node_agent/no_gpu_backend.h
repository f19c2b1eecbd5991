// NoGpuBackend: what the node agent runs on when the GPU backend cannot start and the config says
// flags.failOnInitError: false (NVIDIA's setting for DaemonSets that also land on nodes without a
// working driver): no GPUs, no driver facts, no health events. The agent then advertises nothing
// and writes GFD's labels for a node without GPUs.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "backends/gpu_backend.h"

namespace gpuslice {

class NoGpuBackend final : public GpuBackend {
 public:
  // `reason`: why the real backend did not start, shown in Name().
  explicit NoGpuBackend(std::string reason) : reason_(std::move(reason)) {}

  std::string Name() const override { return "none (" + reason_ + ")"; }
  Result<DriverInfo> GetDriverInfo() override { return DriverInfo{}; }
  Result<std::vector<GpuInfo>> ListGpus() override { return std::vector<GpuInfo>{}; }
  Result<std::vector<HealthEvent>> WaitForHealthEvents(std::chrono::milliseconds timeout) override {
    std::this_thread::sleep_for(timeout);  // nothing can happen; pace the caller's loop
    return std::vector<HealthEvent>{};
  }

 private:
  std::string reason_;
};

}  // namespace gpuslice
