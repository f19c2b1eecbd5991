// libgpuslice-nvml.so: NVML as the container sees it. SONAME libnvidia-ml.so.1; loads the real
// NVML by absolute path, reports the container's limit and usage in the memory queries and
// forwards everything else. See docs/shim.md.
#include <dlfcn.h>
#include <strings.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "shim/accounting_region.h"
#include "shim/forwarding_trampoline.h"
#include "shim/limits_loader.h"
#include "shim/nvml_driver_types.h"
#include "shim/shim_config.h"

extern "C" {
#define GPUSLICE_NVML_INTERCEPT(name, params) \
  __attribute__((visibility("default"))) nvmlReturn_t name params noexcept;
#define GPUSLICE_NVML_FORWARD(name)
#include "shim/nvml_entry_points.def"
#undef GPUSLICE_NVML_INTERCEPT
#undef GPUSLICE_NVML_FORWARD

__attribute__((visibility("hidden"))) nvmlReturn_t gpuslice_nvml_missing_symbol() {
  return NVML_ERROR_FUNCTION_NOT_FOUND;
}

#define GPUSLICE_NVML_INTERCEPT(name, params)
#define GPUSLICE_NVML_FORWARD(name)                                      \
  __attribute__((visibility("hidden"))) void* gpuslice_nvml_fwd_##name = \
      reinterpret_cast<void*>(&gpuslice_nvml_missing_symbol);            \
  GPUSLICE_FORWARDING_TRAMPOLINE(name, gpuslice_nvml_fwd_##name)
#include "shim/nvml_entry_points.def"
#undef GPUSLICE_NVML_INTERCEPT
#undef GPUSLICE_NVML_FORWARD
}  // extern "C"

namespace gpuslice::shim {
namespace {

struct RealNvml {
#define GPUSLICE_NVML_INTERCEPT(name, params) nvmlReturn_t(*name) params = nullptr;
#define GPUSLICE_NVML_FORWARD(name)
#include "shim/nvml_entry_points.def"
#undef GPUSLICE_NVML_INTERCEPT
#undef GPUSLICE_NVML_FORWARD
  nvmlReturn_t (*nvmlDeviceGetUUID)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*nvmlDeviceGetIndex)(nvmlDevice_t, unsigned int*) = nullptr;
};

struct NvmlShimState {
  RealNvml real;
  LoadedLimits loaded;
  AccountingRegion region;
};

NvmlShimState* g_nvml = nullptr;

template <typename Fn>
void Resolve(void* handle, const char* name, Fn* fn) {
  *fn = reinterpret_cast<Fn>(::dlsym(handle, name));
}

void* LoadRealNvml(const NvmlShimState& s) {
  const char* candidates[4] = {nullptr, kDefaultNvmlDriverPaths[0], kDefaultNvmlDriverPaths[1],
                               kDefaultNvmlDriverPaths[2]};
  if (s.loaded.enforcing && s.loaded.limits.nvml_driver_path[0] != '\0') {
    candidates[0] = s.loaded.limits.nvml_driver_path;
  } else if (!s.loaded.enforcing) {
    candidates[0] = std::getenv("GPUSLICE_NVML_DRIVER");
  }
  for (const char* path : candidates) {
    if (path == nullptr || path[0] != '/') continue;
    void* handle = ::dlopen(path, RTLD_NOW | RTLD_LOCAL | kDeepBind);
    if (handle == nullptr) continue;
    if (::dlsym(handle, "nvmlDeviceGetMemoryInfo") ==
        reinterpret_cast<void*>(&::nvmlDeviceGetMemoryInfo)) {
      ::dlclose(handle);  // that path is this shim itself
      continue;
    }
    return handle;
  }
  if (s.loaded.enforcing) {
    ShimComplain("cannot load the real NVML", candidates[0] != nullptr ? candidates[0] : "");
  }
  return nullptr;
}

__attribute__((constructor)) void LoadNvmlShim() {
  auto* s = new (std::nothrow) NvmlShimState;
  if (s == nullptr) return;
  LoadLimitsForProcess(&s->loaded);
  if (s->loaded.enforcing && !s->loaded.broken) {
    if (const int rc = s->region.Open(s->loaded.limits.region_path); rc != 0) {
      ShimComplain("cannot open the accounting region", std::strerror(rc));
      s->loaded.broken = true;
    }
  }
  if (void* h = LoadRealNvml(*s); h != nullptr) {
#define GPUSLICE_NVML_INTERCEPT(name, params) Resolve(h, #name, &s->real.name);
#define GPUSLICE_NVML_FORWARD(name) \
  if (void* p = ::dlsym(h, #name); p != nullptr) gpuslice_nvml_fwd_##name = p;
#include "shim/nvml_entry_points.def"
#undef GPUSLICE_NVML_INTERCEPT
#undef GPUSLICE_NVML_FORWARD
    Resolve(h, "nvmlDeviceGetUUID", &s->real.nvmlDeviceGetUUID);
    Resolve(h, "nvmlDeviceGetIndex", &s->real.nvmlDeviceGetIndex);
  }
  g_nvml = s;
}

// The limits entry for an NVML device: by UUID when the entry names one, else by NVML index.
bool EntryOf(NvmlShimState& s, nvmlDevice_t device, std::uint32_t* entry) {
  char uuid[GPUSLICE_NVML_UUID_BUFFER_SIZE] = {};
  if (s.real.nvmlDeviceGetUUID != nullptr) s.real.nvmlDeviceGetUUID(device, uuid, sizeof(uuid));
  unsigned index = 0;
  const bool have_index = s.real.nvmlDeviceGetIndex != nullptr &&
                          s.real.nvmlDeviceGetIndex(device, &index) == NVML_SUCCESS;
  const ContainerLimits& limits = s.loaded.limits;
  for (std::uint32_t i = 0; i < limits.device_count; ++i) {
    const DeviceLimit& d = limits.devices[i];
    const bool match = d.uuid[0] != '\0'
                           ? strcasecmp(d.uuid, uuid) == 0
                           : have_index && d.nvml_index == static_cast<std::int32_t>(index);
    if (match) {
      *entry = i;
      return true;
    }
  }
  return false;
}

// Rewrites a real reading as the container's: total = limit, used = the container's usage.
void ApplyLimit(NvmlShimState& s, nvmlDevice_t device, unsigned long long* total,
                unsigned long long* free_bytes, unsigned long long* used) {
  std::uint64_t limit = 0;
  std::uint64_t usage = 0;
  std::uint32_t entry = 0;
  if (!s.loaded.broken && EntryOf(s, device, &entry)) {
    limit = s.loaded.limit_bytes[entry];
    s.region.ReclaimDead();
    usage = s.region.Usage(entry);
  }
  const std::uint64_t available = usage < limit ? limit - usage : 0;
  *total = limit;
  *used = usage < limit ? usage : limit;
  *free_bytes = available < *free_bytes ? available : *free_bytes;
}

}  // namespace
}  // namespace gpuslice::shim

extern "C" {

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) noexcept {
  gpuslice::shim::NvmlShimState* s = gpuslice::shim::g_nvml;
  if (s == nullptr || s->real.nvmlDeviceGetMemoryInfo == nullptr) {
    return NVML_ERROR_FUNCTION_NOT_FOUND;
  }
  const nvmlReturn_t r = s->real.nvmlDeviceGetMemoryInfo(device, memory);
  if (r == NVML_SUCCESS && s->loaded.enforcing && memory != nullptr) {
    gpuslice::shim::ApplyLimit(*s, device, &memory->total, &memory->free, &memory->used);
  }
  return r;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* memory) noexcept {
  gpuslice::shim::NvmlShimState* s = gpuslice::shim::g_nvml;
  if (s == nullptr || s->real.nvmlDeviceGetMemoryInfo_v2 == nullptr) {
    return NVML_ERROR_FUNCTION_NOT_FOUND;
  }
  const nvmlReturn_t r = s->real.nvmlDeviceGetMemoryInfo_v2(device, memory);
  if (r == NVML_SUCCESS && s->loaded.enforcing && memory != nullptr) {
    gpuslice::shim::ApplyLimit(*s, device, &memory->total, &memory->free, &memory->used);
    memory->reserved = 0;  // the driver's reservation is not part of the container's slice
  }
  return r;
}

}  // extern "C"
