// A fake libcuda.so.1 for tests: a deterministic CUDA driver with configurable GPUs and no
// hardware. Devices and their memory come from GPUSLICE_FAKE_GPUS ("count=2,memory=16Gi";
// default one GPU of 16 GiB) — fine here because the fake is test-only. It tracks this process's
// allocations per device, enforces the devices' capacity, and returns real CUresult codes. It
// resolves cuGetProcAddress like the real driver: base name + cudaVersion + per-thread flag ->
// versioned entry point. Test hooks: gpuslice_fake_cuda_*.
// Kernels take simulated time: with "kernel-us=N" in GPUSLICE_FAKE_GPUS every launch that runs
// (not one recorded into a capture) adds N us of busy time to the device of its stream's context
// (the current context's for the NULL stream) and counts there; a multi-device cooperative launch
// to each device it names. Nothing waits for it: tests read the per-device launches and busy time
// (gpuslice_fake_cuda_device_*; kept only with kernel-us set).
// Per-process usage, as the real driver reports it through NVML: when GPUSLICE_FAKE_DRIVER_DIR
// names a directory, the fake writes <dir>/<pid> ("<device> <bytes>" lines) after every change,
// and the fake NVML lists those files as running processes.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "fake_cuda_dmem.h"
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
  std::uint64_t pool = 0;         // stream-ordered: the pool it came from
  int ipc_opens = 0;              // cuIpcOpenMemHandle mappings keeping it alive
  bool freed = false;             // freed by its owner while IPC mappings remain
};

// A memory pool, following CUDA's rules: freed memory stays reserved by the pool (reusable by
// later allocations from it) and is released to the OS at a synchronisation only above the
// release threshold; a stream-ordered free completes when the stream reaches it (modelled: at
// the next synchronisation of that stream or the context), and until then only allocations on
// the same stream may reuse it.
struct FakePool {
  int device = 0;  // -1: host memory
  std::uint64_t threshold = 0;
  std::uint64_t in_use = 0;
  std::uint64_t cached = 0;                      // freed, reserved, reusable
  std::map<const void*, std::uint64_t> pending;  // freed on a stream, not yet completed
};

// VMM physical memory: alive while any handle reference (create, import, retain) or mapping
// holds it (cuMemRelease documentation).
struct Physical {
  int device;
  std::uint64_t bytes;
  int refs;
};

struct FakeGraph {
  std::map<int, std::uint64_t> alloc_bytes;  // device -> bytes of its allocation nodes
};
struct FakeGraphExec {
  std::map<int, std::uint64_t> alloc_bytes;
  bool backed = false;  // graph memory is allocated at the first launch
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
  std::map<std::uint64_t, FakePool> pools;
  std::uint64_t default_pool[kMaxDevices] = {};
  std::map<std::uint64_t, std::uint64_t> vmm_handles;  // handle -> physical
  std::map<std::uint64_t, Physical> physicals;
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> mappings;  // va -> size, handle
  std::map<int, std::uint64_t> shared_handles;                                // fd -> physical
  int next_shared = 1000;
  std::map<std::uint64_t, std::uint64_t> ipc_imports;   // va -> exporter's pointer
  std::map<std::uint64_t, std::uint64_t> pool_imports;  // va -> exporter's pool pointer
  std::map<std::uint64_t, FakeGraph> graphs;
  std::map<std::uint64_t, FakeGraphExec> execs;
  std::uint64_t next_address = 0x7f0000000000ULL;
  std::atomic<std::uint64_t> launches{0};
  std::atomic<std::uint64_t> synchronizations{0};  // successful stream and context syncs
  std::string usage_dir;                           // GPUSLICE_FAKE_DRIVER_DIR
  // Stream capture, as CUDA documents it: a launch into a capturing stream is recorded, not run;
  // synchronising a capturing stream, or the context while a global-mode capture is active,
  // fails and invalidates the capture.
  struct Capture {
    int mode = 0;
    int launches = 0;
    bool invalidated = false;
  };
  std::map<const void*, Capture> captures;  // stream -> its capture
  std::uint64_t next_stream = 1;
  std::atomic<std::uint64_t> captured_launches{0};
  // Every stream belongs to the context current when it was created (cuStreamGetCtx).
  std::map<const void*, FakeContext*> stream_context;
  std::uint64_t kernel_ns = 0;  // simulated time of every kernel ("kernel-us")
  std::atomic<std::uint64_t> device_launches[kMaxDevices] = {};
  std::atomic<std::uint64_t> device_busy_ns[kMaxDevices] = {};
};

// Publishes this process's usage for the fake NVML (write to a temporary file, then rename).
void PublishUsageLocked(const FakeDriver& d) {
  fake_dmem::Publish(d.used, d.device_count);
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
        } else if (key == "kernel-us") {
          d->kernel_ns = number * 1000;
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
thread_local std::vector<FakeContext*>* t_pushed = nullptr;  // cuCtxPushCurrent's stack

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
  if (d.used[device] + bytes > d.capacity || bytes > d.capacity ||
      fake_dmem::Refuses(device, d.used[device] + bytes)) {
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
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

// Gives a pool allocation back to its pool (sync free: reusable now; async: pending on `stream`).
void ReturnToPoolLocked(FakeDriver& d, const Allocation& a, bool async, const void* stream) {
  FakePool& pool = d.pools[a.pool];
  pool.in_use -= a.bytes;
  if (async) {
    pool.pending[stream] += a.bytes;
  } else {
    pool.cached += a.bytes;
  }
}

CUresult FreeAddressImpl(std::uint64_t address, bool handle, bool async, const void* stream) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (!handle) {
    // An imported pool pointer (cuMemPoolImportPointer) is freed by unmapping the import.
    if (auto import = d.pool_imports.find(address); import != d.pool_imports.end()) {
      auto exported = d.pointers.find(import->second);
      d.pool_imports.erase(import);
      if (exported != d.pointers.end() && --exported->second.ipc_opens == 0 &&
          exported->second.freed) {
        ReturnToPoolLocked(d, exported->second, false, nullptr);
        d.pointers.erase(exported);
      }
      return CUDA_SUCCESS;
    }
  }
  auto& map = handle ? d.handles : d.pointers;
  auto it = map.find(address);
  if (it == map.end() || it->second.freed) {
    return handle ? CUDA_ERROR_INVALID_HANDLE : CUDA_ERROR_INVALID_VALUE;
  }
  if (it->second.pool != 0 && it->second.ipc_opens > 0) {
    it->second.freed = true;  // an importing process still maps it: back to the pool later
  } else if (it->second.pool != 0) {
    ReturnToPoolLocked(d, it->second, async, stream);
    map.erase(it);
  } else if (it->second.ipc_opens > 0) {
    it->second.freed = true;  // an importer's mapping keeps the memory alive
  } else {
    d.used[it->second.device] -= it->second.bytes;
    map.erase(it);
  }
  PublishUsageLocked(d);
  return CUDA_SUCCESS;
}

CUresult FreeAddress(std::uint64_t address, bool handle) {
  return FreeAddressImpl(address, handle, false, nullptr);
}

// A synchronisation: completes pending frees (of `stream`, or all when `all_streams`), then
// releases each pool's reserve above its threshold.
void SynchroniseLocked(FakeDriver& d, const void* stream, bool all_streams, bool complete) {
  for (auto& [id, pool] : d.pools) {
    if (complete) {
      for (auto it = pool.pending.begin(); it != pool.pending.end();) {
        if (all_streams || it->first == stream) {
          pool.cached += it->second;
          it = pool.pending.erase(it);
        } else {
          ++it;
        }
      }
    }
    const std::uint64_t keep =
        pool.threshold > pool.in_use ? std::min(pool.cached, pool.threshold - pool.in_use) : 0;
    if (pool.device >= 0) d.used[pool.device] -= pool.cached - keep;
    pool.cached = keep;
  }
  PublishUsageLocked(d);
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
FAKE_EXPORT std::uint64_t gpuslice_fake_cuda_synchronizations() {
  return Driver().synchronizations.load();
}

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
    for (auto it = d.stream_context.begin(); it != d.stream_context.end();) {
      it = it->second == c ? d.stream_context.erase(it) : std::next(it);  // its streams go too
    }
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
// The context stack, as CUDA documents it: push makes `context` current and remembers the one
// it replaces; pop makes that one current again and returns the popped one.
FAKE_EXPORT CUresult cuCtxPushCurrent_v2(CUcontext context) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (context == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  if (t_pushed == nullptr) t_pushed = new std::vector<FakeContext*>;
  t_pushed->push_back(t_current);
  t_current = reinterpret_cast<FakeContext*>(context);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuCtxPopCurrent_v2(CUcontext* context) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (t_current == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  if (context != nullptr) *context = reinterpret_cast<CUcontext>(t_current);
  if (t_pushed != nullptr && !t_pushed->empty()) {
    t_current = t_pushed->back();
    t_pushed->pop_back();
  } else {
    t_current = nullptr;
  }
  return CUDA_SUCCESS;
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

namespace {

std::uint64_t DefaultPoolLocked(FakeDriver& d, int device) {
  if (d.default_pool[device] == 0) {
    const std::uint64_t id = NewAddressLocked(d, 1);
    d.pools[id].device = device;
    d.default_pool[device] = id;
  }
  return d.default_pool[device];
}

CUresult AllocateFromPool(std::uint64_t pool_id, std::uint64_t bytes, const void* stream,
                          CUdeviceptr* dptr) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (dptr == nullptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.pools.find(pool_id);
  if (it == d.pools.end()) return CUDA_ERROR_INVALID_VALUE;
  FakePool& pool = it->second;
  if (pool.device < 0) {  // host pool: host memory, not the GPU's
    *dptr = NewAddressLocked(d, bytes);
    d.pointers[*dptr] = {0, 0, nullptr, 0};
    return CUDA_SUCCESS;
  }
  // Reuse what the pool holds: completed frees, then this stream's own pending frees.
  std::uint64_t reuse = std::min(pool.cached, bytes);
  std::uint64_t& same_stream = pool.pending[stream];
  const std::uint64_t reuse_pending = std::min(same_stream, bytes - reuse);
  const std::uint64_t fresh = bytes - reuse - reuse_pending;
  if (d.used[pool.device] + fresh > d.capacity ||
      fake_dmem::Refuses(pool.device, d.used[pool.device] + fresh)) {
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  pool.cached -= reuse;
  same_stream -= reuse_pending;
  d.used[pool.device] += fresh;
  pool.in_use += bytes;
  *dptr = NewAddressLocked(d, bytes);
  d.pointers[*dptr] = {pool.device, bytes, nullptr, pool_id};
  PublishUsageLocked(d);
  return CUDA_SUCCESS;
}

}  // namespace

FAKE_EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool* pool, CUdevice device) {
  if (const CUresult r = ValidDevice(device); r != CUDA_SUCCESS) return r;
  if (pool == nullptr) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  *pool = reinterpret_cast<CUmemoryPool>(DefaultPoolLocked(d, device));
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuDeviceGetMemPool(CUmemoryPool* pool, CUdevice device) {
  return cuDeviceGetDefaultMemPool(pool, device);  // the fake has no cuDeviceSetMemPool
}
FAKE_EXPORT CUresult cuMemAllocAsync(CUdeviceptr* dptr, size_t bytes, CUstream stream) {
  int device = 0;
  if (const CUresult r = CurrentDevice(&device); r != CUDA_SUCCESS) return r;
  std::uint64_t pool = 0;
  {
    FakeDriver& d = Driver();
    std::lock_guard<std::mutex> lock(d.mutex);
    pool = DefaultPoolLocked(d, device);
  }
  return AllocateFromPool(pool, bytes, stream, dptr);
}
FAKE_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr* dptr, size_t bytes, CUstream stream) {
  return cuMemAllocAsync(dptr, bytes, stream);
}
FAKE_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream stream) {
  return FreeAddressImpl(dptr, false, true, stream);
}
FAKE_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream) {
  return cuMemFreeAsync(dptr, stream);
}
FAKE_EXPORT CUresult cuMemPoolCreate(CUmemoryPool* pool, const CUmemPoolProps* props) {
  int current = 0;
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (pool == nullptr || props == nullptr) return CUDA_ERROR_INVALID_VALUE;
  CurrentDevice(&current);
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  const std::uint64_t id = NewAddressLocked(d, 1);
  FakePool& p = d.pools[id];
  if (props->location.type == CU_MEM_LOCATION_TYPE_DEVICE) {
    p.device = props->location.id;
  } else if (props->allocType == CU_MEM_ALLOCATION_TYPE_MANAGED) {
    p.device = current;  // managed memory lands on the GPU that uses it
  } else {
    p.device = -1;
  }
  *pool = reinterpret_cast<CUmemoryPool>(id);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemPoolDestroy(CUmemoryPool pool) {
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.pools.find(reinterpret_cast<std::uint64_t>(pool));
  if (it == d.pools.end()) return CUDA_ERROR_INVALID_VALUE;
  if (it->second.device >= 0) d.used[it->second.device] -= it->second.cached;
  it->second.cached = 0;
  it->second.threshold = 0;  // the rest goes as outstanding allocations are freed
  PublishUsageLocked(d);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attr,
                                           void* value) {
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.pools.find(reinterpret_cast<std::uint64_t>(pool));
  if (it == d.pools.end() || value == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (attr == CU_MEMPOOL_ATTR_RELEASE_THRESHOLD) {
    it->second.threshold = *static_cast<cuuint64_t*>(value);
  }
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t keep_bytes) {
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.pools.find(reinterpret_cast<std::uint64_t>(pool));
  if (it == d.pools.end()) return CUDA_ERROR_INVALID_VALUE;
  FakePool& p = it->second;
  const std::uint64_t keep =
      keep_bytes > p.in_use ? std::min<std::uint64_t>(p.cached, keep_bytes - p.in_use) : 0;
  if (p.device >= 0) d.used[p.device] -= p.cached - keep;
  p.cached = keep;
  PublishUsageLocked(d);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr* dptr, size_t bytes, CUmemoryPool pool,
                                             CUstream stream) {
  return AllocateFromPool(reinterpret_cast<std::uint64_t>(pool), bytes, stream, dptr);
}
FAKE_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr* dptr, size_t bytes,
                                                  CUmemoryPool pool, CUstream stream) {
  return cuMemAllocFromPoolAsync(dptr, bytes, pool, stream);
}
FAKE_EXPORT CUresult cuStreamSynchronize(CUstream stream) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (auto it = d.captures.find(stream); it != d.captures.end()) {
    it->second.invalidated = true;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  SynchroniseLocked(d, stream, false, true);
  d.synchronizations.fetch_add(1, std::memory_order_relaxed);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuStreamSynchronize_ptsz(CUstream stream) {
  return cuStreamSynchronize(stream);
}
FAKE_EXPORT CUresult cuCtxSynchronize() {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (!d.captures.empty()) {
    // Synchronising the context synchronises the capturing streams too: not permitted.
    for (auto& [stream, capture] : d.captures) capture.invalidated = true;
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  SynchroniseLocked(d, nullptr, true, true);
  d.synchronizations.fetch_add(1, std::memory_order_relaxed);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuEventSynchronize(CUevent /*event*/) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  SynchroniseLocked(d, nullptr, false, false);  // the fake's events complete no stream's frees
  return CUDA_SUCCESS;
}

// ---- Virtual memory management --------------------------------------------------------------

namespace {

// Drops one reference to a physical allocation; frees it at zero.
void UnrefPhysicalLocked(FakeDriver& d, std::uint64_t physical) {
  auto it = d.physicals.find(physical);
  if (it == d.physicals.end() || --it->second.refs > 0) return;
  if (it->second.device >= 0) d.used[it->second.device] -= it->second.bytes;
  for (auto h = d.vmm_handles.begin(); h != d.vmm_handles.end();) {
    h = h->second == physical ? d.vmm_handles.erase(h) : std::next(h);
  }
  d.physicals.erase(it);
  PublishUsageLocked(d);
}

}  // namespace

FAKE_EXPORT CUresult cuMemCreate(CUmemGenericAllocationHandle* handle, size_t bytes,
                                 const CUmemAllocationProp* prop, unsigned long long flags) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (handle == nullptr || prop == nullptr || flags != 0 || bytes == 0) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  int device = -1;
  if (prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE) {
    if (const CUresult r = ValidDevice(prop->location.id); r != CUDA_SUCCESS) return r;
    device = prop->location.id;
  }
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (device >= 0 &&
      (d.used[device] + bytes > d.capacity || fake_dmem::Refuses(device, d.used[device] + bytes))) {
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  const std::uint64_t physical = NewAddressLocked(d, 1);
  d.physicals[physical] = {device, device >= 0 ? bytes : 0, 1};
  if (device >= 0) d.used[device] += bytes;
  *handle = NewAddressLocked(d, 1);
  d.vmm_handles[*handle] = physical;
  PublishUsageLocked(d);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.vmm_handles.find(handle);
  if (it == d.vmm_handles.end()) return CUDA_ERROR_INVALID_VALUE;
  UnrefPhysicalLocked(d, it->second);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemAddressReserve(CUdeviceptr* ptr, size_t size, size_t /*alignment*/,
                                         CUdeviceptr /*addr*/, unsigned long long flags) {
  if (ptr == nullptr || size == 0 || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  *ptr = NewAddressLocked(d, size);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemAddressFree(CUdeviceptr /*ptr*/, size_t /*size*/) { return CUDA_SUCCESS; }
FAKE_EXPORT CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                              CUmemGenericAllocationHandle handle, unsigned long long flags) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (ptr == 0 || size == 0 || offset != 0 || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.vmm_handles.find(handle);
  if (it == d.vmm_handles.end() || d.mappings.count(ptr) != 0) return CUDA_ERROR_INVALID_VALUE;
  ++d.physicals[it->second].refs;  // a mapping keeps the memory alive
  d.mappings[ptr] = {size, handle};
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemUnmap(CUdeviceptr ptr, size_t size) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.mappings.lower_bound(ptr);
  if (it == d.mappings.end() || it->first != ptr) return CUDA_ERROR_INVALID_VALUE;
  while (it != d.mappings.end() && it->first < ptr + size) {
    const std::uint64_t physical = d.vmm_handles[it->second.second];
    it = d.mappings.erase(it);
    UnrefPhysicalLocked(d, physical);
  }
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle* handle, void* addr) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (handle == nullptr) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  const auto va = reinterpret_cast<std::uint64_t>(addr);
  auto it = d.mappings.upper_bound(va);
  if (it == d.mappings.begin()) return CUDA_ERROR_INVALID_VALUE;
  --it;
  if (va >= it->first + it->second.first) return CUDA_ERROR_INVALID_VALUE;
  *handle = it->second.second;  // the handle used when mapping
  ++d.physicals[d.vmm_handles[*handle]].refs;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemExportToShareableHandle(void* shareable,
                                                  CUmemGenericAllocationHandle handle,
                                                  CUmemAllocationHandleType type,
                                                  unsigned long long /*flags*/) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (shareable == nullptr || type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.vmm_handles.find(handle);
  if (it == d.vmm_handles.end()) return CUDA_ERROR_INVALID_VALUE;
  const int fd = d.next_shared++;
  d.shared_handles[fd] = it->second;
  *static_cast<int*>(shareable) = fd;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle* handle,
                                                    void* os_handle,
                                                    CUmemAllocationHandleType type) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (handle == nullptr || type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.shared_handles.find(static_cast<int>(reinterpret_cast<std::intptr_t>(os_handle)));
  if (it == d.shared_handles.end() || d.physicals.count(it->second) == 0) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  ++d.physicals[it->second].refs;  // the imported handle is a reference of its own
  *handle = NewAddressLocked(d, 1);
  d.vmm_handles[*handle] = it->second;
  return CUDA_SUCCESS;
}

// ---- IPC ---------------------------------------------------------------------------------------

FAKE_EXPORT CUresult cuIpcGetMemHandle(CUipcMemHandle* handle, CUdeviceptr dptr) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (handle == nullptr) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.pointers.count(dptr) == 0) return CUDA_ERROR_INVALID_VALUE;
  std::memset(handle->reserved, 0, sizeof(handle->reserved));
  std::memcpy(handle->reserved, &dptr, sizeof(dptr));
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuIpcOpenMemHandle_v2(CUdeviceptr* dptr, CUipcMemHandle handle,
                                           unsigned int /*flags*/) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (dptr == nullptr) return CUDA_ERROR_INVALID_VALUE;
  CUdeviceptr exported = 0;
  std::memcpy(&exported, handle.reserved, sizeof(exported));
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.pointers.find(exported);
  if (it == d.pointers.end() || it->second.freed) return CUDA_ERROR_INVALID_VALUE;
  ++it->second.ipc_opens;
  *dptr = NewAddressLocked(d, it->second.bytes);
  d.ipc_imports[*dptr] = exported;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuIpcOpenMemHandle(CUdeviceptr* dptr, CUipcMemHandle handle,
                                        unsigned int flags) {
  return cuIpcOpenMemHandle_v2(dptr, handle, flags);
}
FAKE_EXPORT CUresult cuIpcCloseMemHandle(CUdeviceptr dptr) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto import = d.ipc_imports.find(dptr);
  if (import == d.ipc_imports.end()) return CUDA_ERROR_INVALID_VALUE;
  auto it = d.pointers.find(import->second);
  d.ipc_imports.erase(import);
  if (it != d.pointers.end() && --it->second.ipc_opens == 0 && it->second.freed) {
    d.used[it->second.device] -= it->second.bytes;
    d.pointers.erase(it);
    PublishUsageLocked(d);
  }
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemPoolExportPointer(CUmemPoolPtrExportData* data, CUdeviceptr ptr) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (data == nullptr) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.pointers.find(ptr);
  if (it == d.pointers.end() || it->second.pool == 0) return CUDA_ERROR_INVALID_VALUE;
  std::memset(data->reserved, 0, sizeof(data->reserved));
  std::memcpy(data->reserved, &ptr, sizeof(ptr));
  return CUDA_SUCCESS;
}
// The fake imports within one process: `pool` must be a pool (standing in for the exporter's
// pool imported with cuMemPoolImportFromShareableHandle).
FAKE_EXPORT CUresult cuMemPoolImportPointer(CUdeviceptr* ptr, CUmemoryPool pool,
                                            CUmemPoolPtrExportData* data) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (ptr == nullptr || data == nullptr) return CUDA_ERROR_INVALID_VALUE;
  CUdeviceptr exported = 0;
  std::memcpy(&exported, data->reserved, sizeof(exported));
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.pointers.find(exported);
  if (d.pools.count(reinterpret_cast<std::uint64_t>(pool)) == 0 || it == d.pointers.end() ||
      it->second.freed) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  ++it->second.ipc_opens;  // the import keeps the memory alive past the exporter's free
  *ptr = NewAddressLocked(d, it->second.bytes);
  d.pool_imports[*ptr] = exported;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr* base, size_t* size, CUdeviceptr dptr) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  CUdeviceptr key = dptr;
  if (auto import = d.ipc_imports.find(dptr); import != d.ipc_imports.end()) key = import->second;
  if (auto import = d.pool_imports.find(dptr); import != d.pool_imports.end()) key = import->second;
  auto it = d.pointers.find(key);
  if (it == d.pointers.end()) return CUDA_ERROR_NOT_FOUND;
  if (base != nullptr) *base = dptr;
  if (size != nullptr) *size = it->second.bytes;
  return CUDA_SUCCESS;
}

// ---- Graphs: allocation nodes take their memory at the first launch ---------------------------

FAKE_EXPORT CUresult cuGraphCreate(CUgraph* graph, unsigned int flags) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (graph == nullptr || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  const std::uint64_t id = NewAddressLocked(d, 1);
  d.graphs[id] = {};
  *graph = reinterpret_cast<CUgraph>(id);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuGraphDestroy(CUgraph graph) {
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  return d.graphs.erase(reinterpret_cast<std::uint64_t>(graph)) == 1 ? CUDA_SUCCESS
                                                                     : CUDA_ERROR_INVALID_VALUE;
}
FAKE_EXPORT CUresult cuGraphAddMemAllocNode(CUgraphNode* node, CUgraph graph,
                                            const CUgraphNode* /*dependencies*/, size_t /*count*/,
                                            CUDA_MEM_ALLOC_NODE_PARAMS* params) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (node == nullptr || params == nullptr || params->bytesize == 0 ||
      params->poolProps.location.type != CU_MEM_LOCATION_TYPE_DEVICE) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (const CUresult r = ValidDevice(params->poolProps.location.id); r != CUDA_SUCCESS) return r;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.graphs.find(reinterpret_cast<std::uint64_t>(graph));
  if (it == d.graphs.end()) return CUDA_ERROR_INVALID_VALUE;
  it->second.alloc_bytes[params->poolProps.location.id] += params->bytesize;
  params->dptr = NewAddressLocked(d, params->bytesize);  // the address is fixed at creation
  *node = reinterpret_cast<CUgraphNode>(NewAddressLocked(d, 1));
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuGraphInstantiateWithFlags(CUgraphExec* exec, CUgraph graph,
                                                 unsigned long long /*flags*/) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (exec == nullptr) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.graphs.find(reinterpret_cast<std::uint64_t>(graph));
  if (it == d.graphs.end()) return CUDA_ERROR_INVALID_VALUE;
  const std::uint64_t id = NewAddressLocked(d, 1);
  d.execs[id] = {it->second.alloc_bytes, false};
  *exec = reinterpret_cast<CUgraphExec>(id);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuGraphExecDestroy(CUgraphExec exec) {
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.execs.find(reinterpret_cast<std::uint64_t>(exec));
  if (it == d.execs.end()) return CUDA_ERROR_INVALID_VALUE;
  if (it->second.backed) {
    for (const auto& [device, bytes] : it->second.alloc_bytes) d.used[device] -= bytes;
  }
  d.execs.erase(it);
  PublishUsageLocked(d);
  return CUDA_SUCCESS;
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

namespace {

// The device a launch on `stream` runs on: its context's (the current one's for the NULL stream
// and the special handles); -1 for a stream the fake never created.
int LaunchDeviceLocked(const FakeDriver& d, CUstream stream) {
  const auto handle = reinterpret_cast<std::uintptr_t>(stream);
  if (handle <= 2)
    return t_current != nullptr ? t_current->device : -1;  // NULL, legacy, per-thread
  auto it = d.stream_context.find(stream);
  return it == d.stream_context.end() ? -1 : it->second->device;
}

// One kernel run on `device`. Per-device counts and simulated time only with "kernel-us" set,
// so that the launch the shim benchmark compares against stays one counter increment.
void Run(FakeDriver& d, int device) {
  d.launches.fetch_add(1, std::memory_order_relaxed);
  if (d.kernel_ns == 0) return;
  d.device_launches[device].fetch_add(1, std::memory_order_relaxed);
  d.device_busy_ns[device].fetch_add(d.kernel_ns, std::memory_order_relaxed);
}

// One kernel on `stream`: recorded into its capture, or run on `device`.
void LaunchLocked(FakeDriver& d, CUstream stream, int device) {
  if (auto it = d.captures.find(stream); stream != nullptr && it != d.captures.end()) {
    ++it->second.launches;  // recorded into the graph being captured
    d.captured_launches.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Run(d, device);
}

}  // namespace

FAKE_EXPORT CUresult cuLaunchKernel(CUfunction /*f*/, unsigned int, unsigned int, unsigned int,
                                    unsigned int, unsigned int, unsigned int, unsigned int,
                                    CUstream stream, void**, void**) {
  if (t_current == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  FakeDriver& d = Driver();
  if (stream == nullptr) {  // no lock, as before: the shim benchmark's baseline launch
    Run(d, t_current->device);
    return CUDA_SUCCESS;
  }
  std::lock_guard<std::mutex> lock(d.mutex);
  const int device = LaunchDeviceLocked(d, stream);
  LaunchLocked(d, stream, device >= 0 ? device : t_current->device);
  return CUDA_SUCCESS;
}
// Runs one kernel on each entry's stream, every stream on another device, the whole launch or
// nothing (as CUDA: CUDA_ERROR_INVALID_HANDLE for a stream it does not know, including the NULL
// stream, CUDA_ERROR_INVALID_DEVICE when two entries are on one device).
FAKE_EXPORT CUresult cuLaunchCooperativeKernelMultiDevice(CUDA_LAUNCH_PARAMS* params,
                                                          unsigned int device_count,
                                                          unsigned int /*flags*/) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (params == nullptr || device_count == 0) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  std::vector<int> devices;
  for (unsigned int i = 0; i < device_count; ++i) {
    if (params[i].hStream == nullptr) return CUDA_ERROR_INVALID_HANDLE;
    const int device = LaunchDeviceLocked(d, params[i].hStream);
    if (device < 0) return CUDA_ERROR_INVALID_HANDLE;
    if (std::find(devices.begin(), devices.end(), device) != devices.end()) {
      return CUDA_ERROR_INVALID_DEVICE;
    }
    devices.push_back(device);
  }
  for (unsigned int i = 0; i < device_count; ++i) LaunchLocked(d, params[i].hStream, devices[i]);
  return CUDA_SUCCESS;
}
FAKE_EXPORT std::uint64_t gpuslice_fake_cuda_device_launches(int device) {
  return device >= 0 && device < kMaxDevices ? Driver().device_launches[device].load() : 0;
}
FAKE_EXPORT std::uint64_t gpuslice_fake_cuda_device_busy_ns(int device) {
  return device >= 0 && device < kMaxDevices ? Driver().device_busy_ns[device].load() : 0;
}
FAKE_EXPORT CUresult cuLaunch(CUfunction f) {
  return cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr);
}
FAKE_EXPORT CUresult cuLaunchGrid(CUfunction f, int, int) {
  return cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, nullptr, nullptr, nullptr);
}
FAKE_EXPORT CUresult cuLaunchGridAsync(CUfunction f, int, int, CUstream stream) {
  return cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, stream, nullptr, nullptr);
}
FAKE_EXPORT std::uint64_t gpuslice_fake_cuda_captured_launches() {
  return Driver().captured_launches.load();
}

FAKE_EXPORT CUresult cuStreamCreate(CUstream* stream, unsigned int /*flags*/) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (stream == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (t_current == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  *stream = reinterpret_cast<CUstream>(NewAddressLocked(d, 1));
  d.stream_context[*stream] = t_current;
  return CUDA_SUCCESS;
}
// The stream's context; the current one for the NULL stream and the special handles.
FAKE_EXPORT CUresult cuStreamGetCtx(CUstream stream, CUcontext* context) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (context == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (reinterpret_cast<std::uintptr_t>(stream) <= 2) {
    if (t_current == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
    *context = reinterpret_cast<CUcontext>(t_current);
    return CUDA_SUCCESS;
  }
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.stream_context.find(stream);
  if (it == d.stream_context.end()) return CUDA_ERROR_INVALID_HANDLE;
  *context = reinterpret_cast<CUcontext>(it->second);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuStreamDestroy_v2(CUstream stream) {
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  d.stream_context.erase(stream);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuStreamBeginCapture_v2(CUstream stream, CUstreamCaptureMode mode) {
  if (const CUresult r = CheckReady(); r != CUDA_SUCCESS) return r;
  if (stream == nullptr) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;  // legacy stream
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  if (d.captures.count(stream) != 0) return CUDA_ERROR_INVALID_VALUE;
  d.captures[stream].mode = static_cast<int>(mode);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuStreamEndCapture(CUstream stream, CUgraph* graph) {
  if (graph == nullptr) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.captures.find(stream);
  if (it == d.captures.end()) return CUDA_ERROR_INVALID_VALUE;
  const bool invalidated = it->second.invalidated;
  d.captures.erase(it);
  if (invalidated) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
  const std::uint64_t id = NewAddressLocked(d, 1);
  d.graphs[id] = {};
  *graph = reinterpret_cast<CUgraph>(id);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuStreamIsCapturing(CUstream stream, CUstreamCaptureStatus* status) {
  if (status == nullptr) return CUDA_ERROR_INVALID_VALUE;
  FakeDriver& d = Driver();
  std::lock_guard<std::mutex> lock(d.mutex);
  auto it = d.captures.find(stream);
  *status = it == d.captures.end()   ? CU_STREAM_CAPTURE_STATUS_NONE
            : it->second.invalidated ? CU_STREAM_CAPTURE_STATUS_INVALIDATED
                                     : CU_STREAM_CAPTURE_STATUS_ACTIVE;
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode* mode) {
  if (mode == nullptr) return CUDA_ERROR_INVALID_VALUE;
  thread_local CUstreamCaptureMode current = CU_STREAM_CAPTURE_MODE_GLOBAL;
  std::swap(current, *mode);
  return CUDA_SUCCESS;
}
FAKE_EXPORT CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gx, unsigned int gy,
                                         unsigned int gz, unsigned int bx, unsigned int by,
                                         unsigned int bz, unsigned int shared, CUstream stream,
                                         void** params, void** extra) {
  return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, stream, params, extra);
}
FAKE_EXPORT CUresult cuGraphLaunch(CUgraphExec graph, CUstream /*stream*/) {
  if (t_current == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  FakeDriver& d = Driver();
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    auto it = d.execs.find(reinterpret_cast<std::uint64_t>(graph));
    if (it != d.execs.end() && !it->second.backed) {
      for (const auto& [device, bytes] : it->second.alloc_bytes) {
        if (d.used[device] + bytes > d.capacity ||
            fake_dmem::Refuses(device, d.used[device] + bytes)) {
          PublishUsageLocked(d);  // gives back what earlier devices of the graph charged
          return CUDA_ERROR_OUT_OF_MEMORY;
        }
      }
      for (const auto& [device, bytes] : it->second.alloc_bytes) d.used[device] += bytes;
      it->second.backed = true;  // kept by the graph's pool until the exec is destroyed
      PublishUsageLocked(d);
    }
  }
  d.launches.fetch_add(1, std::memory_order_relaxed);
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
    FAKE_PROC("cuLaunch", 2000, false, cuLaunch),
    FAKE_PROC("cuLaunchGrid", 2000, false, cuLaunchGrid),
    FAKE_PROC("cuLaunchGridAsync", 2000, false, cuLaunchGridAsync),
    FAKE_PROC("cuStreamCreate", 2000, false, cuStreamCreate),
    FAKE_PROC("cuStreamDestroy", 4000, false, cuStreamDestroy_v2),
    FAKE_PROC("cuStreamBeginCapture", 10010, false, cuStreamBeginCapture_v2),
    FAKE_PROC("cuStreamEndCapture", 10000, false, cuStreamEndCapture),
    FAKE_PROC("cuStreamIsCapturing", 10000, false, cuStreamIsCapturing),
    FAKE_PROC("cuThreadExchangeStreamCaptureMode", 10010, false, cuThreadExchangeStreamCaptureMode),
    FAKE_PROC("cuDeviceGetDefaultMemPool", 11020, false, cuDeviceGetDefaultMemPool),
    FAKE_PROC("cuDeviceGetMemPool", 11020, false, cuDeviceGetMemPool),
    FAKE_PROC("cuMemPoolSetAttribute", 11020, false, cuMemPoolSetAttribute),
    FAKE_PROC("cuMemPoolTrimTo", 11020, false, cuMemPoolTrimTo),
    FAKE_PROC("cuStreamSynchronize", 2000, false, cuStreamSynchronize),
    FAKE_PROC("cuStreamSynchronize", 7000, true, cuStreamSynchronize_ptsz),
    FAKE_PROC("cuCtxSynchronize", 2000, false, cuCtxSynchronize),
    FAKE_PROC("cuEventSynchronize", 2000, false, cuEventSynchronize),
    FAKE_PROC("cuMemAddressReserve", 10020, false, cuMemAddressReserve),
    FAKE_PROC("cuMemAddressFree", 10020, false, cuMemAddressFree),
    FAKE_PROC("cuMemMap", 10020, false, cuMemMap),
    FAKE_PROC("cuMemUnmap", 10020, false, cuMemUnmap),
    FAKE_PROC("cuMemRetainAllocationHandle", 11000, false, cuMemRetainAllocationHandle),
    FAKE_PROC("cuMemExportToShareableHandle", 10020, false, cuMemExportToShareableHandle),
    FAKE_PROC("cuMemImportFromShareableHandle", 10020, false, cuMemImportFromShareableHandle),
    FAKE_PROC("cuIpcGetMemHandle", 4010, false, cuIpcGetMemHandle),
    FAKE_PROC("cuIpcOpenMemHandle", 4010, false, cuIpcOpenMemHandle),
    FAKE_PROC("cuIpcOpenMemHandle", 11000, false, cuIpcOpenMemHandle_v2),
    FAKE_PROC("cuIpcCloseMemHandle", 4010, false, cuIpcCloseMemHandle),
    FAKE_PROC("cuMemGetAddressRange", 3020, false, cuMemGetAddressRange_v2),
    FAKE_PROC("cuMemPoolExportPointer", 11020, false, cuMemPoolExportPointer),
    FAKE_PROC("cuMemPoolImportPointer", 11020, false, cuMemPoolImportPointer),
    FAKE_PROC("cuGraphCreate", 10000, false, cuGraphCreate),
    FAKE_PROC("cuGraphDestroy", 10000, false, cuGraphDestroy),
    FAKE_PROC("cuGraphAddMemAllocNode", 11040, false, cuGraphAddMemAllocNode),
    FAKE_PROC("cuGraphInstantiate", 11000, false, cuGraphInstantiateWithFlags),
    FAKE_PROC("cuGraphInstantiateWithFlags", 11040, false, cuGraphInstantiateWithFlags),
    FAKE_PROC("cuGraphExecDestroy", 10000, false, cuGraphExecDestroy),
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
