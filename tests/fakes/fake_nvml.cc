// A fake libnvidia-ml.so.1 for the shim tests: the same GPUs as the fake libcuda
// (GPUSLICE_FAKE_GPUS, UUIDs GPU-67736c63-0000-0000-0000-0000000000ii). Memory "used" is a fixed
// 1 GiB per GPU so tests can tell the shim's figures from the driver's. Running processes and
// their usage come from the fake libcuda's per-process files in GPUSLICE_FAKE_DRIVER_DIR (none
// when unset); a process that has exited (or is a zombie) holds nothing, as with the driver.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "shim/nvml_driver_types.h"

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

struct FakeNvml {
  bool initialised = false;
  unsigned count = 1;
  std::uint64_t capacity = 16ULL << 30;
  // Handles are addresses inside this array.
  char devices[16] = {};
};

FakeNvml& Nvml() {
  static FakeNvml* nvml = [] {
    auto* n = new FakeNvml;
    if (const char* config = std::getenv("GPUSLICE_FAKE_GPUS"); config != nullptr) {
      const std::string text(config);
      if (auto p = text.find("count="); p != std::string::npos) {
        const unsigned long v = std::strtoul(text.c_str() + p + 6, nullptr, 10);
        if (v >= 1 && v <= 16) n->count = static_cast<unsigned>(v);
      }
      if (auto p = text.find("memory="); p != std::string::npos) {
        char* rest = nullptr;
        const unsigned long long v = std::strtoull(text.c_str() + p + 7, &rest, 10);
        n->capacity = v << (rest != nullptr && std::strncmp(rest, "Gi", 2) == 0 ? 30 : 20);
      }
    }
    return n;
  }();
  return *nvml;
}

constexpr std::uint64_t kUsedBytes = 1ULL << 30;

int IndexOf(nvmlDevice_t device) {
  FakeNvml& n = Nvml();
  const auto* p = reinterpret_cast<const char*>(device);
  if (p < n.devices || p >= n.devices + n.count) return -1;
  return static_cast<int>(p - n.devices);
}

}  // namespace

FAKE_EXPORT nvmlReturn_t nvmlInit_v2() {
  Nvml().initialised = true;
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlInit() { return nvmlInit_v2(); }
FAKE_EXPORT nvmlReturn_t nvmlShutdown() {
  Nvml().initialised = false;
  return NVML_SUCCESS;
}
FAKE_EXPORT const char* nvmlErrorString(nvmlReturn_t result) {
  return result == NVML_SUCCESS ? "Success" : "fake NVML error";
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  if (!Nvml().initialised) return NVML_ERROR_UNINITIALIZED;
  if (count == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *count = Nvml().count;
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  if (!Nvml().initialised) return NVML_ERROR_UNINITIALIZED;
  if (device == nullptr || index >= Nvml().count) return NVML_ERROR_INVALID_ARGUMENT;
  *device = reinterpret_cast<nvmlDevice_t>(&Nvml().devices[index]);
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int* index) {
  const int i = IndexOf(device);
  if (i < 0 || index == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *index = static_cast<unsigned>(i);
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  const int i = IndexOf(device);
  if (i < 0 || uuid == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (length < 41) return NVML_ERROR_INSUFFICIENT_SIZE;
  std::snprintf(uuid, length, "GPU-67736c63-0000-0000-0000-0000000000%02x", i);
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
  if (IndexOf(device) < 0 || name == nullptr || length == 0) return NVML_ERROR_INVALID_ARGUMENT;
  std::snprintf(name, length, "gpuslice fake GPU");
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  if (!Nvml().initialised) return NVML_ERROR_UNINITIALIZED;
  if (IndexOf(device) < 0 || memory == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  memory->total = Nvml().capacity;
  memory->used = kUsedBytes;
  memory->free = Nvml().capacity - kUsedBytes;
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* memory) {
  if (!Nvml().initialised) return NVML_ERROR_UNINITIALIZED;
  if (IndexOf(device) < 0 || memory == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (memory->version != GPUSLICE_NVML_MEMORY_V2_VERSION) {
    return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  }
  memory->total = Nvml().capacity;
  memory->reserved = 256ULL << 20;
  memory->used = kUsedBytes;
  memory->free = Nvml().capacity - kUsedBytes - memory->reserved;
  return NVML_SUCCESS;
}

namespace {

struct FakeProcess {
  unsigned int pid;
  unsigned long long bytes;
};

// A process the kernel still runs (not gone, not a zombie).
bool Running(unsigned int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return false;
  const std::size_t close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z' &&
         text[close + 2] != 'X';
}

std::vector<FakeProcess> ProcessesOn(int device) {
  std::vector<FakeProcess> out;
  const char* dir = std::getenv("GPUSLICE_FAKE_DRIVER_DIR");
  if (dir == nullptr) return out;
  DIR* d = ::opendir(dir);
  if (d == nullptr) return out;
  while (const dirent* entry = ::readdir(d)) {
    char* end = nullptr;
    const unsigned long pid = std::strtoul(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || !Running(static_cast<unsigned>(pid))) continue;
    std::ifstream in(std::string(dir) + "/" + entry->d_name);
    int dev = 0;
    unsigned long long bytes = 0;
    while (in >> dev >> bytes) {
      if (dev == device && bytes > 0) out.push_back({static_cast<unsigned>(pid), bytes});
    }
  }
  ::closedir(d);
  return out;
}

}  // namespace

// nvmlProcessInfo_t as the _v2/_v3 list functions fill it.
struct FakeNvmlProcessInfo {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                                 unsigned int* count,
                                                                 FakeNvmlProcessInfo* infos) {
  if (!Nvml().initialised) return NVML_ERROR_UNINITIALIZED;
  const int index = IndexOf(device);
  if (index < 0 || count == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  const std::vector<FakeProcess> processes = ProcessesOn(index);
  const unsigned int capacity = *count;
  *count = static_cast<unsigned int>(processes.size());
  if (processes.size() > capacity || (infos == nullptr && !processes.empty())) {
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  for (std::size_t i = 0; i < processes.size(); ++i) {
    infos[i] = {processes[i].pid, processes[i].bytes, 0xFFFFFFFFu, 0xFFFFFFFFu};
  }
  return NVML_SUCCESS;
}
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device,
                                                                 unsigned int* count,
                                                                 FakeNvmlProcessInfo* infos) {
  return nvmlDeviceGetComputeRunningProcesses_v3(device, count, infos);
}
