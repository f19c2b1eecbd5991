#include "backends/nvml_memory_limits.h"

#include <dlfcn.h>

namespace gpuslice {

Result<std::unique_ptr<NvmlMemoryLimits>> NvmlMemoryLimits::Create(
    const std::string& library, const std::string& cgroup_mount) {
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return Unavailable("NVML is not available: cannot load " + library);
  Api api;
  api.init = reinterpret_cast<nvmlReturn_t (*)(void)>(dlsym(handle, "nvmlInit_v2"));
  api.shutdown = reinterpret_cast<nvmlReturn_t (*)(void)>(dlsym(handle, "nvmlShutdown"));
  api.error_string =
      reinterpret_cast<const char* (*)(nvmlReturn_t)>(dlsym(handle, "nvmlErrorString"));
  api.handle_by_uuid = reinterpret_cast<nvmlReturn_t (*)(const char*, nvmlDevice_t*)>(
      dlsym(handle, "nvmlDeviceGetHandleByUUID"));
  api.set_limits = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, nvmlSetMemoryLimits_v1_t*)>(
      dlsym(handle, "nvmlDeviceSetMemoryLimits_v1"));
  api.get_limits = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, nvmlGetMemoryLimits_v1_t*)>(
      dlsym(handle, "nvmlDeviceGetMemoryLimits_v1"));
  if (api.init == nullptr || api.shutdown == nullptr || api.error_string == nullptr ||
      api.handle_by_uuid == nullptr || api.set_limits == nullptr || api.get_limits == nullptr) {
    dlclose(handle);
    return Unavailable("NVML library " + library +
                       " has no nvmlDeviceSetMemoryLimits_v1/nvmlDeviceGetMemoryLimits_v1 "
                       "(driver r615 or newer is needed for driver-enforced memory limits)");
  }
  if (api.init() != NVML_SUCCESS) {
    dlclose(handle);
    return Unavailable("NVML failed to initialise for memory limits");
  }
  return std::unique_ptr<NvmlMemoryLimits>(new NvmlMemoryLimits(handle, api, cgroup_mount));
}

NvmlMemoryLimits::~NvmlMemoryLimits() {
  api_.shutdown();
  dlclose(handle_);
}

Status NvmlMemoryLimits::Check(nvmlReturn_t rc, const std::string& what) const {
  if (rc == NVML_SUCCESS) return Status::Ok();
  const std::string message = what + ": " + api_.error_string(rc);
  switch (rc) {
    case NVML_ERROR_NOT_FOUND:
      return NotFound(message);
    case NVML_ERROR_INVALID_ARGUMENT:
      return InvalidArgument(message);
    case NVML_ERROR_NOT_SUPPORTED:
      return FailedPrecondition(message);
    case NVML_ERROR_NO_PERMISSION:
      return PermissionDenied(message + " (setting memory limits needs root)");
    default:
      return Unavailable(message);
  }
}

Result<nvmlDevice_t> NvmlMemoryLimits::Device(const std::string& gpu_uuid) {
  nvmlDevice_t device = nullptr;
  GPUSLICE_RETURN_IF_ERROR(Check(api_.handle_by_uuid(gpu_uuid.c_str(), &device),
                                 "nvmlDeviceGetHandleByUUID " + gpu_uuid));
  return device;
}

bool NvmlMemoryLimits::Supported(const std::string& gpu_uuid) {
  Result<nvmlDevice_t> device = Device(gpu_uuid);
  if (!device.ok()) return false;
  nvmlGetMemoryLimits_v1_t limits{};
  limits.nameSpace = cgroup_mount_.c_str();
  const nvmlReturn_t rc = api_.get_limits(*device, &limits);
  // The root cgroup may carry no limits (NOT_FOUND); only NOT_SUPPORTED means "not on this GPU".
  return rc == NVML_SUCCESS || rc == NVML_ERROR_NOT_FOUND;
}

Status NvmlMemoryLimits::SetMemoryLimits(const std::string& gpu_uuid,
                                         const std::string& cgroup_path,
                                         std::uint64_t soft_limit_bytes,
                                         std::uint64_t hard_limit_bytes) {
  GPUSLICE_ASSIGN_OR_RETURN(nvmlDevice_t device, Device(gpu_uuid));
  nvmlSetMemoryLimits_v1_t limits{cgroup_path.c_str(), soft_limit_bytes, hard_limit_bytes};
  return Check(api_.set_limits(device, &limits),
               "nvmlDeviceSetMemoryLimits_v1 " + gpu_uuid + " " + cgroup_path);
}

Result<MemoryLimits> NvmlMemoryLimits::GetMemoryLimits(const std::string& gpu_uuid,
                                                       const std::string& cgroup_path) {
  GPUSLICE_ASSIGN_OR_RETURN(nvmlDevice_t device, Device(gpu_uuid));
  nvmlGetMemoryLimits_v1_t limits{};
  limits.nameSpace = cgroup_path.c_str();
  GPUSLICE_RETURN_IF_ERROR(Check(api_.get_limits(device, &limits),
                                 "nvmlDeviceGetMemoryLimits_v1 " + gpu_uuid + " " + cgroup_path));
  MemoryLimits out;
  out.soft_limit_bytes = limits.softLimit;
  out.hard_limit_bytes = limits.hardLimit;
  out.current_used_bytes = limits.currentUsed;
  return out;
}

}  // namespace gpuslice
