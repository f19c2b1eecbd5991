// Memory that outlives the call that "frees" it, on a real GPU under `gpuslice run --memory 4Gi`
// (issue 11): the shim must keep it counted for as long as the driver keeps it, and give it back
// when the driver does. One mode per run:
//   driver_memory_lifetimes vmm     map-then-release, retain, export/import of VMM memory
//   driver_memory_lifetimes pool    a pool's reserve up to its release threshold; cuMemPoolTrimTo
//   driver_memory_lifetimes async   cuMemFreeAsync counted until the stream is synchronised
//   driver_memory_lifetimes graph   graph allocation nodes charged from the launch to the exec's end
//   driver_memory_lifetimes ipc     cuIpcOpenMemHandle charged to the importing process
//   driver_memory_lifetimes hog     (run without the shim) hold 5 GiB for 20 s: the run's watchdog
//                                   must kill it
// Each check prints PASS/FAIL (gpu_check.h); the exit status is the number of failures.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gpu_check.h"

extern char** environ;

namespace {

constexpr unsigned long long kGiB = 1ULL << 30;

unsigned long long Used() {
  size_t free_bytes = 0, total = 0;
  Require(cuMemGetInfo(&free_bytes, &total), "cuMemGetInfo");
  return total - free_bytes;
}

// A 3 GiB allocation fits a 4 GiB limit once, not twice.
const unsigned long long kBig = 3 * kGiB;

bool SecondBigAllocationRefused() {
  CUdeviceptr p = 0;
  const CUresult r = cuMemAlloc(&p, kBig);
  if (r == CUDA_SUCCESS) cuMemFree(p);
  return r == CUDA_ERROR_OUT_OF_MEMORY;
}

void Vmm() {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
  prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  size_t granularity = 0;
  Require(cuMemGetAllocationGranularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
          "granularity");
  const size_t bytes = (kBig + granularity - 1) / granularity * granularity;
  const unsigned long long before = Used();
  CUmemGenericAllocationHandle handle = 0;
  Require(cuMemCreate(&handle, bytes, &prop, 0), "cuMemCreate");
  CUdeviceptr va = 0;
  Require(cuMemAddressReserve(&va, bytes, granularity, 0, 0), "cuMemAddressReserve");
  Require(cuMemMap(va, bytes, 0, handle, 0), "cuMemMap");
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  Require(cuMemSetAccess(va, bytes, &access, 1), "cuMemSetAccess");
  Require(cuMemRelease(handle), "cuMemRelease");
  Check(Used() - before >= bytes, "mapped memory stays counted after cuMemRelease");
  Check(SecondBigAllocationRefused(), "a second 3 GiB is refused while it is mapped");
  CUmemGenericAllocationHandle retained = 0;
  Require(cuMemRetainAllocationHandle(&retained, reinterpret_cast<void*>(va)), "retain");
  Require(cuMemUnmap(va, bytes), "cuMemUnmap");
  Check(Used() - before >= bytes, "retained memory stays counted after cuMemUnmap");
  Require(cuMemRelease(retained), "release the retained handle");
  Check(Used() - before < granularity, "the last reference gives it back");
  Require(cuMemAddressFree(va, bytes), "cuMemAddressFree");

  CUmemGenericAllocationHandle exported = 0;
  Require(cuMemCreate(&exported, bytes, &prop, 0), "cuMemCreate (to export)");
  int fd = -1;
  Require(cuMemExportToShareableHandle(&fd, exported, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
          "export");
  CUmemGenericAllocationHandle imported = 0;
  Require(cuMemImportFromShareableHandle(&imported, reinterpret_cast<void*>(static_cast<intptr_t>(fd)),
                                         CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR),
          "import");
  Require(cuMemRelease(exported), "release the exported handle");
  Check(SecondBigAllocationRefused(), "exported memory held by an import stays counted");
  cuMemRelease(imported);
  close(fd);
}

void Pool() {
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
  CUmemoryPool pool = nullptr;
  Require(cuMemPoolCreate(&pool, &props), "cuMemPoolCreate");
  cuuint64_t keep = ~0ULL;
  Require(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &keep), "threshold");
  CUstream stream = nullptr;
  Require(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  const unsigned long long before = Used();
  CUdeviceptr p = 0;
  Require(cuMemAllocFromPoolAsync(&p, kBig, pool, stream), "alloc from pool");
  Require(cuMemFreeAsync(p, stream), "cuMemFreeAsync");
  Require(cuStreamSynchronize(stream), "sync");
  Check(Used() - before >= kBig, "the pool's reserve (threshold: keep all) stays counted");
  Check(SecondBigAllocationRefused(), "a second 3 GiB is refused while the pool keeps the first");
  Check(cuMemAllocFromPoolAsync(&p, kBig, pool, stream) == CUDA_SUCCESS,
        "the pool reuses its reserve without a second charge");
  Require(cuMemFreeAsync(p, stream), "cuMemFreeAsync");
  Require(cuStreamSynchronize(stream), "sync");
  Require(cuMemPoolTrimTo(pool, 0), "cuMemPoolTrimTo");
  Check(Used() - before < kGiB / 4, "cuMemPoolTrimTo gives the reserve back");
  cuMemPoolDestroy(pool);
  cuStreamDestroy(stream);
}

void Async() {
  CUstream stream = nullptr;
  Require(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  CUdeviceptr p = 0;
  Require(cuMemAllocAsync(&p, kBig, stream), "cuMemAllocAsync");
  Require(cuMemFreeAsync(p, stream), "cuMemFreeAsync");
  Check(SecondBigAllocationRefused(), "a queued free still counts before the stream gets there");
  Require(cuStreamSynchronize(stream), "sync");
  Check(!SecondBigAllocationRefused(), "after the stream is synchronised it is given back");
  cuStreamDestroy(stream);
}

void Graph() {
  CUgraph graph = nullptr;
  Require(cuGraphCreate(&graph, 0), "cuGraphCreate");
  CUDA_MEM_ALLOC_NODE_PARAMS params{};
  params.poolProps.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  params.poolProps.location = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
  params.bytesize = kBig;
  CUgraphNode alloc_node = nullptr;
  Require(cuGraphAddMemAllocNode(&alloc_node, graph, nullptr, 0, &params), "alloc node");
  CUgraphNode free_node = nullptr;
  Require(cuGraphAddMemFreeNode(&free_node, graph, &alloc_node, 1, params.dptr), "free node");
  CUgraphExec exec = nullptr;
  Require(cuGraphInstantiate(&exec, graph, 0), "cuGraphInstantiate");
  Check(!SecondBigAllocationRefused(), "an instantiated graph has taken nothing yet");
  Require(cuGraphLaunch(exec, nullptr), "cuGraphLaunch");
  Require(cuCtxSynchronize(), "sync");
  Check(SecondBigAllocationRefused(), "graph memory stays counted after the launch");
  Require(cuGraphExecDestroy(exec), "cuGraphExecDestroy");
  Check(!SecondBigAllocationRefused(), "destroying the exec gives it back");
  cuGraphDestroy(graph);
}

std::string Hex(const CUipcMemHandle& handle) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : handle.reserved) {
    const auto b = static_cast<unsigned char>(c);
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

// The importing process: opens the handle; exits 0 when the result is `expected`.
int IpcChild(const char* hex, const char* expected) {
  SetUpPrimaryContext();
  CUipcMemHandle handle{};
  for (int i = 0; i < 64; ++i) {
    handle.reserved[i] = static_cast<char>(std::stoi(std::string(hex + 2 * i, 2), nullptr, 16));
  }
  CUdeviceptr p = 0;
  const CUresult r = cuIpcOpenMemHandle(&p, handle, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
  if (r == CUDA_SUCCESS) cuIpcCloseMemHandle(p);
  return std::to_string(r) == expected ? 0 : 1;
}

int SpawnChild(const char* self, const std::string& hex, const char* expected) {
  const char* argv[] = {self, "ipc-child", hex.c_str(), expected, nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, self, nullptr, nullptr, const_cast<char**>(argv), environ) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void Ipc(const char* self) {
  CUdeviceptr big = 0;
  Require(cuMemAlloc(&big, kBig), "cuMemAlloc 3 GiB");
  CUipcMemHandle handle{};
  Require(cuIpcGetMemHandle(&handle, big), "cuIpcGetMemHandle");
  Check(SpawnChild(self, Hex(handle), "2") == 0,
        "an importer of 3 GiB is refused (it would keep 6 GiB alive under 4)");
  cuMemFree(big);
  CUdeviceptr small = 0;
  Require(cuMemAlloc(&small, kGiB / 2), "cuMemAlloc 512 MiB");
  Require(cuIpcGetMemHandle(&handle, small), "cuIpcGetMemHandle");
  Check(SpawnChild(self, Hex(handle), "0") == 0, "an importer of 512 MiB is allowed");
  cuMemFree(small);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "ipc-child" && argc > 3) return IpcChild(argv[2], argv[3]);
  SetUpPrimaryContext();
  if (mode == "vmm") {
    Vmm();
  } else if (mode == "pool") {
    Pool();
  } else if (mode == "async") {
    Async();
  } else if (mode == "graph") {
    Graph();
  } else if (mode == "ipc") {
    Ipc(argv[0]);
  } else if (mode == "hog") {
    CUdeviceptr p = 0;
    Require(cuMemAlloc(&p, 5 * kGiB), "cuMemAlloc 5 GiB without the shim");
    std::printf("holding 5 GiB\n");
    std::fflush(stdout);
    sleep(20);
    return 0;
  } else {
    std::fprintf(stderr, "usage: driver_memory_lifetimes vmm|pool|async|graph|ipc\n");
    return 64;
  }
  return g_failures;
}
