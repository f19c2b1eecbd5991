// ShimInjection: puts the libcuda / NVML shims into a fractional container (docs/shim.md
// "Deployment"). The kubelet's Allocate answer gains three read-only mounts:
//   <shim dir>/libgpuslice-cuda.so  -> /usr/local/lib/gpuslice/libgpuslice-cuda.so
//   <shim dir>/libgpuslice-nvml.so  -> /usr/local/lib/gpuslice/libgpuslice-nvml.so
//   <allocation dir>/ld.so.preload  -> /etc/ld.so.preload   (names both container paths)
// The dynamic linker reads /etc/ld.so.preload for every process of the container; no
// environment variable switches it off and, mounted read-only, the workload cannot edit it.
// A shim missing on the host fails the Allocate (the container must not start unlimited).
#pragma once

#include <string>

#include "core/status.h"
#include "node_agent/device_plugin_api.pb.h"

namespace gpuslice {

// Where the shims appear inside the container, and the preload file.
inline constexpr const char* kContainerShimDir = "/usr/local/lib/gpuslice";
inline constexpr const char* kContainerPreloadFile = "/etc/ld.so.preload";
// The installed location (`cmake --install`: <prefix>/lib/gpuslice), --shim-dir's default.
inline constexpr const char* kDefaultHostShimDir = "/usr/local/lib/gpuslice";

// OK when `shim_dir` holds both shims as readable ELF files; else an error naming the file, what
// is wrong with it, and the flags that set it.
Status CheckShimDir(const std::string& shim_dir);

// The content of the container's /etc/ld.so.preload: the two shims' container paths, one a line.
std::string ShimPreloadContent();

// Checks `shim_dir` again (a library removed since start-up fails this Allocate), writes
// `<allocation_dir>/ld.so.preload` (mode 0444) and adds the three read-only mounts to `response`.
Status InjectShims(const std::string& shim_dir, const std::string& allocation_dir,
                   v1beta1::ContainerAllocateResponse& response);

// Copies both shims from `from_dir` (e.g. the agent image's /usr/local/lib/gpuslice) into
// `to_dir` (a host directory the kubelet's containers can mount from). Each file is written
// beside its target and renamed over it, so containers still mapping an older copy keep it
// intact; an identical file is left alone. Mode 0755.
Status InstallShims(const std::string& from_dir, const std::string& to_dir);

}  // namespace gpuslice
