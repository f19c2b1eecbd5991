// The one place every kernel and graph launch passes through (cuLaunchKernel, cuLaunchKernelEx,
// cuLaunchCooperativeKernel, cuLaunchCooperativeKernelMultiDevice, cuGraphLaunch, their _ptsz
// variants, legacy cuLaunch/cuLaunchGrid/cuLaunchGridAsync). When the container's limits file
// names a compute arbiter for its GPU, a launch goes only while this process's tenant holds the
// GPU's token (compute_arbiter.h). Contract: called on the launching thread before the real
// launch; never blocks longer than the arbiter's maximum wait; returns CUDA_SUCCESS or the
// CUresult the launch should fail with.
//
// Fast path: not arbitrated -> one load of a process global; arbitrated and alone -> that load,
// one load of a private wipe-on-fork flag ("this process holds the token") and one load of the
// shared token word. No clock read, no syscall, no lock.
#pragma once

#include <cstdint>

#include "shim/cuda_driver_types.h"

namespace gpuslice::shim {

struct LaunchGateFastPath {
  const std::uint64_t* token = nullptr;       // the arbiter's token word; null: not arbitrated
  std::uint64_t alone_token = 0;              // its value when this tenant holds it and none wait
  volatile std::uint32_t* holding = nullptr;  // wipe-on-fork page: 1 while the fast path is valid
};

extern LaunchGateFastPath g_launch_gate;

// Everything else: joining, waiting for the token, handing on at the end of a turn.
CUresult AdmitLaunchSlow(CUstream stream) noexcept;

inline CUresult AdmitLaunch(CUstream stream) noexcept {
  const std::uint64_t* token = g_launch_gate.token;
  if (token == nullptr) return CUDA_SUCCESS;
  if (*g_launch_gate.holding != 0 &&
      __atomic_load_n(token, __ATOMIC_ACQUIRE) == g_launch_gate.alone_token) {
    return CUDA_SUCCESS;
  }
  return AdmitLaunchSlow(stream);
}

}  // namespace gpuslice::shim
