// Build-time settings of the shims (set by src/shim/CMakeLists.txt).
#pragma once

#ifndef GPUSLICE_DEFAULT_CUDA_DRIVER
#define GPUSLICE_DEFAULT_CUDA_DRIVER "/usr/lib/x86_64-linux-gnu/libcuda.so.1"
#endif
#ifndef GPUSLICE_DEFAULT_NVML_DRIVER
#define GPUSLICE_DEFAULT_NVML_DRIVER "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"
#endif

#include <dlfcn.h>

namespace gpuslice::shim {

// RTLD_DEEPBIND keeps the real library's calls to its own exports inside it. The sanitizer
// runtimes refuse it, so sanitizer builds rely on the library binding its own symbols
// (-Bsymbolic, as the fakes are linked).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr int kDeepBind = 0;
#else
inline constexpr int kDeepBind = RTLD_DEEPBIND;
#endif

// Where the real libraries are looked for when the limits file does not say.
inline constexpr const char* kDefaultCudaDriverPaths[3] = {
    GPUSLICE_DEFAULT_CUDA_DRIVER, "/usr/lib64/libcuda.so.1",
    "/usr/lib/aarch64-linux-gnu/libcuda.so.1"};
inline constexpr const char* kDefaultNvmlDriverPaths[3] = {
    GPUSLICE_DEFAULT_NVML_DRIVER, "/usr/lib64/libnvidia-ml.so.1",
    "/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1"};

}  // namespace gpuslice::shim
