// Under `gpuslice run --memory 4Gi`: the GPU reports the limit, and every allocation path
// (linear, pitched, managed, stream-ordered, pool, VMM, arrays) is refused past it with
// CUDA_ERROR_OUT_OF_MEMORY and gives its memory back when freed.
#include <cuda.h>

#include <cstdio>
#include <vector>

#include "gpu_check.h"

static size_t UsedBytes() {
  size_t free_bytes = 0, total = 0;
  Require(cuMemGetInfo(&free_bytes, &total), "cuMemGetInfo");
  return total - free_bytes;
}

int main() {
  SetUpPrimaryContext();
  const unsigned long long limit = ExpectedLimit();
  const unsigned long long gib = 1ULL << 30;
  size_t free_bytes = 0, total = 0;
  Require(cuMemGetInfo(&free_bytes, &total), "cuMemGetInfo");
  Check(total == limit, "cuMemGetInfo total is the limit");
  size_t device_total = 0;
  Require(cuDeviceTotalMem(&device_total, 0), "cuDeviceTotalMem");
  Check(device_total == limit, "cuDeviceTotalMem is the limit");
  const size_t base = UsedBytes();  // context overhead, if charged

  // cuMemAlloc: 1 GiB chunks until refused.
  std::vector<CUdeviceptr> chunks;
  CUresult last = CUDA_SUCCESS;
  for (int i = 0; i < 64; ++i) {
    CUdeviceptr p;
    last = cuMemAlloc(&p, gib);
    if (last != CUDA_SUCCESS) break;
    chunks.push_back(p);
  }
  Check(last == CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc past the limit fails with OUT_OF_MEMORY");
  Check(base + chunks.size() * gib <= limit, "cuMemAlloc never exceeds the limit");
  Check(chunks.size() + 1 >= limit / gib, "cuMemAlloc reaches the limit");
  for (CUdeviceptr p : chunks) cuMemFree(p);
  Check(UsedBytes() == base, "cuMemFree gives the memory back");

  // Each path: the limit plus one byte is refused; half the limit fits and is freed.
  const size_t too_big = limit + 1;
  const size_t half = limit / 2;
  CUdeviceptr p;
  Check(cuMemAllocManaged(&p, too_big, CU_MEM_ATTACH_GLOBAL) == CUDA_ERROR_OUT_OF_MEMORY,
        "cuMemAllocManaged past the limit");
  Check(cuMemAllocManaged(&p, half, CU_MEM_ATTACH_GLOBAL) == CUDA_SUCCESS && cuMemFree(p) == 0,
        "cuMemAllocManaged within the limit");
  size_t pitch = 0;
  // 64 KiB rows, one row more than the limit holds.
  const CUresult pitched = cuMemAllocPitch(&p, &pitch, 1 << 16, (too_big >> 16) + 1, 4);
  if (pitched == CUDA_SUCCESS) cuMemFree(p);
  Check(pitched == CUDA_ERROR_OUT_OF_MEMORY, "cuMemAllocPitch past the limit");
  CUstream stream;
  Require(cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  Check(cuMemAllocAsync(&p, too_big, stream) == CUDA_ERROR_OUT_OF_MEMORY,
        "cuMemAllocAsync past the limit");
  Check(cuMemAllocAsync(&p, half, stream) == CUDA_SUCCESS && cuMemFreeAsync(p, stream) == 0,
        "cuMemAllocAsync within the limit");
  cuStreamSynchronize(stream);
  CUmemPoolProps props = {};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  props.location.id = 0;
  CUmemoryPool pool;
  Require(cuMemPoolCreate(&pool, &props), "cuMemPoolCreate");
  Check(cuMemAllocFromPoolAsync(&p, too_big, pool, stream) == CUDA_ERROR_OUT_OF_MEMORY,
        "cuMemAllocFromPoolAsync past the limit");
  cuStreamSynchronize(stream);
  cuMemPoolDestroy(pool);
  CUmemAllocationProp prop = {};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  size_t granularity = 0;
  Require(cuMemGetAllocationGranularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
          "cuMemGetAllocationGranularity");
  CUmemGenericAllocationHandle handle;
  const size_t vmm_big = (too_big + granularity - 1) / granularity * granularity;
  Check(cuMemCreate(&handle, vmm_big, &prop, 0) == CUDA_ERROR_OUT_OF_MEMORY,
        "cuMemCreate past the limit");
  const size_t vmm_half = half / granularity * granularity;
  Check(cuMemCreate(&handle, vmm_half, &prop, 0) == CUDA_SUCCESS && cuMemRelease(handle) == 0,
        "cuMemCreate within the limit");
  CUDA_ARRAY3D_DESCRIPTOR desc = {};
  desc.Width = 16384;
  desc.Height = 16384;
  desc.Depth = (too_big / (16384ULL * 16384ULL * 4ULL)) + 1;
  desc.Format = CU_AD_FORMAT_FLOAT;
  desc.NumChannels = 1;
  CUarray array;
  Check(cuArray3DCreate(&array, &desc) == CUDA_ERROR_OUT_OF_MEMORY,
        "cuArray3DCreate past the limit");
  Check(UsedBytes() == base, "nothing is left counted");

  // Through cuGetProcAddress, as the CUDA runtime reaches the driver.
  void* fn = nullptr;
  CUdriverProcAddressQueryResult status;
  Require(cuGetProcAddress("cuMemAlloc", &fn, 12000, CU_GET_PROC_ADDRESS_DEFAULT, &status),
          "cuGetProcAddress");
  auto alloc = reinterpret_cast<CUresult (*)(CUdeviceptr*, size_t)>(fn);
  Check(alloc(&p, too_big) == CUDA_ERROR_OUT_OF_MEMORY, "cuGetProcAddress(cuMemAlloc) is limited");
  std::printf("failures=%d\n", g_failures);
  return g_failures;
}
