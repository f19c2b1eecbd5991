#include "backends/gpu_backend.h"
#include "backends/nvml_backend.h"
#include "backends/simulated_backend.h"

namespace gpuslice {

Result<std::unique_ptr<GpuBackend>> CreateGpuBackend(const std::string& spec) {
  static const SteadyClock clock;
  if (spec == "nvml") {
    GPUSLICE_ASSIGN_OR_RETURN(auto backend, NvmlBackend::Create());
    return std::unique_ptr<GpuBackend>(std::move(backend));
  }
  constexpr std::string_view kSim = "sim:";
  if (spec.rfind(kSim, 0) == 0 && spec.size() > kSim.size()) {
    GPUSLICE_ASSIGN_OR_RETURN(auto backend,
                              SimulatedBackend::FromFile(spec.substr(kSim.size()), clock));
    return std::unique_ptr<GpuBackend>(std::move(backend));
  }
  return InvalidArgument("unknown backend \"" + spec +
                         "\"; accepted: nvml, sim:<path to simulated node YAML>");
}

}  // namespace gpuslice
