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
#include <vector>

#include "shim/accounting_region.h"
#include "shim/arbiter_referee.h"
#include "shim/arbiter_region.h"
#include "shim/compute_arbiter.h"
#include "shim/container_limits.h"
#include "shim/cuda_driver_types.h"

namespace gpuslice::testing {

struct ArbitratedShimOptions {
  const char* shim_path = nullptr;      // the shim to load
  const char* fake_path = nullptr;      // the fake libcuda.so.1
  std::uint32_t weight = 50;            // this container's
  std::uint32_t other_weight = 50;      // the other container's
  bool arbitrated = true;               // false: the limits file names no arbiter
  std::uint32_t gpus = 1;               // GPUs of the container (each with its referee), 1 or more
  std::uint32_t unarbitrated_gpus = 0;  // bit i: GPU i's limits entry names no arbiter
  std::string fake_gpus_extra;          // appended to GPUSLICE_FAKE_GPUS (",kernel-us=100")
  shim::ArbiterParams params;           // the referees'
};

struct ArbitratedShim {
  std::filesystem::path dir;
  std::string grant;           // the (first) GPU's grant page
  std::string requests;        // this container's request file (for the first GPU)
  std::string other_requests;  // the other container's
  std::unique_ptr<shim::ArbiterReferee> referee;
  // GPU i (CUDA ordinal i, limits entry i) for every GPU; [0] as above. Another container on
  // each GPU, registered with that GPU's referee.
  std::vector<std::string> grants;
  std::vector<std::string> requests_of;
  std::vector<std::string> other_requests_of;
  std::vector<std::unique_ptr<shim::ArbiterReferee>> more_referees;  // GPUs 1..n-1
  void* fake = nullptr;                                              // dlopen handles
  void* shim = nullptr;

  ~ArbitratedShim() {
    referee.reset();
    more_referees.clear();
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
  limits.device_count = options.gpus;
  for (std::uint32_t i = 0; i < options.gpus; ++i) {
    const std::string suffix = i == 0 ? "" : "-" + std::to_string(i);
    out->grants.push_back((out->dir / ("grant" + suffix)).string());
    out->requests_of.push_back((out->dir / ("requests" + suffix)).string());
    out->other_requests_of.push_back((out->dir / ("other-requests" + suffix)).string());
    shim::DeviceLimit& d = limits.devices[i];
    d.nvml_index = static_cast<std::int32_t>(i);
    d.memory_bytes = 8ULL << 30;
    d.compute_percent = options.weight;
    if (options.arbitrated && (options.unarbitrated_gpus & (1u << i)) == 0) {
      std::snprintf(d.arbiter_path, sizeof(d.arbiter_path), "%s", out->grants[i].c_str());
      std::snprintf(d.requests_path, sizeof(d.requests_path), "%s", out->requests_of[i].c_str());
    }
    auto referee = shim::ArbiterReferee::Start(out->grants[i], options.params);
    if (!referee.ok()) return referee.status().message();
    if (shim::ArbiterRegion::CreateRequests(out->requests_of[i].c_str()) != 0 ||
        shim::ArbiterRegion::CreateRequests(out->other_requests_of[i].c_str()) != 0) {
      return "cannot create the request files";
    }
    if (Status st = (*referee)->AddTenant("this", out->requests_of[i], options.weight, 0);
        !st.ok()) {
      return st.message();
    }
    if (Status st =
            (*referee)->AddTenant("other", out->other_requests_of[i], options.other_weight, 0);
        !st.ok()) {
      return st.message();
    }
    if (i == 0) {
      out->referee = std::move(*referee);
    } else {
      out->more_referees.push_back(std::move(*referee));
    }
  }
  out->grant = out->grants[0];
  out->requests = out->requests_of[0];
  out->other_requests = out->other_requests_of[0];
  const std::string limits_path = (out->dir / "limits").string();
  if (Status s = shim::WriteContainerLimitsFile(limits_path, limits); !s.ok()) return s.message();
  if (shim::AccountingRegion::Create(limits.region_path) != 0) return "cannot create the region";
  ::setenv("GPUSLICE_LIMITS_FILE", limits_path.c_str(), 1);
  ::setenv(
      "GPUSLICE_FAKE_GPUS",
      ("count=" + std::to_string(options.gpus) + ",memory=16Gi" + options.fake_gpus_extra).c_str(),
      1);
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

  // Empty when it joined (on GPU `gpu` of the setup).
  std::string Join(const ArbitratedShim& setup, const shim::ArbiterParams& params = {},
                   std::uint32_t gpu = 0) {
    if (region.Open(setup.grants.at(gpu).c_str(), setup.other_requests_of.at(gpu).c_str()) != 0) {
      return "open failed";
    }
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
