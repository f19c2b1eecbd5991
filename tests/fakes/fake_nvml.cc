// A fake libnvidia-ml.so.1 for the shim tests: the same GPUs as the fake libcuda
// (GPUSLICE_FAKE_GPUS, UUIDs GPU-67736c63-0000-0000-0000-0000000000ii). Memory "used" is a fixed
// 1 GiB per GPU so tests can tell the shim's figures from the driver's.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

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
