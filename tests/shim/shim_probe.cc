// A CUDA application for the shim tests, built twice: linked directly against libcuda.so.1
// (PROBE_DIRECT) and reaching the driver the way the CUDA runtime does — dlopen("libcuda.so.1")
// then cuGetProcAddress for everything else — and NVML by dlopen + dlsym. The test harness runs
// it under the shim (LD_PRELOAD) with a limits file and reads the key=value lines it prints.
//   probe info                 limits as the process sees them (CUDA + NVML)
//   probe alloc BYTES          one cuMemAlloc; prints its result
//   probe paths                every allocation path: counted bytes, driver bytes, freed
//   probe hold BYTES           allocate, print "ready", wait for stdin to close
//   probe race THREADS BYTES   wait for a byte on stdin, THREADS threads allocate BYTES until
//                              refused, print the count won, hold until stdin closes
//   probe procaddr             cuGetProcAddress hands out the shim's wrappers
//   probe context              context creation overhead is counted and given back
//   probe idle                 makes no CUDA call: is the real driver loaded?
//   probe version              a forwarded call (cuDriverGetVersion) as the very first call
//   probe fork-exit MODE BYTES hold BYTES, then a child made with MODE (raw-fork: the fork
//                              syscall, no atfork handlers; vfork) exits with exit(); print
//                              "ready", wait for stdin to close
//   probe fork-daemon BYTES    a raw-fork child outlives its parent and then holds BYTES; prints
//                              "ready" once the parent has exited normally
//   probe lifetime SCENARIO BYTES  memory kept alive past the call that "frees" it: prints one
//                              "step=NAME result=R counted=C fake=F fake1=F1" line per step
//                              (vmm-map-release, vmm-retain, vmm-export-import, pool-threshold,
//                              async-free, graph, managed-pool, pool-gpu, ipc, pool-import)
//   probe primary-cycle BYTES  allocate BYTES, release the primary context (last reference:
//                              the driver frees everything), retain it again, allocate again
#include <dlfcn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shim/cuda_driver_types.h"
#include "shim/nvml_driver_types.h"

#define PROBE_CUDA_FUNCTIONS(X)                                                                  \
  X(cuInit, "cuInit", (unsigned int))                                                            \
  X(cuDeviceGet, "cuDeviceGet", (CUdevice*, int))                                                \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", (CUcontext*, CUdevice))                \
  X(cuDevicePrimaryCtxRelease_v2, "cuDevicePrimaryCtxRelease", (CUdevice))                       \
  X(cuCtxSetCurrent, "cuCtxSetCurrent", (CUcontext))                                             \
  X(cuCtxCreate_v2, "cuCtxCreate", (CUcontext*, unsigned int, CUdevice))                         \
  X(cuCtxDestroy_v2, "cuCtxDestroy", (CUcontext))                                                \
  X(cuMemAlloc_v2, "cuMemAlloc", (CUdeviceptr*, size_t))                                         \
  X(cuMemFree_v2, "cuMemFree", (CUdeviceptr))                                                    \
  X(cuMemAllocPitch_v2, "cuMemAllocPitch", (CUdeviceptr*, size_t*, size_t, size_t, unsigned))    \
  X(cuMemAllocManaged, "cuMemAllocManaged", (CUdeviceptr*, size_t, unsigned))                    \
  X(cuMemAllocAsync, "cuMemAllocAsync", (CUdeviceptr*, size_t, CUstream))                        \
  X(cuMemFreeAsync, "cuMemFreeAsync", (CUdeviceptr, CUstream))                                   \
  X(cuMemPoolCreate, "cuMemPoolCreate", (CUmemoryPool*, const CUmemPoolProps*))                  \
  X(cuMemPoolDestroy, "cuMemPoolDestroy", (CUmemoryPool))                                        \
  X(cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync",                                          \
    (CUdeviceptr*, size_t, CUmemoryPool, CUstream))                                              \
  X(cuMemCreate, "cuMemCreate",                                                                  \
    (CUmemGenericAllocationHandle*, size_t, const CUmemAllocationProp*, unsigned long long))     \
  X(cuMemRelease, "cuMemRelease", (CUmemGenericAllocationHandle))                                \
  X(cuArrayCreate_v2, "cuArrayCreate", (CUarray*, const CUDA_ARRAY_DESCRIPTOR*))                 \
  X(cuArray3DCreate_v2, "cuArray3DCreate", (CUarray*, const CUDA_ARRAY3D_DESCRIPTOR*))           \
  X(cuArrayDestroy, "cuArrayDestroy", (CUarray))                                                 \
  X(cuMipmappedArrayCreate, "cuMipmappedArrayCreate",                                            \
    (CUmipmappedArray*, const CUDA_ARRAY3D_DESCRIPTOR*, unsigned))                               \
  X(cuMipmappedArrayDestroy, "cuMipmappedArrayDestroy", (CUmipmappedArray))                      \
  X(cuMemGetInfo_v2, "cuMemGetInfo", (size_t*, size_t*))                                         \
  X(cuDeviceTotalMem_v2, "cuDeviceTotalMem", (size_t*, CUdevice))                                \
  X(cuMemAllocHost_v2, "cuMemAllocHost", (void**, size_t))                                       \
  X(cuMemFreeHost, "cuMemFreeHost", (void*))                                                     \
  X(cuLaunchKernel, "cuLaunchKernel",                                                            \
    (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, \
     void**, void**))                                                                            \
  X(cuMemAddressReserve, "cuMemAddressReserve",                                                  \
    (CUdeviceptr*, size_t, size_t, CUdeviceptr, unsigned long long))                             \
  X(cuMemMap, "cuMemMap",                                                                        \
    (CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long))             \
  X(cuMemUnmap, "cuMemUnmap", (CUdeviceptr, size_t))                                             \
  X(cuMemRetainAllocationHandle, "cuMemRetainAllocationHandle",                                  \
    (CUmemGenericAllocationHandle*, void*))                                                      \
  X(cuMemExportToShareableHandle, "cuMemExportToShareableHandle",                                \
    (void*, CUmemGenericAllocationHandle, CUmemAllocationHandleType, unsigned long long))        \
  X(cuMemImportFromShareableHandle, "cuMemImportFromShareableHandle",                            \
    (CUmemGenericAllocationHandle*, void*, CUmemAllocationHandleType))                           \
  X(cuMemPoolSetAttribute, "cuMemPoolSetAttribute", (CUmemoryPool, CUmemPool_attribute, void*))  \
  X(cuMemPoolTrimTo, "cuMemPoolTrimTo", (CUmemoryPool, size_t))                                  \
  X(cuStreamSynchronize, "cuStreamSynchronize", (CUstream))                                      \
  X(cuGraphCreate, "cuGraphCreate", (CUgraph*, unsigned))                                        \
  X(cuGraphAddMemAllocNode, "cuGraphAddMemAllocNode",                                            \
    (CUgraphNode*, CUgraph, const CUgraphNode*, size_t, CUDA_MEM_ALLOC_NODE_PARAMS*))            \
  X(cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags",                                  \
    (CUgraphExec*, CUgraph, unsigned long long))                                                 \
  X(cuGraphLaunch, "cuGraphLaunch", (CUgraphExec, CUstream))                                     \
  X(cuGraphExecDestroy, "cuGraphExecDestroy", (CUgraphExec))                                     \
  X(cuIpcGetMemHandle, "cuIpcGetMemHandle", (CUipcMemHandle*, CUdeviceptr))                      \
  X(cuIpcOpenMemHandle_v2, "cuIpcOpenMemHandle", (CUdeviceptr*, CUipcMemHandle, unsigned))       \
  X(cuIpcCloseMemHandle, "cuIpcCloseMemHandle", (CUdeviceptr))                                   \
  X(cuMemPoolExportPointer, "cuMemPoolExportPointer", (CUmemPoolPtrExportData*, CUdeviceptr))    \
  X(cuMemPoolImportPointer, "cuMemPoolImportPointer",                                            \
    (CUdeviceptr*, CUmemoryPool, CUmemPoolPtrExportData*))

#ifdef PROBE_DIRECT
extern "C" {
#define PROBE_DECLARE(name, family, params) CUresult name params;
PROBE_CUDA_FUNCTIONS(PROBE_DECLARE)
#undef PROBE_DECLARE
CUresult cuGetProcAddress_v2(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);
CUresult cuDriverGetVersion(int*);
nvmlReturn_t nvmlInit_v2();
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int, nvmlDevice_t*);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t, nvmlMemory_t*);
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t, nvmlMemory_v2_t*);
}
#endif

namespace {

struct Api {
#define PROBE_MEMBER(name, family, params) CUresult(*name) params = nullptr;
  PROBE_CUDA_FUNCTIONS(PROBE_MEMBER)
#undef PROBE_MEMBER
  CUresult (*cuGetProcAddress_v2)(const char*, void**, int, cuuint64_t,
                                  CUdriverProcAddressQueryResult*) = nullptr;
  nvmlReturn_t (*nvmlInit_v2)() = nullptr;
  nvmlReturn_t (*nvmlDeviceGetHandleByIndex_v2)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*nvmlDeviceGetMemoryInfo)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*nvmlDeviceGetMemoryInfo_v2)(nvmlDevice_t, nvmlMemory_v2_t*) = nullptr;
};

Api g;
void* g_cuda_handle = nullptr;

[[noreturn]] void Die(const char* what, int code) {
  std::printf("error=%s code=%d\n", what, code);
  std::fflush(stdout);
  std::exit(2);
}

void LoadApi() {
#ifdef PROBE_DIRECT
#define PROBE_BIND(name, family, params) g.name = &::name;
  PROBE_CUDA_FUNCTIONS(PROBE_BIND)
#undef PROBE_BIND
  g.cuGetProcAddress_v2 = &::cuGetProcAddress_v2;
  g.nvmlInit_v2 = &::nvmlInit_v2;
  g.nvmlDeviceGetHandleByIndex_v2 = &::nvmlDeviceGetHandleByIndex_v2;
  g.nvmlDeviceGetMemoryInfo = &::nvmlDeviceGetMemoryInfo;
  g.nvmlDeviceGetMemoryInfo_v2 = &::nvmlDeviceGetMemoryInfo_v2;
  g_cuda_handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
#else
  // As the CUDA runtime does: only cuGetProcAddress comes from dlsym.
  g_cuda_handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (g_cuda_handle == nullptr) Die("dlopen-libcuda", 0);
  g.cuGetProcAddress_v2 = reinterpret_cast<decltype(g.cuGetProcAddress_v2)>(
      dlsym(g_cuda_handle, "cuGetProcAddress_v2"));
  if (g.cuGetProcAddress_v2 == nullptr) Die("no-cuGetProcAddress_v2", 0);
  const cuuint64_t flags = std::getenv("PROBE_PER_THREAD") != nullptr
                               ? CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
                               : CU_GET_PROC_ADDRESS_DEFAULT;
#define PROBE_LOOKUP(name, family, params)                                                    \
  {                                                                                           \
    void* fn = nullptr;                                                                       \
    CUdriverProcAddressQueryResult status{};                                                  \
    const int version = std::strcmp(family, "cuCtxCreate") == 0 ? 12000 : 13000; /* v2 ABI */ \
    if (g.cuGetProcAddress_v2(family, &fn, version, flags, &status) == CUDA_SUCCESS) {        \
      g.name = reinterpret_cast<decltype(g.name)>(fn);                                        \
    }                                                                                         \
  }
  PROBE_CUDA_FUNCTIONS(PROBE_LOOKUP)
#undef PROBE_LOOKUP
  if (void* nvml = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL); nvml != nullptr) {
    g.nvmlInit_v2 = reinterpret_cast<decltype(g.nvmlInit_v2)>(dlsym(nvml, "nvmlInit_v2"));
    g.nvmlDeviceGetHandleByIndex_v2 = reinterpret_cast<decltype(g.nvmlDeviceGetHandleByIndex_v2)>(
        dlsym(nvml, "nvmlDeviceGetHandleByIndex_v2"));
    g.nvmlDeviceGetMemoryInfo = reinterpret_cast<decltype(g.nvmlDeviceGetMemoryInfo)>(
        dlsym(nvml, "nvmlDeviceGetMemoryInfo"));
    g.nvmlDeviceGetMemoryInfo_v2 = reinterpret_cast<decltype(g.nvmlDeviceGetMemoryInfo_v2)>(
        dlsym(nvml, "nvmlDeviceGetMemoryInfo_v2"));
  }
#endif
}

// The fake driver's own bookkeeping (test hooks), found by its path.
std::uint64_t FakeUsedOn(int device) {
  static auto fn = [] {
    const char* path = std::getenv("GPUSLICE_TEST_FAKE_CUDA");
    void* h = path != nullptr ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : nullptr;
    return h != nullptr
               ? reinterpret_cast<std::uint64_t (*)(int)>(dlsym(h, "gpuslice_fake_cuda_used_bytes"))
               : nullptr;
  }();
  return fn != nullptr ? fn(device) : UINT64_MAX;
}

std::uint64_t FakeUsed() {
  static auto fn = [] {
    const char* path = std::getenv("GPUSLICE_TEST_FAKE_CUDA");
    void* h = path != nullptr ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : nullptr;
    return h != nullptr
               ? reinterpret_cast<std::uint64_t (*)(int)>(dlsym(h, "gpuslice_fake_cuda_used_bytes"))
               : nullptr;
  }();
  return fn != nullptr ? fn(0) : UINT64_MAX;
}

CUcontext SetUp() {
  if (const CUresult r = g.cuInit(0); r != CUDA_SUCCESS) Die("cuInit", r);
  CUdevice device = 0;
  if (const CUresult r = g.cuDeviceGet(&device, 0); r != CUDA_SUCCESS) Die("cuDeviceGet", r);
  CUcontext context = nullptr;
  if (const CUresult r = g.cuDevicePrimaryCtxRetain(&context, device); r != CUDA_SUCCESS) {
    Die("cuDevicePrimaryCtxRetain", r);
  }
  if (const CUresult r = g.cuCtxSetCurrent(context); r != CUDA_SUCCESS) Die("cuCtxSetCurrent", r);
  return context;
}

// The container's usage as the process sees it (total - free).
std::uint64_t Counted() {
  size_t free_bytes = 0, total = 0;
  if (const CUresult r = g.cuMemGetInfo_v2(&free_bytes, &total); r != CUDA_SUCCESS) {
    Die("cuMemGetInfo", r);
  }
  return total - free_bytes;
}

void Info() {
  SetUp();
  size_t free_bytes = 0, total = 0, device_total = 0;
  std::printf("cuMemGetInfo=%d\n", g.cuMemGetInfo_v2(&free_bytes, &total));
  std::printf("cuda_free=%zu\ncuda_total=%zu\n", free_bytes, total);
  std::printf("cuDeviceTotalMem=%d\n", g.cuDeviceTotalMem_v2(&device_total, 0));
  std::printf("device_total=%zu\n", device_total);
  if (g.nvmlInit_v2 != nullptr && g.nvmlInit_v2() == NVML_SUCCESS) {
    nvmlDevice_t device = nullptr;
    g.nvmlDeviceGetHandleByIndex_v2(0, &device);
    nvmlMemory_t m1{};
    std::printf("nvml_v1=%d\n", g.nvmlDeviceGetMemoryInfo(device, &m1));
    std::printf("nvml_total=%llu\nnvml_used=%llu\nnvml_free=%llu\n", m1.total, m1.used, m1.free);
    nvmlMemory_v2_t m2{};
    m2.version = GPUSLICE_NVML_MEMORY_V2_VERSION;
    std::printf("nvml_v2=%d\n", g.nvmlDeviceGetMemoryInfo_v2(device, &m2));
    std::printf("nvml2_total=%llu\nnvml2_used=%llu\nnvml2_free=%llu\n", m2.total, m2.used, m2.free);
  }
}

void Alloc(std::uint64_t bytes) {
  SetUp();
  CUdeviceptr p = 0;
  std::printf("result=%d\n", g.cuMemAlloc_v2(&p, bytes));
  std::printf("counted=%llu\nfake=%llu\n", static_cast<unsigned long long>(Counted()),
              static_cast<unsigned long long>(FakeUsed()));
}

void Report(const char* path, CUresult alloc, std::uint64_t counted, std::uint64_t fake,
            CUresult release, std::uint64_t counted_after, std::uint64_t fake_after) {
  std::printf(
      "path=%s alloc=%d counted=%llu fake=%llu free=%d counted_after=%llu fake_after=%llu\n", path,
      alloc, static_cast<unsigned long long>(counted), static_cast<unsigned long long>(fake),
      release, static_cast<unsigned long long>(counted_after),
      static_cast<unsigned long long>(fake_after));
}

// Runs allocate(); reports what the shim and the fake driver count; runs release().
template <typename Allocate, typename Release>
void Path(const char* name, Allocate allocate, Release release) {
  const std::uint64_t counted0 = Counted();
  const std::uint64_t fake0 = FakeUsed();
  const CUresult a = allocate();
  const std::uint64_t counted = Counted() - counted0;
  const std::uint64_t fake = FakeUsed() - fake0;
  const CUresult r = a == CUDA_SUCCESS ? release() : CUDA_SUCCESS;
  Report(name, a, counted, fake, r, Counted() - counted0, FakeUsed() - fake0);
}

// A stream-ordered free gives the memory back when the stream gets there (then the pool releases
// it, its threshold being 0): synchronise.
CUresult FreeAsyncAndSync(CUdeviceptr p) {
  const CUresult r = g.cuMemFreeAsync(p, nullptr);
  return r != CUDA_SUCCESS ? r : g.cuStreamSynchronize(nullptr);
}

void Paths(std::uint64_t bytes) {
  SetUp();
  CUdeviceptr p = 0;
  Path(
      "cuMemAlloc", [&] { return g.cuMemAlloc_v2(&p, bytes); }, [&] { return g.cuMemFree_v2(p); });
  size_t pitch = 0;
  Path(
      "cuMemAllocPitch", [&] { return g.cuMemAllocPitch_v2(&p, &pitch, 1000, bytes / 1024, 4); },
      [&] { return g.cuMemFree_v2(p); });
  Path(
      "cuMemAllocManaged", [&] { return g.cuMemAllocManaged(&p, bytes, 1); },
      [&] { return g.cuMemFree_v2(p); });
  Path(
      "cuMemAllocAsync", [&] { return g.cuMemAllocAsync(&p, bytes, nullptr); },
      [&] { return FreeAsyncAndSync(p); });
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
  CUmemoryPool pool = nullptr;
  if (g.cuMemPoolCreate(&pool, &props) != CUDA_SUCCESS) Die("cuMemPoolCreate", 0);
  Path(
      "cuMemAllocFromPoolAsync",
      [&] { return g.cuMemAllocFromPoolAsync(&p, bytes, pool, nullptr); },
      [&] { return FreeAsyncAndSync(p); });
  g.cuMemPoolDestroy(pool);
  props.location = {CU_MEM_LOCATION_TYPE_HOST, 0};
  if (g.cuMemPoolCreate(&pool, &props) != CUDA_SUCCESS) Die("cuMemPoolCreate-host", 0);
  Path(
      "cuMemAllocFromPoolAsync-host",
      [&] { return g.cuMemAllocFromPoolAsync(&p, bytes, pool, nullptr); },
      [&] { return g.cuMemFreeAsync(p, nullptr); });
  g.cuMemPoolDestroy(pool);
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
  CUmemGenericAllocationHandle handle = 0;
  Path(
      "cuMemCreate", [&] { return g.cuMemCreate(&handle, bytes, &prop, 0); },
      [&] { return g.cuMemRelease(handle); });
  prop.location = {CU_MEM_LOCATION_TYPE_HOST_NUMA, 0};
  Path(
      "cuMemCreate-host", [&] { return g.cuMemCreate(&handle, bytes, &prop, 0); },
      [&] { return g.cuMemRelease(handle); });
  CUarray array = nullptr;
  const CUDA_ARRAY_DESCRIPTOR d2{bytes / 4096, 1024, CU_AD_FORMAT_FLOAT, 1};
  Path(
      "cuArrayCreate", [&] { return g.cuArrayCreate_v2(&array, &d2); },
      [&] { return g.cuArrayDestroy(array); });
  const CUDA_ARRAY3D_DESCRIPTOR d3{bytes / (64 * 64 * 4), 64, 64, CU_AD_FORMAT_UNSIGNED_INT8, 4, 0};
  Path(
      "cuArray3DCreate", [&] { return g.cuArray3DCreate_v2(&array, &d3); },
      [&] { return g.cuArrayDestroy(array); });
  CUmipmappedArray mip = nullptr;
  const CUDA_ARRAY3D_DESCRIPTOR dm{1024, 1024, 0, CU_AD_FORMAT_HALF, 2, 0};
  Path(
      "cuMipmappedArrayCreate", [&] { return g.cuMipmappedArrayCreate(&mip, &dm, 4); },
      [&] { return g.cuMipmappedArrayDestroy(mip); });
  void* host = nullptr;
  Path(
      "cuMemAllocHost", [&] { return g.cuMemAllocHost_v2(&host, bytes); },
      [&] { return g.cuMemFreeHost(host); });
}

void Context() {
  SetUp();
  const std::uint64_t before = Counted();
  CUcontext context = nullptr;
  const CUresult created = g.cuCtxCreate_v2(&context, 0, 0);
  g.cuCtxSetCurrent(context);
  const std::uint64_t during = Counted();
  const CUresult destroyed = g.cuCtxDestroy_v2(context);
  CUcontext primary = nullptr;
  g.cuDevicePrimaryCtxRetain(&primary, 0);
  g.cuCtxSetCurrent(primary);
  std::printf("primary_counted=%llu\ncreate=%d\nwith_context=%llu\ndestroy=%d\nafter=%llu\n",
              static_cast<unsigned long long>(before), created,
              static_cast<unsigned long long>(during), destroyed,
              static_cast<unsigned long long>(Counted()));
}

// ---- Lifetime scenarios -------------------------------------------------------------------------

void Step(const char* name, CUresult result) {
  std::printf("step=%s result=%d counted=%llu fake=%llu fake1=%llu\n", name, result,
              static_cast<unsigned long long>(Counted()),
              static_cast<unsigned long long>(FakeUsedOn(0)),
              static_cast<unsigned long long>(FakeUsedOn(1)));
}

CUmemAllocationProp DeviceProp(int device) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location = {CU_MEM_LOCATION_TYPE_DEVICE, device};
  return prop;
}

void Vmm(const std::string& scenario, std::uint64_t bytes) {
  const CUmemAllocationProp prop = DeviceProp(0);
  CUmemGenericAllocationHandle handle = 0;
  CUdeviceptr va = 0;
  Step("create", g.cuMemCreate(&handle, bytes, &prop, 0));
  g.cuMemAddressReserve(&va, bytes, 0, 0, 0);
  Step("map", g.cuMemMap(va, bytes, 0, handle, 0));
  CUmemGenericAllocationHandle other = 0;
  if (scenario == "vmm-retain") {
    Step("retain", g.cuMemRetainAllocationHandle(&other, reinterpret_cast<void*>(va)));
  } else if (scenario == "vmm-export-import") {
    int fd = -1;
    Step("export",
         g.cuMemExportToShareableHandle(&fd, handle, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0));
    Step("import", g.cuMemImportFromShareableHandle(
                       &other, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)),
                       CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR));
  }
  Step("release", g.cuMemRelease(handle));
  if (scenario != "vmm-map-release") Step("unmap", g.cuMemUnmap(va, bytes));
  CUmemGenericAllocationHandle second = 0;
  const CUresult again = g.cuMemCreate(&second, bytes, &prop, 0);
  Step("second", again);
  if (again == CUDA_SUCCESS) g.cuMemRelease(second);
  if (scenario == "vmm-map-release") {
    Step("unmap", g.cuMemUnmap(va, bytes));
  } else {
    Step("release-other", g.cuMemRelease(other));
  }
}

void Pools(const std::string& scenario, std::uint64_t bytes) {
  CUdeviceptr p = 0;
  CUdeviceptr q = 0;
  if (scenario == "async-free") {
    Step("alloc", g.cuMemAllocAsync(&p, bytes, nullptr));
    Step("free-async", g.cuMemFreeAsync(p, nullptr));
    Step("other-alloc", g.cuMemAlloc_v2(&q, bytes));
    Step("same-stream-realloc", g.cuMemAllocAsync(&p, bytes, nullptr));
    Step("free-async-again", g.cuMemFreeAsync(p, nullptr));
    Step("sync", g.cuStreamSynchronize(nullptr));
    Step("after-sync-alloc", g.cuMemAlloc_v2(&q, bytes));
    return;
  }
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
  if (scenario == "managed-pool") {
    props.allocType = CU_MEM_ALLOCATION_TYPE_MANAGED;
    props.location = {CU_MEM_LOCATION_TYPE_HOST, 0};
  } else if (scenario == "pool-gpu") {
    props.location = {CU_MEM_LOCATION_TYPE_DEVICE, 1};
  }
  CUmemoryPool pool = nullptr;
  Step("pool", g.cuMemPoolCreate(&pool, &props));
  if (scenario == "managed-pool" || scenario == "pool-gpu") {
    const CUresult over = g.cuMemAllocFromPoolAsync(&p, 2 * bytes, pool, nullptr);
    Step("alloc-twice", over);
    if (over == CUDA_SUCCESS) g.cuMemFreeAsync(p, nullptr);
    Step("alloc", g.cuMemAllocFromPoolAsync(&p, bytes, pool, nullptr));
    return;
  }
  cuuint64_t keep_everything = UINT64_MAX;
  Step("threshold",
       g.cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep_everything));
  Step("alloc", g.cuMemAllocFromPoolAsync(&p, bytes, pool, nullptr));
  Step("free-async", g.cuMemFreeAsync(p, nullptr));
  Step("sync", g.cuStreamSynchronize(nullptr));
  Step("other-alloc", g.cuMemAlloc_v2(&q, bytes));
  Step("pool-realloc", g.cuMemAllocFromPoolAsync(&p, bytes, pool, nullptr));
  Step("free-async-again", g.cuMemFreeAsync(p, nullptr));
  Step("sync-again", g.cuStreamSynchronize(nullptr));
  Step("trim", g.cuMemPoolTrimTo(pool, 0));
}

void Graph(std::uint64_t bytes) {
  CUgraph graph = nullptr;
  Step("graph", g.cuGraphCreate(&graph, 0));
  CUDA_MEM_ALLOC_NODE_PARAMS params{};
  params.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  params.poolProps.location = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
  params.bytesize = bytes;
  CUgraphNode node = nullptr;
  Step("add-alloc-node", g.cuGraphAddMemAllocNode(&node, graph, nullptr, 0, &params));
  CUgraphExec exec = nullptr;
  Step("instantiate", g.cuGraphInstantiateWithFlags(&exec, graph, 0));
  Step("launch", g.cuGraphLaunch(exec, nullptr));
  Step("launch-again", g.cuGraphLaunch(exec, nullptr));
  CUdeviceptr q = 0;
  Step("other-alloc", g.cuMemAlloc_v2(&q, bytes));
  Step("exec-destroy", g.cuGraphExecDestroy(exec));
}

void Ipc(std::uint64_t bytes) {
  CUdeviceptr p = 0;
  Step("alloc", g.cuMemAlloc_v2(&p, bytes));
  CUipcMemHandle handle{};
  Step("ipc-get", g.cuIpcGetMemHandle(&handle, p));
  CUdeviceptr opened = 0;
  const CUresult open = g.cuIpcOpenMemHandle_v2(&opened, handle, 1);
  Step("ipc-open", open);
  Step("free", g.cuMemFree_v2(p));
  CUdeviceptr q = 0;
  const CUresult again = g.cuMemAlloc_v2(&q, bytes);
  Step("other-alloc", again);
  if (again == CUDA_SUCCESS) g.cuMemFree_v2(q);
  if (open == CUDA_SUCCESS) Step("ipc-close", g.cuIpcCloseMemHandle(opened));
}

// The exporter allocates from a pool and exports the pointer; an importer (here: the same
// process, through another pool handle) imports it; the exporter frees and synchronises.
void PoolImport(std::uint64_t bytes) {
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
  CUmemoryPool pool = nullptr;
  CUmemoryPool importer_pool = nullptr;
  Step("pool", g.cuMemPoolCreate(&pool, &props));
  Step("importer-pool", g.cuMemPoolCreate(&importer_pool, &props));
  CUdeviceptr p = 0;
  Step("alloc", g.cuMemAllocFromPoolAsync(&p, bytes, pool, nullptr));
  CUmemPoolPtrExportData data{};
  Step("export", g.cuMemPoolExportPointer(&data, p));
  CUdeviceptr imported = 0;
  const CUresult import = g.cuMemPoolImportPointer(&imported, importer_pool, &data);
  Step("import", import);
  Step("free", g.cuMemFreeAsync(p, nullptr));
  Step("sync", g.cuStreamSynchronize(nullptr));
  CUdeviceptr q = 0;
  const CUresult again = g.cuMemAlloc_v2(&q, bytes);
  Step("other-alloc", again);
  if (again == CUDA_SUCCESS) g.cuMemFree_v2(q);
  if (import == CUDA_SUCCESS) {
    Step("free-import", g.cuMemFree_v2(imported));
    Step("sync-again", g.cuStreamSynchronize(nullptr));
  }
}

void Lifetime(const std::string& scenario, std::uint64_t bytes) {
  SetUp();
  if (scenario.rfind("vmm-", 0) == 0) {
    Vmm(scenario, bytes);
  } else if (scenario == "graph") {
    Graph(bytes);
  } else if (scenario == "ipc") {
    Ipc(bytes);
  } else if (scenario == "pool-import") {
    PoolImport(bytes);
  } else {
    Pools(scenario, bytes);
  }
}

void WaitForStdinClose() {
  char c;
  while (read(0, &c, 1) > 0) {
  }
}

void PrimaryCycle(std::uint64_t bytes) {
  SetUp();
  CUdeviceptr p = 0;
  std::printf("first=%d\n", g.cuMemAlloc_v2(&p, bytes));
  std::printf("release=%d\n", g.cuDevicePrimaryCtxRelease_v2(0));
  std::printf("fake_after_release=%llu\n", static_cast<unsigned long long>(FakeUsed()));
  SetUp();
  std::printf("counted_after_release=%llu\n", static_cast<unsigned long long>(Counted()));
  std::printf("second=%d\n", g.cuMemAlloc_v2(&p, bytes));
}

void ForkExit(const std::string& mode, std::uint64_t bytes) {
  SetUp();
  CUdeviceptr p = 0;
  std::printf("result=%d\n", g.cuMemAlloc_v2(&p, bytes));
  std::fflush(stdout);
  pid_t child = 0;
  if (mode == "vfork") {
    child = vfork();
    if (child == 0) std::exit(0);  // runs the shim's destructors in the shared address space
  } else {
    child = static_cast<pid_t>(syscall(SYS_fork));
    if (child == 0) std::exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  std::printf("child_status=%d\nready\n", status);
  std::fflush(stdout);
  WaitForStdinClose();
}

void ForkDaemon(std::uint64_t bytes) {
  SetUp();
  const pid_t parent = getpid();
  const long child = syscall(SYS_fork);
  if (child != 0) std::exit(0);  // the parent exits normally: its destructors run
  while (getppid() == parent) usleep(1000);
  CUdeviceptr p = 0;
  std::printf("result=%d\nready\n", g.cuMemAlloc_v2(&p, bytes));
  std::fflush(stdout);
  WaitForStdinClose();
}

void Hold(std::uint64_t bytes) {
  SetUp();
  CUdeviceptr p = 0;
  std::printf("result=%d\nready\n", g.cuMemAlloc_v2(&p, bytes));
  std::fflush(stdout);
  WaitForStdinClose();
}

void Race(int threads, std::uint64_t bytes) {
  const CUcontext context = SetUp();
  std::printf("armed\n");
  std::fflush(stdout);
  char go;
  if (read(0, &go, 1) != 1) Die("no-go", 0);
  std::atomic<int> won{0};
  std::atomic<int> other_errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      g.cuCtxSetCurrent(context);
      for (;;) {
        CUdeviceptr p = 0;
        const CUresult r = g.cuMemAlloc_v2(&p, bytes);
        if (r == CUDA_ERROR_OUT_OF_MEMORY) break;
        if (r != CUDA_SUCCESS) {
          other_errors.fetch_add(1);
          break;
        }
        won.fetch_add(1);
      }
    });
  }
  for (std::thread& t : pool) t.join();
  std::printf("won=%d\nother_errors=%d\nfake=%llu\ndone\n", won.load(), other_errors.load(),
              static_cast<unsigned long long>(FakeUsed()));
  std::fflush(stdout);
  WaitForStdinClose();
}

void ProcAddress() {
  SetUp();
  // The pointer handed out must be the shim's wrapper (what dlsym on libcuda.so.1 returns),
  // for the default lookup, the per-thread lookup and an explicit old cudaVersion.
  struct Case {
    const char* symbol;
    const char* exported;
    int version;
    cuuint64_t flags;
  };
  const Case cases[] = {
      {"cuMemAlloc", "cuMemAlloc_v2", 13000, CU_GET_PROC_ADDRESS_DEFAULT},
      {"cuMemAlloc", "cuMemAlloc_v2", 3020, CU_GET_PROC_ADDRESS_DEFAULT},
      {"cuMemAllocAsync", "cuMemAllocAsync_ptsz", 12000,
       CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM},
      {"cuMemAllocAsync", "cuMemAllocAsync", 12000, CU_GET_PROC_ADDRESS_DEFAULT},
      {"cuMemGetInfo", "cuMemGetInfo_v2", 12000, CU_GET_PROC_ADDRESS_DEFAULT},
      {"cuGetProcAddress", "cuGetProcAddress_v2", 12000, CU_GET_PROC_ADDRESS_DEFAULT},
      {"cuLaunchKernel", "cuLaunchKernel_ptsz", 12000,
       CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM},
      {"cuCtxCreate", "cuCtxCreate_v4", 13000, CU_GET_PROC_ADDRESS_DEFAULT},
  };
  void* self = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
  for (const Case& c : cases) {
    void* fn = nullptr;
    CUdriverProcAddressQueryResult status{};
    const CUresult r = g.cuGetProcAddress_v2(c.symbol, &fn, c.version, c.flags, &status);
    const void* wrapper = self != nullptr ? dlsym(self, c.exported) : nullptr;
    std::printf("lookup=%s@%d/%llu result=%d is_exported_%s=%d\n", c.symbol, c.version,
                static_cast<unsigned long long>(c.flags), r, c.exported,
                fn != nullptr && fn == wrapper ? 1 : 0);
  }
  // And a pointer obtained that way is limited.
  void* fn = nullptr;
  g.cuGetProcAddress_v2("cuMemAlloc", &fn, 13000, 0, nullptr);
  CUdeviceptr p = 0;
  const auto alloc = reinterpret_cast<CUresult (*)(CUdeviceptr*, size_t)>(fn);
  std::printf("big_alloc=%d\n", alloc(&p, 1ULL << 40));
}

bool FakeDriverLoaded() {
  const char* path = std::getenv("GPUSLICE_TEST_FAKE_CUDA");
  return path != nullptr && dlopen(path, RTLD_NOW | RTLD_NOLOAD) != nullptr;
}

// The first call into libcuda.so.1 is a forwarded symbol, reached without cuGetProcAddress.
void FirstCallForwarded() {
  std::printf("loaded_before=%d\n", FakeDriverLoaded() ? 1 : 0);
#ifdef PROBE_DIRECT
  auto version_fn = &::cuDriverGetVersion;
#else
  void* handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  auto version_fn = reinterpret_cast<CUresult (*)(int*)>(
      handle != nullptr ? dlsym(handle, "cuDriverGetVersion") : nullptr);
  if (version_fn == nullptr) Die("no-cuDriverGetVersion", 0);
#endif
  int version = 0;
  const CUresult r = version_fn(&version);
  std::printf("version_result=%d\nversion=%d\nloaded_after=%d\n", r, version,
              FakeDriverLoaded() ? 1 : 0);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string first = argc > 1 ? argv[1] : "";
  if (first == "idle") {
    std::printf("driver_loaded=%d\n", FakeDriverLoaded() ? 1 : 0);
    return 0;
  }
  if (first == "version") {
    FirstCallForwarded();
    return 0;
  }
  LoadApi();
  const std::string command = argc > 1 ? argv[1] : "";
  auto arg = [&](int i) { return argc > i ? std::strtoull(argv[i], nullptr, 10) : 0ULL; };
  if (command == "info") {
    Info();
  } else if (command == "alloc") {
    Alloc(arg(2));
  } else if (command == "paths") {
    Paths(argc > 2 ? arg(2) : (64ULL << 20));
  } else if (command == "hold") {
    Hold(arg(2));
  } else if (command == "race") {
    Race(static_cast<int>(arg(2)), arg(3));
  } else if (command == "procaddr") {
    ProcAddress();
  } else if (command == "context") {
    Context();
  } else if (command == "fork-exit") {
    ForkExit(argc > 2 ? argv[2] : "", arg(3));
  } else if (command == "fork-daemon") {
    ForkDaemon(arg(2));
  } else if (command == "lifetime") {
    Lifetime(argc > 2 ? argv[2] : "", arg(3));
  } else if (command == "primary-cycle") {
    PrimaryCycle(arg(2));
  } else {
    std::fprintf(stderr, "usage: probe info|alloc|paths|hold|race|procaddr|context ...\n");
    return 64;
  }
  std::fflush(stdout);
  return 0;
}
