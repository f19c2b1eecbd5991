// ContainerAllocator: the kubelet's Allocate answer for one container of one resource.
//
// Replica suffixes are stripped and duplicates removed (two replicas of one GPU give the
// container that GPU once); the devices then reach the container by each configured device list
// strategy: `envvar` (NVIDIA_VISIBLE_DEVICES), `volume-mounts` (/dev/null mounted under
// /var/run/nvidia-container-devices/), `cdi-annotations` and `cdi-cri` (CDI device names
// nvidia.com/gpu=<id>). MPS replicas also get the daemon's pipe directory and limits that follow
// the request: n of a device's R replicas give n/R of its threads and memory.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/advertised_resources.h"
#include "core/gpu.h"
#include "core/resource_names.h"
#include "core/sharing_config.h"
#include "core/status.h"
#include "node_agent/device_plugin_api.pb.h"

namespace gpuslice {

struct AllocationSettings {
  PluginFlags plugin;    // device list and ID strategies, passDeviceSpecs, CDI annotation prefix
  std::string mps_root;  // host directory with one MPS directory per device
  // "/proc/driver/nvidia-caps/mig-minors" entries: "gpu0/gi1/access" -> 12. MIG capability
  // device nodes are passed only for entries found here.
  std::map<std::string, int> mig_cap_minors;
};

// Parses /proc/driver/nvidia-caps/mig-minors ("gpu0/gi1/access 12" per line).
std::map<std::string, int> ParseMigMinors(std::string_view text);

// The CDI device name for a device under a device ID strategy: "0", "0:1" or the UUID.
std::string DeviceIdFor(const AdvertisedDevice& device, DeviceIdStrategy strategy);

class ContainerAllocator {
 public:
  ContainerAllocator(AdvertisedResource resource, const std::vector<GpuInfo>& gpus,
                     AllocationSettings settings);

  // Builds the response for the device IDs the kubelet picked for one container. Fails with
  // InvalidArgument for unknown IDs, a request over 1 when failRequestsGreaterThanOne is set,
  // and MPS replicas spread over several devices (one container talks to one MPS daemon).
  Result<v1beta1::ContainerAllocateResponse> Allocate(const std::vector<std::string>& ids) const;

  const AdvertisedResource& resource() const { return resource_; }

 private:
  struct DeviceFacts {
    int gpu_minor = 0;
    std::uint64_t memory_bytes = 0;
    int gpu_instance_id = -1;  // MIG only
    int compute_instance_id = -1;
  };
  void AddDeviceSpecs(const std::vector<const AdvertisedDevice*>& devices,
                      v1beta1::ContainerAllocateResponse& out) const;
  Status AddMps(const std::vector<std::string>& ids,
                const std::vector<const AdvertisedDevice*>& devices,
                v1beta1::ContainerAllocateResponse& out) const;

  AdvertisedResource resource_;
  AllocationSettings settings_;
  std::map<std::string, const AdvertisedDevice*> by_id_;
  std::map<std::string, int> replicas_per_device_;  // device UUID -> replicas advertised
  std::map<std::string, DeviceFacts> facts_;        // device UUID -> facts
};

}  // namespace gpuslice
