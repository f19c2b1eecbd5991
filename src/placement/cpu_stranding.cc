#include "placement/cpu_stranding.h"

#include <algorithm>

namespace gpuslice::placement {

double CpuPerGpuMilli(std::span<const TaskType> types) {
  double cpu_milli = 0;
  double gpu_milli = 0;
  for (const TaskType& t : types) {
    if (!t.request.wants_gpu()) continue;
    cpu_milli += t.popularity * static_cast<double>(t.request.cpu_milli);
    gpu_milli += t.popularity * static_cast<double>(t.request.total_gpu_milli());
  }
  return gpu_milli > 0 ? cpu_milli / gpu_milli : 0.0;
}

double StrandedGpuMilli(std::int64_t gpu_milli_free, std::int64_t cpu_milli_free,
                        double cpu_per_gpu_milli) {
  if (cpu_per_gpu_milli <= 0) return 0;
  const double servable =
      static_cast<double>(std::max<std::int64_t>(cpu_milli_free, 0)) / cpu_per_gpu_milli;
  return std::max(0.0, static_cast<double>(gpu_milli_free) - servable);
}

}  // namespace gpuslice::placement
