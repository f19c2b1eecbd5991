// CdiSpecWriter: a Container Device Interface spec (JSON) for the node's GPUs and MIG devices,
// kind nvidia.com/gpu, so that the cdi-annotations and cdi-cri device list strategies name
// devices the container runtime can resolve. Every device is listed under its index ("0",
// "0:1") and its UUID; "all" lists every GPU.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/gpu.h"
#include "core/status.h"

namespace gpuslice {

class CdiSpecWriter {
 public:
  // `cdi_dir` is the runtime's CDI directory (default /var/run/cdi).
  explicit CdiSpecWriter(std::string cdi_dir);

  // The spec as JSON text. `mig_cap_minors` as ParseMigMinors returns it.
  // `hook_command` (argv, argv[0] an absolute path), when not empty, becomes a createContainer
  // hook in the spec-wide containerEdits (docs/isolation.md).
  static std::string Render(const std::vector<GpuInfo>& gpus,
                            const std::map<std::string, int>& mig_cap_minors,
                            const std::vector<std::string>& hook_command = {});

  // Writes <cdi_dir>/gpuslice-nvidia-gpu.json atomically when its content changed; true when
  // written.
  Result<bool> Write(const std::vector<GpuInfo>& gpus,
                     const std::map<std::string, int>& mig_cap_minors,
                     const std::vector<std::string>& hook_command = {});
  void Remove();

  std::string path() const { return cdi_dir_ + "/gpuslice-nvidia-gpu.json"; }

 private:
  std::string cdi_dir_;
};

}  // namespace gpuslice
