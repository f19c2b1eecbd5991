// The per-container limits file: written by the node agent (and by `gpuslice run`), mounted
// read-only into the container, read by the shims when they load.
//
// Format (text, one setting per line, '#' starts a comment; version first):
//   gpuslice-limits 2
//   region /run/gpuslice/<container>/accounting     # shared accounting region (created if absent)
//   cuda-driver /usr/lib/x86_64-linux-gnu/libcuda.so.1          # the real driver (absolute)
//   nvml-driver /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1     # the real NVML (absolute)
//   context-overhead-bytes 268435456              # counted per CUDA context
//   device index=0 uuid=GPU-xxxxxxxx-... memory-bytes=4294967296 compute-percent=50
//          compute-arbiter=/run/gpuslice-arbiter/grant
//          compute-requests=/run/gpuslice/compute-requests compute-cap-percent=60   (one line)
// Version 2 adds the two compute fields (version 1 files, without them, are still read):
// `compute-arbiter` names the GPU's arbiter grant page (shared read-only by every container on
// that physical GPU, written by the control plane's referee, compute_arbiter.h) and
// `compute-requests` the container's own request file; `compute-percent` is then the
// container's weight there (the referee takes it from the control plane, not from this file).
// `compute-cap-percent` (optional, >= compute-percent) is a hard cap even on an idle GPU. Without
// `compute-arbiter` launches are not arbitrated. `device` lines, in the order the container's CUDA
// ordinals see the GPUs; `index` is the NVML index (used when `uuid` is `-`). A GPU the file does
// not list gets a limit of zero.
// `enforcer=driver` (optional; default `shim`) marks a GPU whose limit the NVIDIA driver enforces
// on the container's cgroup (docs/isolation.md, driver tier): the shims still report
// memory-bytes as the GPU's total and count usage, but do not refuse allocations themselves
// (the driver does, with its own out-of-memory error). Only the node agent writes the file, and
// it is read-only in the container, so a tenant cannot switch its shim to report-only.
//
// ParseContainerLimits is allocation-free and exception-free so the shim can call it at load
// time; the Result-returning helpers are for the control plane.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace gpuslice::shim {

inline constexpr std::uint32_t kContainerLimitsVersion = 2;
inline constexpr std::uint32_t kOldestContainerLimitsVersion = 1;
inline constexpr std::size_t kMaxLimitedDevices = 16;
inline constexpr std::size_t kMaxLimitsPath = 256;
inline constexpr std::size_t kMaxUuid = 96;
// Where the node agent mounts the file. The shim reads the path from GPUSLICE_LIMITS_FILE only
// when this file does not exist, so a managed container cannot point the shim elsewhere.
inline constexpr const char* kDefaultLimitsPath = "/etc/gpuslice/limits";
// The two shim libraries' file names, as built and installed (<prefix>/lib/gpuslice).
inline constexpr const char* kCudaShimFileName = "libgpuslice-cuda.so";
inline constexpr const char* kNvmlShimFileName = "libgpuslice-nvml.so";

struct DeviceLimit {
  std::int32_t nvml_index = -1;
  char uuid[kMaxUuid] = {};  // empty: match by index
  std::uint64_t memory_bytes = 0;
  std::uint32_t compute_percent = 100;
  char arbiter_path[kMaxLimitsPath] = {};   // the GPU's grant page; empty: not arbitrated
  char requests_path[kMaxLimitsPath] = {};  // the container's own arbiter request file
  std::uint32_t compute_cap_percent = 0;    // 0: no cap (work-conserving)
  bool driver_enforced = false;             // enforcer=driver: report, do not refuse
};

struct ContainerLimits {
  std::uint32_t version = 0;
  char region_path[kMaxLimitsPath] = {};
  char cuda_driver_path[kMaxLimitsPath] = {};
  char nvml_driver_path[kMaxLimitsPath] = {};
  std::uint64_t context_overhead_bytes = 0;
  std::uint32_t device_count = 0;
  DeviceLimit devices[kMaxLimitedDevices];
};

// Parses `text` into `*out`. On failure returns false and writes "line N: why" to `error`
// (always NUL-terminated when error_size > 0).
bool ParseContainerLimits(const char* text, std::size_t size, ContainerLimits* out, char* error,
                          std::size_t error_size) noexcept;

// Parses a Kubernetes quantity for bytes: "4294967296", "4Gi", "512Mi", "4G". Returns false on
// a malformed or overflowing value.
bool ParseByteQuantity(std::string_view text, std::uint64_t* bytes) noexcept;

// The file's text for `limits` (control plane; round-trips through ParseContainerLimits).
Result<std::string> FormatContainerLimits(const ContainerLimits& limits);

// Reads and parses a limits file, with the path in any error message.
Result<ContainerLimits> ReadContainerLimitsFile(const std::string& path);

// Writes the file atomically (temporary file + rename) with mode 0444.
Status WriteContainerLimitsFile(const std::string& path, const ContainerLimits& limits);

}  // namespace gpuslice::shim
