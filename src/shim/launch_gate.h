// The one place every kernel and graph launch passes through (cuLaunchKernel, cuLaunchKernelEx,
// cuLaunchCooperativeKernel, cuGraphLaunch and their _ptsz variants). The compute-share limiter
// will decide here whether a launch may go now; today every launch is admitted. Contract: called
// on the launching thread before the real launch, must not block indefinitely, no syscalls on
// the fast path, returns CUDA_SUCCESS or the CUresult the launch should fail with.
#pragma once

#include "shim/cuda_driver_types.h"

namespace gpuslice::shim {

inline CUresult AdmitLaunch(CUstream /*stream*/) noexcept { return CUDA_SUCCESS; }

}  // namespace gpuslice::shim
