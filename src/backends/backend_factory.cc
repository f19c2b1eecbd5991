#include "backends/gpu_backend.h"

namespace gpuslice {

Result<std::unique_ptr<GpuBackend>> CreateGpuBackend(const std::string& spec) {
  return InvalidArgument("backend '" + spec + "': not available yet");
}

}  // namespace gpuslice
