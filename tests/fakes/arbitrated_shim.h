// One process set up as an arbitrated container on the fake driver, as the node agent would do it:
// a temporary directory, the GPU's referee (ArbiterReferee, in this process), this container's
// and another container's request files registered with it, a limits file naming the arbiter, an
// accounting region; then the fake libcuda and the shim dlopened and the shim's primary context
// made current. Shared by the shim tests and the shim benchmark (bench/shim). Header-only: the
// users link gpuslice_limits, gpuslice_shim_core, gpuslice_arbiter_referee and libdl.
#pragma once

#include <dlfcn.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "shim/accounting_region.h"
#include "shim/arbiter_referee.h"
#include "shim/arbiter_region.h"
#include "shim/compute_arbiter.h"
#include "shim/container_limits.h"
#include "shim/cuda_driver_types.h"

namespace gpuslice::testing {

struct ArbitratedShimOptions {
  const char* shim_path = nullptr;  // the shim to load
  const char* fake_path = nullptr;  // the fake libcuda.so.1
  std::uint32_t weight = 50;        // this container's
  std::uint32_t other_weight = 50;  // the other container's
  bool arbitrated = true;           // false: the limits file names no arbiter
  shim::ArbiterParams params;       // the referee's
};

struct ArbitratedShim {
  std::filesystem::path dir;
  std::string grant;           // the GPU's grant page
  std::string requests;        // this container's request file
  std::string other_requests;  // the other container's
  std::unique_ptr<shim::ArbiterReferee> referee;
  void* fake = nullptr;  // dlopen handles
  void* shim = nullptr;

  ~ArbitratedShim() {
    referee.reset();
    std::error_code ignored;
    if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

// Sets `out` up; returns what failed ("" when all went well). The shim reads its configuration
// once per process: call this once per process.
inline std::string SetUpArbitratedShim(const ArbitratedShimOptions& options, ArbitratedShim* out) {
  char pattern[] = "/tmp/gpuslice-arbitrated-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) return "mkdtemp failed";
  out->dir = pattern;
  shim::ContainerLimits limits;
  std::snprintf(limits.region_path, sizeof(limits.region_path), "%s/accounting", out->dir.c_str());
  std::snprintf(limits.cuda_driver_path, sizeof(limits.cuda_driver_path), "%s", options.fake_path);
  limits.device_count = 1;
  limits.devices[0].nvml_index = 0;
  limits.devices[0].memory_bytes = 8ULL << 30;
  limits.devices[0].compute_percent = options.weight;
  out->grant = (out->dir / "grant").string();
  out->requests = (out->dir / "requests").string();
  out->other_requests = (out->dir / "other-requests").string();
  if (options.arbitrated) {
    std::snprintf(limits.devices[0].arbiter_path, sizeof(limits.devices[0].arbiter_path), "%s",
                  out->grant.c_str());
    std::snprintf(limits.devices[0].requests_path, sizeof(limits.devices[0].requests_path), "%s",
                  out->requests.c_str());
  }
  auto referee = shim::ArbiterReferee::Start(out->grant, options.params);
  if (!referee.ok()) return referee.status().message();
  out->referee = std::move(*referee);
  if (shim::ArbiterRegion::CreateRequests(out->requests.c_str()) != 0 ||
      shim::ArbiterRegion::CreateRequests(out->other_requests.c_str()) != 0) {
    return "cannot create the request files";
  }
  if (Status s = out->referee->AddTenant("this", out->requests, options.weight, 0); !s.ok()) {
    return s.message();
  }
  if (Status s = out->referee->AddTenant("other", out->other_requests, options.other_weight, 0);
      !s.ok()) {
    return s.message();
  }
  const std::string limits_path = (out->dir / "limits").string();
  if (Status s = shim::WriteContainerLimitsFile(limits_path, limits); !s.ok()) return s.message();
  if (shim::AccountingRegion::Create(limits.region_path) != 0) return "cannot create the region";
  ::setenv("GPUSLICE_LIMITS_FILE", limits_path.c_str(), 1);
  ::setenv("GPUSLICE_FAKE_GPUS", "count=1,memory=16Gi", 1);
  out->fake = ::dlopen(options.fake_path, RTLD_NOW | RTLD_LOCAL);
  out->shim = ::dlopen(options.shim_path, RTLD_NOW | RTLD_LOCAL);
  if (out->fake == nullptr || out->shim == nullptr) return std::string("dlopen: ") + ::dlerror();
  auto init = reinterpret_cast<CUresult (*)(unsigned)>(::dlsym(out->shim, "cuInit"));
  auto retain = reinterpret_cast<CUresult (*)(CUcontext*, CUdevice)>(
      ::dlsym(out->shim, "cuDevicePrimaryCtxRetain"));
  auto set_current =
      reinterpret_cast<CUresult (*)(CUcontext)>(::dlsym(out->shim, "cuCtxSetCurrent"));
  if (init == nullptr || retain == nullptr || set_current == nullptr) return "shim symbols missing";
  CUcontext context = nullptr;
  if (init(0) != CUDA_SUCCESS || retain(&context, 0) != CUDA_SUCCESS ||
      set_current(context) != CUDA_SUCCESS) {
    return "cannot set up the fake driver through the shim";
  }
  return "";
}

// The other container's process, played by a TenantGate in this process.
struct OtherTenant {
  shim::ArbiterRegion region;
  std::unique_ptr<shim::TenantGate> gate;
  std::uint32_t id = shim::kNoTenant;

  // Empty when it joined.
  std::string Join(const ArbitratedShim& setup, const shim::ArbiterParams& params = {}) {
    if (region.Open(setup.grant.c_str(), setup.other_requests.c_str()) != 0) return "open failed";
    const std::uint32_t process = region.Join(0);
    const std::uint32_t slot = region.FindTenantSlot();
    if (process == shim::kNoTenant || slot == shim::kNoTenant) return "no record or slot";
    id = shim::HolderId(slot, process);
    gate = std::make_unique<shim::TenantGate>(region.page(), &region.requests()->processes[process],
                                              id, &region, params);
    return "";
  }
};

}  // namespace gpuslice::testing
