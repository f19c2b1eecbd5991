// Shared set-up for the shim tests: a temporary container (limits file + accounting region) and
// the environment a probe runs with under the shim and the fake driver.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "shim/accounting_region.h"
#include "shim/container_limits.h"

namespace gpuslice::shim::testing {

inline constexpr std::uint64_t kMiB = 1ULL << 20;
inline constexpr std::uint64_t kGiB = 1ULL << 30;

struct TestContainer {
  std::filesystem::path dir;
  std::string limits_path;
  std::string region_path;

  // A container with one GPU limited to `memory_bytes`.
  explicit TestContainer(std::uint64_t memory_bytes, std::uint64_t context_overhead = 0) {
    char pattern[] = "/tmp/gpuslice-shim-test-XXXXXX";
    dir = ::mkdtemp(pattern);
    limits_path = (dir / "limits").string();
    region_path = (dir / "accounting").string();
    ContainerLimits limits;
    Copy(region_path, limits.region_path);
    Copy(GPUSLICE_FAKE_CUDA_PATH, limits.cuda_driver_path);
    Copy(GPUSLICE_FAKE_NVML_PATH, limits.nvml_driver_path);
    limits.context_overhead_bytes = context_overhead;
    limits.device_count = 1;
    limits.devices[0].nvml_index = 0;
    limits.devices[0].memory_bytes = memory_bytes;
    if (!WriteContainerLimitsFile(limits_path, limits).ok()) std::abort();
    if (AccountingRegion::Create(region_path.c_str()) != 0) std::abort();
  }
  ~TestContainer() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }

  template <std::size_t N>
  static void Copy(const std::string& from, char (&to)[N]) {
    from.copy(to, N - 1);
    to[std::min(from.size(), N - 1)] = '\0';
  }

  // The environment of a process of this container: shims preloaded, fakes configured.
  std::vector<std::string> Env(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> env = {
        std::string("LD_PRELOAD=") + GPUSLICE_CUDA_SHIM_PATH + " " + GPUSLICE_NVML_SHIM_PATH,
        "GPUSLICE_LIMITS_FILE=" + limits_path,
        std::string("GPUSLICE_TEST_FAKE_CUDA=") + GPUSLICE_FAKE_CUDA_PATH,
        "GPUSLICE_FAKE_GPUS=count=1,memory=16Gi",
        std::string("LD_LIBRARY_PATH=") + GPUSLICE_FAKE_CUDA_DIR + ":" + GPUSLICE_FAKE_NVML_DIR,
        // Sanitizer builds: the preloaded shim comes before the sanitizer runtime.
        "ASAN_OPTIONS=verify_asan_link_order=0",
    };
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
  }
};

// The environment of a process without the shim, reaching the fakes directly.
inline std::vector<std::string> UnshimmedEnv() {
  return {std::string("GPUSLICE_TEST_FAKE_CUDA=") + GPUSLICE_FAKE_CUDA_PATH,
          "GPUSLICE_FAKE_GPUS=count=1,memory=16Gi",
          std::string("LD_LIBRARY_PATH=") + GPUSLICE_FAKE_CUDA_DIR + ":" + GPUSLICE_FAKE_NVML_DIR,
          "ASAN_OPTIONS=verify_asan_link_order=0"};
}

inline bool ManagedNode() { return ::access(kDefaultLimitsPath, F_OK) == 0; }

}  // namespace gpuslice::shim::testing
