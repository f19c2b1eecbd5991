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
// shared token word. Holding the token while others wait -> the same loads, an atomic decrement
// of the launch budget the slow path granted for this turn (the queued-work bound left until the
// next drain) and compares: the token word still the one the slow path saw at its last kGo (the
// referee changes it when the turn ends, a waiter comes or goes, or it revokes the token), and the
// launch's stream one of (up to 4 of) the streams the slow path remembered for the turn's drain.
// No clock read, no syscall, no lock in any of them. A process with more than one arbitrated GPU
// keeps that state per GPU (the process-wide gate's `holding` then reads 0): AdmitLaunchSlow asks
// the driver for the current context's device (cuCtxGetDevice) and runs the same test
// (HolderMayLaunch) on that GPU's state before it takes the slow path's mutex.
#pragma once

#include <cstdint>

#include "shim/cuda_driver_types.h"

namespace gpuslice::shim {

struct LaunchGateFastPath {
  const std::uint64_t* token = nullptr;       // the arbiter's token word; null: not arbitrated
  std::uint64_t alone_token = 0;              // its value when this tenant holds it and none wait
  volatile std::uint32_t* holding = nullptr;  // wipe-on-fork page: 1 while the fast path is valid
  // The holder's fast path while others wait (C++ only: the assembly entries leave it to the
  // wrapper). Written by the slow path under its mutex, budget last; read with atomics.
  std::uint64_t held_token = ~0ULL;  // the token word at the holder's last kGo (never a release)
  // Streams the fast path admits: that launch's stream first, then others of the turn's drain
  // list (all drained at the turn's end or the bound); unused places repeat the first.
  CUstream held_streams[4] = {};
  alignas(64) std::int64_t budget = 0;  // launches left before the slow path must look again
};

extern LaunchGateFastPath g_launch_gate;

// Everything else: joining, waiting for the token, handing on at the end of a turn.
CUresult AdmitLaunchSlow(CUstream stream) noexcept;

// The fast path's test on one GPU's state: true when the launch may go without the slow path
// (this process holds `gate`'s token alone, or holds it while others wait with budget left and
// the token word and stream unchanged since the slow path's last kGo).
inline bool HolderMayLaunch(LaunchGateFastPath& gate, const std::uint64_t* token,
                            CUstream stream) noexcept {
  if (*gate.holding == 0) return false;
  const std::uint64_t word = __atomic_load_n(token, __ATOMIC_ACQUIRE);
  if (word == gate.alone_token) return true;
  // Budget first: a launch that got a unit of the budget the slow path stored (release) sees
  // the token and stream stored before it. A failed compare wastes a unit (counted as launched:
  // the bound only tightens).
  if (__atomic_fetch_sub(&gate.budget, 1, __ATOMIC_ACQUIRE) > 0 &&
      word == __atomic_load_n(&gate.held_token, __ATOMIC_RELAXED)) {
    CUstream* held = gate.held_streams;
    return stream == __atomic_load_n(&held[0], __ATOMIC_RELAXED) ||
           stream == __atomic_load_n(&held[1], __ATOMIC_RELAXED) ||
           stream == __atomic_load_n(&held[2], __ATOMIC_RELAXED) ||
           stream == __atomic_load_n(&held[3], __ATOMIC_RELAXED);
  }
  return false;
}

inline CUresult AdmitLaunch(CUstream stream) noexcept {
  const std::uint64_t* token = g_launch_gate.token;
  if (token == nullptr) return CUDA_SUCCESS;
  if (HolderMayLaunch(g_launch_gate, token, stream)) return CUDA_SUCCESS;
  return AdmitLaunchSlow(stream);
}

// cuLaunchCooperativeKernelMultiDevice: the launch runs on the device of every entry's stream, so
// it is admitted on each arbitrated one (cuda_shim.cc, "Multi-device cooperative launches").
// Not arbitrated, or this process alone holding the token of its one arbitrated GPU (only a
// process with one arbitrated GPU has the `holding` flag): as cheap as AdmitLaunch's lone path.
CUresult AdmitMultiDeviceLaunchSlow(const CUDA_LAUNCH_PARAMS* params,
                                    unsigned int device_count) noexcept;

inline CUresult AdmitMultiDeviceLaunch(const CUDA_LAUNCH_PARAMS* params,
                                       unsigned int device_count) noexcept {
  const std::uint64_t* token = g_launch_gate.token;
  if (token == nullptr) return CUDA_SUCCESS;
  if (*g_launch_gate.holding != 0 &&
      __atomic_load_n(token, __ATOMIC_ACQUIRE) == g_launch_gate.alone_token) {
    return CUDA_SUCCESS;
  }
  return AdmitMultiDeviceLaunchSlow(params, device_count);
}

}  // namespace gpuslice::shim
