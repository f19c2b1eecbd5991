#include "backends/nvml_backend.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>

#include "core/gpu_model.h"

namespace gpuslice {
namespace {

// sysfs names a PCI device "0000:07:00.0"; NVML reports "00000000:07:00.0".
// The sysfs folder of a PCI device from NVML's bus id ("00000000:07:00.0" -> .../0000:07:00.0).
std::string SysfsPciDir(const std::string& nvml_bus_id) {
  std::string id = nvml_bus_id;
  const std::size_t colon = id.find(':');
  if (colon != std::string::npos && colon > 4) id = id.substr(colon - 4);
  std::transform(id.begin(), id.end(), id.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return "/sys/bus/pci/devices/" + id;
}

int NumaNodeOf(const std::string& nvml_bus_id) {
  std::ifstream in(SysfsPciDir(nvml_bus_id) + "/numa_node");
  int node = -1;
  if (in >> node) return node;
  return -1;
}

// The PCI class code ("0x030200" in sysfs), which GFD's nvidia.com/gpu.mode reads; 0 if unknown.
std::uint32_t PciClassOf(const std::string& nvml_bus_id) {
  std::ifstream in(SysfsPciDir(nvml_bus_id) + "/class");
  std::uint32_t pci_class = 0;
  if (in >> std::hex >> pci_class) return pci_class;
  return 0;
}

}  // namespace

std::vector<std::string> NvmlFunctionNames() {
#define GPUSLICE_NVML_NAME(name, ret, params) #name,
  static constexpr const char* kNames[] = {GPUSLICE_NVML_FUNCTIONS(GPUSLICE_NVML_NAME)};
#undef GPUSLICE_NVML_NAME
  return {std::begin(kNames), std::end(kNames)};
}

Result<std::unique_ptr<NvmlBackend>> NvmlBackend::Create(const std::string& library) {
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    return Unavailable("NVML is not available: cannot load " + library + " (" +
                       (why != nullptr ? why : "unknown error") +
                       "). Is the NVIDIA driver installed, and is this running on a GPU node "
                       "(inside a container: with the NVIDIA container runtime)? Use "
                       "--backend sim:FILE to run on a simulated node.");
  }
  Api api;
  std::string missing;
// `ret` and `params` form a function pointer type and cannot be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define GPUSLICE_NVML_RESOLVE(name, ret, params)                                  \
  api.name = reinterpret_cast<ret(*) params>(dlsym(handle, #name));               \
  if (api.name == nullptr) missing.append(missing.empty() ? "" : ", ").append(#name);
  GPUSLICE_NVML_FUNCTIONS(GPUSLICE_NVML_RESOLVE)
#undef GPUSLICE_NVML_RESOLVE
  // NOLINTEND(bugprone-macro-parentheses)
  if (!missing.empty()) {
    dlclose(handle);
    return Unavailable("NVML library " + library + " lacks " + missing +
                       "; gpuslice needs an NVIDIA driver of version 470 or newer");
  }
  const nvmlReturn_t rc = api.nvmlInit_v2();
  if (rc != NVML_SUCCESS) {
    const std::string why = api.nvmlErrorString(rc);
    dlclose(handle);
    return Unavailable("NVML failed to initialise: " + why +
                       (rc == NVML_ERROR_DRIVER_NOT_LOADED ? " (the NVIDIA kernel driver is not loaded)"
                                                           : ""));
  }
  return std::unique_ptr<NvmlBackend>(new NvmlBackend(handle, api));
}

NvmlBackend::~NvmlBackend() {
  if (event_set_ != nullptr) api_.nvmlEventSetFree(event_set_);
  api_.nvmlShutdown();
  dlclose(handle_);
}

Status NvmlBackend::Check(nvmlReturn_t rc, const std::string& what) const {
  if (rc == NVML_SUCCESS) return Status::Ok();
  const std::string message = what + ": " + api_.nvmlErrorString(rc);
  if (rc == NVML_ERROR_NOT_FOUND) return NotFound(message);
  if (rc == NVML_ERROR_GPU_IS_LOST || rc == NVML_ERROR_DRIVER_NOT_LOADED) {
    return Unavailable(message);
  }
  return Internal(message);
}

Result<DriverInfo> NvmlBackend::GetDriverInfo() {
  DriverInfo info;
  char version[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {};
  GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlSystemGetDriverVersion(version, sizeof(version)),
                                 "nvmlSystemGetDriverVersion"));
  info.driver_version = version;
  GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlSystemGetCudaDriverVersion(&info.cuda_driver_version),
                                 "nvmlSystemGetCudaDriverVersion"));
  return info;
}

Result<std::vector<GpuInfo>> NvmlBackend::ListGpus() {
  unsigned int count = 0;
  GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlDeviceGetCount_v2(&count), "nvmlDeviceGetCount"));
  std::vector<GpuInfo> gpus;
  for (unsigned int i = 0; i < count; ++i) {
    const std::string where = "GPU " + std::to_string(i);
    nvmlDevice_t dev = nullptr;
    GPUSLICE_RETURN_IF_ERROR(
        Check(api_.nvmlDeviceGetHandleByIndex_v2(i, &dev), where + ": nvmlDeviceGetHandleByIndex"));
    GpuInfo gpu;
    gpu.index = static_cast<int>(i);
    char buf[NVML_DEVICE_NAME_BUFFER_SIZE] = {};
    GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlDeviceGetName(dev, buf, sizeof(buf)), where + ": name"));
    gpu.product_name = buf;
    char uuid[NVML_DEVICE_UUID_BUFFER_SIZE] = {};
    GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlDeviceGetUUID(dev, uuid, sizeof(uuid)), where + ": UUID"));
    gpu.uuid = uuid;
    nvmlPciInfo_t pci{};
    GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlDeviceGetPciInfo_v3(dev, &pci), where + ": PCI info"));
    gpu.pci_bus_id = pci.busId;
    gpu.numa_node = NumaNodeOf(gpu.pci_bus_id);
    gpu.pci_class = PciClassOf(gpu.pci_bus_id);
    nvmlMemory_t memory{};
    GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlDeviceGetMemoryInfo(dev, &memory), where + ": memory"));
    gpu.memory_bytes = memory.total;
    unsigned int minor = 0;
    GPUSLICE_RETURN_IF_ERROR(
        Check(api_.nvmlDeviceGetMinorNumber(dev, &minor), where + ": minor number"));
    gpu.minor_number = static_cast<int>(minor);
    GPUSLICE_RETURN_IF_ERROR(Check(
        api_.nvmlDeviceGetCudaComputeCapability(dev, &gpu.compute_major, &gpu.compute_minor),
        where + ": compute capability"));
    const GpuModel* model = FindGpuModel(gpu.product_name);
    if (model != nullptr) {
      gpu.model = model->name;
      gpu.multiprocessor_count = model->multiprocessor_count;
    }

    unsigned int current = 0, pending = 0;
    const nvmlReturn_t mig_rc = api_.nvmlDeviceGetMigMode(dev, &current, &pending);
    if (mig_rc == NVML_SUCCESS) {
      gpu.mig_capable = true;
      gpu.mig_enabled = current == NVML_DEVICE_MIG_ENABLE;
    } else if (mig_rc != NVML_ERROR_NOT_SUPPORTED) {
      GPUSLICE_RETURN_IF_ERROR(Check(mig_rc, where + ": MIG mode"));
    }
    if (gpu.mig_enabled) {
      unsigned int max_migs = 0;
      GPUSLICE_RETURN_IF_ERROR(
          Check(api_.nvmlDeviceGetMaxMigDeviceCount(dev, &max_migs), where + ": MIG count"));
      for (unsigned int m = 0; m < max_migs; ++m) {
        nvmlDevice_t mig_dev = nullptr;
        const nvmlReturn_t rc = api_.nvmlDeviceGetMigDeviceHandleByIndex(dev, m, &mig_dev);
        if (rc == NVML_ERROR_NOT_FOUND) continue;  // an unused MIG slot
        const std::string mwhere = where + " MIG " + std::to_string(m);
        GPUSLICE_RETURN_IF_ERROR(Check(rc, mwhere + ": handle"));
        MigDeviceInfo mig;
        char mig_uuid[NVML_DEVICE_UUID_BUFFER_SIZE] = {};
        GPUSLICE_RETURN_IF_ERROR(
            Check(api_.nvmlDeviceGetUUID(mig_dev, mig_uuid, sizeof(mig_uuid)), mwhere + ": UUID"));
        mig.uuid = mig_uuid;
        unsigned int gi = 0, ci = 0;
        GPUSLICE_RETURN_IF_ERROR(
            Check(api_.nvmlDeviceGetGpuInstanceId(mig_dev, &gi), mwhere + ": GPU instance id"));
        GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlDeviceGetComputeInstanceId(mig_dev, &ci),
                                       mwhere + ": compute instance id"));
        mig.gpu_instance_id = static_cast<int>(gi);
        mig.compute_instance_id = static_cast<int>(ci);
        nvmlDeviceAttributes_t attrs{};
        GPUSLICE_RETURN_IF_ERROR(
            Check(api_.nvmlDeviceGetAttributes_v2(mig_dev, &attrs), mwhere + ": attributes"));
        mig.memory_bytes = attrs.memorySizeMB * 1024ULL * 1024ULL;
        mig.multiprocessor_count = static_cast<int>(attrs.multiprocessorCount);
        nvmlGpuInstance_t gpu_instance = nullptr;
        nvmlGpuInstanceInfo_t gi_info{};
        GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlDeviceGetGpuInstanceById(dev, gi, &gpu_instance),
                                       mwhere + ": GPU instance"));
        GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlGpuInstanceGetInfo(gpu_instance, &gi_info),
                                       mwhere + ": GPU instance info"));
        mig.profile_id = static_cast<int>(gi_info.profileId);
        mig.start_slot = static_cast<int>(gi_info.placement.start);
        mig.size_slots = static_cast<int>(gi_info.placement.size);
        const MigProfile* profile =
            model != nullptr ? model->FindProfileById(mig.profile_id) : nullptr;
        if (profile != nullptr) {
          mig.profile_name = profile->name;
        } else {
          // Unknown model: name it as nvidia-smi does, "<g>g.<memory GB>gb".
          mig.profile_name = std::to_string(attrs.gpuInstanceSliceCount) + "g." +
                             std::to_string((attrs.memorySizeMB + 1023) / 1024) + "gb";
        }
        gpu.mig_devices.push_back(std::move(mig));
      }
    }
    gpus.push_back(std::move(gpu));
  }
  return gpus;
}

Status NvmlBackend::RegisterHealthEventsLocked() {
  GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlEventSetCreate(&event_set_), "nvmlEventSetCreate"));
  unsigned int count = 0;
  GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlDeviceGetCount_v2(&count), "nvmlDeviceGetCount"));
  for (unsigned int i = 0; i < count; ++i) {
    nvmlDevice_t dev = nullptr;
    GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlDeviceGetHandleByIndex_v2(i, &dev), "device handle"));
    char uuid[NVML_DEVICE_UUID_BUFFER_SIZE] = {};
    GPUSLICE_RETURN_IF_ERROR(Check(api_.nvmlDeviceGetUUID(dev, uuid, sizeof(uuid)), "device UUID"));
    device_uuids_.emplace_back(dev, uuid);
    const nvmlReturn_t rc =
        api_.nvmlDeviceRegisterEvents(dev, nvmlEventTypeXidCriticalError, event_set_);
    // Some GPUs (e.g. GeForce) cannot report Xids; they are simply not watched.
    if (rc != NVML_SUCCESS && rc != NVML_ERROR_NOT_SUPPORTED) {
      return Check(rc, "GPU " + std::to_string(i) + ": nvmlDeviceRegisterEvents");
    }
  }
  return Status::Ok();
}

Result<std::vector<HealthEvent>> NvmlBackend::WaitForHealthEvents(
    std::chrono::milliseconds timeout) {
  std::lock_guard lock(events_mu_);
  if (event_set_ == nullptr) GPUSLICE_RETURN_IF_ERROR(RegisterHealthEventsLocked());
  std::vector<HealthEvent> events;
  nvmlEventData_t data{};
  const nvmlReturn_t rc =
      api_.nvmlEventSetWait_v2(event_set_, &data, static_cast<unsigned int>(timeout.count()));
  if (rc == NVML_ERROR_TIMEOUT) return events;
  GPUSLICE_RETURN_IF_ERROR(Check(rc, "nvmlEventSetWait"));
  HealthEvent event;
  event.kind = HealthEvent::Kind::kXid;
  event.xid = data.eventData;
  for (const auto& [dev, uuid] : device_uuids_) {
    if (dev == data.device) event.device_uuid = uuid;
  }
  // An event for one MIG device names its GPU instance; report that MIG device's UUID.
  constexpr unsigned int kAllInstances = 0xFFFFFFFFu;
  if (data.gpuInstanceId != kAllInstances && data.device != nullptr) {
    unsigned int max_migs = 0;
    if (api_.nvmlDeviceGetMaxMigDeviceCount(data.device, &max_migs) == NVML_SUCCESS) {
      for (unsigned int m = 0; m < max_migs; ++m) {
        nvmlDevice_t mig = nullptr;
        unsigned int gi = 0;
        if (api_.nvmlDeviceGetMigDeviceHandleByIndex(data.device, m, &mig) != NVML_SUCCESS) continue;
        if (api_.nvmlDeviceGetGpuInstanceId(mig, &gi) != NVML_SUCCESS || gi != data.gpuInstanceId) {
          continue;
        }
        char uuid[NVML_DEVICE_UUID_BUFFER_SIZE] = {};
        if (api_.nvmlDeviceGetUUID(mig, uuid, sizeof(uuid)) == NVML_SUCCESS) event.device_uuid = uuid;
      }
    }
  }
  event.detail = "Xid " + std::to_string(data.eventData);
  events.push_back(std::move(event));
  return events;
}

}  // namespace gpuslice
