// A fake libnvidia-ml.so.1 that serves a simulated node (GPUSLICE_FAKE_NVML_NODE=<node YAML>),
// so NvmlBackend's dlopen/dlsym path is tested with real C-ABI calls on machines without a GPU.
// Return codes and struct layouts follow nvml.h. Test-only: a driver library is process-global by
// nature, so this fake keeps its state in one static instance.
#include <cstdlib>
#include <deque>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "backends/isolation_capability.h"
#include "backends/nvml_api.h"
#include "backends/nvml_memory_limits.h"
#include "backends/simulated_memory_limits.h"
#include "backends/simulated_backend.h"
#include "core/clock.h"

namespace {

struct FakeDevice {
  const gpuslice::GpuInfo* gpu = nullptr;
  const gpuslice::MigDeviceInfo* mig = nullptr;  // set for MIG device handles
  std::vector<std::unique_ptr<FakeDevice>> migs;  // children of a GPU handle
};

struct FakeGpuInstance {
  FakeDevice* parent = nullptr;
  const gpuslice::MigDeviceInfo* mig = nullptr;
};

struct FakeNvml {
  std::mutex mu;
  int init_count = 0;
  gpuslice::SteadyClock clock;
  gpuslice::SimulatedNode node;
  std::unique_ptr<gpuslice::SimulatedBackend> backend;
  std::vector<std::unique_ptr<FakeDevice>> devices;
  std::vector<std::unique_ptr<FakeGpuInstance>> instances;
  std::deque<gpuslice::HealthEvent> pending_events;  // NVML hands out one event per wait
};

FakeNvml& Fake() {
  static FakeNvml fake;
  return fake;
}

FakeDevice* AsDevice(nvmlDevice_t d) { return reinterpret_cast<FakeDevice*>(d); }
nvmlDevice_t AsHandle(FakeDevice* d) { return reinterpret_cast<nvmlDevice_t>(d); }

nvmlReturn_t CopyString(const std::string& s, char* out, unsigned int length) {
  if (out == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (s.size() + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  std::memcpy(out, s.c_str(), s.size() + 1);
  return NVML_SUCCESS;
}

bool Initialised() { return Fake().init_count > 0; }

}  // namespace

extern "C" {

__attribute__((visibility("default"))) nvmlReturn_t nvmlInit_v2(void) {
  FakeNvml& fake = Fake();
  std::lock_guard lock(fake.mu);
  if (fake.init_count++ > 0) return NVML_SUCCESS;
  const char* path = std::getenv("GPUSLICE_FAKE_NVML_NODE");
  if (path == nullptr) {
    fake.init_count = 0;
    return NVML_ERROR_DRIVER_NOT_LOADED;
  }
  auto node = gpuslice::LoadSimulatedNodeFile(path);
  if (!node.ok()) {
    fake.init_count = 0;
    return NVML_ERROR_UNKNOWN;
  }
  fake.node = *node;
  fake.backend = std::make_unique<gpuslice::SimulatedBackend>(fake.node, path, fake.clock);
  fake.devices.clear();
  fake.pending_events.clear();
  for (const gpuslice::GpuInfo& gpu : fake.node.gpus) {
    auto device = std::make_unique<FakeDevice>();
    device->gpu = &gpu;
    for (const gpuslice::MigDeviceInfo& mig : gpu.mig_devices) {
      auto child = std::make_unique<FakeDevice>();
      child->gpu = &gpu;
      child->mig = &mig;
      device->migs.push_back(std::move(child));
    }
    fake.devices.push_back(std::move(device));
  }
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlShutdown(void) {
  std::lock_guard lock(Fake().mu);
  if (Fake().init_count == 0) return NVML_ERROR_UNINITIALIZED;
  --Fake().init_count;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) const char* nvmlErrorString(nvmlReturn_t rc) {
  switch (rc) {
    case NVML_SUCCESS:
      return "Success";
    case NVML_ERROR_UNINITIALIZED:
      return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT:
      return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED:
      return "Not Supported";
    case NVML_ERROR_NOT_FOUND:
      return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE:
      return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED:
      return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT:
      return "Timeout";
    default:
      return "Unknown Error";
  }
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlSystemGetDriverVersion(char* out,
                                                                                unsigned int n) {
  if (!Initialised()) return NVML_ERROR_UNINITIALIZED;
  return CopyString(Fake().node.driver.driver_version, out, n);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlSystemGetCudaDriverVersion(int* v) {
  if (!Initialised()) return NVML_ERROR_UNINITIALIZED;
  if (v == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *v = Fake().node.driver.cuda_driver_version;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  if (!Initialised()) return NVML_ERROR_UNINITIALIZED;
  if (count == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *count = static_cast<unsigned int>(Fake().devices.size());
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(
    unsigned int i, nvmlDevice_t* out) {
  if (!Initialised()) return NVML_ERROR_UNINITIALIZED;
  if (out == nullptr || i >= Fake().devices.size()) return NVML_ERROR_INVALID_ARGUMENT;
  *out = AsHandle(Fake().devices[i].get());
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char* out,
                                                                       unsigned int n) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  std::string name = dev->gpu->product_name;
  if (dev->mig != nullptr) name += " MIG " + dev->mig->profile_name;
  return CopyString(name, out, n);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char* out,
                                                                       unsigned int n) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  return CopyString(dev->mig != nullptr ? dev->mig->uuid : dev->gpu->uuid, out, n);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d,
                                                                             nvmlPciInfo_t* pci) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || pci == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  std::memset(pci, 0, sizeof(*pci));
  return CopyString(dev->gpu->pci_bus_id, pci->busId, sizeof(pci->busId));
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d,
                                                                             nvmlMemory_t* m) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || m == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  m->total = dev->mig != nullptr ? dev->mig->memory_bytes : dev->gpu->memory_bytes;
  m->used = 0;
  m->free = m->total;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d,
                                                                              unsigned int* minor) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || minor == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *minor = static_cast<unsigned int>(dev->gpu->minor_number);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetCudaComputeCapability(
    nvmlDevice_t d, int* major, int* minor) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || major == nullptr || minor == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *major = dev->gpu->compute_major;
  *minor = dev->gpu->compute_minor;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d,
                                                                          unsigned int* current,
                                                                          unsigned int* pending) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || current == nullptr || pending == nullptr) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  if (!dev->gpu->mig_capable) return NVML_ERROR_NOT_SUPPORTED;
  *current = *pending = dev->gpu->mig_enabled ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(
    nvmlDevice_t d, unsigned int* count) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || count == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (!dev->gpu->mig_capable) return NVML_ERROR_NOT_SUPPORTED;
  *count = 7;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(
    nvmlDevice_t d, unsigned int i, nvmlDevice_t* out) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || out == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (i >= dev->migs.size()) return NVML_ERROR_NOT_FOUND;
  *out = AsHandle(dev->migs[i].get());
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetGpuInstanceId(nvmlDevice_t d,
                                                                                unsigned int* id) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || id == nullptr || dev->mig == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *id = static_cast<unsigned int>(dev->mig->gpu_instance_id);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetComputeInstanceId(
    nvmlDevice_t d, unsigned int* id) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || id == nullptr || dev->mig == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *id = static_cast<unsigned int>(dev->mig->compute_instance_id);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetAttributes_v2(
    nvmlDevice_t d, nvmlDeviceAttributes_t* attrs) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || attrs == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (dev->mig == nullptr) return NVML_ERROR_NOT_SUPPORTED;  // as the real driver: MIG only
  std::memset(attrs, 0, sizeof(*attrs));
  attrs->multiprocessorCount = static_cast<unsigned int>(dev->mig->multiprocessor_count);
  attrs->gpuInstanceSliceCount = static_cast<unsigned int>(dev->mig->profile_name[0] - '0');
  attrs->computeInstanceSliceCount = attrs->gpuInstanceSliceCount;
  attrs->memorySizeMB = dev->mig->memory_bytes / (1024ULL * 1024ULL);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetGpuInstanceById(
    nvmlDevice_t d, unsigned int id, nvmlGpuInstance_t* out) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || out == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  for (const auto& child : dev->migs) {
    if (static_cast<unsigned int>(child->mig->gpu_instance_id) != id) continue;
    std::lock_guard lock(Fake().mu);
    auto gi = std::make_unique<FakeGpuInstance>();
    gi->parent = dev;
    gi->mig = child->mig;
    *out = reinterpret_cast<nvmlGpuInstance_t>(gi.get());
    Fake().instances.push_back(std::move(gi));
    return NVML_SUCCESS;
  }
  return NVML_ERROR_NOT_FOUND;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlGpuInstanceGetInfo(
    nvmlGpuInstance_t g, nvmlGpuInstanceInfo_t* info) {
  auto* gi = reinterpret_cast<FakeGpuInstance*>(g);
  if (gi == nullptr || info == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  info->device = AsHandle(gi->parent);
  info->id = static_cast<unsigned int>(gi->mig->gpu_instance_id);
  info->profileId = static_cast<unsigned int>(gi->mig->profile_id);
  info->placement.start = static_cast<unsigned int>(gi->mig->start_slot);
  info->placement.size = static_cast<unsigned int>(gi->mig->size_slots);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  if (set == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *set = reinterpret_cast<nvmlEventSet_t>(&Fake());
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d,
                                                                              unsigned long long,
                                                                              nvmlEventSet_t set) {
  if (d == nullptr || set == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set,
                                                                         nvmlEventData_t* data,
                                                                         unsigned int timeout_ms) {
  if (set == nullptr || data == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  FakeNvml& fake = Fake();
  if (fake.pending_events.empty()) {
    auto events = fake.backend->WaitForHealthEvents(std::chrono::milliseconds(timeout_ms));
    if (!events.ok()) return NVML_ERROR_UNKNOWN;
    fake.pending_events.insert(fake.pending_events.end(), events->begin(), events->end());
  }
  while (!fake.pending_events.empty()) {
    const gpuslice::HealthEvent e = fake.pending_events.front();
    fake.pending_events.pop_front();
    if (e.kind != gpuslice::HealthEvent::Kind::kXid) continue;  // NVML has no recovery events
    for (const auto& dev : fake.devices) {
      const bool whole = dev->gpu->uuid == e.device_uuid;
      const gpuslice::MigDeviceInfo* mig = nullptr;
      for (const auto& child : dev->migs) {
        if (child->mig->uuid == e.device_uuid) mig = child->mig;
      }
      if (!whole && mig == nullptr) continue;
      std::memset(data, 0, sizeof(*data));
      data->device = AsHandle(dev.get());
      data->eventType = nvmlEventTypeXidCriticalError;
      data->eventData = e.xid;
      data->gpuInstanceId = mig != nullptr ? static_cast<unsigned int>(mig->gpu_instance_id)
                                           : 0xFFFFFFFFu;
      data->computeInstanceId = mig != nullptr ? 0u : 0xFFFFFFFFu;
      return NVML_SUCCESS;
    }
  }
  return NVML_ERROR_TIMEOUT;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  return set == nullptr ? NVML_ERROR_INVALID_ARGUMENT : NVML_SUCCESS;
}

// Driver r615's per-cgroup memory limits, over the simulated driver's cgroup tree
// (FileMemoryLimits): NOT_SUPPORTED on MIG handles and on nodes older than r615, NOT_FOUND for a
// cgroup that does not exist, soft 0 + hard NVML_DEVICE_MEMORY_LIMIT_MAX clears.
namespace {
nvmlReturn_t ToNvml(const gpuslice::Status& s) {
  switch (s.code()) {
    case gpuslice::ErrorCode::kOk:
      return NVML_SUCCESS;
    case gpuslice::ErrorCode::kNotFound:
      return NVML_ERROR_NOT_FOUND;
    case gpuslice::ErrorCode::kInvalidArgument:
      return NVML_ERROR_INVALID_ARGUMENT;
    case gpuslice::ErrorCode::kFailedPrecondition:
      return NVML_ERROR_NOT_SUPPORTED;
    default:
      return NVML_ERROR_UNKNOWN;
  }
}
// The UUID a memory-limit call may use, or "" (MIG handle, old driver).
std::string LimitUuid(nvmlDevice_t d) {
  FakeDevice* dev = AsDevice(d);
  if (dev == nullptr || dev->mig != nullptr) return "";
  if (gpuslice::DriverMajorVersion(Fake().node.driver.driver_version) <
      gpuslice::kMinDriverMajorForDriverIsolation) {
    return "";
  }
  return dev->gpu->uuid;
}
gpuslice::FileMemoryLimits& Limits(const std::string& uuid) {
  static gpuslice::FileMemoryLimits* limits = nullptr;
  static std::set<std::string> known;
  if (limits == nullptr || known.count(uuid) == 0) {
    known.insert(uuid);
    limits = new gpuslice::FileMemoryLimits(known);  // test-only, process lifetime
  }
  return *limits;
}
}  // namespace

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetHandleByUUID(const char* uuid,
                                                                               nvmlDevice_t* out) {
  if (!Initialised()) return NVML_ERROR_UNINITIALIZED;
  if (uuid == nullptr || out == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  for (const auto& dev : Fake().devices) {
    if (dev->gpu->uuid == uuid) {
      *out = AsHandle(dev.get());
      return NVML_SUCCESS;
    }
    for (const auto& child : dev->migs) {
      if (child->mig->uuid == uuid) {
        *out = AsHandle(child.get());
        return NVML_SUCCESS;
      }
    }
  }
  return NVML_ERROR_NOT_FOUND;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceSetMemoryLimits_v1(
    nvmlDevice_t d, nvmlSetMemoryLimits_v1_t* limits) {
  if (!Initialised()) return NVML_ERROR_UNINITIALIZED;
  if (limits == nullptr || limits->nameSpace == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  const std::string uuid = LimitUuid(d);
  if (uuid.empty()) return NVML_ERROR_NOT_SUPPORTED;
  std::lock_guard lock(Fake().mu);
  return ToNvml(Limits(uuid).SetMemoryLimits(uuid, limits->nameSpace, limits->softLimit,
                                             limits->hardLimit));
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetMemoryLimits_v1(
    nvmlDevice_t d, nvmlGetMemoryLimits_v1_t* limits) {
  if (!Initialised()) return NVML_ERROR_UNINITIALIZED;
  if (limits == nullptr || limits->nameSpace == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  const std::string uuid = LimitUuid(d);
  if (uuid.empty()) return NVML_ERROR_NOT_SUPPORTED;
  std::lock_guard lock(Fake().mu);
  auto got = Limits(uuid).GetMemoryLimits(uuid, limits->nameSpace);
  if (!got.ok()) return ToNvml(got.status());
  limits->softLimit = got->soft_limit_bytes;
  limits->hardLimit = got->hard_limit_bytes;
  limits->currentUsed = got->current_used_bytes;
  return NVML_SUCCESS;
}

}  // extern "C"
