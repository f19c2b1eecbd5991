// A fake libcuda.so.1 for tests: a deterministic CUDA driver with configurable GPUs and no
// hardware. Devices and their memory come from GPUSLICE_FAKE_GPUS ("count=2,memory=16Gi";
// default one GPU of 16 GiB) — fine here because the fake is test-only. It tracks this process's
// allocations per device, enforces the devices' capacity, and returns real CUresult codes. It
// resolves cuGetProcAddress like the real driver: base name + cudaVersion + per-thread flag ->
// versioned entry point. Test hooks: gpuslice_fake_cuda_*.
// Per-process usage, as the real driver reports it through NVML: when GPUSLICE_FAKE_DRIVER_DIR
// names a directory, the fake writes <dir>/<pid> ("<device> <bytes>" lines) after every change,
// and the fake NVML lists those files as running processes.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>

#include "shim/cuda_driver_types.h"

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

constexpr int kMaxDevices = 16;

struct FakeContext {
  int device;
  bool primary;
};

struct Allocation {
  int device;
  std::uint64_t bytes;
  const void* context = nullptr;  // owning context: destroyed with it (null: not context-bound)
};

struct FakeDriver {
  std::mutex mutex;
  bool initialised = false;
  int device_count = 1;
  std::uint64_t capacity = 16ULL << 30;
  bool internal_proc_pointers = false;
  std::uint64_t used[kMaxDevices] = {};
  FakeContext primary[kMaxDevices] = {};
  int primary_refs[kMaxDevices] = {};
  std::map<std::uint64_t, Allocation> pointers;  // device pointers
  std::map<std::uint64_t, Allocation> handles;   // VMM handles, arrays, mipmapped arrays
  std::map<std::uint64_t, int> pools;            // pool -> device (-1 host)
  std::uint64_t next_address = 0x7f0000000000ULL;
  std::atomic<std::uint64_t> launches{0};
  std::string usage_dir;  // GPUSLICE_FAKE_DRIVER_DIR
};

// Publishes this process's usage for the fake NVML (write to a temporary file, then rename).
void PublishUsageLocked(const FakeDriver& d) {
  if (d.usage_dir.empty()) return;
  const std::string path = d.usage_dir + "/" + std::to_string(::getpid());
  const std::string temporary = path + ".tmp";
  std::string text;
  for (int i = 0; i < d.device_count; ++i) {
    text += std::to_string(i) + " " + std::to_string(d.used[i]) + "\n";
  }
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (written) ::rename(temporary.c_str(), path.c_str());
}

FakeDriver& Driver() {
  static FakeDriver* driver = [] {
    auto* d = new FakeDriver;
    for (int i = 0; i < kMaxDevices; ++i) d->primary[i] = {i, true};
    if (const char* dir = std::getenv("GPUSLICE_FAKE_DRIVER_DIR"); dir != nullptr) {
      d->usage_dir = dir;
    }
    if (const char* config = std::getenv("GPUSLICE_FAKE_GPUS"); config != nullptr) {
      std::string text(config);
      std::size_t pos = 0;
      while (pos < text.size()) {
        std::size_t end = text.find(',', pos);
        if (end == std::string::npos) end = text.size();
        const std::string item = text.substr(pos, end - pos);
        pos = end + 1;
        const std::size_t eq = item.find('=');
        if (eq == std::string::npos) continue;
        const std::string key = item.substr(0, eq);
        const std::string value = item.substr(eq + 1);
        char* rest = nullptr;
        const unsigned long long number = std::strtoull(value.c_str(), &rest, 10);
        std::uint64_t scale = 1;
        if (rest != nullptr && std::strcmp(rest, "Gi") == 0) scale = 1ULL << 30;
        if (rest != nullptr && std::strcmp(rest, "Mi") == 0) scale = 1ULL << 20;
        if (key == "count" && number >= 1 && number <= kMaxDevices) {
          d->device_count = static_cast<int>(number);
        } else if (key == "memory") {
          d->capacity = number * scale;
        } else if (key == "internal-proc") {
          d->internal_proc_pointers = number != 0;
        }
      }
    }
    return d;
  }();
  return *driver;
}

thread_local FakeContext* t_current = nullptr;

CUresult CheckReady() { return Driver().initialised ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED; }

CUresult CurrentDevice(int* device) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (t_current == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  *device = t_current->device;
  return CUDA_SUCCESS;
}

std::uint64_t NewAddressLocked(FakeDriver& d, std::uint64_t bytes) {
  const std::uint64_t address = d.next_address;
  d.next_address += (bytes + 511) / 512 * 512 + 512;
  return address;
}

CUresult AllocateOn(int device, std::uint64_t bytes, unsigned long long* address, bool handle) {
  FakeDriver& d = Driver();
  if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.used[device] + bytes > d.capacity || bytes > d.capacity) return CUDA_ERROR_OUT_OF_MEMORY;
  d.used[device] += bytes;
  *address = NewAddressLocked(d, bytes);
  (handle ? d.handles : d.pointers)[*address] = {device, bytes, handle ? nullptr : t_current};
  PublishUsageLocked(d);
  return CUDA_SUCCESS;
}

// A context's destruction (or the last release / a reset of a primary context) frees every
// allocation it owns, as the CUDA driver does.
void FreeContextAllocationsLocked(FakeDriver& d, const void* context) {
  for (auto it = d.pointers.begin(); it != d.pointers.end();) {
    if (it->second.context == context) {
      d.used[it->second.device] -= it->second.bytes;
      it = d.pointers.erase(it);
    } else {
      ++it;
    }
  }
  PublishUsageLocked(d);
}

CUresult AllocateCurrent(std::uint64_t bytes, unsigned long long* address, bool handle = false) {
  int device = 0;
  if (const CUresult r = CurrentDevice(&device); r != CUDA_SUCCESS) return r;
  return AllocateOn(device, bytes, address, handle);
}

CUresult FreeAddress(std::uint64_t address, bool handle) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto& map = handle ? d.handles : d.pointers;
  auto it = map.find(address);
  if (it == map.end()) return handle ? CUDA_ERROR_INVALID_HANDLE : CUDA_ERROR_INVALID_VALUE;
  d.used[it->second.device] -= it->second.bytes;
  map.erase(it);
  PublishUsageLocked(d);
  return CUDA_SUCCESS;
}

CUresult ValidDevice(CUdevice device) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  return device >= 0 && device < Driver().device_count ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

std::uint64_t ElementBytes(CUarray_format format) {
  switch (format) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8:
      return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
      return 2;
    default:
      return 4;
  }
}

std::uint64_t Dim(std::size_t v) { return v == 0 ? 1 : v; }

}  // namespace

// ---- Test hooks ------------------------------------------------------------------------------

FAKE_EXPORT std::uint64_t gpuslice_fake_cuda_used_bytes(int device) {
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  return device >= 0 && device < kMaxDevices ? d.used[device] : 0;
}
FAKE_EXPORT std::uint64_t gpuslice_fake_cuda_live_allocations() {
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  return d.pointers.size() + d.handles.size();
}
FAKE_EXPORT std::uint64_t gpuslice_fake_cuda_launches() { return Driver().launches.load(); }

// ---- Initialisation, devices, contexts --------------------------------------------------------

FAKE_EXPORT CUresult cuInit(unsigned int flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  Driver().initialised = true;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuDriverGetVersion(int* version) {
  if (version == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *version = 13000;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuDeviceGetCount(int* count) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (count == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *count = Driver().device_count;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  if (const CUresult r = ValidDevice(ordinal); r != CUDA_SUCCESS) return r;
  if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *device = ordinal;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuDeviceGetName(char* name, int length, CUdevice device) {
  if (const CUresult r = ValidDevice(device); r != CUDA_SUCCESS) return r;
  if (name == nullptr || length <= 0) return CUDA_ERROR_INVALID_VALUE;
  std::strncpy(name, "gpuslice fake GPU", static_cast<std::size_t>(length) - 1);
  name[length - 1] = '\0';
  return CUDA_SUCCESS;
}
// UUID of fake device i: 67736c63-0000-0000-0000-0000000000ii (same as the fake NVML).
FAKE_EXPORT CUresult cuDeviceGetUuid(CUuuid* uuid, CUdevice device) {
  if (const CUresult r = ValidDevice(device); r != CUDA_SUCCESS) return r;
  if (uuid == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::memset(uuid->bytes, 0, sizeof(uuid->bytes));
  const char prefix[4] = {0x67, 0x73, 0x6c, 0x63};
  std::memcpy(uuid->bytes, prefix, 4);
  uuid->bytes[15] = static_cast<char>(device);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuDeviceGetUuid_v2(CUuuid* uuid, CUdevice device) {
  return cuDeviceGetUuid(uuid, device);
}
FAKE_EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice device) {
  if (const CUresult r = ValidDevice(device); r != CUDA_SUCCESS) return r;
  if (bytes == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *bytes = Driver().capacity;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext* context, CUdevice device) {
  if (const CUresult r = ValidDevice(device); r != CUDA_SUCCESS) return r;
  if (context == nullptr) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  ++d.primary_refs[device];
  *context = reinterpret_cast<CUcontext>(&d.primary[device]);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device) {
  if (const CUresult r = ValidDevice(device); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.primary_refs[device] == 0) return CUDA_ERROR_INVALID_CONTEXT;
  if (--d.primary_refs[device] == 0) FreeContextAllocationsLocked(d, &d.primary[device]);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuDevicePrimaryCtxReset_v2(CUdevice device) {
  if (const CUresult r = ValidDevice(device); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  d.primary_refs[device] = 0;
  FreeContextAllocationsLocked(d, &d.primary[device]);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuCtxCreate_v2(CUcontext* context, unsigned int /*flags*/, CUdevice device) {
  if (const CUresult r = ValidDevice(device); r != CUDA_SUCCESS) return r;
  if (context == nullptr) return CUDA_ERROR_INVALID_VALUE;
  auto* c = new (std::nothrow) FakeContext{device, false};
  if (c == nullptr) return CUDA_ERROR_OUT_OF_MEMORY;
  t_current = c;
  *context = reinterpret_cast<CUcontext>(c);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuCtxCreate_v4(CUcontext* context, CUctxCreateParams* /*params*/,
                                    unsigned int flags, CUdevice device) {
  return cuCtxCreate_v2(context, flags, device);
}
FAKE_EXPORT CUresult cuCtxDestroy_v2(CUcontext context) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  auto* c = reinterpret_cast<FakeContext*>(context);
  if (c == nullptr || c->primary) return CUDA_ERROR_INVALID_CONTEXT;
  if (t_current == c) t_current = nullptr;
  {
    FakeDriver& d = Driver();
    std::lock_guard<std::mutex> lock(d.mutex);
    FreeContextAllocationsLocked(d, c);
  }
  delete c;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuCtxSetCurrent(CUcontext context) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  t_current = reinterpret_cast<FakeContext*>(context);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuCtxGetCurrent(CUcontext* context) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (context == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *context = reinterpret_cast<CUcontext>(t_current);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuCtxGetDevice(CUdevice* device) {
  if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
  return CurrentDevice(device);
}

// ---- Memory
// --------------------------------------------------------------------------------------

FAKE_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytes) {
  if (dptr == nullptr) return CUDA_ERROR_INVALID_VALUE;
  return AllocateCurrent(bytes, dptr);
}
FAKE_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr* dptr, size_t* pitch, size_t width_bytes,
                                        size_t height, unsigned int element_bytes) {
  if (dptr == nullptr || pitch == nullptr || width_bytes == 0 || height == 0) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (element_bytes != 4 && element_bytes != 8 && element_bytes != 16) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  const std::uint64_t p = (width_bytes + 511) / 512 * 512;
  const CUresult r = AllocateCurrent(p * height, dptr);
  if (r == CUDA_SUCCESS) *pitch = p;
  return r;
}
FAKE_EXPORT CUresult cuMemAllocManaged(CUdeviceptr* dptr, size_t bytes, unsigned int flags) {
  if (dptr == nullptr || (flags != 1 && flags != 2)) return CUDA_ERROR_INVALID_VALUE;
  return AllocateCurrent(bytes, dptr);
}
FAKE_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr) { return FreeAddress(dptr, false); }
FAKE_EXPORT CUresult cuMemAllocAsync(CUdeviceptr* dptr, size_t bytes, CUstream /*stream*/) {
  if (dptr == nullptr) return CUDA_ERROR_INVALID_VALUE;
  return AllocateCurrent(bytes, dptr);
}
FAKE_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr* dptr, size_t bytes, CUstream stream) {
  return cuMemAllocAsync(dptr, bytes, stream);
}
FAKE_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream /*stream*/) {
  return FreeAddress(dptr, false);
}
FAKE_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream) {
  return cuMemFreeAsync(dptr, stream);
}
FAKE_EXPORT CUresult cuMemPoolCreate(CUmemoryPool* pool, const CUmemPoolProps* props) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (pool == nullptr || props == nullptr) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  const std::uint64_t id = NewAddressLocked(d, 1);
  d.pools[id] = props->location.type == CU_MEM_LOCATION_TYPE_DEVICE ? props->location.id : -1;
  *pool = reinterpret_cast<CUmemoryPool>(id);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool) {
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  return d.pools.erase(reinterpret_cast<std::uint64_t>(pool)) == 1 ? CUDA_SUCCESS
                                                                   : CUDA_ERROR_INVALID_VALUE;
}
FAKE_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr* dptr, size_t bytes, CUmemoryPool pool,
                                             CUstream /*stream*/) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (dptr == nullptr) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  int device = 0;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    auto it = d.pools.find(reinterpret_cast<std::uint64_t>(pool));
    if (it == d.pools.end()) return CUDA_ERROR_INVALID_VALUE;
    device = it->second;
  }
  if (device < 0) {  // host pool: host memory, not the GPU's
    std::lock_guard<std::mutex> lock(d.mutex);
    *dptr = NewAddressLocked(d, bytes);
    d.pointers[*dptr] = {0, 0};
    return CUDA_SUCCESS;
  }
  return AllocateOn(device, bytes, dptr, false);
}
FAKE_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr* dptr, size_t bytes,
                                                  CUmemoryPool pool, CUstream stream) {
  return cuMemAllocFromPoolAsync(dptr, bytes, pool, stream);
}
FAKE_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle* handle, size_t bytes,
                                 const CUmemAllocationProp* prop, unsigned long long flags) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (handle == nullptr || prop == nullptr || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE) {
    if (const CUresult r = ValidDevice(prop->location.id); r != CUDA_SUCCESS) return r;
    return AllocateOn(prop->location.id, bytes, handle, true);
  }
  FakeDriver& d = Driver();  // host location
  std::lock_guard<std::mutex> lock(d.mutex);
  *handle = NewAddressLocked(d, bytes);
  d.handles[*handle] = {0, 0};
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
  return FreeAddress(handle, true);
}
FAKE_EXPORT CUresult cuArrayCreate_v2(CUarray* array, const CUDA_ARRAY_DESCRIPTOR* desc) {
  if (array == nullptr || desc == nullptr || desc->Width == 0) return CUDA_ERROR_INVALID_VALUE;
  unsigned long long handle = 0;
  const CUresult r = AllocateCurrent(
      Dim(desc->Width) * Dim(desc->Height) * ElementBytes(desc->Format) * Dim(desc->NumChannels),
      &handle, true);
  if (r == CUDA_SUCCESS) *array = reinterpret_cast<CUarray>(handle);
  return r;
}
FAKE_EXPORT CUresult cuArray3DCreate_v2(CUarray* array, const CUDA_ARRAY3D_DESCRIPTOR* desc) {
  if (array == nullptr || desc == nullptr || desc->Width == 0) return CUDA_ERROR_INVALID_VALUE;
  unsigned long long handle = 0;
  const CUresult r = AllocateCurrent(Dim(desc->Width) * Dim(desc->Height) * Dim(desc->Depth) *
                                         ElementBytes(desc->Format) * Dim(desc->NumChannels),
                                     &handle, true);
  if (r == CUDA_SUCCESS) *array = reinterpret_cast<CUarray>(handle);
  return r;
}
FAKE_EXPORT CUresult cuArrayDestroy(CUarray array) {
  return FreeAddress(reinterpret_cast<std::uint64_t>(array), true);
}
FAKE_EXPORT CUresult cuMipmappedArrayCreate(CUmipmappedArray* array,
                                            const CUDA_ARRAY3D_DESCRIPTOR* desc,
                                            unsigned int levels) {
  if (array == nullptr || desc == nullptr || desc->Width == 0 || levels == 0) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  std::uint64_t total = 0;
  std::uint64_t w = desc->Width, h = desc->Height, z = desc->Depth;
  for (unsigned i = 0; i < levels; ++i) {
    total += Dim(w) * Dim(h) * Dim(z) * ElementBytes(desc->Format) * Dim(desc->NumChannels);
    w = w > 1 ? w / 2 : 1;
    h = h > 1 ? h / 2 : h;
    z = z > 1 ? z / 2 : z;
  }
  unsigned long long handle = 0;
  const CUresult r = AllocateCurrent(total, &handle, true);
  if (r == CUDA_SUCCESS) *array = reinterpret_cast<CUmipmappedArray>(handle);
  return r;
}
FAKE_EXPORT CUresult cuMipmappedArrayDestroy(CUmipmappedArray array) {
  return FreeAddress(reinterpret_cast<std::uint64_t>(array), true);
}
FAKE_EXPORT CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes) {
  int device = 0;
  if (const CUresult r = CurrentDevice(&device); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (free_bytes != nullptr) *free_bytes = d.capacity - d.used[device];
  if (total_bytes != nullptr) *total_bytes = d.capacity;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemAllocHost_v2(void** pointer, size_t bytes) {
  if (pointer == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *pointer = std::malloc(bytes);
  return *pointer != nullptr ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
FAKE_EXPORT CUresult cuMemFreeHost(void* pointer) {
  std::free(pointer);
  return CUDA_SUCCESS;
}

// ---- Launches
// -------------------------------------------------------------------------------------

FAKE_EXPORT CUresult cuLaunchKernel(CUfunction /*f*/, unsigned int, unsigned int, unsigned int,
                                    unsigned int, unsigned int, unsigned int, unsigned int,
                                    CUstream, void**, void**) {
  if (t_current == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  Driver().launches.fetch_add(1, std::memory_order_relaxed);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy,
                                         unsigned int gz, unsigned int bx, unsigned int by,
                                         unsigned int bz, unsigned int shared, CUstream stream,
                                         void** params, void** extra) {
  return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra);
}
FAKE_EXPORT CUresult cuGraphLaunch(CUgraphExec /*graph*/, CUstream /*stream*/) {
  if (t_current == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  Driver().launches.fetch_add(1, std::memory_order_relaxed);
  return CUDA_SUCCESS;
}

// ---- cuGetProcAddress
// ----------------------------------------------------------------------------

namespace {

CUresult InternalMemAlloc(CUdeviceptr* dptr, size_t bytes) { return cuMemAlloc_v2(dptr, bytes); }

struct ProcEntry {
  const char* family;
  int since;
  bool per_thread;
  void* fn;
};

#define FAKE_PROC(family, since, per_thread, fn) \
  { family, since, per_thread, reinterpret_cast<void*>(&fn) }
const ProcEntry kProcTable[] = {
    FAKE_PROC("cuInit", 2000, false, cuInit),
    FAKE_PROC("cuDriverGetVersion", 2020, false, cuDriverGetVersion),
    FAKE_PROC("cuDeviceGetCount", 2000, false, cuDeviceGetCount),
    FAKE_PROC("cuDeviceGet", 2000, false, cuDeviceGet),
    FAKE_PROC("cuDeviceGetName", 2000, false, cuDeviceGetName),
    FAKE_PROC("cuDeviceGetUuid", 9020, false, cuDeviceGetUuid),
    FAKE_PROC("cuDeviceGetUuid", 11040, false, cuDeviceGetUuid_v2),
    FAKE_PROC("cuDeviceTotalMem", 3020, false, cuDeviceTotalMem_v2),
    FAKE_PROC("cuDevicePrimaryCtxRetain", 7000, false, cuDevicePrimaryCtxRetain),
    FAKE_PROC("cuDevicePrimaryCtxRelease", 11000, false, cuDevicePrimaryCtxRelease_v2),
    FAKE_PROC("cuDevicePrimaryCtxReset", 11000, false, cuDevicePrimaryCtxReset_v2),
    FAKE_PROC("cuCtxCreate", 3020, false, cuCtxCreate_v2),
    FAKE_PROC("cuCtxCreate", 12050, false, cuCtxCreate_v4),
    FAKE_PROC("cuCtxDestroy", 4000, false, cuCtxDestroy_v2),
    FAKE_PROC("cuCtxSetCurrent", 4000, false, cuCtxSetCurrent),
    FAKE_PROC("cuCtxGetCurrent", 4000, false, cuCtxGetCurrent),
    FAKE_PROC("cuCtxGetDevice", 2000, false, cuCtxGetDevice),
    FAKE_PROC("cuMemAlloc", 3020, false, cuMemAlloc_v2),
    FAKE_PROC("cuMemAllocPitch", 3020, false, cuMemAllocPitch_v2),
    FAKE_PROC("cuMemAllocManaged", 6000, false, cuMemAllocManaged),
    FAKE_PROC("cuMemFree", 3020, false, cuMemFree_v2),
    FAKE_PROC("cuMemAllocAsync", 11020, false, cuMemAllocAsync),
    FAKE_PROC("cuMemAllocAsync", 11020, true, cuMemAllocAsync_ptsz),
    FAKE_PROC("cuMemFreeAsync", 11020, false, cuMemFreeAsync),
    FAKE_PROC("cuMemFreeAsync", 11020, true, cuMemFreeAsync_ptsz),
    FAKE_PROC("cuMemAllocFromPoolAsync", 11020, false, cuMemAllocFromPoolAsync),
    FAKE_PROC("cuMemAllocFromPoolAsync", 11020, true, cuMemAllocFromPoolAsync_ptsz),
    FAKE_PROC("cuMemPoolCreate", 11020, false, cuMemPoolCreate),
    FAKE_PROC("cuMemPoolDestroy", 11020, false, cuMemPoolDestroy),
    FAKE_PROC("cuMemCreate", 10020, false, cuMemCreate),
    FAKE_PROC("cuMemRelease", 10020, false, cuMemRelease),
    FAKE_PROC("cuArrayCreate", 3020, false, cuArrayCreate_v2),
    FAKE_PROC("cuArray3DCreate", 3020, false, cuArray3DCreate_v2),
    FAKE_PROC("cuArrayDestroy", 2000, false, cuArrayDestroy),
    FAKE_PROC("cuMipmappedArrayCreate", 5000, false, cuMipmappedArrayCreate),
    FAKE_PROC("cuMipmappedArrayDestroy", 5000, false, cuMipmappedArrayDestroy),
    FAKE_PROC("cuMemGetInfo", 3020, false, cuMemGetInfo_v2),
    FAKE_PROC("cuMemAllocHost", 3020, false, cuMemAllocHost_v2),
    FAKE_PROC("cuMemFreeHost", 2000, false, cuMemFreeHost),
    FAKE_PROC("cuLaunchKernel", 4000, false, cuLaunchKernel),
    FAKE_PROC("cuLaunchKernel", 7000, true, cuLaunchKernel_ptsz),
    FAKE_PROC("cuGraphLaunch", 10000, false, cuGraphLaunch),
};
#undef FAKE_PROC

}  // namespace

FAKE_EXPORT CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int cuda_version,
                                         cuuint64_t flags, CUdriverProcAddressQueryResult* status);

namespace {
const ProcEntry kGetProcEntries[] = {
    {"cuGetProcAddress", 12000, false, reinterpret_cast<void*>(&cuGetProcAddress_v2)},
};
}  // namespace

FAKE_EXPORT CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int cuda_version,
                                         cuuint64_t flags, CUdriverProcAddressQueryResult* status) {
  if (symbol == nullptr || pfn == nullptr) return CUDA_ERROR_INVALID_VALUE;
  const bool per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
  const ProcEntry* best = nullptr;
  bool name_known = false;
  auto consider = [&](const ProcEntry& e) {
    if (std::strcmp(e.family, symbol) != 0) return;
    name_known = true;
    if (e.since > cuda_version || (e.per_thread && !per_thread)) return;
    if (best == nullptr || e.per_thread > best->per_thread ||
        (e.per_thread == best->per_thread && e.since > best->since)) {
      best = &e;
    }
  };
  for (const ProcEntry& e : kProcTable) consider(e);
  for (const ProcEntry& e : kGetProcEntries) consider(e);
  if (best == nullptr) {
    *pfn = nullptr;
    if (status != nullptr) {
      *status = name_known ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                           : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    }
    return CUDA_ERROR_NOT_FOUND;
  }
  *pfn = best->fn;
  if (Driver().internal_proc_pointers && best->fn == reinterpret_cast<void*>(&cuMemAlloc_v2)) {
    *pfn = reinterpret_cast<void*>(&InternalMemAlloc);  // like a driver's unexported entry
  }
  if (status != nullptr) *status = CU_GET_PROC_ADDRESS_SUCCESS;
  return CUDA_SUCCESS;
}

FAKE_EXPORT CUresult cuGetProcAddress(const char* symbol, void** pfn, int cuda_version,
                                      cuuint64_t flags) {
  return cuGetProcAddress_v2(symbol, pfn, cuda_version, flags, nullptr);
}
