// Tiny helpers shared by the GPU suite's driver-API programs: every check prints one
// "PASS name" or "FAIL name: why" line; the exit status is the number of failures.
#pragma once

#include <cuda.h>

#include <cstdio>
#include <cstdlib>

static int g_failures = 0;

static void Check(bool ok, const char* name, const char* detail = "") {
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name, ok ? "" : ": ", ok ? "" : detail);
  if (!ok) ++g_failures;
  std::fflush(stdout);
}

static void Require(CUresult r, const char* what) {
  if (r != CUDA_SUCCESS) {
    const char* name = nullptr;
    cuGetErrorName(r, &name);
    std::printf("FAIL %s: %s\n", what, name != nullptr ? name : "?");
    std::exit(100);
  }
}

// The limit gpuslice run was given, from GPUSLICE_TEST_LIMIT_BYTES (set by run.sh).
static unsigned long long ExpectedLimit() {
  const char* v = std::getenv("GPUSLICE_TEST_LIMIT_BYTES");
  return v != nullptr ? std::strtoull(v, nullptr, 10) : (4ULL << 30);
}

static CUcontext SetUpPrimaryContext() {
  Require(cuInit(0), "cuInit");
  CUdevice device;
  Require(cuDeviceGet(&device, 0), "cuDeviceGet");
  CUcontext context;
  Require(cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
  Require(cuCtxSetCurrent(context), "cuCtxSetCurrent");
  return context;
}
