// CPU stranding: GPU capacity that a node's free CPU cannot serve.
//
// A GPU pod brings CPU with it; the workload's GPU pods ask, on average, for some CPU per
// milli-GPU. A node whose free CPU covers fewer milli-GPU than it has idle, at that ratio, will
// (on average) run out of CPU before its GPUs are used: the difference is stranded capacity. The
// ratio comes from the workload's task types, so nothing in it is set per file.
#pragma once

#include <cstdint>
#include <span>

#include "placement/fragmentation.h"

namespace gpuslice::placement {

// The popularity-weighted CPU (milli-cores) per milli-GPU asked by the GPU task types among
// `types`; CPU-only types are ignored. 0 when no type asks for a GPU.
double CpuPerGpuMilli(std::span<const TaskType> types);

// Idle milli-GPU of a node that its free CPU cannot serve at `cpu_per_gpu_milli`:
// max(0, gpu_milli_free - cpu_milli_free / cpu_per_gpu_milli); 0 when the ratio is not positive.
double StrandedGpuMilli(std::int64_t gpu_milli_free, std::int64_t cpu_milli_free,
                        double cpu_per_gpu_milli);

}  // namespace gpuslice::placement
