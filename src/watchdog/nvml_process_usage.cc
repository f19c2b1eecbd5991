#include "watchdog/nvml_process_usage.h"

#include <dlfcn.h>

#include <algorithm>
#include <map>
#include <utility>

namespace gpuslice::watchdog {
namespace {

// NVML's nvmlProcessInfo_t as the _v2/_v3 list functions fill it (nvml.h, drivers 510+).
struct NvmlProcessInfo {
  unsigned int pid;
  unsigned long long used_gpu_memory;
  unsigned int gpu_instance_id;
  unsigned int compute_instance_id;
};
constexpr int kNvmlSuccess = 0;
constexpr int kNvmlInsufficientSize = 7;
constexpr unsigned long long kNvmlValueNotAvailable = ~0ULL;

using InitFn = int (*)();
using ShutdownFn = int (*)();
using CountFn = int (*)(unsigned int*);
using HandleFn = int (*)(unsigned int, void**);
using ProcessesFn = int (*)(void*, unsigned int*, NvmlProcessInfo*);

}  // namespace

struct NvmlProcessUsage::Api {
  void* library = nullptr;
  ShutdownFn shutdown = nullptr;
  CountFn count = nullptr;
  HandleFn handle = nullptr;
  ProcessesFn compute = nullptr;
  ProcessesFn graphics = nullptr;
  ~Api() {
    if (shutdown != nullptr) shutdown();
    if (library != nullptr) ::dlclose(library);
  }
};

NvmlProcessUsage::NvmlProcessUsage(std::unique_ptr<Api> api) : api_(std::move(api)) {}
NvmlProcessUsage::~NvmlProcessUsage() = default;

Result<std::unique_ptr<NvmlProcessUsage>> NvmlProcessUsage::Open(const std::string& library) {
  auto api = std::make_unique<Api>();
  api->library = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (api->library == nullptr) {
    return Unavailable("cannot load NVML (" + library + "): " + ::dlerror());
  }
  auto symbol = [&](const char* name) { return ::dlsym(api->library, name); };
  auto init = reinterpret_cast<InitFn>(symbol("nvmlInit_v2"));
  api->count = reinterpret_cast<CountFn>(symbol("nvmlDeviceGetCount_v2"));
  api->handle = reinterpret_cast<HandleFn>(symbol("nvmlDeviceGetHandleByIndex_v2"));
  api->compute = reinterpret_cast<ProcessesFn>(symbol("nvmlDeviceGetComputeRunningProcesses_v3"));
  if (api->compute == nullptr) {
    api->compute = reinterpret_cast<ProcessesFn>(symbol("nvmlDeviceGetComputeRunningProcesses_v2"));
  }
  api->graphics = reinterpret_cast<ProcessesFn>(symbol("nvmlDeviceGetGraphicsRunningProcesses_v3"));
  if (init == nullptr || api->count == nullptr || api->handle == nullptr ||
      api->compute == nullptr) {
    return Unavailable(library +
                       " lacks nvmlInit_v2, nvmlDeviceGetCount_v2, "
                       "nvmlDeviceGetHandleByIndex_v2 or nvmlDeviceGetComputeRunningProcesses_v2/3 "
                       "(NVML of driver 510 or newer is needed)");
  }
  if (const int rc = init(); rc != kNvmlSuccess) {
    return Unavailable("nvmlInit_v2 failed with NVML error " + std::to_string(rc));
  }
  api->shutdown = reinterpret_cast<ShutdownFn>(symbol("nvmlShutdown"));
  return std::unique_ptr<NvmlProcessUsage>(new NvmlProcessUsage(std::move(api)));
}

namespace {

// One running-process list of one GPU; grows the buffer while NVML says it is too small.
Result<std::vector<NvmlProcessInfo>> ListProcesses(ProcessesFn fn, void* device) {
  std::vector<NvmlProcessInfo> infos(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    unsigned int count = static_cast<unsigned int>(infos.size());
    const int rc = fn(device, &count, infos.data());
    if (rc == kNvmlSuccess) {
      infos.resize(std::min<std::size_t>(count, infos.size()));
      return infos;
    }
    if (rc != kNvmlInsufficientSize) {
      return Unavailable("NVML running-process query failed with error " + std::to_string(rc));
    }
    infos.resize(std::max<std::size_t>(count + 16, infos.size() * 2));
  }
  return Unavailable("NVML running-process list keeps growing");
}

}  // namespace

Result<std::vector<GpuProcessUsage>> NvmlProcessUsage::ReadProcessUsage() {
  unsigned int count = 0;
  if (const int rc = api_->count(&count); rc != kNvmlSuccess) {
    return Unavailable("nvmlDeviceGetCount_v2 failed with NVML error " + std::to_string(rc));
  }
  std::vector<GpuProcessUsage> rows;
  for (unsigned int index = 0; index < count; ++index) {
    void* device = nullptr;
    if (api_->handle(index, &device) != kNvmlSuccess) continue;
    std::map<std::int32_t, std::uint64_t> by_pid;
    for (ProcessesFn fn : {api_->compute, api_->graphics}) {
      if (fn == nullptr) continue;
      GPUSLICE_ASSIGN_OR_RETURN(std::vector<NvmlProcessInfo> infos, ListProcesses(fn, device));
      for (const NvmlProcessInfo& info : infos) {
        if (info.used_gpu_memory == kNvmlValueNotAvailable) continue;
        std::uint64_t& bytes = by_pid[static_cast<std::int32_t>(info.pid)];
        bytes = std::max<std::uint64_t>(bytes, info.used_gpu_memory);
      }
    }
    for (const auto& [pid, bytes] : by_pid) rows.push_back({pid, index, bytes});
  }
  return rows;
}

}  // namespace gpuslice::watchdog
